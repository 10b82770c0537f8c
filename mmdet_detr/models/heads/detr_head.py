"""DETR's prediction head: a softmax over the classes and no-object, and a
box MLP, shared by every decoder layer; Hungarian matching and the
cross-entropy, L1 and GIoU losses of every layer.

Symbols: N decoder layers, B batch, Q queries, K classes, C channels.
"""
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet_detr.registry import MODELS, TASK_UTILS
from .set_loss import MatchTargets, SetLoss, boxes_to_pixels, name_by_layer


class DETRHeadInputs(NamedTuple):
    """What DETR's transformer hands to the head.

    hidden_states: (N, B, Q, C) every decoder layer's output (after the
        decoder's final LayerNorm).
    """
    hidden_states: Tensor


@MODELS.register_module()
class DETRHead(nn.Module):
    """One class branch (K + 1 logits, the last for no-object) and one box
    branch, applied to every decoder layer's output.

    Args:
        num_classes: K.
        embed_dims: C (the detector passes its own).
        num_reg_fcs: hidden layers of the box branch (DETR's MLP has 2).
        no_object_weight: weight of the no-object class in the
            cross-entropy (DETR's ``eos_coef``); the classification loss is
            the weighted mean over all queries.
        sync_cls_avg_factor: average the classification normaliser over
            all processes (DETR does not).
        loss_cls: mmdet's ``CrossEntropyLoss`` with ``use_sigmoid=False``;
            its ``class_weight`` follows from ``no_object_weight``.
        loss_bbox, loss_iou: mmdet's ``L1Loss`` and ``GIoULoss`` configs;
            their ``loss_weight`` is the weight.
        assigner: the matcher config (needed for training only).
        max_per_img: detections kept per image at test time (at most Q).
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 256,
                 num_reg_fcs: int = 2,
                 no_object_weight: float = 0.1,
                 sync_cls_avg_factor: bool = False,
                 loss_cls: dict = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=False,
                     loss_weight=1.0),
                 loss_bbox: dict = dict(type='L1Loss', loss_weight=5.0),
                 loss_iou: dict = dict(type='GIoULoss', loss_weight=2.0),
                 assigner: Optional[dict] = None,
                 max_per_img: int = 100) -> None:
        super().__init__()
        if loss_cls.get('use_sigmoid', False):
            raise ValueError(
                'DETRHead scores classes with a softmax over K classes and '
                f'no-object: loss_cls must have use_sigmoid=False, got '
                f'{loss_cls}; use DeformableDETRHead for sigmoid scores')
        given = sorted({'class_weight', 'bg_cls_weight'} & set(loss_cls))
        if given:
            raise ValueError(
                f'model.bbox_head.loss_cls sets {given}: DETRHead derives '
                'the class weights from model.bbox_head.no_object_weight '
                '(1 for each class, no_object_weight for no-object); remove '
                'them from loss_cls')
        self.num_classes = num_classes
        self.max_per_img = max_per_img
        self.loss_cls = MODELS.build(
            loss_cls,
            default_args=dict(
                class_weight=[1.0] * num_classes + [no_object_weight]))
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.assigner = TASK_UTILS.build(assigner) if assigner else None
        self.set_loss = SetLoss(self.assigner, self.loss_cls, self.loss_bbox,
                                self.loss_iou, num_classes,
                                sync_cls_avg_factor,
                                unmatched_weight=no_object_weight)
        self.cls_branch = nn.Linear(embed_dims, num_classes + 1)
        layers = []
        for _ in range(num_reg_fcs):
            layers += [nn.Linear(embed_dims, embed_dims), nn.ReLU()]
        self.reg_branch = nn.Sequential(*layers, nn.Linear(embed_dims, 4))

    def classifiers(self) -> Dict[str, nn.Linear]:
        """The layers with one output per class (and no-object), by name
        under the head."""
        return {'cls_branch': self.cls_branch}

    @staticmethod
    def reset_classifier(classifier: nn.Linear) -> None:
        """Initialise a classifier anew (fine-tuning on another class
        count): torch's ``Linear`` init, as DETR's classifier starts."""
        classifier.reset_parameters()

    @staticmethod
    def class_probabilities(cls_logits: Tensor) -> Tensor:
        """(..., K + 1) logits -> (..., K) class probabilities: the softmax
        over the classes and no-object, without no-object's."""
        return cls_logits.softmax(-1)[..., :-1]

    def forward(self,
                head_inputs: DETRHeadInputs) -> Tuple[Tensor, Tensor]:
        """Predict for every decoder layer.

        Returns:
            cls_logits: (N, B, Q, K + 1), no-object last.
            boxes: (N, B, Q, 4) normalised ``(cx, cy, w, h)``.
        """
        return self._predict(head_inputs.hidden_states)

    def _predict(self, hidden_states: Tensor) -> Tuple[Tensor, Tensor]:
        """(..., C) -> (..., K + 1) logits and (..., 4) boxes."""
        return (self.cls_branch(hidden_states),
                self.reg_branch(hidden_states).sigmoid())

    def select_detections(self, cls_logits: Tensor,
                          boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Each query's most likely class other than no-object, the
        ``max_per_img`` highest scores per image, in tensor operations only
        (``predict`` and graph export share it).

        Args:
            cls_logits: (B, Q, K + 1) one layer's logits, no-object last.
            boxes: (B, Q, 4) its normalised ``(cx, cy, w, h)`` boxes.

        Returns:
            scores: (B, k) best first, k = min(max_per_img, Q); labels:
            (B, k) long; boxes: (B, k, 4) normalised ``(cx, cy, w, h)``.
        """
        scores, labels = self.class_probabilities(cls_logits).max(
            -1)  # B, Q; B, Q
        scores, index = scores.topk(
            min(self.max_per_img, scores.shape[1]), dim=1)  # B, k; B, k
        boxes = boxes.gather(1, index[..., None].expand(-1, -1,
                                                        4))  # B, k, 4
        return scores, labels.gather(1, index), boxes

    def loss(self, head_inputs: DETRHeadInputs,
             batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Losses of every decoder layer, the last unprefixed, layer i as
        ``d{i}.loss_*`` (DETR's auxiliary losses).

        Args:
            head_inputs: the transformer's outputs.
            batch_data_samples: per image, ``gt_instances`` with ``bboxes``
                (G_b, 4) ``xyxy`` in pixels and ``labels`` (G_b, ), and the
                ``img_shape`` (h, w) in its metainfo.
        """
        cls_logits, boxes = self(head_inputs)
        targets = MatchTargets.from_samples(batch_data_samples)
        return name_by_layer(
            self.set_loss(cls_logits, boxes, targets.labels, targets))

    @torch.no_grad()
    def predict(self,
                head_inputs: DETRHeadInputs,
                batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[InstanceData]:
        """Detections of the last layer: each query's most likely class
        other than no-object, the ``max_per_img`` highest scores per image.

        Returns:
            per image ``bboxes`` (n, 4) ``xyxy`` in pixels of the input (or
            of the original image when ``rescale``), ``scores`` (n, ) and
            ``labels`` (n, ).
        """
        cls_logits, boxes = self._predict(
            head_inputs.hidden_states[-1])  # B, Q, K + 1; B, Q, 4
        results = []
        for scores, labels, box, sample in zip(
                *self.select_detections(cls_logits, boxes),
                batch_data_samples):
            results.append(InstanceData(
                bboxes=boxes_to_pixels(box, sample.metainfo, rescale),
                scores=scores, labels=labels))
        return results


__all__ = ['DETRHead', 'DETRHeadInputs']
