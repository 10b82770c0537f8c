"""Pairwise costs between predictions and ground truth for the matcher.

Every cost maps (T, Q, K) class logits and (T, Q, 4) boxes of T prediction
layers against the G targets of one image to a (T, Q, G) matrix; boxes are
normalised ``(cx, cy, w, h)``.
"""
import torch
from torch import Tensor

from mmdet_detr.registry import TASK_UTILS
from ..box_ops import box_cxcywh_to_xyxy, generalized_box_iou


@TASK_UTILS.register_module()
class FocalLossCost:
    """The focal loss of calling a query the target's class, minus that of
    calling it background: ``weight * (pos_cost - neg_cost)[:, label]``.

    Args:
        weight: multiplier of the cost.
        alpha, gamma: the focal loss parameters.
        eps: keeps the logarithms finite.
    """

    def __init__(self,
                 weight: float = 2.0,
                 alpha: float = 0.25,
                 gamma: float = 2.0,
                 eps: float = 1e-12) -> None:
        self.weight = weight
        self.alpha = alpha
        self.gamma = gamma
        self.eps = eps

    def __call__(self, cls_logits: Tensor, boxes: Tensor, gt_labels: Tensor,
                 gt_boxes: Tensor) -> Tensor:
        prob = cls_logits.sigmoid()[..., gt_labels]  # T, Q, G
        neg_cost = (-(1 - prob + self.eps).log() * (1 - self.alpha) *
                    prob.pow(self.gamma))
        pos_cost = (-(prob + self.eps).log() * self.alpha *
                    (1 - prob).pow(self.gamma))
        return (pos_cost - neg_cost) * self.weight


@TASK_UTILS.register_module()
class ClassificationCost:
    """Minus the softmax probability of the target class (DETR): the loss
    is a log-likelihood, but the constant-free ``1 - p`` approximates it and
    keeps the cost on the scale of the box costs.

    Args:
        weight: multiplier of the cost.
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def __call__(self, cls_logits: Tensor, boxes: Tensor, gt_labels: Tensor,
                 gt_boxes: Tensor) -> Tensor:
        prob = cls_logits.softmax(-1)[..., gt_labels]  # T, Q, G
        return -prob * self.weight


@TASK_UTILS.register_module()
class BBoxL1Cost:
    """L1 distance of normalised ``(cx, cy, w, h)`` boxes.

    Args:
        weight: multiplier of the cost.
    """

    def __init__(self, weight: float = 5.0) -> None:
        self.weight = weight

    def __call__(self, cls_logits: Tensor, boxes: Tensor, gt_labels: Tensor,
                 gt_boxes: Tensor) -> Tensor:
        T = boxes.shape[0]
        return torch.cdist(boxes, gt_boxes[None].expand(T, -1, -1),
                           p=1) * self.weight


@TASK_UTILS.register_module()
class GIoUCost:
    """Minus the generalised IoU.

    Args:
        weight: multiplier of the cost.
    """

    def __init__(self, weight: float = 2.0) -> None:
        self.weight = weight

    def __call__(self, cls_logits: Tensor, boxes: Tensor, gt_labels: Tensor,
                 gt_boxes: Tensor) -> Tensor:
        T, Q, _ = boxes.shape
        giou = generalized_box_iou(
            box_cxcywh_to_xyxy(boxes.flatten(0, 1)),
            box_cxcywh_to_xyxy(gt_boxes))  # T*Q, G
        return -giou.view(T, Q, -1) * self.weight
