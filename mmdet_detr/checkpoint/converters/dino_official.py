"""IDEA-Research/DINO checkpoints -> this project.

The official ``checkpoint['model']`` (``models/dino/dino.py`` and
``models/dino/deformable_transformer.py``, ``config/DINO/DINO_4scale.py``)
names its backbone, input projections, level embedding and encoder and
decoder layers as the official Deformable DETR does; beyond those:

- ``transformer.tgt_embed`` (Q, C): the learned content queries.
- ``transformer.enc_output`` / ``enc_output_norm``: the proposal transform;
  ``transformer.enc_out_class_embed`` / ``enc_out_bbox_embed``: the
  proposal classifier and box MLP, the head's last branch here.
- ``transformer.decoder.ref_point_head.layers.{0,1}`` (the positional MLP)
  and ``transformer.decoder.norm``.
- ``class_embed.i`` / ``bbox_embed.i``: one branch per decoder layer. The
  published models share one branch between all layers
  (``dec_pred_*_embed_share``), so every ``i`` holds the same values, and
  ``transformer.decoder.class_embed.i`` / ``bbox_embed.i`` are those
  modules again (checked equal, dropped). Here each layer gets its copy:
  the predictions are the same; fine-tuning unties them.
- ``label_enc`` (91 + 1, C): the denoising label embedding, indexed by
  category id like the classifiers (the extra row is never looked up).

The 91 category-id logits become mmdet's 80 classes (``coco_classes``).
The proposals are ranked by their best class logit, so after mapping, a
token whose best logit was one of the 11 unused ids ranks by its best used
one; trained models never score the unused ids (they are no target's
label), so the ranking is the official one in practice.

The input projections have a convolution bias, hence
``configs/converted/dino_4scale_r50.py``, which also sets the official box
noise (``dn_box_noise_scale`` 0.4) for fine-tuning.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional

import torch

from ..safe_load import load_checkpoint_file
from ..variants.dino import CONV_BIAS_CONFIGS, variant_name
from .coco_classes import (CATEGORY_MAPPING_NOTE, NUM_CATEGORY_IDS,
                           category_rows, coco_dataset_meta)
from .converted import Converted
from .deformable_detr_official import PROPOSAL_RULES, STACK_RULES
from .key_rules import (add_batch_norm_counters, check_duplicates, head,
                        input_projection_rules, num_layers, rename)

SOURCE = 'official DINO'
# The key that tells an official DINO from an official Deformable DETR.
LABEL_EMBEDDING = 'label_enc.weight'
_RULES = STACK_RULES + PROPOSAL_RULES + [
    (r'^transformer\.tgt_embed\.', 'query_embedding.'),
    (r'^transformer\.decoder\.ref_point_head\.layers\.0\.',
     'decoder.ref_point_head.0.'),
    (r'^transformer\.decoder\.ref_point_head\.layers\.1\.',
     'decoder.ref_point_head.2.'),
    (r'^transformer\.decoder\.norm\.', 'decoder.norm.'),
    # The head and the label embedding are placed by
    # ``convert_official_dino_state_dict``; the decoder's copies of the
    # head are checked.
    (r'^(transformer\.decoder\.)?(class|bbox)_embed\.', ''),
    (r'^transformer\.enc_out_(class|bbox)_embed\.', ''),
    (r'^label_enc\.weight$', ''),
]


def is_official_dino(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` (the file's object) is of this layout."""
    state_dict = checkpoint.get('model', checkpoint)
    return isinstance(state_dict, dict) and (
        LABEL_EMBEDDING in state_dict and
        'transformer.level_embed' in state_dict)


def convert_official_dino_state_dict(
        state_dict: Dict[str, torch.Tensor],
        variant: Optional[str] = None,
        map_classes: bool = True) -> Converted:
    """Convert ``checkpoint['model']`` of the official DINO.

    Args:
        state_dict: the official model's state dict.
        variant: ``--variant``: None or ``'dino'`` (the improved model is
            mmdet's own).
        map_classes: map 91 category-id logits (and label embedding rows)
            to the 80 classes.
    """
    if variant not in (None, 'dino'):
        raise ValueError(
            f'--variant {variant} does not apply to an {SOURCE} checkpoint: '
            'leave it out (its config is configs/converted/'
            'dino_4scale_r50.py)')
    if 'transformer.enc_output.weight' not in state_dict:
        raise ValueError(
            f'the {SOURCE} checkpoint has no transformer.enc_output: it was '
            "trained with two_stage_type='no', and this project's DINO "
            'selects its queries from the encoder (two_stage_type '
            "'standard', the published models)")
    name = variant_name(state_dict['transformer.level_embed'].shape[0],
                        variant, SOURCE)
    decoder_layers = num_layers(state_dict, 'transformer.decoder.layers.')
    check_duplicates(state_dict, [
        (k, k[len('transformer.decoder.'):]) for k in state_dict
        if k.startswith(('transformer.decoder.bbox_embed.',
                         'transformer.decoder.class_embed.'))
    ])
    rules = _RULES + input_projection_rules(state_dict, 'input_proj.')
    out = rename(state_dict, rules, SOURCE)

    classes = state_dict['class_embed.0.bias'].shape[0]
    mapped = map_classes and classes == NUM_CATEGORY_IDS
    pick = category_rows if mapped else None
    # Decoder layers 0..N-1, then the proposal branch N: the encoder's
    # classifier and box MLP are read as class_embed.N / bbox_embed.N.
    branches = dict(state_dict)
    for key in state_dict:
        m = re.match(r'^transformer\.enc_out_(class|bbox)_embed\.(.*)$', key)
        if m:
            branches[f'{m.group(1)}_embed.{decoder_layers}.{m.group(2)}'] = (
                state_dict[key])
    out.update(head(branches, ['class_embed.'], ['bbox_embed.'],
                    decoder_layers + 1, True, pick, pick))
    labels = state_dict[LABEL_EMBEDDING]
    if labels.shape[0] < classes:
        raise ValueError(
            f'{LABEL_EMBEDDING} has {labels.shape[0]} rows, fewer than the '
            f'{classes} classes of class_embed.0')
    out['bbox_head.denoising.label_embedding.weight'] = (
        category_rows(labels[:NUM_CATEGORY_IDS], LABEL_EMBEDDING)
        if mapped else labels[:classes].clone())
    add_batch_norm_counters(out)
    notes = []
    if mapped:
        notes.append(CATEGORY_MAPPING_NOTE)
        notes.append('denoising label embedding: the rows of the 80 '
                     'classes\' category ids')
    return Converted(
        OrderedDict(sorted(out.items())), name, CONV_BIAS_CONFIGS[name],
        coco_dataset_meta() if mapped else None, notes)


def convert_official_dino(src: str, variant: Optional[str] = None,
                          map_classes: bool = True) -> Converted:
    """Read an official DINO ``.pth`` file and convert its ``model``."""
    checkpoint = load_checkpoint_file(src, map_location='cpu')
    if not isinstance(checkpoint, dict) or not is_official_dino(checkpoint):
        raise ValueError(
            f'{src!r} is not an official DINO checkpoint (no '
            f"'model' with transformer.level_embed and {LABEL_EMBEDDING})")
    return convert_official_dino_state_dict(
        checkpoint.get('model', checkpoint), variant, map_classes)
