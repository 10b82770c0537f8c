"""Parity with mmdet 3.3's own DETR on identical weights (see
``mmdet_twins``): raw outputs and detections in eval mode, losses and
gradients in train mode, the softmax classification cost, and fine-tuning on
another class count."""
import logging

import pytest
import torch
from mmdet.models.task_modules.assigners.match_cost import \
    ClassificationCost as MMDetClassificationCost
from mmdet_twins import (CLASSES, DETR_EMBED, DETR_LAYERS,
                         assert_losses_and_gradients_match,
                         assert_predictions_match, build_twins, detr_config,
                         key_to_ours)
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from mmengine.structures import InstanceData

from mmdet_detr.checkpoint.loader import (ForeignCheckpointError,
                                          prepare_state_dict)
from mmdet_detr.checkpoint.sources import convert_checkpoint
from mmdet_detr.models.assigners.match_costs import ClassificationCost
from mmdet_detr.registry import MODELS


def test_predictions_match_mmdet():
    """Images resized by 0.5: boxes are scaled back to the original size."""
    reference, ours = build_twins(detr_config(dropout=0.1))
    assert_predictions_match(reference, ours, box_atol=1e-5 * 256,
                             scale_factor=0.5)


def test_losses_and_gradients_match_mmdet():
    """Boxes of images resized by 0.5: the GIoU loss is in pixels of the
    original image in both."""
    config = detr_config(dropout=0.0)
    reference, ours = build_twins(config)
    got, _ = assert_losses_and_gradients_match(reference, ours,
                                               key_to_ours(config),
                                               scale_factor=0.5)
    assert {f'd{i}.loss_{n}' for i in range(DETR_LAYERS - 1)
            for n in ('cls', 'bbox', 'iou')} < set(got)


def test_classification_cost_is_minus_softmax_probability():
    torch.manual_seed(2)
    logits = torch.randn(3, 7, CLASSES + 1)  # T, Q, K + 1
    labels = torch.tensor([4, 0, 4, 2])
    cost = ClassificationCost(weight=1.5)(logits, None, labels, None)
    expected = -1.5 * logits.softmax(-1)[..., labels]
    torch.testing.assert_close(cost, expected)
    reference = MMDetClassificationCost(weight=1.5)
    for t in range(3):
        mmdet_cost = reference(InstanceData(scores=logits[t]),
                               InstanceData(labels=labels))
        torch.testing.assert_close(cost[t], mmdet_cost)


def test_other_class_count_reinitialises_only_the_classifier():
    """Fine-tuning DETR: the softmax classifier of a 5-class checkpoint
    (6 rows with no-object) is re-initialised for a 3-class model."""
    _, five = build_twins(detr_config(dropout=0.0))
    config = detr_config(dropout=0.0)
    config['bbox_head']['num_classes'] = 3
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        three = MODELS.build(config)
    state = five.state_dict()
    records = []
    logger = MMLogger.get_current_instance()
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        prepare_state_dict(three, state)
        result = three.load_state_dict(state, strict=True)
    finally:
        logger.removeHandler(handler)
    assert not result.missing_keys and not result.unexpected_keys
    lines = [r.getMessage() for r in records
             if 're-initialised' in r.getMessage()]
    assert len(lines) == 1 and 'scores 5 classes and the model 3' in lines[0]
    for key, value in three.state_dict().items():
        if key.startswith('bbox_head.cls_branch.'):
            assert value.shape[0] == 4
            # torch's Linear init: within 1 / sqrt(fan_in) for the bias.
            assert value.abs().max() <= 1 / DETR_EMBED**0.5 + 1e-6
        else:
            assert torch.equal(value, state[key]), key


def test_mmdet_checkpoint_is_refused_then_converted(tmp_path):
    """An mmdet 3.3 DETR file: loading it unconverted names the convert
    command; ``--from mmdet`` (with the variant, which mmdet's file does
    not say) gives a file that predicts what mmdet's model predicts."""
    reference, ours = build_twins(detr_config(dropout=0.0))
    src, dst = str(tmp_path / 'mmdet.pth'), str(tmp_path / 'ours.pth')
    meta = dict(dataset_meta=dict(classes=tuple('abcde')))
    torch.save(dict(meta=meta, state_dict=reference.state_dict()), src)
    with pytest.raises(ForeignCheckpointError) as error:
        prepare_state_dict(ours, reference.state_dict())
    assert "mmdet 3.3's DeformableDETR, DINO or DETR" in str(error.value)
    assert '--from mmdet' in str(error.value)
    with pytest.raises(ValueError, match='--variant r50 or --variant r50_dc5'):
        convert_checkpoint(src, dst, 'mmdet')
    converted = convert_checkpoint(src, dst, 'mmdet', variant='r50')
    assert converted.config == 'configs/detr_r50.py'
    with torch.no_grad():
        for p in ours.parameters():
            p.zero_()
    checkpoint = load_checkpoint(ours, dst, strict=True)
    assert checkpoint['meta']['dataset_meta'] == meta['dataset_meta']
    assert_predictions_match(reference, ours, box_atol=1e-5 * 256,
                             scale_factor=0.5)
