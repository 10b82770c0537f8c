"""The Deformable DETR detector (Zhu et al., ICLR 2021).

image -> backbone -> neck -> positional encoding -> encoder
      -> query selection (learned queries, or two-stage: encoder proposals)
      -> decoder -> head -> matcher -> losses

The transformer runs as four named steps (:meth:`flatten_features`,
:meth:`encode`, :meth:`select_queries`, :meth:`decode`) that pass typed
NamedTuples; a member of the family that adds queries (DINO's denoising
queries) overrides :meth:`select_queries` and :meth:`decode`.

Symbols: B batch, L levels, S = sum_l H_l * W_l tokens, Q queries,
C channels, N decoder layers.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdet_detr.registry import MODELS
from ..heads.deformable_detr_head import DeformableDETRHeadInputs
from ..layers.encoder_proposals import EncoderProposalGenerator
from ..map_geometry import valid_ratio
from .base_detr import BaseDETR
from .detector_parts import padding_mask


class FlatFeatures(NamedTuple):
    """Multi-level features flattened for the transformer.

    feats: (B, S, C); pos: (B, S, C) positional plus level encodings;
    padding_mask: (B, S) bool, True at padding; spatial_shapes: (L, 2) long
    ``(H_l, W_l)``; level_start_index: (L, ) long; valid_ratios: (B, L, 2)
    unpadded fraction ``(w, h)`` of each level; level_shapes: the same
    ``(H_l, W_l)`` as Python ints, read from the feature maps, so that no
    step reads a shape back from the device.
    """
    feats: Tensor
    pos: Tensor
    padding_mask: Tensor
    spatial_shapes: Tensor
    level_start_index: Tensor
    valid_ratios: Tensor
    level_shapes: Tuple[Tuple[int, int], ...]


class Queries(NamedTuple):
    """What the decoder starts from, chosen by :meth:`select_queries`.

    query: (B, Q, C) content; query_pos: (B, Q, C) positional embedding;
    reference_points: (B, Q, 2) normalised points, or (B, Q, 4) boxes in
    two-stage; enc_cls_logits: (B, S, K) and enc_boxes: (B, S, 4) the
    encoder proposals in two-stage training (for their loss), else None.
    """
    query: Tensor
    query_pos: Tensor
    reference_points: Tensor
    enc_cls_logits: Optional[Tensor]
    enc_boxes: Optional[Tensor]


@MODELS.register_module()
class DeformableDETR(BaseDETR):
    """Deformable DETR, with iterative box refinement and two-stage variants.

    The transformer width ``embed_dims`` and ``num_feature_levels`` have
    their home here and are passed to the encoder, decoder, positional
    encoding and head; the head's number of prediction layers follows from
    the decoder's ``num_layers``.

    Args:
        backbone, neck: configs (e.g. mmdet's ``ResNet`` and
            ``ChannelMapper``); the neck must give ``num_feature_levels``
            maps of ``embed_dims`` channels.
        encoder, decoder: configs of the transformer stacks.
        bbox_head: config of the head.
        positional_encoding: config of the per-level position encoding.
        num_queries: Q, object queries (or proposals kept in two-stage).
        num_feature_levels: L.
        embed_dims: C.
        with_box_refine: each decoder layer refines the boxes of the last
            with its own branch.
        as_two_stage: queries come from the top encoder proposals.
        train_cfg: ``dict(assigner=...)``, the matcher.
        test_cfg: ``dict(max_per_img=...)``.
        channels_last: run the backbone and neck in channels-last (NHWC)
            memory format; see ``detector_parts.use_channels_last``.
        data_preprocessor: config, e.g. mmdet's ``DetDataPreprocessor``.
        init_cfg: mmengine initialisation config.
    """

    parameter_settings = ('with_box_refine', 'as_two_stage',
                          'num_feature_levels', 'embed_dims', 'num_queries',
                          'encoder.num_layers', 'decoder.num_layers')
    derived_from = ('model.embed_dims, model.num_feature_levels, '
                    'model.decoder.num_layers, model.with_box_refine, '
                    'model.as_two_stage, model.train_cfg, model.test_cfg')

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 encoder: dict,
                 decoder: dict,
                 bbox_head: dict,
                 positional_encoding: dict = dict(
                     type='SinePositionalEncoding',
                     normalize=True,
                     offset=-0.5),
                 num_queries: int = 300,
                 num_feature_levels: int = 4,
                 embed_dims: int = 256,
                 with_box_refine: bool = False,
                 as_two_stage: bool = False,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 channels_last: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        _check_levels(backbone, neck, num_feature_levels, embed_dims)
        super().__init__(backbone, neck, embed_dims, num_feature_levels,
                         channels_last, data_preprocessor, init_cfg)
        self.num_queries = num_queries
        self.with_box_refine = with_box_refine
        self.as_two_stage = as_two_stage
        self.positional_encoding = self.build_part(
            positional_encoding, 'positional_encoding',
            dict(num_feats=embed_dims // 2))
        stack = dict(embed_dims=embed_dims, num_levels=num_feature_levels)
        self.encoder = self.build_part(encoder, 'encoder', stack)
        self.decoder = self.build_part(decoder, 'decoder', stack)
        self.bbox_head = self.build_head(
            bbox_head, train_cfg, test_cfg,
            dict(num_pred_layers=self.decoder.num_layers + int(as_two_stage),
                 share_pred_layer=not with_box_refine,
                 as_two_stage=as_two_stage))
        self.level_embed = nn.Parameter(
            torch.empty(num_feature_levels, embed_dims))
        self.build_query_parts()
        nn.init.normal_(self.level_embed)

    def build_query_parts(self) -> None:
        """The parameters :meth:`select_queries` uses: the proposal
        generator in two-stage, else learned queries and the layer that
        places their reference points. A member that selects its queries
        otherwise builds its own."""
        if self.as_two_stage:
            self.proposal_generator = EncoderProposalGenerator(
                self.embed_dims, self.num_queries)
        else:
            # Each query: a learned position (first half) and content.
            self.query_embedding = nn.Embedding(self.num_queries,
                                                self.embed_dims * 2)
            self.reference_points_fc = nn.Linear(self.embed_dims, 2)

    @property
    def fixed_queries(self) -> bool:
        """Two-stage queries are chosen per image from the proposals."""
        return not self.as_two_stage

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.normal_(self.level_embed)
        if not self.as_two_stage:
            nn.init.xavier_uniform_(self.reference_points_fc.weight)
            nn.init.constant_(self.reference_points_fc.bias, 0.)

    # -- the transformer steps --------------------------------------------

    def forward_transformer(
            self, feats: Sequence[Tensor],
            batch_data_samples: Optional[List[DetDataSample]]
    ) -> DeformableDETRHeadInputs:
        """Encoder, query selection and decoder for L maps."""
        flat = self.flatten_features(feats, batch_data_samples)
        memory = self.encode(flat)
        queries = self.select_queries(memory, flat, batch_data_samples)
        return self.decode(queries, memory, flat)

    def flatten_features(
            self, feats: Sequence[Tensor],
            batch_data_samples: Optional[List[DetDataSample]]
    ) -> FlatFeatures:
        """Masks, encodings and the flattened sequence of all levels."""
        B, _, _, _ = feats[0].shape
        image_mask = padding_mask(feats[0], batch_data_samples)  # B, H, W
        flat_feats, flat_pos, flat_masks, shapes, ratios = [], [], [], [], []
        for level, feat in enumerate(feats):
            h, w = feat.shape[-2:]
            mask = F.interpolate(image_mask[None].float(),
                                 size=(h, w)).bool()[0]  # B, H_l, W_l
            pos = self.positional_encoding(mask)  # B, C, H_l, W_l
            flat_feats.append(feat.flatten(2).transpose(1, 2))  # B, HW, C
            flat_pos.append(pos.flatten(2).transpose(1, 2) +
                            self.level_embed[level].view(1, 1, -1))
            flat_masks.append(mask.flatten(1))  # B, H_l*W_l
            shapes.append((h, w))
            ratios.append(valid_ratio(mask))  # B, 2
        # Read from the maps' shapes as tensors, so that a traced graph
        # computes them from its input's size instead of holding constants.
        spatial_shapes = torch.stack([
            torch._shape_as_tensor(feat)[-2:] for feat in feats
        ]).to(feats[0].device)  # L, 2
        sizes = spatial_shapes.prod(1)
        level_start_index = torch.cat(
            (sizes.new_zeros((1, )), sizes.cumsum(0)[:-1]))  # L
        return FlatFeatures(
            torch.cat(flat_feats, 1), torch.cat(flat_pos, 1),
            torch.cat(flat_masks, 1), spatial_shapes, level_start_index,
            torch.stack(ratios, 1), tuple(shapes))

    def encode(self, flat: FlatFeatures) -> Tensor:
        """The encoder's (B, S, C) memory."""
        return self.encoder(flat.feats, flat.pos, flat.padding_mask,
                            flat.spatial_shapes, flat.level_start_index,
                            flat.valid_ratios, flat.level_shapes)

    def select_queries(
            self, memory: Tensor, flat: FlatFeatures,
            batch_data_samples: Optional[List[DetDataSample]]) -> Queries:
        """The decoder's queries: the top encoder proposals in two-stage,
        else the learned ones. ``batch_data_samples`` is there for members
        whose queries depend on the ground truth (denoising)."""
        if self.as_two_stage:
            return self._proposal_queries(memory, flat)
        return self._learned_queries(memory)

    def _learned_queries(self, memory: Tensor) -> Queries:
        """The learned queries, and reference points from their
        positions."""
        B = memory.shape[0]
        query_pos, query = torch.split(self.query_embedding.weight,
                                       self.embed_dims, dim=1)
        query_pos = query_pos.unsqueeze(0).expand(B, -1, -1)  # B, Q, C
        query = query.unsqueeze(0).expand(B, -1, -1)  # B, Q, C
        # float32 under mixed precision too (see the attention).
        with torch.autocast(query_pos.device.type, enabled=False):
            reference_points = self.reference_points_fc(
                query_pos.float()).sigmoid()  # B, Q, 2
        return Queries(query, query_pos, reference_points, None, None)

    def _proposal_queries(self, memory: Tensor, flat: FlatFeatures) -> Queries:
        """The top-Q encoder proposals, scored and boxed by the head's last
        branch pair; their scores and boxes are trained in training."""
        proposals = self.proposal_generator(
            memory, flat.padding_mask, flat.level_shapes,
            self.bbox_head.cls_branches[self.decoder.num_layers],
            self.bbox_head.reg_branches[self.decoder.num_layers])
        if not self.training:
            return Queries(proposals.query, proposals.query_pos,
                           proposals.reference_points, None, None)
        return Queries(proposals.query, proposals.query_pos,
                       proposals.reference_points, proposals.cls_logits,
                       proposals.boxes)

    def decode(self, queries: Queries, memory: Tensor,
               flat: FlatFeatures) -> DeformableDETRHeadInputs:
        """The decoder on ``memory``: every layer's output and reference,
        as the head takes them."""
        hidden_states, references = self.decoder(
            queries.query, queries.query_pos, memory, flat.padding_mask,
            queries.reference_points, flat.spatial_shapes,
            flat.level_start_index, flat.valid_ratios,
            reg_branches=(self.bbox_head.reg_branches
                          if self.with_box_refine else None))
        return DeformableDETRHeadInputs(hidden_states, references,
                                        queries.enc_cls_logits,
                                        queries.enc_boxes)


def _check_levels(backbone: dict, neck: dict, num_feature_levels: int,
                  embed_dims: int) -> None:
    """The backbone, neck and transformer agree on levels and width.

    Checked on the configs, before anything is built, so a mismatch fails
    at start-up instead of in the first forward pass.
    """
    in_channels = neck.get('in_channels')
    num_outs = neck.get('num_outs')
    if num_outs is None and isinstance(in_channels, (list, tuple)):
        num_outs = len(in_channels)
    if num_outs is not None and num_outs != num_feature_levels:
        raise ValueError(
            f'model.num_feature_levels={num_feature_levels} but the neck '
            f'gives {num_outs} levels (model.neck.num_outs, or the length of '
            f'model.neck.in_channels): set num_feature_levels={num_outs} or '
            f'model.neck.num_outs={num_feature_levels}')
    out_indices = backbone.get('out_indices')
    if (isinstance(in_channels, (list, tuple)) and out_indices is not None
            and len(out_indices) != len(in_channels)):
        raise ValueError(
            f'model.backbone.out_indices={tuple(out_indices)} gives '
            f'{len(out_indices)} maps but model.neck.in_channels='
            f'{list(in_channels)} expects {len(in_channels)}: give the neck '
            'one input channel count per backbone output')
    out_channels = neck.get('out_channels')
    if out_channels is not None and out_channels != embed_dims:
        raise ValueError(
            f'model.neck.out_channels={out_channels} but model.embed_dims='
            f'{embed_dims}: the neck must give embed_dims channels; set '
            f'model.neck.out_channels={embed_dims}')
