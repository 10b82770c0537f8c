"""mmdet 3.3 ``deformable-detr*`` checkpoints -> this project, and what
loading a checkpoint into the detector checks.

mmdet's model and this project's are the twins of mmdet_twins.py
test_parity_mmdet.py; mmdet's random, perturbed weights are saved the way
mmdet saves them, converted by ``convert_checkpoint`` and loaded through
mmengine's ``load_checkpoint`` (the path of ``tools/test.py`` and
``load_from``); predictions must agree to 1e-5. The round trip converts,
then runs ``tools/test.py`` on the shapes data.
"""
import copy
import logging
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from convert_helpers import perturb_, tiny_model
from mmdet_twins import (DEFORMABLE_VARIANTS, build_twins,
                         deformable_detr_config, make_batch)
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint

from mmdet_detr.checkpoint.converters.deformable_detr_mmdet import \
    convert_mmdet_state_dict
from mmdet_detr.checkpoint.loader import (ForeignCheckpointError,
                                          prepare_state_dict)
from mmdet_detr.checkpoint.sources import convert_checkpoint
from mmdet_detr.datasets.shapes import make_shapes_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'plain': 'configs/deformable_detr_r50.py',
    'refine': 'configs/deformable_detr_refine_r50.py',
    'refine_twostage': 'configs/deformable_detr_refine_twostage_r50.py',
}
DATASET_META = dict(classes=('a', 'b', 'c', 'd', 'e'))


def save_as_mmdet(model, path):
    """What mmengine's CheckpointHook writes, less the training state."""
    torch.save(dict(meta=dict(epoch=50, dataset_meta=DATASET_META),
                    state_dict=model.state_dict()), path)


@pytest.mark.parametrize('variant', list(DEFORMABLE_VARIANTS))
def test_converted_mmdet_checkpoint_predicts_the_same(variant, tmp_path):
    reference, ours = build_twins(deformable_detr_config(variant, 0.0))
    src, dst = str(tmp_path / 'mmdet.pth'), str(tmp_path / 'ours.pth')
    save_as_mmdet(reference, src)
    converted = convert_checkpoint(src, dst, 'mmdet')
    assert converted.variant == variant
    assert converted.config == CONFIGS[variant]
    # A fresh model of ours, loaded from the file the way the tools do.
    with torch.no_grad():
        for p in ours.parameters():
            p.zero_()
    checkpoint = load_checkpoint(ours, dst, strict=True)
    assert checkpoint['meta']['dataset_meta'] == DATASET_META
    reference.eval()
    ours.eval()
    inputs, samples = make_batch()
    with torch.no_grad():
        expected = reference.predict(inputs, copy.deepcopy(samples))
        got = ours.predict(inputs, copy.deepcopy(samples))
    score_error = box_error = 0.0
    for e, g in zip(expected, got):
        e, g = e.pred_instances, g.pred_instances
        torch.testing.assert_close(g.scores, e.scores, atol=1e-5, rtol=0)
        torch.testing.assert_close(g.bboxes, e.bboxes, atol=1e-5 * 128,
                                   rtol=1e-5)
        assert torch.equal(g.labels, e.labels)
        score_error = max(score_error, (g.scores - e.scores).abs().max())
        box_error = max(box_error, (g.bboxes - e.bboxes).abs().max())
    print(f'mmdet {variant}: max |score difference| {score_error:.2e}, '
          f'max |box difference| {box_error:.2e} px')


def test_foreign_layouts_are_refused_with_the_command():
    reference, ours = build_twins(deformable_detr_config('refine', 0.0))
    mmdet_state = reference.state_dict()
    with pytest.raises(ForeignCheckpointError) as error:
        prepare_state_dict(ours, mmdet_state)
    message = str(error.value)
    assert "mmdet 3.3's DeformableDETR" in message
    assert ('python tools/convert_checkpoint.py CHECKPOINT CONVERTED.pth '
            '--from mmdet') in message
    # An official file as mmengine hands it over: the whole checkpoint.
    official = {'model': {'transformer.level_embed': torch.zeros(4, 8),
                          'class_embed.0.weight': torch.zeros(91, 8)},
                'epoch': 49}
    with pytest.raises(ForeignCheckpointError, match='--from official'):
        prepare_state_dict(ours, official)
    hf = {'model.level_embed': torch.zeros(4, 8),
          'model.backbone.model.conv1.weight': torch.zeros(1)}
    with pytest.raises(ForeignCheckpointError, match='--from hf'):
        prepare_state_dict(ours, hf)
    # This project's own layout loads.
    converted = convert_mmdet_state_dict(mmdet_state)
    prepare_state_dict(ours, converted)
    ours.load_state_dict(converted)


class Records(logging.Handler):
    """Collects the messages of mmengine's current logger."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_other_class_count_reinitialises_only_the_classifiers():
    """Fine-tuning: 5 classes in the checkpoint, 3 in the model."""
    five = tiny_model('refine_twostage', num_classes=5, conv_bias=False)
    perturb_(five)
    three = tiny_model('refine_twostage', num_classes=3, conv_bias=False)
    state = five.state_dict()
    logger = MMLogger.get_current_instance()
    records = Records()
    logger.addHandler(records)
    try:
        prepare_state_dict(three, state)
        result = three.load_state_dict(state, strict=True)
    finally:
        logger.removeHandler(records)
    assert not result.missing_keys and not result.unexpected_keys
    lines = [m for m in records.messages if 're-initialised' in m]
    assert len(lines) == 1
    assert 'scores 5 classes and the model 3' in lines[0]
    for key, value in three.state_dict().items():
        if key.startswith('bbox_head.cls_branches.'):
            assert value.shape[0] == 3
            if key.endswith('bias'):  # the 0.01 foreground prior
                torch.testing.assert_close(
                    value, torch.full((3, ), -4.59512), atol=1e-5, rtol=0)
        else:
            assert torch.equal(value, state[key]), key


def test_round_trip_convert_then_tools_test(tmp_path):
    """An mmdet checkpoint of 5 classes -> convert_checkpoint -> tools/test.py
    and tools/train.py --resume with a 4-class config on the shapes data:
    the classifiers are re-initialised, everything else loads, COCO metrics
    print."""
    reference, _ = build_twins(deformable_detr_config('refine', 0.0))
    src, dst = str(tmp_path / 'mmdet.pth'), str(tmp_path / 'converted.pth')
    save_as_mmdet(reference, src)
    converted = convert_checkpoint(src, dst, 'mmdet')
    assert converted.config == 'configs/deformable_detr_refine_r50.py'
    before = os.path.getmtime(dst)
    with pytest.raises(FileExistsError, match='never overwritten'):
        convert_checkpoint(src, dst, 'mmdet')
    assert os.path.getmtime(dst) == before
    make_shapes_dataset(str(tmp_path / 'data' / 'shapes'), num_train=2,
                        num_val=2, seed=0, image_size=64,
                        show_progress=False)
    config = osp.join(REPO_ROOT, 'tests', 'configs', 'convert_roundtrip.py')

    def run(tool, *args):
        proc = subprocess.run(
            [sys.executable, osp.join(REPO_ROOT, 'tools', tool), config,
             *args],
            cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS='1'),
            capture_output=True, text=True, timeout=300)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-5000:]
        assert 'scores 5 classes and the model 4' in log
        assert 'coco/bbox_mAP' in log
        return log

    run('test.py', dst, '--work-dir', str(tmp_path / 'test'))
    # --resume: epoch 0 of the converted weights, one epoch, validation.
    log = run('train.py', '--resume', dst, '--work-dir',
              str(tmp_path / 'train'), '--cfg-options',
              'train_cfg.max_epochs=1', 'train_cfg.val_interval=1')
    assert 'resumed epoch: 0, iter: 0' in log
