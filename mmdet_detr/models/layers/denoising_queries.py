"""DINO's contrastive denoising queries: noised copies of the ground truth
that the decoder learns to reconstruct (positives) or to reject
(negatives), next to the matching queries.

Every ground-truth object of a batch gives, in each of ``num_groups``
groups, one positive query (its box moved by less than
``box_noise_scale / 2`` of its size per corner) and one negative (moved by
between one and two times that), each with the embedding of its label,
flipped to a random class with probability ``label_noise_scale / 2``.
Queries are laid out per image as ``num_groups`` groups of ``2 * G``
(positives then negatives, G the largest object count in the batch; images
with fewer objects are padded with zero queries).

All counts come from tensor shapes, so nothing is read back from the
device.

Symbols: B batch, G the largest number of objects in an image of the
batch, D = 2 * G * num_groups denoising queries, Q matching queries, K
classes, C channels, n = sum of objects over the batch.
"""
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from ..box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, inverse_sigmoid


class DenoisingLayout(NamedTuple):
    """How the first D queries are grouped: ``num_groups`` groups of
    ``2 * max_targets`` (the positives of an image's objects at group
    positions ``0 .. G_b - 1``, their negatives at ``max_targets ..``)."""
    num_groups: int
    max_targets: int

    @property
    def group_size(self) -> int:
        return 2 * self.max_targets

    @property
    def num_queries(self) -> int:
        """D."""
        return self.num_groups * self.group_size


class DenoisingQueries(NamedTuple):
    """The denoising part of the decoder's queries.

    query: (B, D, C) label embeddings (zero at padding).
    reference_points: (B, D, 4) noised boxes, normalised ``(cx, cy, w, h)``
        (0.5 at padding).
    self_attn_mask: (D + Q, D + Q) bool, True where query i may not see
        query j: matching queries do not see denoising ones, and groups do
        not see each other.
    layout: the grouping, for the losses.
    """
    query: Tensor
    reference_points: Tensor
    self_attn_mask: Tensor
    layout: DenoisingLayout


class NoisedTargets(NamedTuple):
    """Every object of the batch, 2 * num_groups times: block k holds group
    k // 2, positives for even k and negatives for odd k, each block the
    objects of all images in batch order.

    labels: (2 * num_groups * n, ) long, the noised labels.
    boxes: (2 * num_groups * n, 4) noised normalised ``(cx, cy, w, h)``.
    """
    labels: Tensor
    boxes: Tensor


class DenoisingQueryGenerator(nn.Module):
    """Builds DINO's denoising queries from the ground truth.

    Args:
        num_classes: K, rows of the label embedding.
        embed_dims: C.
        label_noise_scale: twice the probability that a label is replaced
            by a random class (mmdet's and the official code's convention).
        box_noise_scale: corner noise as a fraction of the box size (times
            two): positives move their corners by less than
            ``box_noise_scale / 2`` of the width or height, negatives by
            between that and twice that.
        num_denoising_queries: the groups of a batch are
            ``num_denoising_queries // G`` (at least one), so that about
            this many positives are trained whatever G is.
    """

    def __init__(self, num_classes: int, embed_dims: int,
                 label_noise_scale: float, box_noise_scale: float,
                 num_denoising_queries: int) -> None:
        super().__init__()
        if label_noise_scale < 0 or box_noise_scale <= 0:
            raise ValueError(
                f'label_noise_scale={label_noise_scale} must be >= 0 and '
                f'box_noise_scale={box_noise_scale} > 0')
        if num_denoising_queries < 1:
            raise ValueError(f'num_denoising_queries={num_denoising_queries}'
                             ' must be at least 1')
        self.num_classes = num_classes
        self.label_noise_scale = label_noise_scale
        self.box_noise_scale = box_noise_scale
        self.num_denoising_queries = num_denoising_queries
        self.label_embedding = nn.Embedding(num_classes, embed_dims)

    def layout(self, labels: List[Tensor]) -> Optional[DenoisingLayout]:
        """The grouping for a batch with ``labels`` (B tensors (G_b, )), or
        None when no image has an object."""
        max_targets = max(len(lab) for lab in labels)
        if max_targets == 0:
            return None
        return DenoisingLayout(
            max(self.num_denoising_queries // max_targets, 1), max_targets)

    def forward(self, labels: List[Tensor], boxes: List[Tensor],
                num_matching_queries: int) -> Optional[DenoisingQueries]:
        """Denoising queries for a batch, or None without objects.

        Args:
            labels: B tensors (G_b, ) long.
            boxes: B tensors (G_b, 4) normalised ``(cx, cy, w, h)``.
            num_matching_queries: Q, for the attention mask.
        """
        layout = self.layout(labels)
        if layout is None:
            return None
        noised = self.noise(torch.cat(labels), torch.cat(boxes),
                            layout.num_groups)
        batch_idx, query_idx = query_positions(
            [len(lab) for lab in labels], layout, noised.labels.device)
        B, D = len(labels), layout.num_queries
        embedded = self.label_embedding(noised.labels)  # 2 * groups * n, C
        query = embedded.new_zeros((B, D, embedded.shape[-1]))
        query[batch_idx, query_idx] = embedded
        # Padding references are sigmoid(0): mmdet and the official code
        # pad the box logits with zeros.
        reference_points = noised.boxes.new_full((B, D, 4), 0.5)
        # Box logits are clamped at 1e-3 as in mmdet and the official code.
        reference_points[batch_idx, query_idx] = inverse_sigmoid(
            noised.boxes, eps=1e-3).sigmoid()
        return DenoisingQueries(
            query, reference_points,
            attention_mask(layout, num_matching_queries, query.device),
            layout)

    def noise(self, labels: Tensor, boxes: Tensor,
              num_groups: int) -> NoisedTargets:
        """Noised copies of the n objects of a batch.

        Args:
            labels: (n, ) long.
            boxes: (n, 4) normalised ``(cx, cy, w, h)``.
            num_groups: groups of one positive and one negative per object.
        """
        n = labels.shape[0]
        labels = labels.repeat(2 * num_groups)  # 2 * groups * n
        # Replaced where chosen; drawn everywhere so that nothing is read
        # back (mmdet draws only for the chosen ones, after a nonzero()).
        chosen = torch.rand(labels.shape, device=labels.device) < (
            self.label_noise_scale * 0.5)
        random_labels = torch.randint_like(labels, 0, self.num_classes)
        labels = torch.where(chosen, random_labels, labels)

        corners = box_cxcywh_to_xyxy(boxes).repeat(2 * num_groups,
                                                   1)  # 2 * groups * n, 4
        sign = torch.randint_like(corners, 0, 2) * 2.0 - 1.0
        magnitude = torch.rand_like(corners)  # [0, 1) positives
        negative = (torch.arange(2 * num_groups, device=boxes.device) %
                    2).repeat_interleave(n)  # 2 * groups * n
        magnitude = magnitude + negative[:, None]  # [1, 2) negatives
        sizes = boxes[:, 2:].repeat(2 * num_groups, 2)  # 2 * groups * n, 4
        corners = corners + (sign * magnitude * sizes *
                             (self.box_noise_scale / 2))
        boxes = box_xyxy_to_cxcywh(corners.clamp(min=0.0, max=1.0))
        return NoisedTargets(labels, boxes)


def query_positions(counts: List[int], layout: DenoisingLayout,
                    device: torch.device) -> Tuple[Tensor, Tensor]:
    """Where each noised object goes in the (B, D) queries.

    Args:
        counts: G_b, the objects of each image.

    Returns:
        batch_idx, query_idx: (2 * num_groups * n, ) long each, in the
        order of :class:`NoisedTargets`: object j of image b in block k is
        query ``k * G + j`` of image b.
    """
    blocks = 2 * layout.num_groups
    batch_idx = torch.cat([
        torch.full((count, ), b, dtype=torch.long, device=device)
        for b, count in enumerate(counts)
    ]).repeat(blocks)
    within = torch.cat([
        torch.arange(count, dtype=torch.long, device=device)
        for count in counts
    ])  # n
    offsets = torch.arange(blocks, dtype=torch.long,
                           device=device) * layout.max_targets  # 2 * groups
    query_idx = (offsets[:, None] + within[None]).flatten()
    return batch_idx, query_idx


def attention_mask(layout: DenoisingLayout, num_matching_queries: int,
                   device: torch.device) -> Tensor:
    """(D + Q, D + Q) bool, True where query i (row) may not attend to
    query j (column): a denoising query sees its own group and the
    matching queries, a matching query only the matching queries (it
    would otherwise see the answers)."""
    D = layout.num_queries
    total = D + num_matching_queries
    group = torch.arange(total, device=device) // layout.group_size
    # Matching queries form one more "group" that every group can see.
    group = group.clamp(max=layout.num_groups)  # D + Q
    is_denoising = torch.arange(total, device=device) < D
    return (group[:, None] != group[None]) & is_denoising[None]
