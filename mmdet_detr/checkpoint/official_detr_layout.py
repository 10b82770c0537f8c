"""State dicts of facebookresearch/detr (``detr-r50-e632da11.pth``,
``detr-r50-dc5-f0fb7ef5.pth``, ...) in this project's ``DETR`` layout.

The official checkpoint holds the model under ``checkpoint['model']``:

- ``backbone.0.body.*``: torchvision's ResNet with frozen batch norm (no
  ``num_batches_tracked``), the names of mmdet's ``ResNet``;
- ``input_proj``: the 1x1 projection, here the neck's ``ChannelMapper``;
- ``transformer.encoder.layers.{i}``, ``transformer.decoder.layers.{i}``
  and ``transformer.decoder.norm``: the post-norm transformer;
- ``query_embed``: the object queries;
- ``class_embed``: 92 logits, indexed by COCO category id (1 to 90, with
  gaps) and the no-object logit last; here 80 contiguous classes in
  mmdet's ``CocoDataset`` order, then no-object;
- ``bbox_embed.layers.{0,1,2}``: the box MLP.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

# The category ids of COCO 2017's 80 classes, in mmdet's CocoDataset order
# (ascending id).
COCO_CATEGORY_IDS: Tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
    43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90)

_ENC = r'^transformer\.encoder\.layers\.(\d+)\.'
_DEC = r'^transformer\.decoder\.layers\.(\d+)\.'
# (official pattern, this project's replacement), first match wins.
_RULES: List[Tuple[str, str]] = [
    (r'^backbone\.0\.body\.', 'backbone.'),
    (r'^input_proj\.', 'neck.convs.0.conv.'),
    (r'^query_embed\.', 'query_embedding.'),
    (_ENC + r'self_attn\.', r'encoder.layers.\1.self_attn.'),
    (_ENC + r'linear(1|2)\.', r'encoder.layers.\1.ffn.linear\2.'),
    (_ENC + r'norm1\.', r'encoder.layers.\1.self_attn_norm.'),
    (_ENC + r'norm2\.', r'encoder.layers.\1.ffn_norm.'),
    (_DEC + r'self_attn\.', r'decoder.layers.\1.self_attn.'),
    (_DEC + r'multihead_attn\.', r'decoder.layers.\1.cross_attn.'),
    (_DEC + r'linear(1|2)\.', r'decoder.layers.\1.ffn.linear\2.'),
    (_DEC + r'norm1\.', r'decoder.layers.\1.self_attn_norm.'),
    (_DEC + r'norm2\.', r'decoder.layers.\1.cross_attn_norm.'),
    (_DEC + r'norm3\.', r'decoder.layers.\1.ffn_norm.'),
    (r'^transformer\.decoder\.norm\.', 'decoder.final_norm.'),
    (r'^class_embed\.', 'bbox_head.cls_branch.'),
    (r'^bbox_embed\.layers\.0\.', 'bbox_head.reg_branch.0.'),
    (r'^bbox_embed\.layers\.1\.', 'bbox_head.reg_branch.2.'),
    (r'^bbox_embed\.layers\.2\.', 'bbox_head.reg_branch.4.'),
]
_COMPILED = [(re.compile(p), r) for p, r in _RULES]


def official_detr_key_to_ours(key: str) -> Optional[str]:
    """The name of an official DETR parameter here, or None for a key this
    project's ``DETR`` has no place for."""
    for pattern, replacement in _COMPILED:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return None


def convert_official_detr_state_dict(
    state_dict: Dict[str, Tensor],
    class_ids: Optional[Sequence[int]] = COCO_CATEGORY_IDS
) -> 'OrderedDict[str, Tensor]':
    """Convert a facebookresearch/detr state dict (``checkpoint['model']``;
    a whole checkpoint is unwrapped) for ``configs/detr_r50.py`` (or
    ``detr_r50_dc5.py`` for a DC5 checkpoint).

    Args:
        state_dict: the official keys and tensors.
        class_ids: the row of ``class_embed`` for each class of the target
            model, in its class order (default: COCO's 80 categories for
            mmdet's ``CocoDataset``); the last row, no-object, is appended.
            None keeps the rows as they are (a model fine-tuned on
            contiguous class indices).

    Returns:
        The state dict of this project's ``DETR``, with the
        ``num_batches_tracked`` counters mmdet's batch norm expects set to 0.

    Raises:
        ValueError: for keys with no place here (pre-norm or segmentation
            models, learned position embeddings) or a ``class_embed`` too
            narrow for ``class_ids``.
    """
    if isinstance(state_dict.get('model'), dict):
        state_dict = state_dict['model']
    unknown = [k for k in state_dict if official_detr_key_to_ours(k) is None]
    if unknown:
        raise ValueError(
            f'{len(unknown)} keys of the official DETR state dict have no '
            f'place in this project\'s DETR, e.g. {unknown[:5]}: only the '
            'post-norm detection models with sine position encoding '
            '(detr-r50, detr-r50-dc5, detr-r101, detr-r101-dc5) convert')
    converted = OrderedDict()
    for key, value in state_dict.items():
        ours = official_detr_key_to_ours(key)
        if ours.startswith('bbox_head.cls_branch.') and class_ids is not None:
            value = _select_classes(key, value, class_ids)
        converted[ours] = value
        if ours.startswith('backbone.') and ours.endswith('.running_var'):
            # Frozen batch norm keeps no counter; 0 is what a fresh
            # BatchNorm2d holds, and it is unused with a fixed momentum.
            counter = ours[:-len('running_var')] + 'num_batches_tracked'
            converted[counter] = torch.tensor(0, dtype=torch.long)
    return converted


def _select_classes(key: str, value: Tensor,
                    class_ids: Sequence[int]) -> Tensor:
    """(R, ...) rows indexed by category id, no-object last -> the rows of
    ``class_ids``, then no-object."""
    if max(class_ids) >= value.shape[0] - 1:
        raise ValueError(
            f'{key} has {value.shape[0]} rows (category ids 0 to '
            f'{value.shape[0] - 2}, then no-object) but class_ids asks for '
            f'id {max(class_ids)}: pass the category ids of the model\'s '
            'own classes, or class_ids=None to keep the rows as they are')
    rows = torch.as_tensor(list(class_ids) + [value.shape[0] - 1])
    return value[rows].clone()
