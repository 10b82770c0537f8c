"""The two forms multi-scale deformable attention takes in an exported
graph, plugged into the model through the attention's
``sampling_function`` hook.

- ``onnx``: standard operators only (one GridSample per level, opset 16
  and later), which stock onnxruntime and OpenVINO run.
- ``custom``: one ``mmdet_detr::MultiScaleDeformableAttention`` node per
  attention call, for runtimes given that kernel.

Both take the inputs of ``mmdet_detr.ops.multi_scale_deformable_attn``.

Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
D channels per head, L levels, P sampling points per level and head.
"""
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet_detr.models.layers.ms_deform_attn import \
    MultiScaleDeformableAttention
from mmdet_detr.ops import multi_scale_deformable_attn

ATTENTION_FORMS = ('onnx', 'custom')

# The custom node: its domain, type and the version of that domain.
CUSTOM_DOMAIN = 'mmdet_detr'
CUSTOM_OP_TYPE = 'MultiScaleDeformableAttention'
CUSTOM_DOMAIN_VERSION = 1


def grid_sample_attention(value: Tensor, spatial_shapes: Tensor,
                          level_start_index: Tensor,
                          sampling_locations: Tensor,
                          attention_weights: Tensor,
                          value_padding_mask: Optional[Tensor]) -> Tensor:
    """The attention in standard operators.

    The PyTorch reference ``ms_deform_attn_pytorch``, with each level's
    size and start read from ``spatial_shapes`` and ``level_start_index``
    as tensors (a traced graph then computes them from its input's size)
    rather than copied to Python numbers.

    Args:
        value: (B, S, M, D); spatial_shapes: (L, 2) long ``(H_l, W_l)``;
        level_start_index: (L, ) long; sampling_locations: (B, Q, M, L, P,
        2) normalised ``(x, y)``; attention_weights: (B, Q, M, L, P);
        value_padding_mask: (B, S) bool, True at tokens counted as zero,
        or None.

    Returns:
        (B, Q, M * D).
    """
    if value_padding_mask is not None:
        value = value.masked_fill(value_padding_mask[..., None, None], 0.0)
    B, _, M, D = value.shape
    _, Q, _, L, P, _ = sampling_locations.shape
    # grid_sample wants [-1, 1]; align_corners=False puts pixel centres at
    # (i + 0.5) / W, the paper's normalisation.
    sampling_grids = 2 * sampling_locations - 1
    sampled_per_level = []
    for level in range(L):
        h, w = spatial_shapes[level, 0], spatial_shapes[level, 1]
        start = level_start_index[level]
        value_l = (value[:, start:start + h * w]  # B, H_l*W_l, M, D
                   .flatten(2)  # B, H_l*W_l, M*D
                   .transpose(1, 2)  # B, M*D, H_l*W_l
                   .reshape(B * M, D, h, w))  # B*M, D, H_l, W_l
        grid_l = (sampling_grids[:, :, :, level]  # B, Q, M, P, 2
                  .transpose(1, 2)  # B, M, Q, P, 2
                  .flatten(0, 1))  # B*M, Q, P, 2
        sampled_per_level.append(
            F.grid_sample(value_l, grid_l, mode='bilinear',
                          padding_mode='zeros',
                          align_corners=False))  # B*M, D, Q, P
    weights = (attention_weights
               .transpose(1, 2)  # B, M, Q, L, P
               .reshape(B * M, 1, Q, L * P))  # B*M, 1, Q, L*P
    sampled = torch.stack(sampled_per_level, dim=-2)  # B*M, D, Q, L, P
    output = (sampled.flatten(-2) * weights).sum(-1)  # B*M, D, Q
    return (output
            .view(B, M * D, Q)  # B, M*D, Q
            .transpose(1, 2))  # B, Q, M*D


class _CustomAttentionNode(torch.autograd.Function):
    """Computes with this project's kernel; exports as one custom node
    (inputs: value, spatial_shapes, level_start_index, sampling_locations,
    attention_weights; no attributes)."""

    @staticmethod
    def forward(ctx, value: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, sampling_locations: Tensor,
                attention_weights: Tensor) -> Tensor:
        return multi_scale_deformable_attn(value, spatial_shapes,
                                           level_start_index,
                                           sampling_locations,
                                           attention_weights)

    @staticmethod
    def symbolic(g, value, spatial_shapes, level_start_index,
                 sampling_locations, attention_weights):
        output = g.op(f'{CUSTOM_DOMAIN}::{CUSTOM_OP_TYPE}', value,
                      spatial_shapes, level_start_index, sampling_locations,
                      attention_weights)
        # B, Q, M*D: the node's output type, for the graph's shape checks.
        return output.setType(sampling_locations.type().with_sizes(
            [None, None, None]))


def custom_node_attention(value: Tensor, spatial_shapes: Tensor,
                          level_start_index: Tensor,
                          sampling_locations: Tensor,
                          attention_weights: Tensor,
                          value_padding_mask: Optional[Tensor]) -> Tensor:
    """The attention as one custom node, the padded values zeroed before
    it (the node takes no mask). Inputs and output as
    :func:`grid_sample_attention`; the node's spatial_shapes and
    level_start_index are int64 and its float inputs float32."""
    if value_padding_mask is not None:
        value = value.masked_fill(value_padding_mask[..., None, None], 0.0)
    return _CustomAttentionNode.apply(
        _as(value, torch.float32), _as(spatial_shapes, torch.long),
        _as(level_start_index, torch.long),
        _as(sampling_locations, torch.float32),
        _as(attention_weights, torch.float32))


def _as(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    """``tensor`` in ``dtype``, without a no-op cast node in the graph."""
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


SAMPLING_FUNCTIONS = {
    'onnx': grid_sample_attention,
    'custom': custom_node_attention,
}


def sampling_function(attention: str) -> Callable:
    """The sampling function of an attention form (``onnx`` or
    ``custom``)."""
    if attention not in SAMPLING_FUNCTIONS:
        raise ValueError(f'attention form {attention!r} is not one of '
                         f'{ATTENTION_FORMS}')
    return SAMPLING_FUNCTIONS[attention]


@contextmanager
def attention_form(model: nn.Module, attention: str) -> Iterator[int]:
    """Every multi-scale deformable attention of ``model`` samples in the
    given form inside the block; yields how many modules that is (0 for
    DETR) and restores the kernel afterwards."""
    function = sampling_function(attention)
    modules = [
        m for m in model.modules()
        if isinstance(m, MultiScaleDeformableAttention)
    ]
    for module in modules:
        module.sampling_function = function
    try:
        yield len(modules)
    finally:
        for module in modules:
            module.sampling_function = None
