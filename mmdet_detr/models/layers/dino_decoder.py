"""DINO's decoder: deformable decoder layers whose positional queries come
from the current reference boxes, refined layer by layer ("look forward
twice").

Symbols: B batch, Q queries (denoising and matching), S memory tokens,
L levels, C channels, N decoder layers.
"""
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from mmdet_detr.registry import MODELS
from ..box_ops import apply_box_delta
from ..map_geometry import points_on_levels
from .deformable_decoder import DeformableTransformerDecoder
from .positional_encoding import sine_embedding


def box_position_embedding(boxes: Tensor, num_feats: int) -> Tensor:
    """(B, Q, 4) normalised ``(cx, cy, w, h)`` -> (B, Q, 4 * num_feats), the
    sine embedding of each coordinate scaled to ``[0, 2 pi]``, in the order
    ``(cy, cx, w, h)`` of DAB-DETR, DINO and mmdet."""
    embedded = sine_embedding(boxes * (2 * math.pi),
                              num_feats)  # B, Q, 4, num_feats
    return embedded[..., [1, 0, 2, 3], :].flatten(2)  # B, Q, 4 * num_feats


@MODELS.register_module()
class DINOTransformerDecoder(DeformableTransformerDecoder):
    """The deformable decoder stack with DINO's query positions and
    refinement.

    Each layer's positional query is an MLP of the sine embedding of its
    reference box (on the first level). Each layer refines the boxes with
    the head's branch; the refined box goes on undetached to the head,
    which predicts the next layer's box on it, so a layer's box loss also
    trains the layer before ("look forward twice"); the next layer starts
    from it detached. Outputs pass a final LayerNorm.

    Args: those of :class:`DeformableTransformerDecoder`.
    """

    def __init__(self,
                 num_layers: int = 6,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.0) -> None:
        super().__init__(num_layers, embed_dims, num_heads, num_levels,
                         num_points, feedforward_channels, dropout)
        # 2C box features -> C, the positional query.
        self.ref_point_head = nn.Sequential(
            nn.Linear(embed_dims * 2, embed_dims), nn.ReLU(),
            nn.Linear(embed_dims, embed_dims))
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self,
                query: Tensor,
                memory: Tensor,
                memory_padding_mask: Tensor,
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                valid_ratios: Tensor,
                reg_branches: nn.ModuleList,
                self_attn_mask: Optional[Tensor] = None
                ) -> Tuple[Tensor, List[Tensor]]:
        """Decode.

        Args:
            query: (B, Q, C) content queries.
            memory: (B, S, C) the encoder output.
            memory_padding_mask: (B, S) bool, True at padded tokens.
            reference_points: (B, Q, 4) normalised ``(cx, cy, w, h)``.
            spatial_shapes: (L, 2) long, ``(H_l, W_l)``.
            level_start_index: (L, ) long.
            valid_ratios: (B, L, 2) unpadded fraction ``(w, h)`` per level.
            reg_branches: the head's box branches; layer i uses branch i.
            self_attn_mask: (Q, Q) bool, True where query i may not see
                query j (denoising groups), or None.

        Returns:
            hidden_states: (N, B, Q, C) every layer's normalised output.
            references: N + 1 tensors (B, Q, 4): the initial boxes, then
                each layer's refined boxes, undetached.
        """
        hidden_states = []
        references = [reference_points]
        for layer_id, layer in enumerate(self.layers):
            per_level = points_on_levels(reference_points,
                                         valid_ratios)  # B, Q, L, 4
            query_pos = self.ref_point_head(
                box_position_embedding(per_level[:, :, 0],
                                       self.embed_dims // 2))  # B, Q, C
            query = layer(query, query_pos, memory, memory_padding_mask,
                          per_level, spatial_shapes, level_start_index,
                          self_attn_mask)
            # Logits of references clamped at 1e-3, as in DINO and mmdet.
            refined = apply_box_delta(reg_branches[layer_id](query),
                                      reference_points, eps=1e-3)  # B, Q, 4
            hidden_states.append(self.norm(query))
            references.append(refined)
            reference_points = refined.detach()
        return torch.stack(hidden_states), references
