"""Two-stage Deformable DETR: the encoder proposes boxes, the best become
the decoder's queries.

Symbols: B batch, S = sum_l H_l * W_l memory tokens, Q queries, C channels.
"""
import math
from typing import Callable, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..map_geometry import pixel_centres, valid_size
from .positional_encoding import sine_embedding


class EncoderProposals(NamedTuple):
    """What the two-stage step hands on.

    query, query_pos: (B, Q, C) the decoder's queries.
    reference_points: (B, Q, 4) normalised ``(cx, cy, w, h)``, detached.
    cls_logits: (B, S, K) per-token class logits (trained as one
        foreground class: only column 0 ranks the proposals).
    boxes: (B, S, 4) per-token boxes, normalised ``(cx, cy, w, h)``.
    """
    query: Tensor
    query_pos: Tensor
    reference_points: Tensor
    cls_logits: Tensor
    boxes: Tensor


def check_token_count(num_tokens: int, num_queries: int, model: str) -> None:
    """Refuse to select more proposals than the maps have tokens."""
    if num_tokens < num_queries:
        raise ValueError(
            f'{model} selects num_queries={num_queries} proposals but the '
            f'feature maps have only {num_tokens} tokens: use larger input '
            'images or fewer queries')


def token_proposals(memory: Tensor, memory_padding_mask: Tensor,
                    level_shapes: Sequence[Tuple[int, int]],
                    memory_transform: Callable[[Tensor], Tensor],
                    cls_branch: nn.Module,
                    reg_branch: nn.Module) -> Tuple[Tensor, Tensor]:
    """Every memory token as a proposal: its class logits and box logits.

    Args:
        memory: (B, S, C) the encoder output.
        memory_padding_mask: (B, S) bool, True at padded tokens.
        level_shapes: L pairs of ints ``(H_l, W_l)``.
        memory_transform: (..., C) -> (..., C), applied to the memory
            before the branches.
        cls_branch: (..., C) -> (..., K) class logits.
        reg_branch: (..., C) -> (..., 4) box delta in logit space.

    Returns:
        cls_logits: (B, S, K); box_logits: (B, S, 4), the delta on the
        token's anchor (``token_anchors``); inf for padded and border
        tokens.
    """
    anchors, valid = token_anchors(memory_padding_mask, level_shapes)
    # Padded and border tokens propose nothing: zero memory, inf logits.
    keep = valid & ~memory_padding_mask[..., None]  # B, S, 1
    anchors = anchors.masked_fill(~keep, float('inf'))
    memory = memory_transform(memory.masked_fill(~keep, 0.0))
    return cls_branch(memory), reg_branch(memory) + anchors


class EncoderProposalGenerator(nn.Module):
    """Scores every memory token as an object proposal and keeps the top Q.

    Every token gets an anchor box centred on its pixel with side
    ``0.05 * 2**level``; the head's extra branches (index N, after the N
    decoder layers) classify the transformed memory and regress a delta on
    the anchor. The top-Q boxes, through a sine embedding and a linear
    layer, give both halves of the decoder's queries.

    Args:
        embed_dims: C.
        num_queries: Q, the proposals kept.
    """

    def __init__(self, embed_dims: int, num_queries: int) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.memory_trans_fc = nn.Linear(embed_dims, embed_dims)
        self.memory_trans_norm = nn.LayerNorm(embed_dims)
        self.pos_trans_fc = nn.Linear(embed_dims * 2, embed_dims * 2)
        self.pos_trans_norm = nn.LayerNorm(embed_dims * 2)

    def init_weights(self) -> None:
        nn.init.xavier_uniform_(self.memory_trans_fc.weight)
        nn.init.xavier_uniform_(self.pos_trans_fc.weight)

    def forward(self, memory: Tensor, memory_padding_mask: Tensor,
                level_shapes: Sequence[Tuple[int, int]],
                cls_branch: nn.Module,
                reg_branch: nn.Module) -> EncoderProposals:
        """Propose.

        Args:
            memory: (B, S, C) the encoder output.
            memory_padding_mask: (B, S) bool, True at padded tokens.
            level_shapes: L pairs of ints ``(H_l, W_l)``.
            cls_branch: (..., C) -> (..., K) class logits.
            reg_branch: (..., C) -> (..., 4) box delta in logit space.
        """
        B, S, C = memory.shape
        check_token_count(S, self.num_queries, 'two-stage')
        cls_logits, box_logits = token_proposals(
            memory, memory_padding_mask, level_shapes,
            lambda m: self.memory_trans_norm(self.memory_trans_fc(m)),
            cls_branch, reg_branch)  # B, S, K; B, S, 4
        top = torch.topk(cls_logits[..., 0], self.num_queries, dim=1)[1]
        top_box_logits = torch.gather(
            box_logits, 1,
            top.unsqueeze(-1).repeat(1, 1, 4)).detach()  # B, Q, 4
        # Each of cx, cy, w, h, scaled to [0, 2 pi], embedded as a position.
        box_embedding = sine_embedding(top_box_logits.sigmoid() *
                                       (2 * math.pi), C // 2)  # B, Q, 4, C/2
        pos = self.pos_trans_norm(
            self.pos_trans_fc(box_embedding.flatten(2)))  # B, Q, 2C
        query_pos, query = torch.split(pos, C, dim=2)
        return EncoderProposals(query, query_pos, top_box_logits.sigmoid(),
                                cls_logits, box_logits.sigmoid())


def token_anchors(
        padding_mask: Tensor,
        level_shapes: Sequence[Tuple[int, int]]) -> Tuple[Tensor, Tensor]:
    """An anchor box for every token, in logit space.

    Args:
        padding_mask: (B, S) bool, True at padded tokens.
        level_shapes: L pairs of ints ``(H_l, W_l)``.

    Returns:
        anchors: (B, S, 4) ``inverse_sigmoid(cx, cy, w, h)`` with centres
            normalised by the valid extent of the level.
        valid: (B, S, 1) bool, False where a coordinate is outside
            (0.01, 0.99), which the logit cannot represent well.
    """
    B = padding_mask.shape[0]
    anchors = []
    start = 0
    for level, (h, w) in enumerate(level_shapes):
        mask = padding_mask[:, start:start + h * w].view(B, h, w)
        scale = valid_size(mask).view(B, 1, 1, 2)  # B, 1, 1, 2 as (w, h)
        centres = (pixel_centres(h, w, mask.device)[None] /
                   scale)  # B, H_l, W_l, 2
        sizes = torch.ones_like(centres) * 0.05 * (2.0**level)
        anchors.append(torch.cat((centres, sizes), -1).view(B, -1, 4))
        start += h * w
    anchors = torch.cat(anchors, 1)  # B, S, 4
    valid = ((anchors > 0.01) & (anchors < 0.99)).all(-1, keepdim=True)
    # The plain logit, unclamped: invalid entries are overwritten by inf.
    return torch.log(anchors / (1 - anchors)), valid
