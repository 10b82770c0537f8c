"""State-dict keys of mmdet 3.3's ``DeformableDETR`` and this project's.

mmdet nests its layers in mmcv's generic blocks (``ffn.layers.0.0``,
``norms.1``, ``self_attn.attn``); this project names each part.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

from torch import Tensor

# (mmdet pattern, this project's replacement), applied in order, first match.
_RULES: List[Tuple[str, str]] = [
    (r'^encoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.', r'encoder.layers.\1.ffn.linear1.'),
    (r'^encoder\.layers\.(\d+)\.ffn\.layers\.1\.', r'encoder.layers.\1.ffn.linear2.'),
    (r'^encoder\.layers\.(\d+)\.norms\.0\.', r'encoder.layers.\1.self_attn_norm.'),
    (r'^encoder\.layers\.(\d+)\.norms\.1\.', r'encoder.layers.\1.ffn_norm.'),
    (r'^decoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.', r'decoder.layers.\1.ffn.linear1.'),
    (r'^decoder\.layers\.(\d+)\.ffn\.layers\.1\.', r'decoder.layers.\1.ffn.linear2.'),
    (r'^decoder\.layers\.(\d+)\.self_attn\.attn\.', r'decoder.layers.\1.self_attn.'),
    (r'^decoder\.layers\.(\d+)\.norms\.0\.', r'decoder.layers.\1.self_attn_norm.'),
    (r'^decoder\.layers\.(\d+)\.norms\.1\.', r'decoder.layers.\1.cross_attn_norm.'),
    (r'^decoder\.layers\.(\d+)\.norms\.2\.', r'decoder.layers.\1.ffn_norm.'),
    (r'^(memory_trans_fc|memory_trans_norm|pos_trans_fc|pos_trans_norm)\.',
     r'proposal_generator.\1.'),
]
_COMPILED = [(re.compile(p), r) for p, r in _RULES]


def mmdet_key_to_ours(key: str) -> str:
    """The name of an mmdet 3.3 ``DeformableDETR`` parameter here."""
    for pattern, replacement in _COMPILED:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return key


def convert_mmdet_state_dict(
        state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Rename every key of an mmdet 3.3 ``DeformableDETR`` state dict."""
    return OrderedDict(
        (mmdet_key_to_ours(k), v) for k, v in state_dict.items())
