"""Parity with mmdet 3.3's own DeformableDETR on identical weights.

Both models are built from the same hyper-parameters (a small ResNet and
two layers per stack keep it fast), mmdet's random weights are perturbed so
that no parameter sits at a degenerate initial value, copied into this
project's model through the key map of ``mmdet_detr.checkpoint``, and both
run on the same padded batch.
"""
import copy

import pytest
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmdet_detr.checkpoint.converters.deformable_detr_mmdet import (
    convert_mmdet_state_dict, mmdet_key_to_ours)
from mmdet_detr.registry import MODELS

EMBED, QUERIES, LAYERS, FFN, CLASSES = 256, 20, 2, 64, 5
VARIANTS = {
    'plain': dict(with_box_refine=False, as_two_stage=False),
    'refine': dict(with_box_refine=True, as_two_stage=False),
    'refine_twostage': dict(with_box_refine=True, as_two_stage=True),
}
BACKBONE = dict(
    type='ResNet', depth=18, num_stages=4, out_indices=(1, 2, 3),
    norm_cfg=dict(type='BN'), norm_eval=False, style='pytorch')
NECK = dict(
    type='ChannelMapper', in_channels=[128, 256, 512], kernel_size=1,
    out_channels=EMBED, act_cfg=None, norm_cfg=dict(type='GN', num_groups=32),
    num_outs=4)
PREPROCESSOR = dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                    std=[1, 1, 1])
LOSSES = dict(
    loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                  loss_weight=2.0),
    loss_bbox=dict(type='L1Loss', loss_weight=5.0),
    loss_iou=dict(type='GIoULoss', loss_weight=2.0))


def mmdet_config(variant: dict, dropout: float) -> dict:
    attn = dict(embed_dims=EMBED, batch_first=True, dropout=dropout)
    ffn = dict(embed_dims=EMBED, feedforward_channels=FFN, ffn_drop=dropout)
    return dict(
        type='DeformableDETR', num_queries=QUERIES, num_feature_levels=4,
        data_preprocessor=PREPROCESSOR, backbone=BACKBONE, neck=NECK,
        encoder=dict(num_layers=LAYERS,
                     layer_cfg=dict(self_attn_cfg=attn, ffn_cfg=ffn)),
        decoder=dict(
            num_layers=LAYERS, return_intermediate=True,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=EMBED, num_heads=8,
                                   dropout=dropout, batch_first=True),
                cross_attn_cfg=attn, ffn_cfg=ffn),
            post_norm_cfg=None),
        positional_encoding=dict(num_feats=EMBED // 2, normalize=True,
                                 offset=-0.5),
        bbox_head=dict(type='DeformableDETRHead', num_classes=CLASSES,
                       sync_cls_avg_factor=True, **LOSSES),
        train_cfg=dict(assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
        test_cfg=dict(max_per_img=50),
        **variant)


def our_config(variant: dict, dropout: float) -> dict:
    stack = dict(num_layers=LAYERS, num_heads=8, num_points=4,
                 feedforward_channels=FFN, dropout=dropout)
    return dict(
        type='DeformableDETR', num_queries=QUERIES, num_feature_levels=4,
        embed_dims=EMBED, data_preprocessor=PREPROCESSOR, backbone=BACKBONE,
        neck=NECK,
        encoder=dict(type='DeformableTransformerEncoder', **stack),
        decoder=dict(type='DeformableTransformerDecoder', **stack),
        bbox_head=dict(type='DeformableDETRHead', num_classes=CLASSES,
                       sync_cls_avg_factor=True, **LOSSES),
        train_cfg=dict(assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0),
                dict(type='GIoUCost', weight=2.0)
            ])),
        test_cfg=dict(max_per_img=50),
        **variant)


def build_pair(variant: dict, dropout: float = 0.0):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        reference = MMDET_MODELS.build(mmdet_config(variant, dropout))
    reference.init_weights()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        ours = MODELS.build(our_config(variant, dropout))
    ours.load_state_dict(convert_mmdet_state_dict(reference.state_dict()),
                         strict=True)
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
            img_shape=shape, ori_shape=shape, batch_input_shape=(96, 128),
            pad_shape=(96, 128), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=box, labels=label)
        samples.append(sample)
    return inputs, samples


@pytest.mark.parametrize('name', list(VARIANTS))
def test_predictions_match_mmdet(name):
    reference, ours = build_pair(VARIANTS[name], dropout=0.1)
    reference.eval()
    ours.eval()
    inputs, samples = make_batch()
    with torch.no_grad():
        expected = reference.predict(inputs, copy.deepcopy(samples))
        got = ours.predict(inputs, copy.deepcopy(samples))
    for e, g in zip(expected, got):
        e, g = e.pred_instances, g.pred_instances
        torch.testing.assert_close(g.scores, e.scores, atol=1e-5, rtol=0)
        torch.testing.assert_close(g.bboxes, e.bboxes, atol=1e-5 * 128,
                                   rtol=1e-5)
        assert torch.equal(g.labels, e.labels)


@pytest.mark.parametrize('name', list(VARIANTS))
def test_losses_and_gradients_match_mmdet(name):
    reference, ours = build_pair(VARIANTS[name], dropout=0.0)
    reference.train()
    ours.train()
    inputs, samples = make_batch()
    expected = reference.loss(inputs, copy.deepcopy(samples))
    got = ours.loss(inputs, copy.deepcopy(samples))
    assert set(got) == set(expected)
    for key in expected:
        # mmdet's normaliser is a 1-element tensor, so some of its losses
        # have shape (1, ); ours are scalars.
        torch.testing.assert_close(
            got[key], expected[key].reshape(()), atol=1e-5, rtol=1e-5,
            msg=lambda m, key=key: f'{key}: {m}')
    sum(expected.values()).backward()
    sum(got.values()).backward()
    our_params = dict(ours.named_parameters())
    compared = 0
    for key, param in reference.named_parameters():
        if param.grad is None:
            continue
        grad = our_params[mmdet_key_to_ours(key)].grad
        torch.testing.assert_close(
            grad, param.grad, atol=1e-4, rtol=1e-4,
            msg=lambda m, key=key: f'{key}: {m}')
        compared += 1
    assert compared > 50
