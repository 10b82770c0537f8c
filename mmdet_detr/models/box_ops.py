"""Box conversions, (generalised) IoU, and boxes as deltas on references.

Boxes travel as normalised ``(cx, cy, w, h)`` from the head through the matcher
to the loss; these helpers convert at the edges. ``xyxy`` is
``(x1, y1, x2, y2)``.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(..., 4) ``cx, cy, w, h`` -> (..., 4) ``x1, y1, x2, y2``."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack(
        [cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(..., 4) ``x1, y1, x2, y2`` -> (..., 4) ``cx, cy, w, h``."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1],
                       dim=-1)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor,
                        eps: float = 1e-6) -> Tensor:
    """Pairwise GIoU of (N, 4) and (K, 4) ``xyxy`` boxes -> (N, K).

    Union and enclosing area are clamped below by ``eps`` (mmdet's
    ``bbox_overlaps`` does the same), so degenerate boxes give finite values
    instead of NaN.
    """
    return _giou(boxes1[:, None], boxes2[None], eps)


def _giou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-6) -> Tensor:
    """GIoU of broadcastable (..., 4) ``xyxy`` boxes -> (...)."""
    area1 = ((boxes1[..., 2] - boxes1[..., 0]) *
             (boxes1[..., 3] - boxes1[..., 1]))
    area2 = ((boxes2[..., 2] - boxes2[..., 0]) *
             (boxes2[..., 3] - boxes2[..., 1]))
    inter_wh = (torch.min(boxes1[..., 2:], boxes2[..., 2:]) -
                torch.max(boxes1[..., :2], boxes2[..., :2])).clamp(min=0)
    overlap = inter_wh[..., 0] * inter_wh[..., 1]
    union = (area1 + area2 - overlap).clamp(min=eps)
    enclose_wh = (torch.max(boxes1[..., 2:], boxes2[..., 2:]) -
                  torch.min(boxes1[..., :2], boxes2[..., :2])).clamp(min=0)
    enclose_area = (enclose_wh[..., 0] * enclose_wh[..., 1]).clamp(min=eps)
    return overlap / union - (enclose_area - union) / enclose_area


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """The logit of ``x``, clamped so that 0 and 1 map to finite values."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def apply_box_delta(delta: Tensor, reference: Tensor,
                    eps: float = 1e-5) -> Tensor:
    """Boxes predicted as a delta in logit space on a reference.

    Args:
        delta: (..., 4) offsets of ``inverse_sigmoid(cx, cy, w, h)``.
        reference: (..., 2) normalised ``(x, y)`` points or (..., 4)
            normalised ``(cx, cy, w, h)`` boxes.

    Returns:
        (..., 4) normalised ``(cx, cy, w, h)``,
        ``sigmoid(delta + inverse_sigmoid(reference))``; a point reference
        has no size, so the size is ``sigmoid(delta[..., 2:])``.
        ``eps`` clamps the reference before its logit (DINO's decoder
        clamps at 1e-3).
    """
    reference = inverse_sigmoid(reference, eps)
    if reference.shape[-1] == 4:
        box_logits = delta + reference
    else:
        box_logits = torch.cat(
            [delta[..., :2] + reference, delta[..., 2:]], -1)  # ..., 4
    return box_logits.sigmoid()


def boxes_to_pixels(boxes: Tensor,
                    img_shape: Sequence[int],
                    scale_factor: Optional[Sequence[float]] = None) -> Tensor:
    """Normalised boxes -> ``xyxy`` in pixels.

    Args:
        boxes: (..., 4) normalised ``(cx, cy, w, h)`` of the input image.
        img_shape: ``(h, w, ...)`` of the input image (unpadded).
        scale_factor: ``(w_scale, h_scale)`` of the resize from the
            original image, or None.

    Returns:
        (..., 4) ``xyxy`` in pixels of the input image, clamped to it; with
        ``scale_factor``, divided by it into pixels of the original image.
    """
    h, w = img_shape[:2]
    boxes = box_cxcywh_to_xyxy(boxes)
    boxes = boxes * boxes.new_tensor([w, h, w, h])
    boxes[..., 0::2].clamp_(min=0, max=w)
    boxes[..., 1::2].clamp_(min=0, max=h)
    if scale_factor is not None:
        boxes = boxes / boxes.new_tensor(scale_factor).repeat(2)
    return boxes
