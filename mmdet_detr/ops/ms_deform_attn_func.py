"""Multi-scale deformable attention with one entry point for every device.

CUDA tensors go to mmcv's CUDA kernel, CPU tensors to the compiled kernel of
``mmdet_detr.ops._C`` (``csrc/ms_deform_attn_cpu.cpp``) when it is built, and
everything else to the plain PyTorch reference ``ms_deform_attn_pytorch``.

Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
D channels per head, L levels, P sampling points per level and head.
"""
import logging
from typing import Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from .ms_deform_attn_pytorch import ms_deform_attn_pytorch

try:
    from . import _C
    _C_IMPORT_ERROR: Optional[BaseException] = None
except (ImportError, OSError) as error:  # not built, or for another torch
    _C = None
    _C_IMPORT_ERROR = error

_warned_missing_kernel = False

# dtypes the C++ kernel is compiled for; others are computed in float32.
_KERNEL_DTYPES = (torch.float32, torch.float64)


class MultiScaleDeformableAttnCPUFunction(Function):
    """Autograd wrapper of the CPU kernel; inputs as in
    :func:`multi_scale_deformable_attn`, contiguous and of one dtype, the
    padding mask bool or None."""

    @staticmethod
    def forward(ctx, value: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, sampling_locations: Tensor,
                attention_weights: Tensor,
                value_padding_mask: Optional[Tensor]) -> Tensor:
        ctx.save_for_backward(value, spatial_shapes, level_start_index,
                              sampling_locations, attention_weights,
                              value_padding_mask)
        return _C.ms_deform_attn_cpu_forward(
            value, spatial_shapes, level_start_index, sampling_locations,
            attention_weights, value_padding_mask)  # B, Q, M*D

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        grad_value, grad_locations, grad_weights = (
            _C.ms_deform_attn_cpu_backward(*ctx.saved_tensors,
                                           grad_output.contiguous()))
        return grad_value, None, None, grad_locations, grad_weights, None


def cpu_kernel_available() -> bool:
    """Whether the compiled CPU kernel ``mmdet_detr.ops._C`` imported."""
    return _C is not None


def _warn_missing_kernel() -> None:
    global _warned_missing_kernel
    if _warned_missing_kernel:
        return
    _warned_missing_kernel = True
    print_log(
        'mmdet_detr.ops._C is not built '
        f'({type(_C_IMPORT_ERROR).__name__}: {_C_IMPORT_ERROR}), so '
        'multi-scale deformable attention on CPU runs the slow PyTorch '
        'reference. Build the kernel with `pip install --no-build-isolation '
        '-e .` in the repository root (needs a C++ compiler with OpenMP).',
        logger='current',
        level=logging.WARNING)


def multi_scale_deformable_attn(value: Tensor,
                                spatial_shapes: Tensor,
                                level_start_index: Tensor,
                                sampling_locations: Tensor,
                                attention_weights: Tensor,
                                im2col_step: int = 64,
                                value_padding_mask: Optional[Tensor] = None
                                ) -> Tensor:
    """Bilinearly sample every level at the given points and sum by weight.

    Args:
        value: (B, S, M, D) projected values of all levels, flattened and
            concatenated level by level.
        spatial_shapes: (L, 2) long tensor, (H_l, W_l) of every level.
        level_start_index: (L,) long tensor, offset of each level in S.
        sampling_locations: (B, Q, M, L, P, 2) points as (x, y) in [0, 1]
            relative to each level's map; points outside sample zeros.
        attention_weights: (B, Q, M, L, P) weights, softmax-normalised over
            L * P by the caller.
        im2col_step: batch chunk of mmcv's CUDA kernel; unused elsewhere.
        value_padding_mask: (B, S) bool, True at tokens whose value counts
            as zero (and gets no gradient), or None. The CPU kernel skips
            them as it samples; the other paths zero them first.

    Returns:
        (B, Q, M * D) the attended values of every head, heads concatenated,
        in value's dtype.
    """
    if value_padding_mask is not None and (value.device.type != 'cpu'
                                           or _C is None):
        value = value.masked_fill(value_padding_mask[..., None, None], 0.0)
    if value.is_cuda:
        # Imported here: mmcv.ops loads mmcv's compiled extension.
        from mmcv.ops.multi_scale_deform_attn import \
            MultiScaleDeformableAttnFunction
        return MultiScaleDeformableAttnFunction.apply(
            value.contiguous(), spatial_shapes, level_start_index,
            sampling_locations.contiguous(), attention_weights.contiguous(),
            im2col_step)
    if value.device.type != 'cpu':
        return ms_deform_attn_pytorch(value, spatial_shapes,
                                      sampling_locations.type_as(value),
                                      attention_weights.type_as(value))
    if _C is None:
        _warn_missing_kernel()
        return ms_deform_attn_pytorch(value, spatial_shapes,
                                      sampling_locations.type_as(value),
                                      attention_weights.type_as(value))
    # bf16 / fp16 values are computed in float32: the kernel is compiled
    # for float32 and float64 only.
    dtype = value.dtype if value.dtype in _KERNEL_DTYPES else torch.float32
    output = MultiScaleDeformableAttnCPUFunction.apply(
        value.to(dtype).contiguous(),
        spatial_shapes.long().contiguous(),
        level_start_index.long().contiguous(),
        sampling_locations.to(dtype).contiguous(),
        attention_weights.to(dtype).contiguous(),
        None if value_padding_mask is None else
        value_padding_mask.bool().contiguous())  # B, Q, M*D
    return output.to(value.dtype)
