"""State-dict keys of mmdet 3.3's ``DETR`` and this project's.

mmdet nests its layers in mmcv's generic blocks (``self_attn.attn``,
``ffn.layers.0.0``, ``norms.1``) and splits the box MLP into ``reg_ffn``
and ``fc_reg``; this project names each part. The backbone, the neck and
``query_embedding`` keep their names.
"""
from collections import OrderedDict
from typing import Dict, Optional

from torch import Tensor

from ..variants.detr import CONFIGS, variant_name
from .converted import Converted
from .key_rules import KEEP_REST, Rules, rename, rename_key

_LAYER = r'^(encoder|decoder)\.layers\.(\d+)\.'
_ENC = r'^encoder\.layers\.(\d+)\.'
_DEC = r'^decoder\.layers\.(\d+)\.'
# (mmdet pattern, this project's replacement), applied in order, first match.
_RULES: Rules = [
    (_LAYER + r'(self_attn|cross_attn)\.attn\.', r'\1.layers.\2.\3.'),
    (_LAYER + r'ffn\.layers\.0\.0\.', r'\1.layers.\2.ffn.linear1.'),
    (_LAYER + r'ffn\.layers\.1\.', r'\1.layers.\2.ffn.linear2.'),
    (_ENC + r'norms\.0\.', r'encoder.layers.\1.self_attn_norm.'),
    (_ENC + r'norms\.1\.', r'encoder.layers.\1.ffn_norm.'),
    (_DEC + r'norms\.0\.', r'decoder.layers.\1.self_attn_norm.'),
    (_DEC + r'norms\.1\.', r'decoder.layers.\1.cross_attn_norm.'),
    (_DEC + r'norms\.2\.', r'decoder.layers.\1.ffn_norm.'),
    (r'^decoder\.post_norm\.', r'decoder.final_norm.'),
    (r'^bbox_head\.fc_cls\.', r'bbox_head.cls_branch.'),
    (r'^bbox_head\.reg_ffn\.layers\.0\.0\.', r'bbox_head.reg_branch.0.'),
    (r'^bbox_head\.reg_ffn\.layers\.1\.', r'bbox_head.reg_branch.2.'),
    (r'^bbox_head\.fc_reg\.', r'bbox_head.reg_branch.4.'),
    # The backbone, neck and query_embedding.
    KEEP_REST,
]


def mmdet_detr_key_to_ours(key: str) -> str:
    """The name of an mmdet 3.3 ``DETR`` parameter here."""
    return rename_key(key, _RULES)


def convert_mmdet_detr_state_dict(
        state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Rename every key of an mmdet 3.3 ``DETR`` state dict."""
    return rename(state_dict, _RULES, 'mmdet DETR')


def is_mmdet_detr(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` (a file's object or its ``state_dict``)
    holds mmdet 3.3's ``DETR`` names."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    return (isinstance(state_dict, dict)
            and 'bbox_head.fc_cls.weight' in state_dict
            and 'level_embed' not in state_dict)


def convert_mmdet_detr(checkpoint: Dict,
                       variant: Optional[str] = None) -> Converted:
    """Rename a loaded mmdet 3.3 ``detr*`` checkpoint (one that
    :func:`is_mmdet_detr` recognises).

    DC5 has the same weights as R50 and mmdet's file does not say which it
    is (mmdet's model zoo has R50 only), so ``variant`` (``--variant r50``
    or ``r50_dc5``) is needed.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    name = variant_name(None, variant, 'mmdet DETR')
    meta = checkpoint.get('meta', {}) if 'state_dict' in checkpoint else {}
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    return Converted(convert_mmdet_detr_state_dict(state_dict), name,
                     CONFIGS[name], dataset_meta, [])
