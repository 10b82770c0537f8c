"""The Deformable DETR detector (Zhu et al., ICLR 2021).

image -> backbone -> neck -> positional encoding -> encoder
      -> (two-stage: encoder proposals) -> decoder -> head -> matcher -> losses

Symbols: B batch, L levels, S = sum_l H_l * W_l tokens, Q queries,
C channels, N decoder layers.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdet_detr.registry import MODELS
from ..layers.encoder_proposals import EncoderProposalGenerator
from .detector_parts import (build_part, check_map_width, feature_maps,
                             padding_mask, use_channels_last)

# The settings the parts' derived values come from, for build_part's message.
_DERIVED_FROM = ('model.embed_dims, model.num_feature_levels, '
                 'model.decoder.num_layers, model.with_box_refine, '
                 'model.as_two_stage, model.train_cfg, model.test_cfg')


class DecoderOutputs(NamedTuple):
    """What the transformer hands to the head.

    hidden_states: (N, B, Q, C) every decoder layer's output.
    references: N + 1 tensors (B, Q, 2 or 4) of normalised references.
    enc_cls_logits: (B, S, K) proposal logits in two-stage training, or None.
    enc_boxes: (B, S, 4) proposal boxes in two-stage training, or None.
    """
    hidden_states: Tensor
    references: List[Tensor]
    enc_cls_logits: Optional[Tensor]
    enc_boxes: Optional[Tensor]


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


@MODELS.register_module()
class DeformableDETR(BaseDetector):
    """Deformable DETR, with iterative box refinement and two-stage variants.

    The transformer width ``embed_dims`` and ``num_feature_levels`` have
    their home here and are passed to the encoder, decoder, positional
    encoding and head; the head's number of prediction layers follows from
    the decoder's ``num_layers``.

    Args:
        backbone, neck: configs (e.g. mmdet's ``ResNet`` and
            ``ChannelMapper``); the neck must give ``num_feature_levels``
            maps of ``embed_dims`` channels.
        positional_encoding: config of the per-level position encoding.
        encoder, decoder: configs of the transformer stacks.
        bbox_head: config of the head.
        num_queries: Q, object queries (or proposals kept in two-stage).
        num_feature_levels: L.
        embed_dims: C.
        with_box_refine: each decoder layer refines the boxes of the last
            with its own branch.
        as_two_stage: queries come from the top encoder proposals.
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
    parameter_settings = ('with_box_refine', 'as_two_stage',
                          'num_feature_levels', 'embed_dims', 'num_queries',
                          'encoder.num_layers', 'decoder.num_layers')

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
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.num_queries = num_queries
        self.num_feature_levels = num_feature_levels
        self.embed_dims = embed_dims
        self.with_box_refine = with_box_refine
        self.as_two_stage = as_two_stage
        _check_levels(backbone, neck, num_feature_levels, embed_dims)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.channels_last = channels_last
        if channels_last:
            use_channels_last(self.backbone, self.neck)
        self.positional_encoding = build_part(
            positional_encoding, 'positional_encoding',
            dict(num_feats=embed_dims // 2), _DERIVED_FROM)
        self.encoder = build_part(
            encoder, 'encoder',
            dict(embed_dims=embed_dims, num_levels=num_feature_levels),
            _DERIVED_FROM)
        self.decoder = build_part(
            decoder, 'decoder',
            dict(embed_dims=embed_dims, num_levels=num_feature_levels),
            _DERIVED_FROM)
        train_cfg = train_cfg or {}
        test_cfg = test_cfg or {}
        self.bbox_head = build_part(
            bbox_head, 'bbox_head',
            dict(
                embed_dims=embed_dims,
                num_pred_layers=self.decoder.num_layers + int(as_two_stage),
                share_pred_layer=not with_box_refine,
                as_two_stage=as_two_stage,
                assigner=train_cfg.get('assigner'),
                max_per_img=test_cfg.get('max_per_img', 100)), _DERIVED_FROM)
        self.level_embed = nn.Parameter(
            torch.empty(num_feature_levels, embed_dims))
        if as_two_stage:
            self.proposal_generator = EncoderProposalGenerator(
                embed_dims, num_queries)
        else:
            # Each query: a learned position (first half) and content.
            self.query_embedding = nn.Embedding(num_queries, embed_dims * 2)
            self.reference_points_fc = nn.Linear(embed_dims, 2)
        nn.init.normal_(self.level_embed)

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.normal_(self.level_embed)
        if not self.as_two_stage:
            nn.init.xavier_uniform_(self.reference_points_fc.weight)
            nn.init.constant_(self.reference_points_fc.bias, 0.)

    # -- mmengine's three modes -------------------------------------------

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Losses for a batch (B, 3, H, W) with ground truth."""
        outputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head.loss(
            outputs.hidden_states, outputs.references,
            outputs.enc_cls_logits, outputs.enc_boxes,
            [s.gt_instances for s in batch_data_samples],
            [s.metainfo for s in batch_data_samples])

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        """Detections in ``pred_instances`` of each data sample."""
        outputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        results = self.bbox_head.predict(
            outputs.hidden_states, outputs.references,
            [s.metainfo for s in batch_data_samples], rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(
            self,
            batch_inputs: Tensor,
            batch_data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        """Raw (N, B, Q, K) logits and (N, B, Q, 4) boxes."""
        outputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head(outputs.hidden_states, outputs.references)

    # -- the stages -------------------------------------------------------

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> L maps (B, C, H_l, W_l)."""
        feats = feature_maps(self.backbone, self.neck, batch_inputs,
                             self.channels_last)
        if len(feats) != self.num_feature_levels:
            raise ValueError(
                f'the neck gives {len(feats)} feature levels but the model '
                f'has num_feature_levels={self.num_feature_levels}: set '
                'model.neck.num_outs (and the backbone out_indices) to match')
        check_map_width(feats, self.embed_dims)
        return feats

    def forward_transformer(
            self, feats: Sequence[Tensor],
            batch_data_samples: Optional[List[DetDataSample]]
    ) -> DecoderOutputs:
        """Encoder, query selection and decoder for L maps."""
        flat = self.flatten_features(feats, batch_data_samples)
        memory = self.encoder(flat.feats, flat.pos, flat.padding_mask,
                              flat.spatial_shapes, flat.level_start_index,
                              flat.valid_ratios, flat.level_shapes)
        enc_cls_logits = enc_boxes = None
        if self.as_two_stage:
            proposals = self.proposal_generator(
                memory, flat.padding_mask, flat.level_shapes,
                self.bbox_head.cls_branches[self.decoder.num_layers],
                self.bbox_head.reg_branches[self.decoder.num_layers])
            query, query_pos = proposals.query, proposals.query_pos
            reference_points = proposals.reference_points
            if self.training:
                enc_cls_logits = proposals.cls_logits
                enc_boxes = proposals.boxes
        else:
            B = memory.shape[0]
            query_pos, query = torch.split(self.query_embedding.weight,
                                           self.embed_dims, dim=1)
            query_pos = query_pos.unsqueeze(0).expand(B, -1, -1)  # B, Q, C
            query = query.unsqueeze(0).expand(B, -1, -1)  # B, Q, C
            # float32 under mixed precision too (see the attention).
            with torch.autocast(query_pos.device.type, enabled=False):
                reference_points = self.reference_points_fc(
                    query_pos.float()).sigmoid()  # B, Q, 2
        hidden_states, references = self.decoder(
            query, query_pos, memory, flat.padding_mask, reference_points,
            flat.spatial_shapes, flat.level_start_index, flat.valid_ratios,
            reg_branches=(self.bbox_head.reg_branches
                          if self.with_box_refine else None))
        return DecoderOutputs(hidden_states, references, enc_cls_logits,
                              enc_boxes)

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
            ratios.append(_valid_ratio(mask))  # B, 2
        spatial_shapes = torch.as_tensor(
            shapes, dtype=torch.long, device=feats[0].device)  # L, 2
        sizes = spatial_shapes.prod(1)
        level_start_index = torch.cat(
            (sizes.new_zeros((1, )), sizes.cumsum(0)[:-1]))  # L
        return FlatFeatures(
            torch.cat(flat_feats, 1), torch.cat(flat_pos, 1),
            torch.cat(flat_masks, 1), spatial_shapes, level_start_index,
            torch.stack(ratios, 1), tuple(shapes))


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


def _valid_ratio(mask: Tensor) -> Tensor:
    """(B, H, W) padding mask -> (B, 2) valid fraction ``(w, h)``."""
    _, H, W = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1).float() / H
    valid_w = (~mask[:, 0, :]).sum(1).float() / W
    return torch.stack([valid_w, valid_h], -1)
