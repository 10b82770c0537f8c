"""Deformable transformer decoder: queries attend to each other, then to a
few points per level around their reference points in the memory.

Symbols: B batch, Q queries, S memory tokens, L levels, C channels,
N decoder layers.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from mmdet_detr.ops import ResidualDropout
from mmdet_detr.registry import MODELS
from ..box_ops import apply_box_delta
from ..map_geometry import points_on_levels
from .ffn import FFN
from .ms_deform_attn import MultiScaleDeformableAttention


class DeformableDecoderLayer(nn.Module):
    """Post-norm layer: self-attention, deformable cross-attention, FFN."""

    def __init__(self, embed_dims: int, num_heads: int, num_levels: int,
                 num_points: int, feedforward_channels: int,
                 dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.self_attn_residual = ResidualDropout(dropout)
        self.self_attn_norm = nn.LayerNorm(embed_dims)
        self.cross_attn = MultiScaleDeformableAttention(
            embed_dims, num_heads, num_levels, num_points)
        self.cross_attn_residual = ResidualDropout(dropout)
        self.cross_attn_norm = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, feedforward_channels, dropout)
        self.ffn_residual = ResidualDropout(dropout)
        self.ffn_norm = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                memory_padding_mask: Tensor, reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor,
                self_attn_mask: Optional[Tensor] = None) -> Tensor:
        """(B, Q, C) queries -> (B, Q, C); see the decoder for the inputs.

        ``reference_points`` are per level here: (B, Q, L, 2 or 4);
        ``self_attn_mask`` (Q, Q) bool, True where query i may not attend to
        query j (DINO's denoising groups), or None.
        """
        # Positions go into queries and keys, not values (DETR).
        q = k = query + query_pos
        attended = self.self_attn(q, k, query, attn_mask=self_attn_mask,
                                  need_weights=False)[0]
        query = self.self_attn_norm(self.self_attn_residual(query, attended))
        attended = self.cross_attn(query + query_pos, memory,
                                   memory_padding_mask, reference_points,
                                   spatial_shapes, level_start_index)
        query = self.cross_attn_norm(self.cross_attn_residual(query, attended))
        return self.ffn_norm(self.ffn_residual(query, self.ffn(query)))


@MODELS.register_module()
class DeformableTransformerDecoder(nn.Module):
    """A stack of deformable decoder layers that returns every layer's output.

    Args:
        num_layers: N, the number of layers (and of prediction layers of the
            head, which the detector derives from it).
        embed_dims: C (the detector passes its own).
        num_heads: heads of both attentions.
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
            DeformableDecoderLayer(embed_dims, num_heads, num_levels,
                                   num_points, feedforward_channels, dropout)
            for _ in range(num_layers)
        ])

    def init_weights(self) -> None:
        """Xavier for every matrix, then the attention's own scheme."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for layer in self.layers:
            layer.cross_attn.init_weights()

    def forward(
        self,
        query: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        memory_padding_mask: Tensor,
        reference_points: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        valid_ratios: Tensor,
        reg_branches: Optional[nn.ModuleList] = None
    ) -> Tuple[Tensor, List[Tensor]]:
        """Decode.

        Args:
            query: (B, Q, C) query content.
            query_pos: (B, Q, C) query positions.
            memory: (B, S, C) the encoder output.
            memory_padding_mask: (B, S) bool, True at padded tokens.
            reference_points: (B, Q, 2) normalised ``(x, y)`` points, or
                (B, Q, 4) normalised ``(cx, cy, w, h)`` boxes (two-stage).
            spatial_shapes: (L, 2) long, ``(H_l, W_l)``.
            level_start_index: (L, ) long.
            valid_ratios: (B, L, 2) unpadded fraction ``(w, h)`` per level.
            reg_branches: with iterative box refinement, the head's N box
                branches; layer i's branch refines the reference of layer
                i + 1 (detached, as in the paper).

        Returns:
            hidden_states: (N, B, Q, C) every layer's output.
            references: N + 1 tensors (B, Q, 2 or 4), the reference each
                layer used, then the last refined one; all equal without
                refinement.
        """
        hidden_states = []
        references = [reference_points]
        per_level = points_on_levels(reference_points,
                                     valid_ratios)  # B, Q, L, 2 or 4
        for layer_id, layer in enumerate(self.layers):
            query = layer(query, query_pos, memory, memory_padding_mask,
                          per_level, spatial_shapes, level_start_index)
            if reg_branches is not None:
                # Detached, as in the paper; point references gain a size
                # here, so later layers see boxes.
                reference_points = apply_box_delta(
                    reg_branches[layer_id](query),
                    reference_points).detach()  # B, Q, 4
                # Only refined references change from layer to layer.
                per_level = points_on_levels(reference_points, valid_ratios)
            hidden_states.append(query)
            references.append(reference_points)
        return torch.stack(hidden_states), references
