"""Multi-scale deformable attention (Deformable DETR, Zhu et al. 2021, eq. 2).

Symbols: B batch, Q queries, S = sum_l H_l * W_l value tokens, L levels,
M heads, P sampling points per head and level, C = M * D channels.
"""
import math
import warnings
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet_detr.ops import multi_scale_deformable_attn
from mmdet_detr.registry import MODELS


@MODELS.register_module()
class MultiScaleDeformableAttention(nn.Module):
    """Each query attends to P points per head on every level, placed by
    learned offsets around its reference point and weighted by a softmax over
    the L * P points.

    Args:
        embed_dims: C, the width of queries and values.
        num_heads: M; must divide ``embed_dims``.
        num_levels: L, the number of feature levels.
        num_points: P, the sampling points per head and level.
        im2col_step: the batch chunk of mmcv's CUDA op.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 im2col_step: int = 64) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads}); for example '
                             f'num_heads={_divisor_hint(embed_dims)}')
        head_dims = embed_dims // num_heads
        if head_dims & (head_dims - 1):
            warnings.warn(f'embed_dims / num_heads = {head_dims} is not a '
                          'power of 2, which the CUDA kernel handles less '
                          'efficiently')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.im2col_step = im2col_step
        self.sampling_offsets = nn.Linear(
            embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims,
                                           num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        # Called, when set, with the (B, Q, L, 2 or 4) reference points, the
        # (B, Q, M, L, P, 2) sampling locations, the (B, Q, M, L, P) weights
        # and the (L, 2) spatial shapes of each forward, the exact tensors
        # the kernel receives (mmdet_detr/visualization/sampling_recorder.py
        # records them for pictures).
        self.sampling_observer: Optional[Callable[
            [Tensor, Tensor, Tensor, Tensor], None]] = None
        # When set, samples instead of the kernel, with the kernel's
        # inputs (value (B, S, M, D), spatial_shapes, level_start_index,
        # locations, weights, value_padding_mask) and output (B, Q, C):
        # graph export puts its own form of the sampling here
        # (mmdet_detr/deploy/attention_forms.py).
        self.sampling_function: Optional[Callable[
            [Tensor, Tensor, Tensor, Tensor, Tensor, Optional[Tensor]],
            Tensor]] = None
        self.init_weights()

    def init_weights(self) -> None:
        """Offsets start on a ring of M directions, point p at distance p+1,
        and the weights uniform, as in the reference implementation."""
        nn.init.constant_(self.sampling_offsets.weight, 0.)
        thetas = torch.arange(
            self.num_heads, dtype=torch.float32) * (2.0 * math.pi /
                                                    self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)  # M, 2
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(
            self.num_heads, 1, 1, 2).repeat(1, self.num_levels,
                                            self.num_points, 1)  # M, L, P, 2
        for i in range(self.num_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.)
        nn.init.constant_(self.attention_weights.bias, 0.)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.constant_(proj.bias, 0.)

    def _normalized_offsets(self, query: Tensor,
                            spatial_shapes: Tensor) -> Tensor:
        """The sampling offsets in pixels of each level divided by that
        level's ``(W_l, H_l)``: (B, Q, M, L, P, 2) float32.

        The division is applied to the rows of ``sampling_offsets`` (a
        (M * L * P * 2, C) matrix) rather than to its (B, Q, M, L, P, 2)
        output, which saves two passes over that output in the forward
        and backward passes; the result differs in rounding only.
        """
        B, Q, _ = query.shape
        M, L, P = self.num_heads, self.num_levels, self.num_points
        inverse = 1.0 / spatial_shapes.flip(-1).to(
            self.sampling_offsets.weight.dtype)  # L, 2 as 1 / (W_l, H_l)
        row_scale = inverse[None, :, None, :].expand(M, L, P, 2).reshape(-1)
        offsets = F.linear(query,
                           self.sampling_offsets.weight * row_scale[:, None],
                           self.sampling_offsets.bias * row_scale)
        return offsets.float().view(B, Q, M, L, P, 2)

    def forward(self, query: Tensor, value: Tensor, value_padding_mask: Tensor,
                reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor) -> Tensor:
        """Attend.

        Args:
            query: (B, Q, C) queries, positional encoding already added.
            value: (B, S, C) the flattened multi-level features.
            value_padding_mask: (B, S) bool, True at padded tokens, whose
                values are zeroed so that no point samples them.
            reference_points: (B, Q, L, 2) normalised ``(x, y)`` per level,
                or (B, Q, L, 4) normalised ``(cx, cy, w, h)`` boxes, in which
                case offsets are scaled by half the box size over P.
            spatial_shapes: (L, 2) long, ``(H_l, W_l)``.
            level_start_index: (L, ) long, offset of each level in S.

        Returns:
            (B, Q, C) the attended values after the output projection.
        """
        B, Q, _ = query.shape
        S = value.shape[1]
        M, L, P = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value).view(B, S, M, -1)  # B, S, M, D
        # Under mixed precision, locations and weights are float32: in
        # bfloat16 a location near 1 is off by up to 1/256 of the map.
        weights = self.attention_weights(query).float().view(B, Q, M, L * P)
        weights = weights.softmax(-1).view(B, Q, M, L, P)
        if reference_points.shape[-1] == 2:
            offsets = self._normalized_offsets(query, spatial_shapes)
            locations = reference_points[:, :, None, :, None, :] + offsets
        elif reference_points.shape[-1] == 4:
            offsets = self.sampling_offsets(query).float().view(
                B, Q, M, L, P, 2)
            locations = (reference_points[:, :, None, :, None, :2] +
                         offsets / P * reference_points[:, :, None, :, None,
                                                        2:] * 0.5)
        else:
            raise ValueError('reference_points must end in 2 (points) or 4 '
                             f'(boxes), got shape '
                             f'{tuple(reference_points.shape)}')
        # locations: B, Q, M, L, P, 2
        if self.sampling_observer is not None:
            self.sampling_observer(reference_points, locations, weights,
                                   spatial_shapes)
        if self.sampling_function is not None:
            output = self.sampling_function(value, spatial_shapes,
                                            level_start_index, locations,
                                            weights, value_padding_mask)
            return self.output_proj(output)  # B, Q, C
        # Padded values count as zero: the kernel skips them.
        output = multi_scale_deformable_attn(value, spatial_shapes,
                                             level_start_index, locations,
                                             weights, self.im2col_step,
                                             value_padding_mask)
        return self.output_proj(output)  # B, Q, C


def _divisor_hint(embed_dims: int) -> int:
    """The largest of 8, 4, 2, 1 that divides ``embed_dims``."""
    return next(h for h in (8, 4, 2, 1) if embed_dims % h == 0)
