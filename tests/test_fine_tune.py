"""Fine-tuning on another number of classes through the Runner, as
``tools/train.py CONFIG --cfg-options load_from=CKPT
model.bbox_head.num_classes=3`` does it, for every detector: the
checkpoint's classifiers are re-initialised, everything else loads."""
import logging
import os
import os.path as osp

import pytest
from mmengine.logging import MMLogger
from tiny_checkpoint import (TINY_CONFIG, TINY_DETR_CONFIG, TINY_DINO_CONFIG,
                             tiny_run)

from mmdet_detr.checkpoint.safe_load import load_checkpoint_file
from mmdet_detr.engine import cli


@pytest.mark.parametrize('config',
                         [TINY_CONFIG, TINY_DETR_CONFIG, TINY_DINO_CONFIG],
                         ids=['deformable_detr', 'detr', 'dino'])
def test_load_from_a_checkpoint_of_another_class_count(
        config, tmp_path_factory, tmp_path):
    run = tiny_run(tmp_path_factory, config)
    three = ('circle', 'square', 'triangle')
    work_dir = str(tmp_path / 'fine_tune')
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    cwd = os.getcwd()
    os.chdir(run.root)
    try:
        cfg = cli.load_config(
            config, {
                'load_from': run.checkpoint,
                'model.bbox_head.num_classes': 3,
                'train_dataloader.dataset.metainfo.classes': three,
                'val_dataloader.dataset.metainfo.classes': three,
                'test_dataloader.dataset.metainfo.classes': three,
                'train_cfg.max_epochs': 1,
                'train_cfg.val_interval': 2,  # no validation
            }, work_dir)
        runner = cli.build_runner(cfg)
        MMLogger.get_current_instance().addHandler(handler)
        runner.train()
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
        os.chdir(cwd)
    lines = [r.getMessage() for r in records
             if 're-initialised' in r.getMessage()]
    assert len(lines) == 1, lines
    assert 'the checkpoint scores 4 classes and the model 3' in lines[0]

    model = runner.model
    classifier_keys = {
        f'bbox_head.{name}.{part}'
        for name, layer in model.bbox_head.classifiers().items()
        for part, _ in layer.named_parameters()
    }
    assert classifier_keys
    if config == TINY_DINO_CONFIG:
        # The denoising queries embed labels: one row per class too.
        assert 'bbox_head.denoising.label_embedding.weight' in classifier_keys
    before = load_checkpoint_file(run.checkpoint)['state_dict']
    after = load_checkpoint_file(osp.join(work_dir,
                                          'epoch_1.pth'))['state_dict']
    for key in classifier_keys:
        assert after[key].shape[0] == before[key].shape[0] - 1, key
    # Loaded, not initialised: the other weights start where the
    # checkpoint's were (two AdamW steps at lr 2e-4 move them little).
    key = 'encoder.layers.0.ffn.linear1.weight'
    assert 0 < (after[key] - before[key]).abs().max() < 1e-2
