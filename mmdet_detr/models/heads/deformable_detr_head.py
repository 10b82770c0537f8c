"""Deformable DETR's prediction head: classes and boxes for every decoder
layer, Hungarian matching, and the focal, L1 and GIoU losses.

Symbols: N prediction layers, B batch, Q queries, K classes, C channels,
S encoder tokens.
"""
import math
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet_detr.registry import MODELS, TASK_UTILS
from ..box_ops import apply_box_delta
from .set_loss import MatchTargets, SetLoss, boxes_to_pixels, name_by_layer

# The classifiers' bias: every class starts at a 0.01 foreground
# probability (focal loss's prior, Lin et al. 2017).
_PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)


class DeformableDETRHeadInputs(NamedTuple):
    """What the detector's transformer hands to the head.

    hidden_states: (N, B, Q, C) every decoder layer's output.
    references: at least N tensors (B, Q, 2 or 4), the normalised
        reference points or boxes each layer started from.
    enc_cls_logits: (B, S, K) proposal logits in two-stage training, or
        None.
    enc_boxes: (B, S, 4) normalised ``(cx, cy, w, h)`` proposal boxes in
        two-stage training, or None.
    """
    hidden_states: Tensor
    references: List[Tensor]
    enc_cls_logits: Optional[Tensor]
    enc_boxes: Optional[Tensor]


@MODELS.register_module()
class DeformableDETRHead(nn.Module):
    """Class and box branches over the decoder's layers.

    Args:
        num_classes: K.
        embed_dims: C (the detector passes its own).
        num_pred_layers: branches to build: the decoder's layers, plus one
            for the encoder proposals in two-stage (the detector derives it).
        share_pred_layer: one branch pair for all layers (no box
            refinement) or one per layer.
        as_two_stage: the last branch pair scores encoder proposals.
        num_reg_fcs: hidden layers of the box branch.
        sync_cls_avg_factor: average the classification normaliser over
            all processes, as the reference implementation does.
        loss_cls, loss_bbox, loss_iou: loss configs (mmdet's ``FocalLoss``,
            ``L1Loss``, ``GIoULoss``); their ``loss_weight`` is the weight.
        assigner: the matcher config (needed for training only).
        max_per_img: detections kept per image at test time.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 256,
                 num_pred_layers: int = 6,
                 share_pred_layer: bool = True,
                 as_two_stage: bool = False,
                 num_reg_fcs: int = 2,
                 sync_cls_avg_factor: bool = False,
                 loss_cls: dict = dict(
                     type='FocalLoss',
                     use_sigmoid=True,
                     gamma=2.0,
                     alpha=0.25,
                     loss_weight=2.0),
                 loss_bbox: dict = dict(type='L1Loss', loss_weight=5.0),
                 loss_iou: dict = dict(type='GIoULoss', loss_weight=2.0),
                 assigner: Optional[dict] = None,
                 max_per_img: int = 100) -> None:
        super().__init__()
        if not loss_cls.get('use_sigmoid', False):
            raise ValueError(
                'DeformableDETRHead scores classes with sigmoids: loss_cls '
                f'must have use_sigmoid=True, got {loss_cls}; use DETRHead '
                'for a softmax classifier with a no-object class')
        self.num_classes = num_classes
        self.num_pred_layers = num_pred_layers
        self.share_pred_layer = share_pred_layer
        self.as_two_stage = as_two_stage
        self.sync_cls_avg_factor = sync_cls_avg_factor
        self.max_per_img = max_per_img
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.assigner = TASK_UTILS.build(assigner) if assigner else None
        self.set_loss = SetLoss(self.assigner, self.loss_cls, self.loss_bbox,
                                self.loss_iou, num_classes,
                                sync_cls_avg_factor)

        def reg_branch() -> nn.Sequential:
            layers = []
            for _ in range(num_reg_fcs):
                layers += [nn.Linear(embed_dims, embed_dims), nn.ReLU()]
            return nn.Sequential(*layers, nn.Linear(embed_dims, 4))

        if share_pred_layer:
            cls_branch = nn.Linear(embed_dims, num_classes)
            shared_reg = reg_branch()
            self.cls_branches = nn.ModuleList([cls_branch] * num_pred_layers)
            self.reg_branches = nn.ModuleList([shared_reg] * num_pred_layers)
        else:
            self.cls_branches = nn.ModuleList(
                nn.Linear(embed_dims, num_classes)
                for _ in range(num_pred_layers))
            self.reg_branches = nn.ModuleList(
                reg_branch() for _ in range(num_pred_layers))
        self.init_weights()

    def init_weights(self) -> None:
        """A 0.01 foreground prior, and boxes that start at the reference
        with a small size (sigmoid(-2) ~ 0.12)."""
        for branch in self.cls_branches:
            nn.init.constant_(branch.bias, _PRIOR_BIAS)
        for branch in self.reg_branches:
            nn.init.constant_(branch[-1].weight, 0.)
            nn.init.constant_(branch[-1].bias, 0.)
        nn.init.constant_(self.reg_branches[0][-1].bias[2:], -2.0)
        if self.as_two_stage:
            # Encoder anchors carry their own size.
            for branch in self.reg_branches:
                nn.init.constant_(branch[-1].bias[2:], 0.0)

    def classifiers(self) -> Dict[str, nn.Linear]:
        """The layers with one output per class, by name under the head:
        the class branch of every prediction layer (shared ones under each
        name, as the state dict holds them)."""
        return {
            f'cls_branches.{i}': branch
            for i, branch in enumerate(self.cls_branches)
        }

    @staticmethod
    def reset_classifier(classifier: nn.Linear) -> None:
        """Initialise a classifier anew (fine-tuning on another class
        count): torch's ``Linear`` init, the bias at the 0.01 prior."""
        classifier.reset_parameters()
        nn.init.constant_(classifier.bias, _PRIOR_BIAS)

    @staticmethod
    def class_probabilities(cls_logits: Tensor) -> Tensor:
        """(..., K) logits -> (..., K) independent class probabilities."""
        return cls_logits.sigmoid()

    def forward(self, head_inputs: DeformableDETRHeadInputs
                ) -> Tuple[Tensor, Tensor]:
        """Predict for every decoder layer.

        Returns:
            cls_logits: (N, B, Q, K).
            boxes: (N, B, Q, 4) normalised ``(cx, cy, w, h)``.
        """
        references = head_inputs.references
        cls_logits, boxes = zip(*(
            self._predict_layer(layer_id, hidden_state, references[layer_id])
            for layer_id, hidden_state in enumerate(
                head_inputs.hidden_states)))
        return torch.stack(cls_logits), torch.stack(boxes)

    def _predict_layer(self, layer_id: int, hidden_state: Tensor,
                       reference: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, Q, C) -> (B, Q, K) logits and (B, Q, 4) boxes of one layer,
        the box a delta in logit space on the (B, Q, 2 or 4) reference."""
        delta = self.reg_branches[layer_id](hidden_state)  # B, Q, 4
        return (self.cls_branches[layer_id](hidden_state),
                apply_box_delta(delta, reference))

    def select_detections(self, cls_logits: Tensor,
                          boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The top ``max_per_img`` (query, class) scores of each image, in
        tensor operations only (``predict`` and graph export share it).

        Args:
            cls_logits: (B, Q, K) one layer's logits.
            boxes: (B, Q, 4) its normalised ``(cx, cy, w, h)`` boxes.

        Returns:
            scores: (B, k) best first, k = min(max_per_img, Q * K);
            labels: (B, k) long; boxes: (B, k, 4) normalised
            ``(cx, cy, w, h)``, the box of each score's query.
        """
        B, Q, K = cls_logits.shape
        scores, index = self.class_probabilities(cls_logits).flatten(
            1).topk(min(self.max_per_img, Q * K), dim=1)  # B, k; B, k
        query = index // K  # B, k
        boxes = boxes.gather(1, query[..., None].expand(-1, -1,
                                                        4))  # B, k, 4
        return scores, index % K, boxes

    def loss(self, head_inputs: DeformableDETRHeadInputs,
             batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Losses of every decoder layer (the last unprefixed, layer i as
        ``d{i}.loss_*``) and, in two-stage, of the encoder proposals
        (``enc_loss_*``, class-agnostic).

        Args:
            head_inputs: the transformer's outputs.
            batch_data_samples: per image, ``gt_instances`` with ``bboxes``
                (G_b, 4) ``xyxy`` in pixels and ``labels`` (G_b, ), and the
                ``img_shape`` (h, w) in its metainfo.
        """
        cls_logits, boxes = self(head_inputs)
        targets = MatchTargets.from_samples(batch_data_samples)
        losses = name_by_layer(
            self.set_loss(cls_logits, boxes, targets.labels, targets))
        enc_cls_logits = head_inputs.enc_cls_logits
        if enc_cls_logits is not None:
            # Proposals are scored as "object": every target is class 0.
            agnostic = [torch.zeros_like(labels) for labels in targets.labels]
            enc_losses = self.set_loss(enc_cls_logits[None],
                                       head_inputs.enc_boxes[None], agnostic,
                                       targets)[0]
            for name, value in enc_losses.items():
                losses['enc_' + name] = value
        return losses

    @torch.no_grad()
    def predict(self,
                head_inputs: DeformableDETRHeadInputs,
                batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[InstanceData]:
        """Detections of the last layer: the top ``max_per_img`` (query,
        class) scores per image.

        Returns:
            per image ``bboxes`` (n, 4) ``xyxy`` in pixels of the input (or
            of the original image when ``rescale``), ``scores`` (n, ) and
            ``labels`` (n, ).
        """
        last = len(head_inputs.hidden_states) - 1
        cls_logits, boxes = self._predict_layer(
            last, head_inputs.hidden_states[last],
            head_inputs.references[last])
        results = []
        for scores, labels, box, sample in zip(
                *self.select_detections(cls_logits, boxes),
                batch_data_samples):
            results.append(InstanceData(
                bboxes=boxes_to_pixels(box, sample.metainfo, rescale),
                scores=scores, labels=labels))
        return results


__all__ = ['DeformableDETRHead', 'DeformableDETRHeadInputs']
