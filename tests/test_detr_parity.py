"""Parity with mmdet 3.3's own DETR on identical weights.

Both models are built from the same hyper-parameters (a small dilated
ResNet-18, narrow transformer, two layers per stack), mmdet's random weights
are perturbed so that no parameter sits at a degenerate initial value,
copied into this project's model through ``convert_mmdet_detr_state_dict``,
and both run on the same padded batch.
"""
import copy
import logging

import pytest
import torch
from mmdet.models.task_modules.assigners.match_cost import \
    ClassificationCost as MMDetClassificationCost
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures import DetDataSample
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmdet_detr.checkpoint.converters.detr_mmdet import (
    convert_mmdet_detr_state_dict, mmdet_detr_key_to_ours)
from mmdet_detr.checkpoint.loader import prepare_state_dict
from mmdet_detr.models.assigners.match_costs import ClassificationCost
from mmdet_detr.registry import MODELS

EMBED, HEADS, QUERIES, LAYERS, FFN, CLASSES = 64, 8, 12, 2, 96, 5
# Stride 16 (the DC5 layout) gives a 6 x 8 map for a 96 x 128 input.
BACKBONE = dict(
    type='ResNet', depth=18, num_stages=4, out_indices=(3, ),
    strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2), norm_cfg=dict(type='BN'),
    norm_eval=False, style='pytorch')
NECK = dict(type='ChannelMapper', in_channels=[512], kernel_size=1,
            out_channels=EMBED, act_cfg=None, norm_cfg=None, num_outs=1)
PREPROCESSOR = dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                    std=[1, 1, 1])
BOX_LOSSES = dict(loss_bbox=dict(type='L1Loss', loss_weight=5.0),
                  loss_iou=dict(type='GIoULoss', loss_weight=2.0))


def mmdet_config(dropout: float) -> dict:
    attn = dict(embed_dims=EMBED, num_heads=HEADS, dropout=dropout,
                batch_first=True)
    ffn = dict(embed_dims=EMBED, feedforward_channels=FFN, num_fcs=2,
               ffn_drop=dropout, act_cfg=dict(type='ReLU', inplace=True))
    return dict(
        type='DETR', num_queries=QUERIES, data_preprocessor=PREPROCESSOR,
        backbone=BACKBONE, neck=NECK,
        encoder=dict(num_layers=LAYERS,
                     layer_cfg=dict(self_attn_cfg=attn, ffn_cfg=ffn)),
        decoder=dict(num_layers=LAYERS, return_intermediate=True,
                     layer_cfg=dict(self_attn_cfg=attn, cross_attn_cfg=attn,
                                    ffn_cfg=ffn)),
        positional_encoding=dict(num_feats=EMBED // 2, normalize=True),
        bbox_head=dict(
            type='DETRHead', num_classes=CLASSES, embed_dims=EMBED,
            loss_cls=dict(type='CrossEntropyLoss', bg_cls_weight=0.1,
                          use_sigmoid=False, loss_weight=1.0,
                          class_weight=1.0),
            **BOX_LOSSES),
        train_cfg=dict(assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=1.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
        test_cfg=dict(max_per_img=QUERIES))


def our_config(dropout: float) -> dict:
    stack = dict(num_layers=LAYERS, num_heads=HEADS,
                 feedforward_channels=FFN, dropout=dropout)
    return dict(
        type='DETR', num_queries=QUERIES, embed_dims=EMBED,
        data_preprocessor=PREPROCESSOR, backbone=BACKBONE, neck=NECK,
        encoder=dict(type='TransformerEncoder', **stack),
        decoder=dict(type='TransformerDecoder', **stack),
        bbox_head=dict(
            type='DETRHead', num_classes=CLASSES, no_object_weight=0.1,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                          loss_weight=1.0),
            **BOX_LOSSES),
        train_cfg=dict(assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=1.0),
                dict(type='BBoxL1Cost', weight=5.0),
                dict(type='GIoUCost', weight=2.0)
            ])),
        test_cfg=dict(max_per_img=QUERIES))


def build_pair(dropout: float):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        reference = MMDET_MODELS.build(mmdet_config(dropout))
    reference.init_weights()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        ours = MODELS.build(our_config(dropout))
    ours.load_state_dict(
        convert_mmdet_detr_state_dict(reference.state_dict()), strict=True)
    return reference, ours


def make_batch():
    """Two images padded to 96x128, with three and two boxes."""
    torch.manual_seed(1)
    inputs = torch.randn(2, 3, 96, 128)
    shapes = [(96, 112), (80, 128)]
    boxes = [
        torch.tensor([[4., 6., 50., 70.], [30., 20., 100., 90.],
                      [60., 10., 80., 30.]]),
        torch.tensor([[10., 10., 40., 60.], [70., 30., 120., 75.]]),
    ]
    labels = [torch.tensor([0, 3, 3]), torch.tensor([1, 4])]
    samples = []
    for shape, box, label in zip(shapes, boxes, labels):
        sample = DetDataSample(metainfo=dict(
            img_shape=shape, ori_shape=(2 * shape[0], 2 * shape[1]),
            batch_input_shape=(96, 128), pad_shape=(96, 128),
            scale_factor=(0.5, 0.5)))
        sample.gt_instances = InstanceData(bboxes=box, labels=label)
        samples.append(sample)
    return inputs, samples


@pytest.fixture(scope='module')
def eval_pair():
    return build_pair(dropout=0.1)


@pytest.fixture(scope='module')
def train_pair():
    return build_pair(dropout=0.0)


def test_predictions_match_mmdet(eval_pair):
    reference, ours = eval_pair
    reference.eval()
    ours.eval()
    inputs, samples = make_batch()
    with torch.no_grad():
        expected = reference.predict(inputs, copy.deepcopy(samples))
        got = ours.predict(inputs, copy.deepcopy(samples))
        raw_expected = reference._forward(inputs, copy.deepcopy(samples))
        raw_got = ours._forward(inputs, copy.deepcopy(samples))
    for e, g in zip(raw_expected, raw_got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
    for e, g in zip(expected, got):
        e, g = e.pred_instances, g.pred_instances
        assert len(g.scores) == QUERIES
        torch.testing.assert_close(g.scores, e.scores, atol=1e-5, rtol=0)
        torch.testing.assert_close(g.bboxes, e.bboxes, atol=1e-5 * 256,
                                   rtol=1e-5)
        assert torch.equal(g.labels, e.labels)


def test_losses_and_gradients_match_mmdet(train_pair):
    reference, ours = train_pair
    reference.train()
    ours.train()
    inputs, samples = make_batch()
    expected = reference.loss(inputs, copy.deepcopy(samples))
    got = ours.loss(inputs, copy.deepcopy(samples))
    assert set(got) == set(expected)
    assert {f'd{i}.loss_{n}' for i in range(LAYERS - 1)
            for n in ('cls', 'bbox', 'iou')} < set(got)
    for key in expected:
        torch.testing.assert_close(
            got[key], expected[key].reshape(()), atol=1e-5, rtol=1e-5,
            msg=lambda m, key=key: f'{key}: {m}')
    reference.zero_grad()
    ours.zero_grad()
    sum(expected.values()).backward()
    sum(got.values()).backward()
    our_params = dict(ours.named_parameters())
    compared = 0
    for key, param in reference.named_parameters():
        if param.grad is None:
            continue
        grad = our_params[mmdet_detr_key_to_ours(key)].grad
        torch.testing.assert_close(
            grad, param.grad, atol=1e-4, rtol=1e-4,
            msg=lambda m, key=key: f'{key}: {m}')
        compared += 1
    assert compared > 50


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
    _, five = build_pair(dropout=0.0)
    config = our_config(dropout=0.0)
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
            assert value.abs().max() <= 1 / EMBED**0.5 + 1e-6
        else:
            assert torch.equal(value, state[key]), key
