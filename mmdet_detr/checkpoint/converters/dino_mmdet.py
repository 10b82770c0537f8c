"""State-dict keys of mmdet 3.3's ``DINO`` and this project's.

DINO's layers are Deformable DETR's (same mmdet names, same renames) plus
the decoder's positional MLP, the proposal transform at the top level, and
the denoising label embedding, which here belongs to the head (it has one
row per class, like the classifiers).
"""
from collections import OrderedDict
from typing import Dict, Optional

from torch import Tensor

from ..variants.dino import CONFIGS, variant_name
from .converted import Converted
from .deformable_detr_mmdet import RULES as DEFORMABLE_RULES
from .key_rules import Rules, rename, rename_key

# The mmdet key that tells a DINO state dict from a Deformable DETR one.
LABEL_EMBEDDING = 'dn_query_generator.label_embedding.weight'
RULES: Rules = [
    (r'^dn_query_generator\.label_embedding\.',
     r'bbox_head.denoising.label_embedding.'),
    (r'^decoder\.ref_point_head\.layers\.0\.', r'decoder.ref_point_head.0.'),
    (r'^decoder\.ref_point_head\.layers\.1\.', r'decoder.ref_point_head.2.'),
    *DEFORMABLE_RULES,
]


def dino_mmdet_key_to_ours(key: str) -> str:
    """The name of an mmdet 3.3 ``DINO`` parameter here."""
    return rename_key(key, RULES)


def convert_dino_mmdet_state_dict(
        state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Rename every key of an mmdet 3.3 ``DINO`` state dict."""
    return rename(state_dict, RULES, 'mmdet DINO')


def is_dino_mmdet(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` (a file's object or its ``state_dict``)
    holds mmdet 3.3's ``DINO`` names."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    return isinstance(state_dict, dict) and LABEL_EMBEDDING in state_dict


def convert_dino_mmdet(checkpoint: Dict,
                       variant: Optional[str] = None) -> Converted:
    """Rename a loaded mmdet 3.3 ``dino-4scale_r50*`` checkpoint (one that
    :func:`is_dino_mmdet` recognises).

    ``variant``: ``'dino'`` (the default) or ``'dino_improved'``, which
    have the same parameters and differ in their configs.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    variant = variant_name(state_dict['level_embed'].shape[0], variant,
                           'mmdet')
    meta = checkpoint.get('meta', {}) if 'state_dict' in checkpoint else {}
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    return Converted(convert_dino_mmdet_state_dict(state_dict), variant,
                     CONFIGS[variant], dataset_meta, [])
