"""The base of the DETR family: what every member does the same way.

image -> backbone -> neck -> ``forward_transformer`` -> head -> losses or
detections

The base builds the backbone and neck, runs them (:meth:`extract_feat`),
and owns mmengine's three modes (:meth:`loss`, :meth:`predict`,
:meth:`_forward`). A member builds its transformer parts and implements
:meth:`forward_transformer` as named steps, returning the NamedTuple its
head takes: ``head.loss(head_inputs, data_samples)``,
``head.predict(head_inputs, data_samples, rescale)`` and
``head(head_inputs)`` for the raw outputs.

Symbols: B batch, L levels, C channels.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mmdet.models.detectors.base import BaseDetector
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdet_detr.registry import MODELS
from .detector_parts import (build_part, check_map_width, feature_maps,
                             use_channels_last)


class BaseDETR(BaseDetector):
    """Backbone, neck and mmengine's modes of a DETR-family detector.

    Class attributes a member sets:
        parameter_settings: the settings (paths under ``model``) that
            change the parameter set, besides the class count; a checkpoint
            saved with other values does not fit it (the Runner's
            ``CheckpointVariantHook`` names them).
        derived_from: the settings the parts' derived values come from, for
            :meth:`build_part`'s message.
        fixed_queries: whether query k is the same learned query on every
            image (not a proposal chosen per image), so that its
            predictions can be compared across images (the query picture).

    Args:
        backbone, neck: configs (e.g. mmdet's ``ResNet`` and
            ``ChannelMapper``); the neck must give ``num_feature_levels``
            maps of ``embed_dims`` channels.
        embed_dims: C, the transformer width.
        num_feature_levels: L, the maps the transformer takes.
        channels_last: run the backbone and neck in channels-last (NHWC)
            memory format; see ``detector_parts.use_channels_last``.
        data_preprocessor: config, e.g. mmdet's ``DetDataPreprocessor``.
        init_cfg: mmengine initialisation config.
    """

    parameter_settings: Tuple[str, ...] = ()
    derived_from: str = ''
    fixed_queries: bool = True

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 embed_dims: int,
                 num_feature_levels: int,
                 channels_last: bool,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.num_feature_levels = num_feature_levels
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.channels_last = channels_last
        if channels_last:
            use_channels_last(self.backbone, self.neck)

    def build_part(self, cfg: dict, name: str, derived: dict) -> nn.Module:
        """Build ``model.<name>`` with the values the detector derives for
        it (refused when written in the part's own config)."""
        return build_part(cfg, name, derived, self.derived_from)

    def build_head(self, cfg: dict, train_cfg: Optional[dict],
                   test_cfg: Optional[dict], derived: dict) -> nn.Module:
        """Build ``model.bbox_head`` with the transformer width, the
        matcher of ``train_cfg`` (``assigner``), the detections kept of
        ``test_cfg`` (``max_per_img``, default 100) and the member's
        ``derived`` values."""
        return self.build_part(
            cfg, 'bbox_head',
            dict(embed_dims=self.embed_dims,
                 assigner=(train_cfg or {}).get('assigner'),
                 max_per_img=(test_cfg or {}).get('max_per_img', 100),
                 **derived))

    # -- mmengine's three modes -------------------------------------------

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Losses for a batch (B, 3, H, W) with ground truth."""
        head_inputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head.loss(head_inputs, batch_data_samples)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        """Detections in ``pred_instances`` of each data sample."""
        head_inputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        results = self.bbox_head.predict(head_inputs, batch_data_samples,
                                         rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(
            self,
            batch_inputs: Tensor,
            batch_data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        """The head's raw outputs: every decoder layer's class logits
        (N, B, Q, K or K + 1) and normalised boxes (N, B, Q, 4)."""
        head_inputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head(head_inputs)

    # -- the stages -------------------------------------------------------

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> L maps (B, C, H_l, W_l)."""
        feats = feature_maps(self.backbone, self.neck, batch_inputs,
                             self.channels_last)
        if len(feats) != self.num_feature_levels:
            raise ValueError(
                f'the neck gives {len(feats)} feature maps but the model '
                f'takes {self.num_feature_levels}: set model.neck.num_outs '
                '(and model.backbone.out_indices) to give that many')
        check_map_width(feats, self.embed_dims)
        return feats

    def forward_transformer(
            self, feats: Sequence[Tensor],
            batch_data_samples: Optional[List[DetDataSample]]
    ) -> NamedTuple:
        """The member's transformer steps on the L maps: the NamedTuple its
        head takes."""
        raise NotImplementedError(
            f'{type(self).__name__} must implement forward_transformer')
