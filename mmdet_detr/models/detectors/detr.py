"""The DETR detector (Carion et al., ECCV 2020).

image -> backbone -> neck (1x1 projection) -> positional encoding
      -> encoder -> decoder (object queries) -> head -> matcher -> losses

Symbols: B batch, S = H * W tokens of the single feature map, Q queries,
C channels, N decoder layers, K classes.
"""
from typing import List, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdet_detr.registry import MODELS
from ..heads.detr_head import DETRHeadInputs
from .base_detr import BaseDETR
from .detector_parts import padding_mask


class FlatMap(NamedTuple):
    """The feature map flattened for the transformer.

    feats: (B, S, C); pos: (B, S, C) its sine encoding; padding_mask:
    (B, S) bool, True at padding.
    """
    feats: Tensor
    pos: Tensor
    padding_mask: Tensor


@MODELS.register_module()
class DETR(BaseDETR):
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
            memory format; see ``detector_parts.use_channels_last``.
        data_preprocessor: config, e.g. mmdet's ``DetDataPreprocessor``.
        init_cfg: mmengine initialisation config.
    """

    parameter_settings = ('embed_dims', 'num_queries', 'encoder.num_layers',
                          'decoder.num_layers')
    derived_from = 'model.embed_dims, model.train_cfg, model.test_cfg'

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
        super().__init__(backbone, neck, embed_dims, 1, channels_last,
                         data_preprocessor, init_cfg)
        self.num_queries = num_queries
        self.positional_encoding = self.build_part(
            positional_encoding, 'positional_encoding',
            dict(num_feats=embed_dims // 2))
        self.encoder = self.build_part(encoder, 'encoder',
                                       dict(embed_dims=embed_dims))
        self.decoder = self.build_part(decoder, 'decoder',
                                       dict(embed_dims=embed_dims))
        self.bbox_head = self.build_head(bbox_head, train_cfg, test_cfg, {})
        # The object queries: learned positions; their content starts at
        # zero in the decoder.
        self.query_embedding = nn.Embedding(num_queries, embed_dims)

    # -- the transformer steps --------------------------------------------

    def forward_transformer(
            self, feats: Sequence[Tensor],
            batch_data_samples: Optional[List[DetDataSample]]
    ) -> DETRHeadInputs:
        """Encoder and decoder on the one map."""
        flat = self.flatten_features(feats, batch_data_samples)
        return self.decode(self.encode(flat), flat)

    def flatten_features(
            self, feats: Sequence[Tensor],
            batch_data_samples: Optional[List[DetDataSample]]) -> FlatMap:
        """The map's padding mask, its encoding and the token sequence."""
        feat = feats[0]
        _, _, H, W = feat.shape
        mask = padding_mask(feat, batch_data_samples)  # B, H_in, W_in
        mask = F.interpolate(mask[None].float(),
                             size=(H, W)).bool()[0]  # B, H, W
        pos = self.positional_encoding(mask)  # B, C, H, W
        return FlatMap(
            feat.flatten(2).transpose(1, 2),  # B, S, C
            pos.flatten(2).transpose(1, 2),  # B, S, C
            mask.flatten(1))  # B, S

    def encode(self, flat: FlatMap) -> Tensor:
        """The encoder's (B, S, C) memory."""
        return self.encoder(flat.feats, flat.pos, flat.padding_mask)

    def decode(self, memory: Tensor, flat: FlatMap) -> DETRHeadInputs:
        """The object queries through the decoder: every layer's
        (N, B, Q, C) output."""
        B = memory.shape[0]
        query_pos = self.query_embedding.weight.unsqueeze(0).expand(
            B, -1, -1)  # B, Q, C
        query = torch.zeros_like(query_pos)  # B, Q, C
        return DETRHeadInputs(
            self.decoder(query, query_pos, memory, flat.pos,
                         flat.padding_mask))
