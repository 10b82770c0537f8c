"""DINO's head: Deformable DETR's branches, the label embedding of the
denoising queries, and three sets of losses (matched queries, top encoder
proposals, denoising queries).

Symbols: N decoder layers, B batch, D denoising queries, Q matching
queries, K classes, C channels.
"""
from typing import Dict, List, NamedTuple, Optional

from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet_detr.registry import MODELS
from ..layers.denoising_queries import DenoisingLayout, DenoisingQueryGenerator
from .deformable_detr_head import _PRIOR_BIAS, DeformableDETRHead
from .denoising_loss import DenoisingLoss
from .set_loss import MatchTargets, name_by_layer


class DINOHeadInputs(NamedTuple):
    """What DINO's transformer hands to the head.

    hidden_states: (N, B, D + Q, C) every decoder layer's output, the D
        denoising queries first (D = 0 outside training).
    references: N + 1 tensors (B, D + Q, 4) normalised ``(cx, cy, w, h)``:
        layer i predicts its boxes on reference i.
    enc_cls_logits: (B, Q, K) logits of the selected encoder proposals in
        training, else None.
    enc_boxes: (B, Q, 4) their normalised boxes in training, else None.
    denoising: the grouping of the D denoising queries, or None when there
        are none.
    """
    hidden_states: Tensor
    references: List[Tensor]
    enc_cls_logits: Optional[Tensor]
    enc_boxes: Optional[Tensor]
    denoising: Optional[DenoisingLayout]


@MODELS.register_module()
class DINOHead(DeformableDETRHead):
    """Deformable DETR's head (one branch pair per decoder layer plus one
    for the encoder proposals) with DINO's denoising.

    Args:
        label_noise_scale, box_noise_scale, num_denoising_queries: the
            denoising queries (see ``DenoisingQueryGenerator``).
        The rest: those of :class:`DeformableDETRHead`; DINO's detector
        derives ``num_pred_layers``, ``share_pred_layer`` and
        ``as_two_stage``.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 256,
                 num_pred_layers: int = 7,
                 share_pred_layer: bool = False,
                 as_two_stage: bool = True,
                 num_reg_fcs: int = 2,
                 sync_cls_avg_factor: bool = False,
                 loss_cls: dict = dict(
                     type='FocalLoss',
                     use_sigmoid=True,
                     gamma=2.0,
                     alpha=0.25,
                     loss_weight=1.0),
                 loss_bbox: dict = dict(type='L1Loss', loss_weight=5.0),
                 loss_iou: dict = dict(type='GIoULoss', loss_weight=2.0),
                 label_noise_scale: float = 0.5,
                 box_noise_scale: float = 1.0,
                 num_denoising_queries: int = 100,
                 assigner: Optional[dict] = None,
                 max_per_img: int = 300) -> None:
        super().__init__(num_classes, embed_dims, num_pred_layers,
                         share_pred_layer, as_two_stage, num_reg_fcs,
                         sync_cls_avg_factor, loss_cls, loss_bbox, loss_iou,
                         assigner, max_per_img)
        self.denoising = DenoisingQueryGenerator(
            num_classes, embed_dims, label_noise_scale, box_noise_scale,
            num_denoising_queries)
        self.denoising_loss = DenoisingLoss(self.loss_cls, self.loss_bbox,
                                            self.loss_iou, num_classes,
                                            sync_cls_avg_factor)

    def classifiers(self) -> Dict[str, nn.Module]:
        """The class branches and the label embedding of the denoising
        queries (one row per class)."""
        return {
            **super().classifiers(), 'denoising.label_embedding':
            self.denoising.label_embedding
        }

    @staticmethod
    def reset_classifier(classifier: nn.Module) -> None:
        """A class branch as Deformable DETR's; the label embedding with
        torch's ``Embedding`` init (N(0, 1)), as DINO starts it."""
        classifier.reset_parameters()
        if isinstance(classifier, nn.Linear):
            nn.init.constant_(classifier.bias, _PRIOR_BIAS)

    def loss(self, head_inputs: DINOHeadInputs,
             batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Losses of the matched queries of every layer (``loss_*``,
        ``d{i}.loss_*``), of the top encoder proposals (``enc_loss_*``,
        matched with their classes) and of the denoising queries
        (``dn_loss_*``, ``d{i}.dn_loss_*``).

        Args:
            head_inputs: the transformer's outputs.
            batch_data_samples: per image, ``gt_instances`` with ``bboxes``
                (G_b, 4) ``xyxy`` in pixels and ``labels`` (G_b, ), and the
                ``img_shape`` (h, w) in its metainfo.
        """
        cls_logits, boxes = self(head_inputs)  # N, B, D + Q, K; ..., 4
        targets = MatchTargets.from_samples(batch_data_samples)
        layout = head_inputs.denoising
        D = layout.num_queries if layout is not None else 0
        losses = name_by_layer(
            self.set_loss(cls_logits[:, :, D:], boxes[:, :, D:],
                          targets.labels, targets))
        if head_inputs.enc_cls_logits is not None:
            enc_losses = self.set_loss(head_inputs.enc_cls_logits[None],
                                       head_inputs.enc_boxes[None],
                                       targets.labels, targets)[0]
            for name, value in enc_losses.items():
                losses['enc_' + name] = value
        if layout is not None:
            dn_losses = self.denoising_loss(cls_logits[:, :, :D],
                                            boxes[:, :, :D], targets, layout)
        else:
            # No object in the batch: zeros that keep the branches in the
            # graph, so the loss keys and the gradients' owners stay fixed.
            zero = cls_logits.sum() * 0 + boxes.sum() * 0
            dn_losses = [
                dict(loss_cls=zero, loss_bbox=zero, loss_iou=zero)
            ] * len(cls_logits)
        for name, value in name_by_layer(dn_losses).items():
            layer, _, loss = name.rpartition('.')
            losses[f'{layer}.dn_{loss}' if layer else f'dn_{loss}'] = value
        return losses

    def predict(self,
                head_inputs: DINOHeadInputs,
                batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[InstanceData]:
        """Detections of the last layer's matching queries (see
        :meth:`DeformableDETRHead.predict`)."""
        return super().predict(matching_part(head_inputs),
                               batch_data_samples, rescale)


def matching_part(head_inputs: DINOHeadInputs) -> DINOHeadInputs:
    """The inputs without the denoising queries."""
    layout = head_inputs.denoising
    if layout is None:
        return head_inputs
    D = layout.num_queries
    return DINOHeadInputs(head_inputs.hidden_states[:, :, D:],
                          [ref[:, D:] for ref in head_inputs.references],
                          head_inputs.enc_cls_logits, head_inputs.enc_boxes,
                          None)


__all__ = ['DINOHead', 'DINOHeadInputs']
