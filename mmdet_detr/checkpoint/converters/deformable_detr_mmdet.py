"""State-dict keys of mmdet 3.3's ``DeformableDETR`` and this project's.

mmdet nests its layers in mmcv's generic blocks (``ffn.layers.0.0``,
``norms.1``, ``self_attn.attn``); this project names each part.
"""
from collections import OrderedDict
from typing import Dict, Optional

import torch
from torch import Tensor

from ..variants.deformable_detr import CONFIGS, variant_name
from .converted import Converted
from .key_rules import KEEP_REST, Rules, rename, rename_key

# (mmdet pattern, this project's replacement), applied in order, first match.
_ENC = r'^encoder\.layers\.(\d+)\.'
_DEC = r'^decoder\.layers\.(\d+)\.'
RULES: Rules = [
    (_ENC + r'ffn\.layers\.0\.0\.', r'encoder.layers.\1.ffn.linear1.'),
    (_ENC + r'ffn\.layers\.1\.', r'encoder.layers.\1.ffn.linear2.'),
    (_ENC + r'norms\.0\.', r'encoder.layers.\1.self_attn_norm.'),
    (_ENC + r'norms\.1\.', r'encoder.layers.\1.ffn_norm.'),
    (_DEC + r'ffn\.layers\.0\.0\.', r'decoder.layers.\1.ffn.linear1.'),
    (_DEC + r'ffn\.layers\.1\.', r'decoder.layers.\1.ffn.linear2.'),
    (_DEC + r'self_attn\.attn\.', r'decoder.layers.\1.self_attn.'),
    (_DEC + r'norms\.0\.', r'decoder.layers.\1.self_attn_norm.'),
    (_DEC + r'norms\.1\.', r'decoder.layers.\1.cross_attn_norm.'),
    (_DEC + r'norms\.2\.', r'decoder.layers.\1.ffn_norm.'),
    (r'^(memory_trans_fc|memory_trans_norm|pos_trans_fc|pos_trans_norm)\.',
     r'proposal_generator.\1.'),
    # The backbone, neck, head, encoder self-attention, decoder
    # cross-attention, level_embed, query_embedding, reference_points_fc.
    KEEP_REST,
]


def mmdet_key_to_ours(key: str) -> str:
    """The name of an mmdet 3.3 ``DeformableDETR`` parameter here."""
    return rename_key(key, RULES)


def convert_mmdet_state_dict(
        state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Rename every key of an mmdet 3.3 ``DeformableDETR`` state dict."""
    return rename(state_dict, RULES, 'mmdet')


def is_mmdet_deformable_detr(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` (a file's object or its ``state_dict``)
    holds mmdet 3.3's ``DeformableDETR`` names."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    return isinstance(state_dict, dict) and 'level_embed' in state_dict and (
        any(mmdet_key_to_ours(k) != k for k in state_dict))


def convert_mmdet_deformable_detr(checkpoint: Dict,
                                  variant: Optional[str] = None) -> Converted:
    """Rename a loaded mmdet 3.3 ``deformable-detr*`` checkpoint (one that
    :func:`is_mmdet_deformable_detr` recognises).

    mmdet shares one class and one box branch over the decoder layers
    unless boxes are refined, so refinement shows as branches 0 and 1
    holding different values.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    as_two_stage = 'memory_trans_fc.weight' in state_dict
    refine = not torch.equal(
        state_dict['bbox_head.cls_branches.0.weight'],
        state_dict['bbox_head.cls_branches.1.weight'])
    levels = state_dict['level_embed'].shape[0]
    name = variant_name(levels, refine, as_two_stage, False, variant,
                        'mmdet')
    meta = checkpoint.get('meta', {}) if 'state_dict' in checkpoint else {}
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    return Converted(convert_mmdet_state_dict(state_dict), name,
                     CONFIGS[name], dataset_meta, [])
