"""DINO's query selection: the encoder's top-scoring proposals give the
decoder's reference boxes (the content queries are learned).

Symbols: B batch, S = sum_l H_l * W_l memory tokens, Q queries, K classes,
C channels.
"""
from typing import NamedTuple, Sequence, Tuple

import torch
from torch import Tensor, nn

from .encoder_proposals import check_token_count, token_proposals


class TopProposals(NamedTuple):
    """The top-Q encoder proposals of each image.

    cls_logits: (B, Q, K) their class logits.
    boxes: (B, Q, 4) normalised ``(cx, cy, w, h)`` (for the encoder loss).
    reference_points: (B, Q, 4) the same boxes, detached (the decoder's
        initial references).
    """
    cls_logits: Tensor
    boxes: Tensor
    reference_points: Tensor


class TopProposalSelector(nn.Module):
    """Scores every memory token as a proposal and keeps the top Q.

    As in two-stage Deformable DETR, each token has an anchor box
    (``token_anchors``) and the head's extra branch pair (index N) scores
    the transformed memory and regresses a delta on the anchor; unlike it,
    proposals are ranked by their best class (mixed query selection: only
    the positions are taken, not the memory as content).

    Args:
        embed_dims: C.
        num_queries: Q, the proposals kept.
    """

    def __init__(self, embed_dims: int, num_queries: int) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.memory_trans_fc = nn.Linear(embed_dims, embed_dims)
        self.memory_trans_norm = nn.LayerNorm(embed_dims)

    def init_weights(self) -> None:
        nn.init.xavier_uniform_(self.memory_trans_fc.weight)

    def forward(self, memory: Tensor, memory_padding_mask: Tensor,
                level_shapes: Sequence[Tuple[int, int]],
                cls_branch: nn.Module, reg_branch: nn.Module) -> TopProposals:
        """Select.

        Args:
            memory: (B, S, C) the encoder output.
            memory_padding_mask: (B, S) bool, True at padded tokens.
            level_shapes: L pairs of ints ``(H_l, W_l)``.
            cls_branch: (..., C) -> (..., K) class logits.
            reg_branch: (..., C) -> (..., 4) box delta in logit space.
        """
        B, S, C = memory.shape
        check_token_count(S, self.num_queries, 'DINO')
        cls_logits, box_logits = token_proposals(
            memory, memory_padding_mask, level_shapes,
            lambda m: self.memory_trans_norm(self.memory_trans_fc(m)),
            cls_branch, reg_branch)  # B, S, K; B, S, 4
        top = torch.topk(cls_logits.max(-1)[0], self.num_queries,
                         dim=1)[1]  # B, Q
        K = cls_logits.shape[-1]
        top_logits = torch.gather(cls_logits, 1,
                                  top[..., None].expand(B, -1, K))  # B, Q, K
        top_box_logits = torch.gather(
            box_logits, 1, top[..., None].expand(B, -1, 4))  # B, Q, 4
        return TopProposals(top_logits, top_box_logits.sigmoid(),
                            top_box_logits.detach().sigmoid())
