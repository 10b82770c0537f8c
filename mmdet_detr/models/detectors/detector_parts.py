"""What the DETR detectors share: building a part with the values the
detector derives for it, the memory format of the convolutional parts, the
feature maps and their check, and the padding mask of a batch."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdet_detr.registry import MODELS


def build_part(cfg: dict, name: str, derived: dict,
               derived_from: str) -> nn.Module:
    """Build the part ``model.<name>``, adding the values the detector
    derives for it.

    A derived value written in the part's own config would silently
    disagree with the detector's, so it is refused; ``derived_from`` names
    the detector's settings the values come from, for the message.
    """
    clash = sorted(set(cfg) & set(derived))
    if clash:
        raise ValueError(
            f'model.{name} sets {clash}, which the detector derives '
            f'({derived_from}): remove them from model.{name}')
    return MODELS.build(cfg, default_args=derived)


def use_channels_last(*modules: nn.Module) -> None:
    """Store the 4-d weights of ``modules`` channels-last (NHWC).

    With channels-last inputs, convolutions and norms then run in that
    layout, oneDNN's fastest on CPU and cuDNN's under mixed precision; the
    results differ from NCHW in rounding only. The maps stay channels-last,
    so flattening them to (B, H * W, C) tokens needs no copy. Loading a
    checkpoint copies into these weights and keeps their layout.
    """
    for module in modules:
        module.to(memory_format=torch.channels_last)


def feature_maps(backbone: nn.Module, neck: nn.Module, batch_inputs: Tensor,
                 channels_last: bool) -> Tuple[Tensor, ...]:
    """The neck's maps (B, C, H_l, W_l) of ``batch_inputs`` (B, 3, H, W),
    computed channels-last when the weights are (see
    :func:`use_channels_last`)."""
    if channels_last:
        batch_inputs = batch_inputs.contiguous(
            memory_format=torch.channels_last)
    return neck(backbone(batch_inputs))


def check_map_width(feats: Sequence[Tensor], embed_dims: int) -> None:
    """Refuse neck maps whose channels are not the transformer width."""
    if feats[0].shape[1] != embed_dims:
        raise ValueError(
            f'the neck gives {feats[0].shape[1]} channels but '
            f'model.embed_dims={embed_dims}: set '
            'model.neck.out_channels to embed_dims')


def padding_mask(feat: Tensor,
                 batch_data_samples: Optional[List[DetDataSample]]) -> Tensor:
    """(B, H_in, W_in) bool, True where the batch input is padding.

    Without data samples (tensor mode, export) nothing is padding: the mask
    is (B, 1, 1).
    """
    B = feat.shape[0]
    if not batch_data_samples:
        return feat.new_zeros((B, 1, 1), dtype=torch.bool)
    h_in, w_in = batch_data_samples[0].batch_input_shape
    mask = feat.new_ones((B, h_in, w_in), dtype=torch.bool)
    for i, sample in enumerate(batch_data_samples):
        h, w = sample.img_shape[:2]
        mask[i, :h, :w] = False
    return mask
