"""Shared by the tests/test_convert_*.py: a tiny model of this project,
a padded batch, and the comparison with HuggingFace's model."""
from typing import List, Optional, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.registry import DefaultScope

from mmdet_detr.checkpoint.converters.coco_classes import COCO_CATEGORY_IDS
from mmdet_detr.registry import MODELS

EMBED, QUERIES, HEADS, POINTS, FFN = 64, 10, 4, 2, 32
ENCODER_LAYERS, DECODER_LAYERS = 1, 2
# ResNet-18 at 1/4 width: stages of 16, 32, 64, 128 channels.
BASE_CHANNELS = 16
VARIANT_FLAGS = {
    'plain': dict(with_box_refine=False, as_two_stage=False),
    'refine': dict(with_box_refine=True, as_two_stage=False),
    'refine_twostage': dict(with_box_refine=True, as_two_stage=True),
}


def tiny_model(variant: str, num_classes: int, conv_bias: bool,
               backbone: Optional[dict] = None,
               backbone_channels: Optional[List[int]] = None):
    """This project's model with the tiny sizes above, in eval mode.

    ``backbone`` (a config whose maps have ``backbone_channels`` channels)
    replaces the quarter-width ResNet-18 and its three maps; the model then
    reads only the backbone's maps (one map: a single-scale model).
    """
    stack = dict(num_layers=ENCODER_LAYERS, num_heads=HEADS,
                 num_points=POINTS, feedforward_channels=FFN, dropout=0.1)
    if backbone is None:
        backbone = dict(type='ResNet', depth=18, base_channels=BASE_CHANNELS,
                        out_indices=(1, 2, 3), norm_eval=True,
                        style='pytorch')
        backbone_channels = [BASE_CHANNELS * 2, BASE_CHANNELS * 4,
                             BASE_CHANNELS * 8]
        levels = 4
    else:
        levels = len(backbone_channels)
    cfg = dict(
        type='DeformableDETR', num_queries=QUERIES,
        num_feature_levels=levels, embed_dims=EMBED, backbone=backbone,
        neck=dict(type='ChannelMapper', in_channels=backbone_channels,
                  kernel_size=1, out_channels=EMBED, act_cfg=None,
                  bias=conv_bias, norm_cfg=dict(type='GN', num_groups=32),
                  num_outs=levels),
        encoder=dict(type='DeformableTransformerEncoder', **stack),
        decoder=dict(type='DeformableTransformerDecoder',
                     **dict(stack, num_layers=DECODER_LAYERS)),
        bbox_head=dict(type='DeformableDETRHead', num_classes=num_classes),
        test_cfg=dict(max_per_img=QUERIES),
        **VARIANT_FLAGS[variant])
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        model = MODELS.build(cfg)
    return model.eval()


def padded_batch() -> Tuple[torch.Tensor, torch.Tensor,
                            List[DetDataSample]]:
    """(2, 3, 96, 128) images, the (2, 96, 128) valid-pixel mask and the
    data samples of two images of 96x112 and 80x128 padded to 96x128."""
    torch.manual_seed(1)
    inputs = torch.randn(2, 3, 96, 128)
    shapes = [(96, 112), (80, 128)]
    valid = torch.zeros(2, 96, 128, dtype=torch.long)
    samples = []
    for i, (h, w) in enumerate(shapes):
        valid[i, :h, :w] = 1
        samples.append(DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), batch_input_shape=(96, 128),
            pad_shape=(96, 128), scale_factor=(1.0, 1.0))))
    return inputs, valid, samples


def assert_predicts_like_hf(ours: torch.nn.Module, reference: torch.nn.Module,
                            label: str, atol: float = 1e-4) -> None:
    """Last-layer logits (at the 80 classes' category ids) and boxes of
    ``ours`` equal those of HF's ``reference`` to ``atol`` on the padded
    batch; prints the largest differences under ``label``."""
    inputs, valid, samples = padded_batch()
    with torch.no_grad():
        expected = reference(pixel_values=inputs, pixel_mask=valid)
        logits, boxes = ours._forward(inputs, samples)
    ids = torch.tensor(COCO_CATEGORY_IDS)
    logit_error = (logits[-1] - expected.logits[..., ids]).abs().max()
    box_error = (boxes[-1] - expected.pred_boxes).abs().max()
    print(f'{label}: max |logit difference| {logit_error:.2e}, '
          f'max |box difference| {box_error:.2e}')
    torch.testing.assert_close(logits[-1], expected.logits[..., ids],
                               atol=atol, rtol=0)
    torch.testing.assert_close(boxes[-1], expected.pred_boxes, atol=atol,
                               rtol=0)


def perturb_(module: torch.nn.Module, seed: int = 0) -> None:
    """Add noise to every parameter and BatchNorm buffer, in place, so no
    value sits at its (possibly symmetric or zero) initialisation."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(
                module.named_buffers()):
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith('running_var'):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            else:
                tensor.add_(0.05 * noise)


def randomize_batch_norm_(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every ``BatchNorm2d`` of ``module`` a random scale in [0.5, 1.5)
    and shift N(0, 0.1), then running statistics measured on random images
    (a training-mode pass with a cumulative average), in place. Unlike
    ``perturb_``'s random statistics, measured ones keep the maps of a deep
    ResNet of order 1, where float32 rounding stays small."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in module.modules():
            if isinstance(norm, torch.nn.BatchNorm2d):
                norm.weight.copy_(
                    0.5 + torch.rand(norm.weight.shape, generator=gen))
                norm.bias.copy_(
                    0.1 * torch.randn(norm.bias.shape, generator=gen))
                norm.reset_running_stats()
                norm.momentum = None
        module.train()
        module(torch.randn(2, 3, 64, 96, generator=gen))
    module.eval()
