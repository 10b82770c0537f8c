"""facebookresearch/detr checkpoints (``detr-r50-e632da11.pth``,
``detr-r50-dc5-f0fb7ef5.pth``) -> this project's ``DETR``.

The official ``checkpoint['model']`` (``models/detr.py``,
``models/transformer.py``, ``models/backbone.py``):

- ``backbone.0.body.*``: torchvision's ResNet with frozen batch norm (no
  ``num_batches_tracked``), the names of mmdet's ``ResNet``;
- ``input_proj``: the 1x1 projection (with bias), here the neck's
  ``ChannelMapper``;
- ``transformer.encoder.layers.{i}``, ``transformer.decoder.layers.{i}``
  (``norm1`` after self-attention, ``norm2`` after cross-attention,
  ``norm3`` after the FFN) and ``transformer.decoder.norm``;
- ``query_embed``: the object queries;
- ``class_embed``: 92 logits, indexed by COCO category id with no-object
  last; they become mmdet's 80 contiguous classes, then no-object;
- ``bbox_embed.layers.{0,1,2}``: the box MLP.
"""
from typing import Dict, Optional

import torch
from torch import Tensor

from ..safe_load import load_checkpoint_file
from ..variants.detr import CONFIGS, variant_name
from .coco_classes import NUM_CATEGORY_IDS, category_rows, coco_dataset_meta
from .converted import Converted
from .key_rules import add_batch_norm_counters, rename, unmatched_keys

SOURCE = 'official DETR'
_ENC = r'^transformer\.encoder\.layers\.(\d+)\.'
_DEC = r'^transformer\.decoder\.layers\.(\d+)\.'
# (official pattern, this project's replacement), first match wins.
_RULES = [
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


def is_official_detr(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` (the file's object) is of this layout."""
    state_dict = checkpoint.get('model', checkpoint)
    return isinstance(state_dict, dict) and (
        'query_embed.weight' in state_dict and
        'transformer.decoder.norm.weight' in state_dict and
        'transformer.level_embed' not in state_dict)


def convert_official_detr_state_dict(
        state_dict: Dict[str, Tensor],
        dilation: Optional[bool] = None,
        variant: Optional[str] = None,
        map_classes: bool = True) -> Converted:
    """Convert ``checkpoint['model']``.

    Args:
        state_dict: the official model's state dict.
        dilation: the official ``args.dilation`` (DC5) when known.
        variant: ``r50`` or ``r50_dc5`` (``--variant``); must agree with
            ``dilation`` when both are given, and settles it otherwise.
        map_classes: map the 91 category-id logits (plus no-object) to the
            80 classes of mmdet's ``CocoDataset`` (plus no-object).

    Raises:
        ValueError: for keys with no place here (pre-norm or segmentation
            models, learned position embeddings) or an unknown variant.
    """
    unknown = unmatched_keys(state_dict, _RULES)
    if unknown:
        raise ValueError(
            f'{len(unknown)} key(s) of the {SOURCE} checkpoint have no '
            f'place in this project\'s DETR, e.g. {unknown[:5]}: only the '
            'post-norm detection models with sine position encoding '
            '(detr-r50, detr-r50-dc5, detr-r101, detr-r101-dc5) convert')
    name = variant_name(dilation, variant, SOURCE)
    out = rename(state_dict, _RULES, SOURCE)
    add_batch_norm_counters(out)
    notes = []
    depth = 101 if 'backbone.layer3.6.conv1.weight' in out else 50
    if depth == 101:
        notes.append('ResNet-101 backbone: run the config with '
                     '--cfg-options model.backbone.depth=101')
    logits = out.get('bbox_head.cls_branch.bias')
    mapped = (map_classes and logits is not None
              and logits.shape[0] - 1 == NUM_CATEGORY_IDS)
    if mapped:
        for part in ('weight', 'bias'):
            key = f'bbox_head.cls_branch.{part}'
            rows = out[key]
            out[key] = torch.cat([
                category_rows(rows[:-1], f'class_embed.{part}'), rows[-1:]
            ])
        notes.append('class logits: 91 COCO category ids + no-object -> '
                     "the 80 classes of mmdet's CocoDataset + no-object")
    return Converted(out, name, CONFIGS[name],
                     coco_dataset_meta() if mapped else None, notes)


def convert_official_detr(src: str, variant: Optional[str] = None,
                          map_classes: bool = True) -> Converted:
    """Read an official ``.pth`` file and convert its ``model``.

    The file pickles its training ``args`` as an ``argparse.Namespace``
    (allowlisted by safe loading); its ``dilation`` tells DC5 from R50.
    """
    checkpoint = load_checkpoint_file(src, map_location='cpu')
    if not isinstance(checkpoint, dict) or not is_official_detr(checkpoint):
        raise ValueError(
            f'{src!r} is not an official DETR checkpoint (no \'model\' with '
            'query_embed and transformer.decoder.norm keys)')
    dilation = getattr(checkpoint.get('args'), 'dilation', None)
    return convert_official_detr_state_dict(
        checkpoint.get('model', checkpoint), dilation, variant, map_classes)
