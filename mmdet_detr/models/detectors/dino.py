"""DINO (Zhang et al., ICLR 2023): Deformable DETR with contrastive
denoising, mixed query selection and look-forward-twice refinement.

image -> backbone -> neck -> positional encoding -> encoder
      -> query selection (top encoder proposals as reference boxes,
         learned content; in training, noised ground truth in front)
      -> decoder -> head -> matcher (matching queries) -> losses

It is a Deformable DETR with two-stage selection and box refinement
always on; it overrides the parts it changes (:meth:`build_query_parts`,
:meth:`select_queries`, :meth:`decode`).

Symbols: B batch, S tokens, Q matching queries, D denoising queries, K
classes, C channels, N decoder layers.
"""
from typing import List, NamedTuple, Optional

import torch
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdet_detr.registry import MODELS
from ..heads.dino_head import DINOHeadInputs
from ..heads.set_loss import MatchTargets
from ..layers.denoising_queries import DenoisingQueries
from ..layers.dino_proposals import TopProposalSelector
from .deformable_detr import DeformableDETR, FlatFeatures


class DINOQueries(NamedTuple):
    """What DINO's decoder starts from.

    query: (B, D + Q, C) content: label embeddings of the denoising
        queries, then the learned matching queries.
    reference_points: (B, D + Q, 4) normalised ``(cx, cy, w, h)``.
    enc_cls_logits: (B, Q, K) logits of the selected proposals in
        training, else None.
    enc_boxes: (B, Q, 4) their boxes in training, else None.
    denoising: the denoising part, or None (inference, or no object in
        the batch).
    """
    query: Tensor
    reference_points: Tensor
    enc_cls_logits: Optional[Tensor]
    enc_boxes: Optional[Tensor]
    denoising: Optional[DenoisingQueries]


@MODELS.register_module()
class DINO(DeformableDETR):
    """DINO.

    Args: those of :class:`DeformableDETR` but ``with_box_refine`` and
    ``as_two_stage`` (always on); the decoder is a
    ``DINOTransformerDecoder`` and the head a ``DINOHead``, which holds
    the denoising settings.
    """

    parameter_settings = ('num_feature_levels', 'embed_dims', 'num_queries',
                          'encoder.num_layers', 'decoder.num_layers')
    derived_from = ('model.embed_dims, model.num_feature_levels, '
                    'model.decoder.num_layers, model.train_cfg, '
                    'model.test_cfg')
    fixed_queries = False

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 encoder: dict,
                 decoder: dict,
                 bbox_head: dict,
                 positional_encoding: dict = dict(
                     type='SinePositionalEncoding',
                     normalize=True,
                     offset=0.0,
                     temperature=20),
                 num_queries: int = 900,
                 num_feature_levels: int = 4,
                 embed_dims: int = 256,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 channels_last: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone, neck, encoder, decoder, bbox_head,
            positional_encoding, num_queries, num_feature_levels,
            embed_dims, with_box_refine=True, as_two_stage=True,
            train_cfg=train_cfg, test_cfg=test_cfg,
            channels_last=channels_last,
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)

    def build_query_parts(self) -> None:
        """The proposal selector and the learned content queries."""
        self.proposal_generator = TopProposalSelector(self.embed_dims,
                                                      self.num_queries)
        self.query_embedding = nn.Embedding(self.num_queries,
                                            self.embed_dims)

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.xavier_uniform_(self.query_embedding.weight)

    def select_queries(
            self, memory: Tensor, flat: FlatFeatures,
            batch_data_samples: Optional[List[DetDataSample]]
    ) -> DINOQueries:
        """Reference boxes from the top encoder proposals, learned
        content; in training, the denoising queries of the ground truth
        go first."""
        N = self.decoder.num_layers
        proposals = self.proposal_generator(
            memory, flat.padding_mask, flat.level_shapes,
            self.bbox_head.cls_branches[N], self.bbox_head.reg_branches[N])
        B = memory.shape[0]
        query = self.query_embedding.weight[None].expand(B, -1,
                                                         -1)  # B, Q, C
        reference_points = proposals.reference_points  # B, Q, 4
        if not self.training:
            return DINOQueries(query, reference_points, None, None, None)
        denoising = None
        if batch_data_samples and all('gt_instances' in s
                                      for s in batch_data_samples):
            targets = MatchTargets.from_samples(batch_data_samples)
            denoising = self.bbox_head.denoising(targets.labels,
                                                 targets.boxes,
                                                 self.num_queries)
        if denoising is None:
            # Keep the label embedding in the graph (DDP needs every
            # parameter to receive a gradient); adds zero.
            query = query + self.bbox_head.denoising.label_embedding.weight[
                0, 0] * 0.0
        else:
            query = torch.cat((denoising.query, query), 1)  # B, D + Q, C
            reference_points = torch.cat(
                (denoising.reference_points, reference_points), 1)
        return DINOQueries(query, reference_points, proposals.cls_logits,
                           proposals.boxes, denoising)

    def decode(self, queries: DINOQueries, memory: Tensor,
               flat: FlatFeatures) -> DINOHeadInputs:
        """The decoder on ``memory``, denoising groups masked apart."""
        denoising = queries.denoising
        hidden_states, references = self.decoder(
            queries.query, memory, flat.padding_mask,
            queries.reference_points, flat.spatial_shapes,
            flat.level_start_index, flat.valid_ratios,
            self.bbox_head.reg_branches,
            denoising.self_attn_mask if denoising is not None else None)
        return DINOHeadInputs(
            hidden_states, references, queries.enc_cls_logits,
            queries.enc_boxes,
            denoising.layout if denoising is not None else None)
