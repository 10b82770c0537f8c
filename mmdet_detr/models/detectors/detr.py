"""The DETR detector (Carion et al., ECCV 2020).

image -> backbone -> neck (1x1 projection) -> positional encoding
      -> encoder -> decoder (object queries) -> head -> matcher -> losses

Symbols: B batch, S = H * W tokens of the single feature map, Q queries,
C channels, N decoder layers, K classes.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdet_detr.registry import MODELS
from .detector_parts import (build_part, check_map_width, feature_maps,
                             padding_mask, use_channels_last)

# The settings the parts' derived values come from, for build_part's message.
_DERIVED_FROM = 'model.embed_dims, model.train_cfg, model.test_cfg'


@MODELS.register_module()
class DETR(BaseDetector):
    """DETR: one feature map, a plain transformer, learned object queries.

    The width ``embed_dims`` has its home here and is passed to the
    positional encoding, encoder, decoder and head.

    Args:
        backbone, neck: configs (e.g. mmdet's ``ResNet`` with one output and
            ``ChannelMapper``, DETR's ``input_proj``); the neck must give one
            map of ``embed_dims`` channels.
        encoder, decoder: configs of the transformer stacks.
        bbox_head: config of the head.
        positional_encoding: config of the sine encoding of the map.
        num_queries: Q, the object queries.
        embed_dims: C.
        train_cfg: ``dict(assigner=...)``, the matcher.
        test_cfg: ``dict(max_per_img=...)``.
        channels_last: run the backbone and neck in channels-last (NHWC)
            memory format (R50, 2 x 512 x 512 on 2 CPU cores: inference
            11% faster, their forward and backward 7%); see
            ``detector_parts.use_channels_last``.
        data_preprocessor: config, e.g. mmdet's ``DetDataPreprocessor``.
        init_cfg: mmengine initialisation config.
    """

    # The settings (paths under ``model``) that change the parameter set,
    # besides the class count: a checkpoint saved with other values does
    # not fit (engine/checkpoint_variant_hook.py names them).
    parameter_settings = ('embed_dims', 'num_queries', 'encoder.num_layers',
                          'decoder.num_layers')

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 encoder: dict,
                 decoder: dict,
                 bbox_head: dict,
                 positional_encoding: dict = dict(
                     type='SinePositionalEncoding', normalize=True,
                     offset=0.),
                 num_queries: int = 100,
                 embed_dims: int = 256,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 channels_last: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.num_queries = num_queries
        self.embed_dims = embed_dims
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.channels_last = channels_last
        if channels_last:
            use_channels_last(self.backbone, self.neck)
        self.positional_encoding = build_part(
            positional_encoding, 'positional_encoding',
            dict(num_feats=embed_dims // 2), _DERIVED_FROM)
        self.encoder = build_part(encoder, 'encoder',
                                  dict(embed_dims=embed_dims), _DERIVED_FROM)
        self.decoder = build_part(decoder, 'decoder',
                                  dict(embed_dims=embed_dims), _DERIVED_FROM)
        train_cfg = train_cfg or {}
        test_cfg = test_cfg or {}
        self.bbox_head = build_part(
            bbox_head, 'bbox_head',
            dict(
                embed_dims=embed_dims,
                assigner=train_cfg.get('assigner'),
                max_per_img=test_cfg.get('max_per_img', 100)), _DERIVED_FROM)
        # The object queries: learned positions; their content starts at
        # zero in the decoder.
        self.query_embedding = nn.Embedding(num_queries, embed_dims)

    # -- mmengine's three modes -------------------------------------------

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Losses for a batch (B, 3, H, W) with ground truth."""
        hidden_states = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head.loss(
            hidden_states, [s.gt_instances for s in batch_data_samples],
            [s.metainfo for s in batch_data_samples])

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        """Detections in ``pred_instances`` of each data sample."""
        hidden_states = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        results = self.bbox_head.predict(
            hidden_states, [s.metainfo for s in batch_data_samples],
            rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(
            self,
            batch_inputs: Tensor,
            batch_data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        """Raw (N, B, Q, K + 1) logits and (N, B, Q, 4) boxes."""
        hidden_states = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head(hidden_states)

    # -- the stages -------------------------------------------------------

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> one map (B, C, H', W'), in a tuple."""
        feats = feature_maps(self.backbone, self.neck, batch_inputs,
                             self.channels_last)
        if len(feats) != 1:
            raise ValueError(
                f'the neck gives {len(feats)} feature maps but DETR uses '
                'one: set model.backbone.out_indices to one stage and '
                'model.neck.num_outs=1')
        check_map_width(feats, self.embed_dims)
        return feats

    def forward_transformer(
            self, feats: Sequence[Tensor],
            batch_data_samples: Optional[List[DetDataSample]]) -> Tensor:
        """Encoder and decoder on the map; (N, B, Q, C) decoder outputs."""
        feat = feats[0]
        B, _, H, W = feat.shape
        mask = padding_mask(feat, batch_data_samples)  # B, H_in, W_in
        mask = F.interpolate(mask[None].float(),
                             size=(H, W)).bool()[0]  # B, H, W
        pos = self.positional_encoding(mask)  # B, C, H, W
        pos = pos.flatten(2).transpose(1, 2)  # B, S, C
        mask = mask.flatten(1)  # B, S
        memory = self.encoder(feat.flatten(2).transpose(1, 2), pos,
                              mask)  # B, S, C
        query_pos = self.query_embedding.weight.unsqueeze(0).expand(
            B, -1, -1)  # B, Q, C
        query = torch.zeros_like(query_pos)  # B, Q, C
        return self.decoder(query, query_pos, memory, pos, mask)
