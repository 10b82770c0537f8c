"""mmdet 3.3's twin of a model of this project (``DeformableDETR``,
``DINO``, ``DETR``), built from the same config values and given the same
weights, for side-by-side comparisons and parity tests.

This project's model config names each value once (``embed_dims``,
``num_feature_levels``, the stacks' ``num_heads``, ...); mmdet spreads the
same values over mmcv's generic blocks (``layer_cfg.self_attn_cfg``,
``ffn_cfg.ffn_drop``, ...). :func:`mmdet_model_config` writes the one as the
other and :func:`build_model_pair` copies the weights across with the key map
of the model's mmdet converter (``mmdet_detr.checkpoint.converters``).
"""
import copy
import inspect
import logging
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, NamedTuple, Optional, Tuple

import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch import nn

from mmdet_detr.checkpoint.converters.deformable_detr_mmdet import (
    convert_mmdet_state_dict, mmdet_key_to_ours)
from mmdet_detr.checkpoint.converters.detr_mmdet import (
    convert_mmdet_detr_state_dict, mmdet_detr_key_to_ours)
from mmdet_detr.checkpoint.converters.dino_mmdet import (
    convert_dino_mmdet_state_dict, dino_mmdet_key_to_ours)
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
# DINO's stack and denoising defaults where they differ from Deformable
# DETR's.
_DINO_STACK_DEFAULTS = dict(feedforward_channels=2048, dropout=0.0)
_DINO_DENOISING_DEFAULTS = dict(label_noise_scale=0.5, box_noise_scale=1.0,
                                num_denoising_queries=100)


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
    """The mmdet 3.3 config of the twin of ``model``.

    Args:
        model: this project's ``model`` config.

    Raises:
        ValueError: for a model type or match cost with no mmdet
            equivalent.
    """
    return mmdet_twin(model).config(_with_declared_defaults(model))


def _with_declared_defaults(model: dict) -> dict:
    """A copy of ``model`` with every argument it leaves out set to the
    default its detector class declares (mmdet's defaults differ, e.g. the
    positional encoding's ``normalize``)."""
    model = copy.deepcopy(dict(model))
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        detector = MODELS.get(model['type'])
    for name, parameter in inspect.signature(detector).parameters.items():
        if (parameter.default is not inspect.Parameter.empty
                and name not in model):
            model[name] = copy.deepcopy(parameter.default)
    return model


def _backbone(model: dict) -> dict:
    """``model.backbone`` as mmdet's registry finds it: a backbone
    registered by this project is named with its scope."""
    backbone = dict(model['backbone'])
    if not isinstance(backbone['type'], str) or '.' in backbone['type']:
        return backbone
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        ours = MODELS.get(backbone['type'])
    if ours is not None and ours.__module__.startswith('mmdet_detr.'):
        backbone['type'] = f"mmdet_detr.{backbone['type']}"
    return backbone


def _assigner(train_cfg: dict) -> dict:
    """``train_cfg`` with mmdet's names of the match costs."""
    train_cfg = copy.deepcopy(train_cfg or {})
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
    return train_cfg


def _deformable_detr_config(model: dict) -> dict:
    """mmdet's ``DeformableDETR`` with the values of ``model``."""
    embed = model['embed_dims']
    levels = model['num_feature_levels']
    if model['as_two_stage'] and embed != 256:
        raise ValueError(
            f'model.embed_dims={embed} with as_two_stage=True: mmdet 3.3 '
            'embeds two-stage proposals with 128 features per coordinate, '
            'so its twin needs embed_dims=256; compare without '
            '--compare-mmdet or with embed_dims=256')
    enc = {**_STACK_DEFAULTS, **model['encoder']}
    dec = {**_STACK_DEFAULTS, **model['decoder']}

    def deform_attn(stack: dict) -> dict:
        return dict(embed_dims=embed, num_heads=stack['num_heads'],
                    num_levels=levels, num_points=stack['num_points'],
                    dropout=stack['dropout'], batch_first=True)

    def ffn(stack: dict) -> dict:
        return dict(embed_dims=embed,
                    feedforward_channels=stack['feedforward_channels'],
                    ffn_drop=stack['dropout'])

    pos = {k: v for k, v in model['positional_encoding'].items()
           if k != 'type'}
    head = {k: v for k, v in model['bbox_head'].items() if k != 'type'}
    head.pop('num_reg_fcs', None)
    return dict(
        type='DeformableDETR',
        num_queries=model['num_queries'],
        num_feature_levels=levels,
        with_box_refine=model['with_box_refine'],
        as_two_stage=model['as_two_stage'],
        data_preprocessor=model['data_preprocessor'],
        backbone=_backbone(model),
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
        bbox_head=dict(type='DeformableDETRHead', embed_dims=embed, **head),
        train_cfg=_assigner(model['train_cfg']),
        test_cfg=model['test_cfg'])


def _dino_config(model: dict) -> dict:
    """mmdet's ``DINO`` with the values of ``model``: mmdet's
    ``DeformableDETR`` with refinement and two stages, plus the denoising
    settings, which mmdet keeps in ``dn_cfg`` and this project in the
    head."""
    if model['embed_dims'] != 256:
        raise ValueError(
            f"model.embed_dims={model['embed_dims']} with DINO: mmdet 3.3 "
            'embeds boxes with 128 features per coordinate, so its twin '
            'needs embed_dims=256; compare without --compare-mmdet or with '
            'embed_dims=256')
    head = dict(model['bbox_head'])
    denoising = {key: head.pop(key, default)
                 for key, default in _DINO_DENOISING_DEFAULTS.items()}
    config = _deformable_detr_config(dict(
        model, with_box_refine=True, as_two_stage=True, bbox_head=head,
        encoder={**_DINO_STACK_DEFAULTS, **model['encoder']},
        decoder={**_DINO_STACK_DEFAULTS, **model['decoder']}))
    config.update(type='DINO', dn_cfg=dict(
        label_noise_scale=denoising['label_noise_scale'],
        box_noise_scale=denoising['box_noise_scale'],
        group_cfg=dict(dynamic=True, num_groups=None,
                       num_dn_queries=denoising['num_denoising_queries'])))
    config['bbox_head']['type'] = 'DINOHead'
    return config


_DETR_STACK_DEFAULTS = dict(num_layers=6, num_heads=8,
                            feedforward_channels=2048, dropout=0.1)


def _detr_config(model: dict) -> dict:
    """mmdet's ``DETR`` with the values of ``model``."""
    embed = model['embed_dims']
    enc = {**_DETR_STACK_DEFAULTS, **model['encoder']}
    dec = {**_DETR_STACK_DEFAULTS, **model['decoder']}

    def attn(stack: dict) -> dict:
        return dict(embed_dims=embed, num_heads=stack['num_heads'],
                    dropout=stack['dropout'], batch_first=True)

    def ffn(stack: dict) -> dict:
        return dict(embed_dims=embed,
                    feedforward_channels=stack['feedforward_channels'],
                    num_fcs=2, ffn_drop=stack['dropout'],
                    act_cfg=dict(type='ReLU', inplace=True))

    pos = {k: v for k, v in model['positional_encoding'].items()
           if k != 'type'}
    head = {k: v for k, v in model['bbox_head'].items() if k != 'type'}
    head.pop('num_reg_fcs', None)
    # mmdet weighs no-object through CrossEntropyLoss's bg_cls_weight.
    no_object_weight = head.pop('no_object_weight', 0.1)
    head['loss_cls'] = dict(head.get('loss_cls', dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
                            bg_cls_weight=no_object_weight, class_weight=1.0)
    return dict(
        type='DETR',
        num_queries=model['num_queries'],
        data_preprocessor=model['data_preprocessor'],
        backbone=_backbone(model),
        neck=model['neck'],
        encoder=dict(num_layers=enc['num_layers'],
                     layer_cfg=dict(self_attn_cfg=attn(enc),
                                    ffn_cfg=ffn(enc))),
        decoder=dict(num_layers=dec['num_layers'], return_intermediate=True,
                     layer_cfg=dict(self_attn_cfg=attn(dec),
                                    cross_attn_cfg=attn(dec),
                                    ffn_cfg=ffn(dec))),
        positional_encoding=dict(num_feats=embed // 2, **pos),
        bbox_head=dict(type='DETRHead', embed_dims=embed, **head),
        train_cfg=_assigner(model['train_cfg']),
        test_cfg=model['test_cfg'])


class MMDetTwin(NamedTuple):
    """How one of this project's model types maps to mmdet 3.3's."""
    config: Callable[[dict], dict]  # our model config -> mmdet's
    convert_state_dict: Callable[[Dict[str, torch.Tensor]],
                                 Dict[str, torch.Tensor]]  # mmdet's -> ours
    key_to_ours: Callable[[str], str]  # one mmdet parameter name -> ours


MMDET_TWINS: Dict[str, MMDetTwin] = {
    'DeformableDETR': MMDetTwin(_deformable_detr_config,
                                convert_mmdet_state_dict, mmdet_key_to_ours),
    'DINO': MMDetTwin(_dino_config, convert_dino_mmdet_state_dict,
                      dino_mmdet_key_to_ours),
    'DETR': MMDetTwin(_detr_config, convert_mmdet_detr_state_dict,
                      mmdet_detr_key_to_ours),
}


def mmdet_twin(model: dict) -> MMDetTwin:
    """The mapping of ``model``'s type to mmdet 3.3.

    Raises:
        ValueError: for a model type mmdet has no twin of here.
    """
    twin = MMDET_TWINS.get(model.get('type'))
    if twin is None:
        raise ValueError(f"model.type={model.get('type')!r} has no mmdet "
                         f'equivalent here; mapped: {sorted(MMDET_TWINS)}')
    return twin


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
        twin = mmdet_twin(model)
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
        ours.load_state_dict(
            twin.convert_state_dict(reference.state_dict()), strict=True)
    return ours, reference
