"""End to end on CPU: tools/train.py trains a tiny Deformable DETR on a
generated shapes data set and saves checkpoints, tools/test.py evaluates one
and prints COCO metrics, ``--resume`` continues training; plus the option
handling of ``mmdet_detr.engine.cli`` the tools are built on."""
import os
import os.path as osp
import pickle
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import DefaultScope

from mmdet_detr.checkpoint.safe_load import load_checkpoint_file
from mmdet_detr.datasets.shapes import make_shapes_dataset
from mmdet_detr.engine import cli
from mmdet_detr.engine.bf16_optim_wrapper import BF16AutocastOptimWrapper
from mmdet_detr.registry import TRANSFORMS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
TEST = osp.join(REPO_ROOT, 'tools', 'test.py')
TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs',
                       'tiny_deformable_detr.py')
COCO_METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s',
                'bbox_mAP_m', 'bbox_mAP_l')
# 4 train images in batches of 2: 2 iterations per epoch.
ITERS_PER_EPOCH = 2


def run_tool(args, cwd):
    """Run a tool in a fresh process; returns (returncode, stdout+stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A directory holding ``data/shapes/``, the tiny config's data root."""
    root = tmp_path_factory.mktemp('tools')
    make_shapes_dataset(
        str(root / 'data' / 'shapes'),
        num_train=4,
        num_val=2,
        seed=0,
        image_size=64,
        show_progress=False)
    return root


@pytest.fixture(scope='module')
def trained(run_dir):
    """Two epochs of training; returns (work_dir, log)."""
    work_dir = str(run_dir / 'work')
    code, log = run_tool([TRAIN, TINY_CONFIG, '--work-dir', work_dir],
                         cwd=run_dir)
    assert code == 0, log[-5000:]
    return work_dir, log


def coco_metrics(log):
    """``{name: value}`` of the last ``coco/bbox_*`` line of a log."""
    found = re.findall(r'coco/(bbox_mAP\w*): (-?\d+\.\d+)', log)
    return {name: float(value) for name, value in found}


def test_train_saves_checkpoints_and_validates(trained):
    work_dir, log = trained
    for epoch in (1, 2):
        assert osp.isfile(osp.join(work_dir, f'epoch_{epoch}.pth'))
    assert f'Epoch(train) [2][{ITERS_PER_EPOCH}/{ITERS_PER_EPOCH}]' in log
    # val_interval=2: the COCO metric ran after epoch 2.
    assert set(coco_metrics(log)) == set(COCO_METRICS)
    ckpt = load_checkpoint_file(osp.join(work_dir, 'epoch_2.pth'))
    assert ckpt['meta']['iter'] == 2 * ITERS_PER_EPOCH
    assert any(k.startswith('bbox_head.') for k in ckpt['state_dict'])


def test_test_tool_prints_coco_metrics_dumps_and_draws(trained, run_dir):
    work_dir, _ = trained
    out = str(run_dir / 'preds.pkl')
    show_dir = str(run_dir / 'shown')
    code, log = run_tool([
        TEST, TINY_CONFIG,
        osp.join(work_dir, 'epoch_2.pth'), '--work-dir',
        str(run_dir / 'test_work'), '--out', out, '--show-dir', show_dir
    ],
                         cwd=run_dir)
    assert code == 0, log[-5000:]
    assert 'Loads checkpoint by local_safe backend' in log
    metrics = coco_metrics(log)
    assert set(metrics) == set(COCO_METRICS)
    # -1 is COCO's "no ground truth of this size" (the shapes are small).
    assert all(v == -1.0 or 0.0 <= v <= 1.0 for v in metrics.values())

    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 2  # num_val
    boxes = predictions[0]['pred_instances']['bboxes']
    assert boxes.ndim == 2 and boxes.shape[1] == 4
    assert 'gt_instances' not in predictions[0]
    assert sorted(os.listdir(show_dir)) == ['000001.jpg', '000002.jpg']


def test_resume_continues_from_latest_checkpoint(trained, run_dir):
    work_dir, _ = trained
    code, log = run_tool([
        TRAIN, TINY_CONFIG, '--work-dir', work_dir, '--resume',
        '--cfg-options', 'train_cfg.max_epochs=3'
    ],
                         cwd=run_dir)
    assert code == 0, log[-5000:]
    latest = osp.join(work_dir, 'epoch_2.pth')
    assert f'Auto resumed from the latest checkpoint {latest}' in log
    assert f'resumed epoch: 2, iter: {2 * ITERS_PER_EPOCH}' in log
    assert 'Epoch(train) [1]' not in log
    assert f'Epoch(train) [3][{ITERS_PER_EPOCH}/{ITERS_PER_EPOCH}]' in log
    ckpt = load_checkpoint_file(osp.join(work_dir, 'epoch_3.pth'))
    assert ckpt['meta']['iter'] == 3 * ITERS_PER_EPOCH


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU --amp path')
def test_amp_trains_in_bfloat16_on_cpu(run_dir):
    work_dir = str(run_dir / 'amp')
    code, log = run_tool([
        TRAIN, TINY_CONFIG, '--work-dir', work_dir, '--amp', '--cfg-options',
        'train_cfg.max_epochs=1'
    ],
                         cwd=run_dir)
    assert code == 0, log[-5000:]
    assert "type='BF16AutocastOptimWrapper'" in log
    losses = re.findall(r'Epoch\(train\) \[1\]\[\d/\d\].* loss: (\S+)', log)
    assert len(losses) == ITERS_PER_EPOCH
    assert all(torch.isfinite(torch.tensor(float(v))) for v in losses)


def test_test_tool_rejects_missing_checkpoint_before_building(tmp_path):
    code, log = run_tool([
        TEST, TINY_CONFIG, 'no/such.pth', '--work-dir',
        str(tmp_path / 'work')
    ],
                         cwd=tmp_path)
    assert code == 2
    assert "CHECKPOINT: checkpoint file 'no/such.pth' does not exist" in log
    assert not (tmp_path / 'work').exists()


# The option handling, in process.


def test_load_config_defaults(tmp_path):
    cfg = cli.load_config(TINY_CONFIG, {'train_cfg.max_epochs': 7})
    assert cfg.work_dir == osp.join('./work_dirs', 'tiny_deformable_detr')
    assert cfg.default_scope == 'mmdet_detr'
    assert cfg.launcher == 'none'
    assert cfg.train_cfg.max_epochs == 7
    assert cli.load_config(TINY_CONFIG, work_dir='w').work_dir == 'w'

    bare = tmp_path / 'bare.py'
    bare.write_text('model = dict(type="X")\n')
    assert cli.load_config(str(bare)).default_scope == 'mmdet_detr'
    with pytest.raises(FileNotFoundError, match='nope.py'):
        cli.load_config(str(tmp_path / 'nope.py'))


def test_resume_options(tmp_path):
    cfg = Config(
        dict(resume=False, load_from='init.pth', work_dir=str(tmp_path)))
    cli.apply_resume(cfg, None)
    assert cfg.resume is False and cfg.load_from == 'init.pth'
    # Nothing to resume in the work dir: refused, not a silent new run.
    with pytest.raises(FileNotFoundError, match='no last_checkpoint file'):
        cli.apply_resume(cfg, 'auto')
    (tmp_path / 'last_checkpoint').write_text('epoch_3.pth')
    cli.apply_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from is None

    ckpt = tmp_path / 'epoch_3.pth'
    ckpt.write_bytes(b'')
    cli.apply_resume(cfg, str(ckpt))
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    with pytest.raises(FileNotFoundError, match='--resume'):
        cli.apply_resume(cfg, str(tmp_path / 'missing.pth'))
    cli.set_test_checkpoint(cfg, str(ckpt))
    assert cfg.resume is False and cfg.load_from == str(ckpt)
    # Remote checkpoints are left to mmengine's loaders.
    cli.check_checkpoint_path('https://host/a.pth', 'CHECKPOINT')
    cli.check_checkpoint_path('torchvision://resnet50', 'CHECKPOINT')


def test_auto_scale_lr_needs_base_batch_size():
    cfg = cli.load_config(TINY_CONFIG)
    assert cfg.auto_scale_lr.enable is False
    cli.enable_auto_scale_lr(cfg)
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=32)
    with pytest.raises(ValueError, match='base_batch_size'):
        cli.enable_auto_scale_lr(Config(dict(optim_wrapper=dict())))


def test_visualization_options():
    cfg = cli.load_config(TINY_CONFIG)
    cli.enable_visualization(cfg)
    assert 'draw' not in cfg.default_hooks.visualization
    cli.enable_visualization(cfg, show=True, show_dir='vis', wait_time=0.5)
    hook = cfg.default_hooks.visualization
    assert hook.type == 'DetVisualizationHook'
    assert hook.draw and hook.show and hook.wait_time == 0.5
    assert hook.test_out_dir == 'vis'
    del cfg.default_hooks['visualization']
    with pytest.raises(ValueError, match='default_hooks.visualization'):
        cli.enable_visualization(cfg, show_dir='vis')
    cli.check_dump_path('p.pkl')
    with pytest.raises(ValueError, match='.pkl'):
        cli.check_dump_path('p.json')


def test_amp_option_and_bf16_wrapper():
    cfg = cli.load_config(TINY_CONFIG)
    cli.enable_amp(cfg)
    float16_only = (torch.cuda.is_available()
                    and not torch.cuda.is_bf16_supported())
    expected = ('AmpOptimWrapper'
                if float16_only else 'BF16AutocastOptimWrapper')
    assert cfg.optim_wrapper.type == expected
    # The rest of the wrapper (clip_grad, paramwise_cfg) is kept.
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.1

    model = torch.nn.Linear(4, 2)
    wrapper = BF16AutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert isinstance(wrapper, OptimWrapper)
    x = torch.randn(3, 4)
    with wrapper.optim_context(model):
        y = model(x)
    assert y.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    wrapper.update_params(y.float().square().mean())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(model.weight, before)
    assert model(x).dtype == torch.float32  # autocast ends with the context


# The base configs the tools run.


def _base_config(name):
    return Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_', name))


def test_coco_train_pipeline_is_the_papers(run_dir):
    # Flip, then a multi-scale resize (short side 480..800) or resize + crop
    # + the same resize, each half of the time.
    cfg = _base_config('datasets/coco_detection.py')
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        pipeline = Compose([TRANSFORMS.build(t) for t in cfg.train_pipeline])
    scales = {480 + 32 * i for i in range(11)}
    image = str(run_dir / 'data' / 'shapes' / 'train' / '000001.jpg')
    shapes, flips = set(), set()
    for seed in range(30):
        np.random.seed(seed)
        random.seed(seed)
        out = pipeline(
            dict(
                img_path=image,
                img_id=1,
                instances=[
                    dict(
                        bbox=[8.0, 8.0, 40.0, 40.0],
                        bbox_label=0,
                        ignore_flag=0)
                ]))
        h, w = out['data_samples'].img_shape
        assert min(h, w) in scales and max(h, w) <= 1333
        shapes.add(h == w)
        flips.add(out['data_samples'].flip)
    # The 64x64 image stays square unless the crop branch ran.
    assert shapes == {True, False}
    assert flips == {True, False}


def test_schedule_lr_multipliers():
    cfg = _base_config('schedules/schedule_50e.py')
    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(2, 2)
    model.sampling_offsets = torch.nn.Linear(2, 2)
    model.reference_points_fc = torch.nn.Linear(2, 2)
    model.class_embed = torch.nn.Linear(2, 2)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(wrapper.optimizer).__name__ == 'AdamW'
    lr_of = {}
    for group in wrapper.optimizer.param_groups:
        (param, ) = group['params']
        name = next(n for n, p in model.named_parameters() if p is param)
        lr_of[name.split('.')[0]] = group['lr']
        assert group['weight_decay'] == 1e-4
    assert lr_of == dict(
        backbone=2e-5,
        sampling_offsets=2e-5,
        reference_points_fc=2e-5,
        class_embed=2e-4)
    assert wrapper.clip_grad_kwargs == dict(max_norm=0.1, norm_type=2)
    (step, ) = cfg.param_scheduler
    assert step.milestones == [40] and step.gamma == 0.1
    assert cfg.train_cfg.max_epochs == 50
