"""fundamentalvision/Deformable-DETR checkpoints -> this project.

The official ``checkpoint['model']`` (``models/deformable_detr.py``,
``models/deformable_transformer.py``) differs from this project in names
and in three places of substance:

- ``query_embed`` (Q, 2C) is already split the same way here: the first C
  channels are the query position, the last C the content.
- the decoder layer normalises with ``norm2`` after self-attention and
  ``norm1`` after cross-attention; ``transformer.decoder.bbox_embed`` and
  ``transformer.decoder.class_embed`` are the head's own branches again.
- the class logits are 91 wide, indexed by COCO category id; they become
  mmdet's 80 contiguous classes (``coco_classes``).

Its input projections have a convolution bias, hence the
``configs/converted/`` configs.
"""
from collections import OrderedDict
from typing import Dict, Optional

import torch

from ..safe_load import load_checkpoint_file
from ..variants.deformable_detr import CONV_BIAS_CONFIGS, variant_name
from .coco_classes import (CATEGORY_MAPPING_NOTE, NUM_CATEGORY_IDS,
                           category_rows, coco_dataset_meta, proposal_rows)
from .converted import Converted
from .key_rules import (add_batch_norm_counters, check_duplicates, head,
                        input_projection_rules, num_layers, rename)

SOURCE = 'official Deformable-DETR'
# The backbone, the level embedding and the encoder and decoder layers,
# which the official DINO names the same way.
STACK_RULES = [
    (r'^backbone\.0\.body\.', 'backbone.'),
    (r'^transformer\.level_embed$', 'level_embed'),
    (r'^transformer\.encoder\.layers\.(\d+)\.self_attn\.',
     r'encoder.layers.\1.self_attn.'),
    (r'^transformer\.encoder\.layers\.(\d+)\.norm1\.',
     r'encoder.layers.\1.self_attn_norm.'),
    (r'^transformer\.encoder\.layers\.(\d+)\.linear(\d)\.',
     r'encoder.layers.\1.ffn.linear\2.'),
    (r'^transformer\.encoder\.layers\.(\d+)\.norm2\.',
     r'encoder.layers.\1.ffn_norm.'),
    (r'^transformer\.decoder\.layers\.(\d+)\.cross_attn\.',
     r'decoder.layers.\1.cross_attn.'),
    (r'^transformer\.decoder\.layers\.(\d+)\.norm1\.',
     r'decoder.layers.\1.cross_attn_norm.'),
    (r'^transformer\.decoder\.layers\.(\d+)\.self_attn\.',
     r'decoder.layers.\1.self_attn.'),
    (r'^transformer\.decoder\.layers\.(\d+)\.norm2\.',
     r'decoder.layers.\1.self_attn_norm.'),
    (r'^transformer\.decoder\.layers\.(\d+)\.linear(\d)\.',
     r'decoder.layers.\1.ffn.linear\2.'),
    (r'^transformer\.decoder\.layers\.(\d+)\.norm3\.',
     r'decoder.layers.\1.ffn_norm.'),
]
# The encoder's proposal transform (two-stage here, every DINO).
PROPOSAL_RULES = [
    (r'^transformer\.enc_output\.', 'proposal_generator.memory_trans_fc.'),
    (r'^transformer\.enc_output_norm\.',
     'proposal_generator.memory_trans_norm.'),
]
_LAYER_RULES = STACK_RULES + PROPOSAL_RULES + [
    (r'^transformer\.reference_points\.', 'reference_points_fc.'),
    (r'^transformer\.pos_trans\.', 'proposal_generator.pos_trans_fc.'),
    (r'^transformer\.pos_trans_norm\.', 'proposal_generator.pos_trans_norm.'),
    (r'^query_embed\.', 'query_embedding.'),
    # The head is rebuilt by ``head``; the decoder's copies are checked.
    (r'^(transformer\.decoder\.)?(class|bbox)_embed\.', ''),
]


def is_official(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` (the file's object) is of this layout."""
    state_dict = checkpoint.get('model', checkpoint)
    return isinstance(state_dict, dict) and (
        'transformer.level_embed' in state_dict and
        any(k.startswith('class_embed.') for k in state_dict) and
        # the official DINO's denoising label embedding
        'label_enc.weight' not in state_dict)


def convert_official_state_dict(
        state_dict: Dict[str, torch.Tensor],
        variant: Optional[str] = None,
        dilation: Optional[bool] = None,
        map_classes: bool = True) -> Converted:
    """Convert ``checkpoint['model']``.

    Args:
        state_dict: the official model's state dict.
        variant: ``--variant``; needed to tell DC5 from single-scale when
            ``dilation`` is None.
        dilation: the official ``args.dilation`` when known.
        map_classes: map 91 category-id logits to the 80 classes.
    """
    decoder_layers = num_layers(state_dict, 'transformer.decoder.layers.')
    as_two_stage = 'transformer.enc_output.weight' in state_dict
    refine = any(k.startswith('transformer.decoder.bbox_embed.')
                 for k in state_dict)
    levels = state_dict['transformer.level_embed'].shape[0]
    name = variant_name(levels, refine, as_two_stage, dilation, variant,
                        SOURCE)
    num_branches = decoder_layers + int(as_two_stage)
    check_duplicates(state_dict, [
        (k, k[len('transformer.decoder.'):]) for k in state_dict
        if k.startswith(('transformer.decoder.bbox_embed.',
                         'transformer.decoder.class_embed.'))
    ])
    rules = _LAYER_RULES + input_projection_rules(state_dict, 'input_proj.')
    out = rename(state_dict, rules, SOURCE)
    classes = state_dict['class_embed.0.bias'].shape[0]
    mapped = map_classes and classes == NUM_CATEGORY_IDS
    out.update(
        head(state_dict, ['class_embed.'], ['bbox_embed.'], num_branches,
             as_two_stage, category_rows if mapped else None,
             proposal_rows if mapped else None))
    add_batch_norm_counters(out)
    notes = []
    if mapped:
        notes.append(CATEGORY_MAPPING_NOTE)
    return Converted(
        OrderedDict(sorted(out.items())), name, CONV_BIAS_CONFIGS[name],
        coco_dataset_meta() if mapped else None, notes)


def convert_official(src: str, variant: Optional[str] = None,
                     map_classes: bool = True) -> Converted:
    """Read an official ``.pth`` file and convert its ``model``.

    The file pickles its training ``args`` as an ``argparse.Namespace``
    (allowlisted by safe loading); they tell DC5 (``args.dilation``) from
    single-scale.
    """
    checkpoint = load_checkpoint_file(src, map_location='cpu')
    if not isinstance(checkpoint, dict) or not is_official(checkpoint):
        raise ValueError(
            f'{src!r} is not an official Deformable-DETR checkpoint (no '
            "'model' with transformer.level_embed and class_embed.* keys)")
    args = checkpoint.get('args')
    dilation = getattr(args, 'dilation', None)
    return convert_official_state_dict(
        checkpoint.get('model', checkpoint), variant, dilation, map_classes)
