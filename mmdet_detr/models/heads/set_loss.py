"""The set-prediction loss of the DETR family: ground truth in the head's
units, one Hungarian matching per prediction layer, and the classification,
L1 and GIoU losses of each layer. ``DETRHead`` and ``DeformableDETRHead``
share it; they differ in the classifier (softmax with a no-object class, or
sigmoids) and in what counts in the classification normaliser.

Symbols: T prediction layers, B batch, Q queries, K' class logits per query
(K classes, plus one no-object logit for a softmax classifier), G_b targets
of image b.
"""
from typing import Dict, List, Optional, Union

import torch
from mmdet.utils import reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .. import box_ops
from ..box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh


class MatchTargets:
    """Ground truth of a batch in the head's units.

    boxes: B tensors (G_b, 4) normalised ``(cx, cy, w, h)``.
    labels: B tensors (G_b, ) long.
    factors: B tensors (1, 4) ``(w, h, w, h)`` of each image in pixels.
    """

    def __init__(self, boxes: List[Tensor], labels: List[Tensor],
                 factors: List[Tensor]) -> None:
        self.boxes = boxes
        self.labels = labels
        self.factors = factors

    @classmethod
    def build(cls, batch_gt_instances: List[InstanceData],
              batch_img_metas: List[dict]) -> 'MatchTargets':
        """From per image ``bboxes`` (G_b, 4) ``xyxy`` in pixels, ``labels``
        (G_b, ) and the ``img_shape`` (h, w) of each meta."""
        boxes, labels, factors = [], [], []
        for gt, meta in zip(batch_gt_instances, batch_img_metas):
            h, w = meta['img_shape'][:2]
            factor = gt.bboxes.new_tensor([[w, h, w, h]])
            boxes.append(box_xyxy_to_cxcywh(gt.bboxes / factor))
            labels.append(gt.labels)
            factors.append(factor)
        return cls(boxes, labels, factors)

    @classmethod
    def from_samples(cls, batch_data_samples: list) -> 'MatchTargets':
        """From the ``gt_instances`` and metainfo of each data sample."""
        return cls.build([s.gt_instances for s in batch_data_samples],
                         [s.metainfo for s in batch_data_samples])


class SetLoss:
    """Match every layer's predictions, then compute its three losses.

    The head owns the loss modules and the assigner; this holds references.

    Args:
        assigner: the matcher (e.g. ``HungarianAssigner``), or None for a
            head built for inference only.
        loss_cls, loss_bbox, loss_iou: the head's loss modules.
        num_classes: K; an unmatched query's class target is K (the
            background of mmdet's sigmoid losses, the no-object logit of a
            softmax classifier).
        sync_cls_avg_factor: average the classification normaliser over
            all processes.
        unmatched_weight: weight of an unmatched query in the classification
            normaliser. 0 for sigmoid focal loss, normalised by the number of
            matches (Deformable DETR); the no-object class weight for softmax
            cross-entropy, which then is the weighted mean over all queries
            that DETR takes.
    """

    def __init__(self, assigner: Optional[object], loss_cls: nn.Module,
                 loss_bbox: nn.Module, loss_iou: nn.Module, num_classes: int,
                 sync_cls_avg_factor: bool,
                 unmatched_weight: float = 0.0) -> None:
        self.assigner = assigner
        self.loss_cls = loss_cls
        self.loss_bbox = loss_bbox
        self.loss_iou = loss_iou
        self.num_classes = num_classes
        self.sync_cls_avg_factor = sync_cls_avg_factor
        self.unmatched_weight = unmatched_weight

    def __call__(self, cls_logits: Tensor, boxes: Tensor,
                 labels: List[Tensor],
                 targets: MatchTargets) -> List[Dict[str, Tensor]]:
        """The losses ``loss_cls``, ``loss_bbox``, ``loss_iou`` of each of T
        layers.

        Args:
            cls_logits: (T, B, Q, K').
            boxes: (T, B, Q, 4) normalised ``(cx, cy, w, h)``.
            labels: B tensors (G_b, ), the class targets.
            targets: boxes and image sizes.
        """
        if self.assigner is None:
            raise ValueError('the head has no assigner: set '
                             'model.train_cfg.assigner to train')
        T, B, Q, K = cls_logits.shape
        matches = self.assigner.assign(cls_logits.detach(), boxes.detach(),
                                       labels, targets.boxes)
        num_pos = sum(min(Q, len(lab)) for lab in labels)
        cls_avg_factor = average_count(
            num_pos + self.unmatched_weight * (B * Q - num_pos),
            self.sync_cls_avg_factor)
        box_avg_factor = average_count(num_pos, True)
        results = []
        for t in range(T):
            batch_idx = torch.cat([
                torch.full_like(q, b) for b, (q, _) in enumerate(matches[t])
            ])
            query_idx = torch.cat([q for q, _ in matches[t]])
            target_idx = [g for _, g in matches[t]]
            cls_target = cls_logits.new_full(
                (B, Q), self.num_classes, dtype=torch.long)  # B, Q
            cls_target[batch_idx, query_idx] = torch.cat(
                [lab[g] for lab, g in zip(labels, target_idx)])
            loss_cls = self.loss_cls(
                cls_logits[t].reshape(B * Q, K),
                cls_target.flatten(),
                avg_factor=cls_avg_factor)
            pred = boxes[t][batch_idx, query_idx]  # n, 4
            if pred.numel() == 0:
                # Keep the box branches in the graph (DDP needs every
                # parameter to receive a gradient).
                zero = boxes[t].sum() * 0
                results.append(
                    dict(loss_cls=loss_cls, loss_bbox=zero, loss_iou=zero))
                continue
            target = torch.cat(
                [gt[g] for gt, g in zip(targets.boxes, target_idx)])
            # GIoU in pixels, as mmdet computes it; the L1 stays normalised.
            scale = torch.cat([
                f.expand(len(g), 4) for f, g in zip(targets.factors,
                                                    target_idx)
            ])
            results.append(
                dict(loss_cls=loss_cls,
                     **box_losses(self.loss_bbox, self.loss_iou, pred, target,
                                  scale, box_avg_factor)))
        return results


def box_losses(loss_bbox: nn.Module, loss_iou: nn.Module, pred: Tensor,
               target: Tensor, scale: Tensor,
               avg_factor: Union[float, Tensor]) -> Dict[str, Tensor]:
    """``loss_bbox`` (L1) on normalised ``(cx, cy, w, h)`` boxes and
    ``loss_iou`` (GIoU) on the same boxes in pixels, as mmdet computes it.

    Args:
        pred, target: (n, 4) normalised ``(cx, cy, w, h)``.
        scale: (n, 4) each box's image ``(w, h, w, h)`` in pixels.
        avg_factor: the count both losses are averaged over.
    """
    return dict(
        loss_bbox=loss_bbox(pred, target, avg_factor=avg_factor),
        loss_iou=loss_iou(box_cxcywh_to_xyxy(pred) * scale,
                          box_cxcywh_to_xyxy(target) * scale,
                          avg_factor=avg_factor))


def name_by_layer(per_layer: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
    """The last layer's losses unprefixed, layer i's as ``d{i}.loss_*``."""
    losses = {}
    for layer_id, layer_losses in enumerate(per_layer):
        prefix = '' if layer_id == len(per_layer) - 1 else f'd{layer_id}.'
        for name, value in layer_losses.items():
            losses[prefix + name] = value
    return losses


def average_count(num: float, across_processes: bool) -> Union[float, Tensor]:
    """A count (averaged over processes), at least 1.

    A plain number unless processes are averaged, so a single process
    never waits on the device.
    """
    if across_processes and torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
        return reduce_mean(torch.tensor(float(num),
                                        device=device)).clamp(min=1)
    return max(float(num), 1.0)


def boxes_to_pixels(boxes: Tensor, img_meta: dict, rescale: bool) -> Tensor:
    """:func:`box_ops.boxes_to_pixels` with the image size and scale of
    ``img_meta``, as the heads' ``predict`` hands them: (n, 4) normalised
    ``(cx, cy, w, h)`` -> (n, 4) ``xyxy`` in pixels of the input image, or
    of the original image when ``rescale``."""
    return box_ops.boxes_to_pixels(
        boxes, img_meta['img_shape'],
        img_meta['scale_factor'] if rescale else None)
