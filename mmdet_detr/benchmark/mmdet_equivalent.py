"""mmdet 3.3's ``DeformableDETR`` or ``DINO`` built from this project's
config values, with the same weights, for side-by-side comparisons.

This project's model config names each value once (``embed_dims``,
``num_feature_levels``, the stacks' ``num_heads``, ...); mmdet spreads the
same values over mmcv's generic blocks (``layer_cfg.self_attn_cfg``,
``ffn_cfg.ffn_drop``, ...). :func:`mmdet_model_config` writes the one as the
other and :func:`build_model_pair` copies the weights across with the key map
of :mod:`mmdet_detr.checkpoint.converters.deformable_detr_mmdet` (or
``dino_mmdet``).
"""
import copy
import logging
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch import nn

from mmdet_detr.checkpoint.converters.deformable_detr_mmdet import \
    convert_mmdet_state_dict
from mmdet_detr.checkpoint.converters.dino_mmdet import \
    convert_dino_mmdet_state_dict
from mmdet_detr.registry import MODELS

# This project's match costs and mmdet's equivalents (boxes are normalised
# cxcywh here, which mmdet's BBoxL1Cost calls 'xywh').
_MATCH_COSTS = {
    'FocalLossCost': lambda c: dict(
        type='FocalLossCost', weight=c.get('weight', 2.0),
        alpha=c.get('alpha', 0.25), gamma=c.get('gamma', 2.0),
        eps=c.get('eps', 1e-12)),
    'ClassificationCost': lambda c: dict(
        type='ClassificationCost', weight=c.get('weight', 1.0)),
    'BBoxL1Cost': lambda c: dict(
        type='BBoxL1Cost', weight=c.get('weight', 5.0), box_format='xywh'),
    'GIoUCost': lambda c: dict(
        type='IoUCost', iou_mode='giou', weight=c.get('weight', 2.0)),
}
_STACK_DEFAULTS = dict(num_layers=6, num_heads=8, num_points=4,
                       feedforward_channels=1024, dropout=0.1)
# DINO's defaults where they differ from Deformable DETR's.
_DINO_DEFAULTS = dict(
    stack=dict(feedforward_channels=2048, dropout=0.0),
    positional_encoding=dict(normalize=True, offset=0.0, temperature=20),
    denoising=dict(label_noise_scale=0.5, box_noise_scale=1.0,
                   num_denoising_queries=100))
# This project's state dict from mmdet's, per model type.
_CONVERTERS = {
    'DeformableDETR': convert_mmdet_state_dict,
    'DINO': convert_dino_mmdet_state_dict,
}


@contextmanager
def quiet_logger(level: int = logging.WARNING) -> Iterator[None]:
    """mmengine's current logger at ``level`` inside the block."""
    logger = MMLogger.get_current_instance()
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def mmdet_model_config(model: dict) -> dict:
    """The mmdet 3.3 ``DeformableDETR`` or ``DINO`` config with the values
    of ``model``.

    Args:
        model: this project's ``model`` config (``type='DeformableDETR'``
            or ``'DINO'``).

    Raises:
        ValueError: for a model type or match cost with no mmdet equivalent.
    """
    model = copy.deepcopy(dict(model))
    model_type = model.get('type')
    if model_type not in _CONVERTERS:
        raise ValueError(f'model.type={model_type!r} has no mmdet '
                         f'equivalent here: only {sorted(_CONVERTERS)} are '
                         'mapped')
    dino = model_type == 'DINO'
    embed = model.get('embed_dims', 256)
    levels = model.get('num_feature_levels', 4)
    if (dino or model.get('as_two_stage', False)) and embed != 256:
        raise ValueError(
            f'model.embed_dims={embed} with '
            f'{"DINO" if dino else "as_two_stage=True"}: mmdet 3.3 embeds '
            'boxes with 128 features per coordinate, so its twin needs '
            'embed_dims=256; compare without --compare-mmdet or with '
            'embed_dims=256')
    stack_defaults = {**_STACK_DEFAULTS,
                      **(_DINO_DEFAULTS['stack'] if dino else {})}
    enc = {**stack_defaults, **model['encoder']}
    dec = {**stack_defaults, **model['decoder']}

    def deform_attn(stack: dict) -> dict:
        return dict(embed_dims=embed, num_heads=stack['num_heads'],
                    num_levels=levels, num_points=stack['num_points'],
                    dropout=stack['dropout'], batch_first=True)

    def ffn(stack: dict) -> dict:
        return dict(embed_dims=embed,
                    feedforward_channels=stack['feedforward_channels'],
                    ffn_drop=stack['dropout'])

    pos = {k: v for k, v in model.get(
        'positional_encoding',
        _DINO_DEFAULTS['positional_encoding'] if dino else {}).items()
           if k != 'type'}
    head = {k: v for k, v in model['bbox_head'].items() if k != 'type'}
    head.pop('num_reg_fcs', None)
    denoising = {}
    if dino:
        denoising = {key: head.pop(key, default) for key, default in
                     _DINO_DEFAULTS['denoising'].items()}
    train_cfg = copy.deepcopy(model.get('train_cfg') or {})
    assigner = train_cfg.get('assigner')
    if assigner is not None:
        costs = []
        for cost in assigner['match_costs']:
            if cost['type'] not in _MATCH_COSTS:
                raise ValueError(
                    f"match cost {cost['type']!r} has no mmdet equivalent "
                    f'here; known: {sorted(_MATCH_COSTS)}')
            costs.append(_MATCH_COSTS[cost['type']](cost))
        train_cfg['assigner'] = dict(type='HungarianAssigner',
                                     match_costs=costs)
    config = dict(
        type=model_type,
        num_queries=model.get('num_queries', 900 if dino else 300),
        num_feature_levels=levels,
        with_box_refine=dino or model.get('with_box_refine', False),
        as_two_stage=dino or model.get('as_two_stage', False),
        data_preprocessor=model.get('data_preprocessor'),
        backbone=model['backbone'],
        neck=model['neck'],
        encoder=dict(
            num_layers=enc['num_layers'],
            layer_cfg=dict(self_attn_cfg=deform_attn(enc), ffn_cfg=ffn(enc))),
        decoder=dict(
            num_layers=dec['num_layers'],
            return_intermediate=True,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed,
                                   num_heads=dec['num_heads'],
                                   dropout=dec['dropout'], batch_first=True),
                cross_attn_cfg=deform_attn(dec),
                ffn_cfg=ffn(dec)),
            post_norm_cfg=None),
        positional_encoding=dict(num_feats=embed // 2, **pos),
        bbox_head=dict(type='DINOHead' if dino else 'DeformableDETRHead',
                       embed_dims=embed, **head),
        train_cfg=train_cfg,
        test_cfg=model.get('test_cfg'))
    if dino:
        config['dn_cfg'] = dict(
            label_noise_scale=denoising['label_noise_scale'],
            box_noise_scale=denoising['box_noise_scale'],
            group_cfg=dict(dynamic=True, num_groups=None,
                           num_dn_queries=denoising['num_denoising_queries']))
    return config


def build_model_pair(model: dict,
                     compare_mmdet: bool,
                     pretrained: bool = False,
                     perturb: float = 0.02,
                     seed: int = 0) -> Tuple[nn.Module, Optional[nn.Module]]:
    """This project's model and, with ``compare_mmdet``, mmdet's, with the
    same weights.

    The initialisation (``init_weights``; mmdet's when comparing) plus
    Gaussian noise of std ``perturb`` on every parameter, so that none sits
    at a degenerate initial value (zero offsets, uniform attention); when
    comparing, mmdet's weights are copied into this project's model, so both
    compute the same function. The backbone's ``init_cfg`` (a
    pretrained download) is dropped unless ``pretrained``.

    Returns:
        ``(ours, reference)``; ``reference`` is None without
        ``compare_mmdet``.
    """
    model = copy.deepcopy(dict(model))
    if not pretrained:
        model['backbone'] = {**model['backbone'], 'init_cfg': None}
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        ours = MODELS.build(model)
    reference = None
    if compare_mmdet:
        with DefaultScope.overwrite_default_scope('mmdet'):
            reference = MMDET_MODELS.build(mmdet_model_config(model))
    source = reference if compare_mmdet else ours
    with quiet_logger():  # init_weights logs every parameter
        source.init_weights()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in source.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * perturb)
    if compare_mmdet:
        convert = _CONVERTERS[model['type']]
        ours.load_state_dict(convert(reference.state_dict()), strict=True)
    return ours, reference
