"""Deformable transformer encoder: every token attends to a few points on
every level around its own position.

Symbols: B batch, S = sum_l H_l * W_l tokens, L levels, C channels.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdet_detr.ops import ResidualDropout
from mmdet_detr.registry import MODELS
from ..map_geometry import pixel_centres, points_on_levels
from .ffn import FFN
from .ms_deform_attn import MultiScaleDeformableAttention


class DeformableEncoderLayer(nn.Module):
    """Post-norm layer: deformable self-attention, then the FFN."""

    def __init__(self, embed_dims: int, num_heads: int, num_levels: int,
                 num_points: int, feedforward_channels: int,
                 dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(
            embed_dims, num_heads, num_levels, num_points)
        self.self_attn_residual = ResidualDropout(dropout)
        self.self_attn_norm = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, feedforward_channels, dropout)
        self.ffn_residual = ResidualDropout(dropout)
        self.ffn_norm = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor, padding_mask: Tensor,
                reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor) -> Tensor:
        """(B, S, C) tokens -> (B, S, C); see the encoder for the inputs."""
        attended = self.self_attn(query + query_pos, query, padding_mask,
                                  reference_points, spatial_shapes,
                                  level_start_index)
        query = self.self_attn_norm(self.self_attn_residual(query, attended))
        return self.ffn_norm(self.ffn_residual(query, self.ffn(query)))


@MODELS.register_module()
class DeformableTransformerEncoder(nn.Module):
    """A stack of deformable encoder layers.

    Args:
        num_layers: the number of layers.
        embed_dims: C (the detector passes its own).
        num_heads: attention heads M.
        num_levels: L (the detector passes its ``num_feature_levels``).
        num_points: sampling points per head and level.
        feedforward_channels: the FFN's hidden width.
        dropout: dropout of attention outputs and of the FFN.
    """

    def __init__(self,
                 num_layers: int = 6,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 feedforward_channels: int = 1024,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.embed_dims = embed_dims
        self.layers = nn.ModuleList([
            DeformableEncoderLayer(embed_dims, num_heads, num_levels,
                                   num_points, feedforward_channels, dropout)
            for _ in range(num_layers)
        ])

    def init_weights(self) -> None:
        """Xavier for every matrix, then the attention's own scheme."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for layer in self.layers:
            layer.self_attn.init_weights()

    def forward(self, query: Tensor, query_pos: Tensor, padding_mask: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor,
                valid_ratios: Tensor,
                level_shapes: Sequence[Tuple[int, int]]) -> Tensor:
        """Encode.

        Args:
            query: (B, S, C) flattened features of all levels.
            query_pos: (B, S, C) positional plus level encodings.
            padding_mask: (B, S) bool, True at padded tokens.
            spatial_shapes: (L, 2) long, ``(H_l, W_l)``.
            level_start_index: (L, ) long, offset of each level in S.
            valid_ratios: (B, L, 2) unpadded fraction ``(w, h)`` of each map.
            level_shapes: L pairs of ints, ``spatial_shapes`` on the host.

        Returns:
            (B, S, C) the memory.
        """
        reference_points = encoder_reference_points(level_shapes,
                                                    valid_ratios)
        for layer in self.layers:
            query = layer(query, query_pos, padding_mask, reference_points,
                          spatial_shapes, level_start_index)
        return query


def encoder_reference_points(level_shapes: Sequence[Tuple[int, int]],
                             valid_ratios: Tensor) -> Tensor:
    """Every token's pixel centre, as a point on every level.

    The centre is normalised by the valid (unpadded) extent of its own level,
    then mapped onto each level by that level's valid ratio, so a token
    points at the same image location on all levels.

    Args:
        level_shapes: L pairs of ints ``(H_l, W_l)``.
        valid_ratios: (B, L, 2) ``(w, h)``.

    Returns:
        (B, S, L, 2) normalised ``(x, y)``.
    """
    points = []
    for level, (h, w) in enumerate(level_shapes):
        centres = pixel_centres(h, w, valid_ratios.device).view(
            -1, 2)  # H_l*W_l, 2 as (x, y) in pixels
        ref_x = centres[None, :, 0] / (valid_ratios[:, None, level, 0] *
                                       w)  # B, H_l*W_l
        ref_y = centres[None, :, 1] / (valid_ratios[:, None, level, 1] *
                                       h)  # B, H_l*W_l
        points.append(torch.stack((ref_x, ref_y), -1))  # B, H_l*W_l, 2
    points = torch.cat(points, 1)  # B, S, 2
    return points_on_levels(points, valid_ratios)  # B, S, L, 2
