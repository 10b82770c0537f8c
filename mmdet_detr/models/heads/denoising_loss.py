"""DINO's denoising losses: each denoising query's target is known from its
position (no matching), so the classification, L1 and GIoU losses of every
decoder layer are computed directly.

Symbols: T prediction layers, B batch, D denoising queries, K classes, G_b
objects of image b.
"""
from typing import Dict, List

import torch
from torch import Tensor, nn

from ..layers.denoising_queries import DenoisingLayout
from .set_loss import MatchTargets, average_count, box_losses


class DenoisingLoss:
    """The losses of the denoising queries of every layer.

    Positives are trained to their object's class and box, negatives and
    padding to no class (the background target K of the sigmoid focal
    loss), with no box loss. Both losses are normalised by the number of
    positives, as in DINO and mmdet.

    Args:
        loss_cls, loss_bbox, loss_iou: the head's loss modules.
        num_classes: K.
        sync_cls_avg_factor: average the classification normaliser over
            all processes.
    """

    def __init__(self, loss_cls: nn.Module, loss_bbox: nn.Module,
                 loss_iou: nn.Module, num_classes: int,
                 sync_cls_avg_factor: bool) -> None:
        self.loss_cls = loss_cls
        self.loss_bbox = loss_bbox
        self.loss_iou = loss_iou
        self.num_classes = num_classes
        self.sync_cls_avg_factor = sync_cls_avg_factor

    def __call__(self, cls_logits: Tensor, boxes: Tensor,
                 targets: MatchTargets,
                 layout: DenoisingLayout) -> List[Dict[str, Tensor]]:
        """``loss_cls``, ``loss_bbox``, ``loss_iou`` of each of T layers.

        Args:
            cls_logits: (T, B, D, K) of the denoising queries.
            boxes: (T, B, D, 4) normalised ``(cx, cy, w, h)``.
            targets: the ground truth the queries were made from.
            layout: their grouping.
        """
        T, B, D, K = cls_logits.shape
        device = cls_logits.device
        counts = [len(labels) for labels in targets.labels]
        # The positive of object j of image b in group g is query
        # g * group_size + j.
        batch_idx = torch.cat([
            torch.full((count, ), b, dtype=torch.long, device=device)
            for b, count in enumerate(counts)
        ]).repeat(layout.num_groups)  # groups * n
        within = torch.cat([
            torch.arange(count, dtype=torch.long, device=device)
            for count in counts
        ])  # n
        query_idx = (torch.arange(layout.num_groups, device=device)[:, None] *
                     layout.group_size + within[None]).flatten()
        group_labels = torch.cat(targets.labels).repeat(layout.num_groups)
        cls_target = torch.full((B, D), self.num_classes, dtype=torch.long,
                                device=device)
        cls_target[batch_idx, query_idx] = group_labels
        box_target = torch.cat(targets.boxes).repeat(layout.num_groups, 1)
        # GIoU in pixels, as for the matched queries.
        scale = torch.cat([
            factor.expand(count, 4)
            for factor, count in zip(targets.factors, counts)
        ]).repeat(layout.num_groups, 1)  # groups * n, 4
        num_pos = layout.num_groups * sum(counts)
        cls_avg_factor = average_count(num_pos, self.sync_cls_avg_factor)
        box_avg_factor = average_count(num_pos, True)
        results = []
        for t in range(T):
            loss_cls = self.loss_cls(
                cls_logits[t].reshape(B * D, K), cls_target.flatten(),
                avg_factor=cls_avg_factor)
            pred = boxes[t][batch_idx, query_idx]  # groups * n, 4
            results.append(
                dict(loss_cls=loss_cls,
                     **box_losses(self.loss_bbox, self.loss_iou, pred,
                                  box_target, scale, box_avg_factor)))
        return results
