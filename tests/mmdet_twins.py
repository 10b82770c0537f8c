"""This project's models beside their mmdet 3.3 twins on identical weights,
and the batch and assertions the parity tests share.

The twin's config is written from ours by
``mmdet_detr.benchmark.mmdet_equivalent`` (the one translation the benchmark
uses too); mmdet's random weights are perturbed so that no parameter sits at
a degenerate initial value, then copied into this project's model through
the model's mmdet key map.
"""
import copy
from typing import Callable, List, Optional, Sequence, Set, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import nn

from mmdet_detr.benchmark.mmdet_equivalent import build_model_pair, mmdet_twin

PERTURB = 0.05
PREPROCESSOR = dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                    std=[1, 1, 1])
CLASSES = 5
BOX_LOSSES = dict(loss_bbox=dict(type='L1Loss', loss_weight=5.0),
                  loss_iou=dict(type='GIoULoss', loss_weight=2.0))


def matcher(class_cost: dict) -> dict:
    """``train_cfg`` of a Hungarian matcher with ``class_cost`` and the box
    costs of the papers (L1 5, GIoU 2)."""
    return dict(assigner=dict(
        type='HungarianAssigner',
        match_costs=[class_cost,
                     dict(type='BBoxL1Cost', weight=5.0),
                     dict(type='GIoUCost', weight=2.0)]))


# Deformable DETR: a small ResNet and two layers per stack keep it fast.
DEFORMABLE_VARIANTS = {
    'plain': dict(with_box_refine=False, as_two_stage=False),
    'refine': dict(with_box_refine=True, as_two_stage=False),
    'refine_twostage': dict(with_box_refine=True, as_two_stage=True),
}
DEFORMABLE_LAYERS = 2


def deformable_detr_config(variant: str, dropout: float) -> dict:
    """A 4-level Deformable DETR on a ResNet-18, 20 queries, 5 classes."""
    stack = dict(num_layers=DEFORMABLE_LAYERS, num_heads=8, num_points=4,
                 feedforward_channels=64, dropout=dropout)
    return dict(
        type='DeformableDETR', num_queries=20, num_feature_levels=4,
        embed_dims=256, data_preprocessor=PREPROCESSOR,
        backbone=dict(type='ResNet', depth=18, num_stages=4,
                      out_indices=(1, 2, 3), norm_cfg=dict(type='BN'),
                      norm_eval=False, style='pytorch'),
        neck=dict(type='ChannelMapper', in_channels=[128, 256, 512],
                  kernel_size=1, out_channels=256, act_cfg=None,
                  norm_cfg=dict(type='GN', num_groups=32), num_outs=4),
        encoder=dict(type='DeformableTransformerEncoder', **stack),
        decoder=dict(type='DeformableTransformerDecoder', **stack),
        bbox_head=dict(
            type='DeformableDETRHead', num_classes=CLASSES,
            sync_cls_avg_factor=True,
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                          alpha=0.25, loss_weight=2.0),
            **BOX_LOSSES),
        train_cfg=matcher(dict(type='FocalLossCost', weight=2.0)),
        test_cfg=dict(max_per_img=50),
        **DEFORMABLE_VARIANTS[variant])


def dino_config(dropout: float) -> dict:
    """The Deformable DETR twin's backbone, neck and stacks as a DINO,
    with 7 denoising queries (two groups for three objects)."""
    config = deformable_detr_config('plain', dropout)
    for flag in DEFORMABLE_VARIANTS['plain']:
        del config[flag]
    config.update(
        type='DINO',
        positional_encoding=dict(type='SinePositionalEncoding',
                                 normalize=True, offset=0.0, temperature=20))
    config['decoder']['type'] = 'DINOTransformerDecoder'
    config['bbox_head'].update(
        type='DINOHead', label_noise_scale=0.5, box_noise_scale=1.0,
        num_denoising_queries=7,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=0.25, loss_weight=1.0))
    return config


DETR_LAYERS, DETR_QUERIES, DETR_EMBED = 2, 12, 64


def detr_config(dropout: float) -> dict:
    """DETR on a dilated ResNet-18 (stride 16, the DC5 layout: a 6 x 8 map
    for a 96 x 128 input), width 64, 12 queries, 5 classes."""
    stack = dict(num_layers=DETR_LAYERS, num_heads=8,
                 feedforward_channels=96, dropout=dropout)
    return dict(
        type='DETR', num_queries=DETR_QUERIES, embed_dims=DETR_EMBED,
        data_preprocessor=PREPROCESSOR,
        backbone=dict(type='ResNet', depth=18, num_stages=4,
                      out_indices=(3, ), strides=(1, 2, 2, 1),
                      dilations=(1, 1, 1, 2), norm_cfg=dict(type='BN'),
                      norm_eval=False, style='pytorch'),
        neck=dict(type='ChannelMapper', in_channels=[512], kernel_size=1,
                  out_channels=DETR_EMBED, act_cfg=None, norm_cfg=None,
                  num_outs=1),
        encoder=dict(type='TransformerEncoder', **stack),
        decoder=dict(type='TransformerDecoder', **stack),
        bbox_head=dict(
            type='DETRHead', num_classes=CLASSES, no_object_weight=0.1,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                          loss_weight=1.0),
            **BOX_LOSSES),
        train_cfg=matcher(dict(type='ClassificationCost', weight=1.0)),
        test_cfg=dict(max_per_img=DETR_QUERIES))


def build_twins(model: dict) -> Tuple[nn.Module, nn.Module]:
    """``(reference, ours)``: mmdet's twin of ``model`` and ours, with the
    same weights."""
    ours, reference = build_model_pair(model, compare_mmdet=True,
                                       perturb=PERTURB)
    return reference, ours


def make_batch(scale_factor: float = 1.0, counts: Sequence[int] = (3, 2)
               ) -> Tuple[torch.Tensor, List[DetDataSample]]:
    """Two images padded to 96x128, with ``counts`` boxes (at most three
    and two); the original images are ``1 / scale_factor`` times the
    resized ones."""
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
    for shape, box, label, count in zip(shapes, boxes, labels, counts):
        ori_shape = tuple(round(side / scale_factor) for side in shape)
        sample = DetDataSample(metainfo=dict(
            img_shape=shape, ori_shape=ori_shape, batch_input_shape=(96, 128),
            pad_shape=(96, 128), scale_factor=(scale_factor, scale_factor)))
        sample.gt_instances = InstanceData(bboxes=box[:count],
                                           labels=label[:count])
        samples.append(sample)
    return inputs, samples


def assert_predictions_match(reference: nn.Module, ours: nn.Module,
                             box_atol: float,
                             scale_factor: float = 1.0) -> None:
    """Raw outputs of every layer and final detections equal to 1e-5 (boxes
    to ``box_atol`` pixels) in eval mode."""
    reference.eval()
    ours.eval()
    inputs, samples = make_batch(scale_factor)
    with torch.no_grad():
        expected = reference.predict(inputs, copy.deepcopy(samples))
        got = ours.predict(inputs, copy.deepcopy(samples))
        raw_expected = reference._forward(inputs, copy.deepcopy(samples))
        raw_got = ours._forward(inputs, copy.deepcopy(samples))
    for e, g in zip(raw_expected, raw_got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
    for e, g in zip(expected, got):
        e, g = e.pred_instances, g.pred_instances
        torch.testing.assert_close(g.scores, e.scores, atol=1e-5, rtol=0)
        torch.testing.assert_close(g.bboxes, e.bboxes, atol=box_atol,
                                   rtol=1e-5)
        assert torch.equal(g.labels, e.labels)


def assert_losses_and_gradients_match(
        reference: nn.Module,
        ours: nn.Module,
        key_to_ours: Callable[[str], str],
        scale_factor: float = 1.0,
        counts: Sequence[int] = (3, 2),
        before_reference: Optional[Callable[[], None]] = None
) -> Tuple[dict, Set[str]]:
    """The same loss dict to 1e-5 and the same gradient of their sum on
    every parameter to 1e-4, in train mode. Ours runs first, then
    ``before_reference`` (e.g. to give mmdet the same random queries).

    Returns:
        our losses, and mmdet's names of the parameters compared.
    """
    reference.train()
    ours.train()
    reference.zero_grad()
    ours.zero_grad()
    inputs, samples = make_batch(scale_factor, counts)
    got = ours.loss(inputs, copy.deepcopy(samples))
    if before_reference is not None:
        before_reference()
    expected = reference.loss(inputs, copy.deepcopy(samples))
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
    compared = set()
    for key, param in reference.named_parameters():
        if param.grad is None:
            continue
        grad = our_params[key_to_ours(key)].grad
        torch.testing.assert_close(
            grad, param.grad, atol=1e-4, rtol=1e-4,
            msg=lambda m, key=key: f'{key}: {m}')
        compared.add(key)
    assert len(compared) > 50
    return got, compared


def key_to_ours(model: dict) -> Callable[[str], str]:
    """The map from mmdet's parameter names to ours for ``model``'s type."""
    return mmdet_twin(model).key_to_ours
