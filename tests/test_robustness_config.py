"""Bad configs and arguments fail before training with the value at fault
and what would fit; distributed training runs on CPU with gloo."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmdet_detr.checkpoint.safe_load import load_checkpoint_file
from mmdet_detr.datasets.shapes import make_shapes_dataset
from mmdet_detr.engine import cli
from mmdet_detr.engine.config_check import ConfigError, check_config
from mmdet_detr.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs',
                       'tiny_deformable_detr.py')


def _tiny(**options):
    return cli.load_config(TINY_CONFIG, options)


def test_unknown_component_type_names_the_nearest():
    cfg = _tiny(**{'model.encoder.type': 'DeformableTransformerEncodr'})
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    assert str(info.value).startswith(
        "model.encoder.type='DeformableTransformerEncodr' is not a "
        "registered component (did you mean 'DeformableTransformerEncoder'")
    cfg = _tiny(**{'train_dataloader.dataset.pipeline.2.type': 'resize'})
    with pytest.raises(ConfigError, match=r"pipeline\[2\].type='resize'.*"
                       r"did you mean 'Resize'"):
        check_config(cfg)
    check_config(_tiny())  # the unmodified config passes


def test_misspelled_argument_of_a_project_component():
    cfg = _tiny(**{'model.decoder.num_layer': 3})
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    message = str(info.value)
    assert message.startswith(
        "model.decoder.num_layer: DeformableTransformerDecoder has no "
        "argument 'num_layer' (did you mean 'num_layers'")
    cfg = _tiny(**{'default_hooks.finite_loss.on_nonfinite': 'skip'})
    with pytest.raises(ConfigError, match="did you mean 'on_non_finite'"):
        check_config(cfg)


def test_tool_refuses_a_bad_config_before_building(tmp_path):
    work_dir = tmp_path / 'work'
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'train.py'), TINY_CONFIG,
            '--work-dir',
            str(work_dir), '--cfg-options', 'model.neck.type=ChannelMaper'
        ],
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "did you mean 'ChannelMapper'" in proc.stderr
    assert not work_dir.exists()


def _build_model(**options):
    cfg = _tiny(**options)
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        return MODELS.build(cfg.model)


def test_embed_dims_not_divisible_by_heads():
    with pytest.raises(ValueError,
                       match=r'embed_dims \(36\) must be divisible by '
                       r'num_heads \(8\)'):
        _build_model(**{
            'model.embed_dims': 36,
            'model.neck.out_channels': 36,
            'model.neck.norm_cfg.num_groups': 4,
            'model.encoder.num_heads': 8
        })


def test_levels_and_width_must_match_the_neck():
    with pytest.raises(ValueError) as info:
        _build_model(**{'model.num_feature_levels': 3})
    assert ('model.num_feature_levels=3 but the neck gives 2 levels'
            in str(info.value))
    assert 'model.neck.num_outs=3' in str(info.value)
    with pytest.raises(ValueError, match=r'out_indices=\(1, 2, 3\) gives 3'):
        _build_model(**{'model.backbone.out_indices': (1, 2, 3)})
    with pytest.raises(ValueError, match='set model.neck.out_channels=32'):
        _build_model(**{'model.neck.out_channels': 64})


def test_checkpoint_of_another_variant_is_refused(tmp_path):
    refine = _build_model(**{'model.with_box_refine': True})
    cfg_text = _tiny(**{'model.with_box_refine': True}).pretty_text
    path = str(tmp_path / 'refine.pth')
    torch.save(dict(state_dict=refine.state_dict(), meta=dict(cfg=cfg_text)),
               path)
    cfg = _tiny()
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as info:
        runner.load_checkpoint(path)
    # Same parameter names: only the saved config tells the variants apart.
    assert 'model.with_box_refine=True (config: False)' in str(info.value)
    # Without a saved config, the parameter shapes do.
    torch.save(
        dict(state_dict=_build_model(**{
            'model.num_queries': 12
        }).state_dict()), path)
    with pytest.raises(ValueError, match=r'1 keys of another shape '
                       r'\(query_embedding.weight\)'):
        runner.load_checkpoint(path)
    # The same variant with another number of classes loads (fine-tuning).
    other = _build_model(**{'model.bbox_head.num_classes': 7})
    torch.save(dict(state_dict=other.state_dict()), path)
    runner.load_checkpoint(path)


def test_dist_train_two_cpu_processes(tmp_path):
    make_shapes_dataset(
        str(tmp_path / 'data' / 'shapes'),
        num_train=4,
        num_val=2,
        seed=0,
        image_size=64,
        show_progress=False)
    work_dir = str(tmp_path / 'work')
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT='29731',
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [
            'bash',
            osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), TINY_CONFIG, '2',
            '--work-dir', work_dir, '--cfg-options',
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    # 4 images, 2 processes, batch 2: one iteration each.
    assert 'Epoch(train) [1][1/1]' in log
    assert 'coco/bbox_mAP: ' in log
    assert 'Distributed launcher: pytorch' in log or 'world_size: 2' in log
    assert [osp.basename(p) for p in glob.glob(osp.join(work_dir, '*.pth'))
            ] == ['epoch_1.pth']
    ckpt = load_checkpoint_file(osp.join(work_dir, 'epoch_1.pth'))
    assert ckpt['meta']['iter'] == 1
