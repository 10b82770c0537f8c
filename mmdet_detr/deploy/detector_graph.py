"""What an exported graph computes: a normalised image batch in, the
detections of every image out.

Symbols: B batch, H, W the input's height and width, k detections kept
per image (the head's ``max_per_img``, or fewer when the model has fewer
candidates).
"""
from typing import Tuple

import torch
from torch import Tensor, nn

from mmdet_detr.models.box_ops import box_cxcywh_to_xyxy


class DetectorGraph(nn.Module):
    """A detector of the family from image tensor to final detections,
    through the detector contract only: ``extract_feat``,
    ``forward_transformer(feats, None)`` (no data samples: no image of the
    batch is padding), ``bbox_head(head_inputs)`` and the head's
    ``select_detections`` on the last layer.

    Outside the graph stay the test pipeline (loading, resizing), the
    data preprocessor's normalisation and padding to one batch size, and
    the scaling of boxes back to the original image (dividing by the
    resize's scale factor).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Detect.

        Args:
            images: (B, 3, H, W) float32, normalised as the config's data
                preprocessor does (mean, std, channel order).

        Returns:
            scores: (B, k) best first; labels: (B, k) int64 class indices;
            boxes: (B, k, 4) float32 ``xyxy`` in pixels of ``images``,
            clamped to the image.
        """
        detector = self.detector
        head_inputs = detector.forward_transformer(
            detector.extract_feat(images), None)
        cls_logits, boxes = detector.bbox_head(head_inputs)  # N, B, Q, ...
        scores, labels, boxes = detector.bbox_head.select_detections(
            cls_logits[-1], boxes[-1])  # B, k; B, k; B, k, 4
        # The size as a tensor, so the graph reads it from its input.
        size = torch._shape_as_tensor(images)[[3, 2, 3, 2]].to(
            boxes)  # 4 as (W, H, W, H)
        boxes = box_cxcywh_to_xyxy(boxes) * size
        boxes = torch.minimum(boxes.clamp(min=0), size)  # B, k, 4
        return scores, labels, boxes
