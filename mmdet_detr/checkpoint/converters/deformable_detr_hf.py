"""HuggingFace ``DeformableDetrForObjectDetection`` -> this project.

Reads ``model.safetensors`` or ``pytorch_model.bin`` (a file, or the folder
``save_pretrained`` wrote) and its ``config.json``. Key names of
transformers 4 (``backbone.conv_encoder``, ``fc1``, ``out_proj``) are first
renamed to those of transformers 5. Beyond names:

- the decoder self-attention has separate q, k, v projections; here they
  are one ``in_proj`` (torch's ``MultiheadAttention``), concatenated q, k, v.
- saved files omit tied copies: without box refinement only branch 0 of
  ``class_embed``/``bbox_embed``; with it, ``model.decoder.bbox_embed``
  instead of ``bbox_embed`` (and, two-stage, ``model.decoder.class_embed``).
- the backbone is timm's ResNet (torchvision's names) or transformers' own
  ``ResNetBackbone`` (``embedder``, ``encoder.stages``); both become
  mmdet's ``ResNet``.
- ``SenseTime/deformable-detr*`` score 91 classes indexed by COCO category
  id, mapped to mmdet's 80 as for the official checkpoints.
"""
import json
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from ..safe_load import load_checkpoint_file
from ..variants.deformable_detr import CONV_BIAS_CONFIGS, variant_name
from .coco_classes import (CATEGORY_MAPPING_NOTE, NUM_CATEGORY_IDS,
                           category_rows, coco_dataset_meta, proposal_rows)
from .converted import Converted
from .key_rules import (KEEP_REST, Replacement, add_batch_norm_counters, head,
                        input_projection_rules, num_layers, rename)

SOURCE = 'HuggingFace'
WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
# transformers 4 names -> transformers 5's; the other keys are the same in
# both. No key has more than one of these parts.
_V4_NAMES = [
    (r'^model\.backbone\.conv_encoder\.', 'model.backbone.'),
    (r'^(.*)\.self_attn\.out_proj\.', r'\1.self_attn.o_proj.'),
    (r'^(.*)\.layers\.(\d+)\.fc(\d)\.', r'\1.layers.\2.mlp.fc\3.'),
    KEEP_REST,
]


def _one_based(template: str) -> Replacement:
    """``template`` with each ``<i>`` (a group: a 0-based stage or layer
    index) written as i + 1: transformers' ResNet counts from 0, mmdet's
    ``layer1``, ``conv1``, ``bn1`` from 1."""
    return lambda match: re.sub(r'<(\d+)>', lambda i: str(int(i[1]) + 1),
                                match.expand(template))


_RULES = [
    (r'^model\.level_embed$', 'level_embed'),
    # transformers' own ResNet; timm's has torchvision's names already.
    (r'^model\.backbone\.model\.embedder\.embedder\.convolution\.',
     'backbone.conv1.'),
    (r'^model\.backbone\.model\.embedder\.embedder\.normalization\.',
     'backbone.bn1.'),
    (r'^model\.backbone\.model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.'
     r'shortcut\.convolution\.',
     _one_based(r'backbone.layer<\1>.\2.downsample.0.')),
    (r'^model\.backbone\.model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.'
     r'shortcut\.normalization\.',
     _one_based(r'backbone.layer<\1>.\2.downsample.1.')),
    (r'^model\.backbone\.model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.'
     r'layer\.(\d+)\.convolution\.',
     _one_based(r'backbone.layer<\1>.\2.conv<\3>.')),
    (r'^model\.backbone\.model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.'
     r'layer\.(\d+)\.normalization\.',
     _one_based(r'backbone.layer<\1>.\2.bn<\3>.')),
    (r'^model\.backbone\.model\.(conv1|bn1|layer\d)\.', r'backbone.\1.'),
    (r'^model\.encoder\.layers\.(\d+)\.self_attn\.',
     r'encoder.layers.\1.self_attn.'),
    (r'^model\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.',
     r'encoder.layers.\1.self_attn_norm.'),
    (r'^model\.(en|de)coder\.layers\.(\d+)\.mlp\.fc(\d)\.',
     r'\1coder.layers.\2.ffn.linear\3.'),
    (r'^model\.(en|de)coder\.layers\.(\d+)\.final_layer_norm\.',
     r'\1coder.layers.\2.ffn_norm.'),
    (r'^model\.decoder\.layers\.(\d+)\.self_attn\.o_proj\.',
     r'decoder.layers.\1.self_attn.out_proj.'),
    (r'^model\.decoder\.layers\.(\d+)\.self_attn\.[qkv]_proj\.', ''),
    (r'^model\.decoder\.layers\.(\d+)\.self_attn_layer_norm\.',
     r'decoder.layers.\1.self_attn_norm.'),
    (r'^model\.decoder\.layers\.(\d+)\.encoder_attn\.',
     r'decoder.layers.\1.cross_attn.'),
    (r'^model\.decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.',
     r'decoder.layers.\1.cross_attn_norm.'),
    (r'^model\.query_position_embeddings\.', 'query_embedding.'),
    (r'^model\.reference_points\.', 'reference_points_fc.'),
    (r'^model\.enc_output\.', 'proposal_generator.memory_trans_fc.'),
    (r'^model\.enc_output_norm\.', 'proposal_generator.memory_trans_norm.'),
    (r'^model\.pos_trans\.', 'proposal_generator.pos_trans_fc.'),
    (r'^model\.pos_trans_norm\.', 'proposal_generator.pos_trans_norm.'),
    (r'^(model\.decoder\.)?(class|bbox)_embed\.', ''),
]


def is_hf(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` is a HuggingFace state dict."""
    return 'model.level_embed' in checkpoint and any(
        k.startswith(('model.backbone.', 'model.encoder.'))
        for k in checkpoint)


def read_hf(src: str, config_file: Optional[str] = None
            ) -> Tuple[Dict[str, Tensor], Optional[dict]]:
    """The state dict and ``config.json`` (None if absent) of ``src``:
    a ``.safetensors`` or ``.bin`` file, or a folder holding one."""
    if osp.isdir(src):
        found = [f for f in WEIGHT_FILES if osp.isfile(osp.join(src, f))]
        if not found:
            raise FileNotFoundError(
                f'{src!r} holds none of {WEIGHT_FILES}; sharded checkpoints '
                '(*.index.json) are not supported')
        folder, src = src, osp.join(src, found[0])
    else:
        folder = osp.dirname(src)
    if src.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as error:
            raise ImportError(
                f'reading {src!r} needs the safetensors package: pip '
                'install safetensors') from error
        state_dict = load_file(src, device='cpu')
    else:
        state_dict = load_checkpoint_file(src, map_location='cpu')
    config_file = config_file or osp.join(folder, 'config.json')
    config = None
    if osp.isfile(config_file):
        with open(config_file) as f:
            config = json.load(f)
    return state_dict, config


def convert_hf_state_dict(state_dict: Dict[str, Tensor],
                          config: Optional[dict] = None,
                          variant: Optional[str] = None,
                          map_classes: bool = True) -> Converted:
    """Convert a ``DeformableDetrForObjectDetection`` state dict.

    ``config`` (``config.json``) tells DC5 (``dilation``) from
    single-scale; the rest is read from the keys.
    """
    state_dict = _transformers5_names(state_dict)
    decoder_layers = num_layers(state_dict, 'model.decoder.layers.')
    as_two_stage = 'model.enc_output.weight' in state_dict
    refine = any(k.startswith('model.decoder.bbox_embed.')
                 for k in state_dict)
    levels = state_dict['model.level_embed'].shape[0]
    dilation = None if config is None else bool(config.get('dilation'))
    name = variant_name(levels, refine, as_two_stage, dilation, variant,
                        SOURCE)
    rules = _RULES + input_projection_rules(state_dict, 'model.input_proj.')
    out = rename(state_dict, rules, SOURCE)
    for i in range(decoder_layers):
        prefix = f'model.decoder.layers.{i}.self_attn.'
        for part in ('weight', 'bias'):
            out[f'decoder.layers.{i}.self_attn.in_proj_{part}'] = torch.cat(
                [state_dict[f'{prefix}{p}_proj.{part}'] for p in 'qkv'])
    classes = _num_classes(state_dict)
    mapped = map_classes and classes == NUM_CATEGORY_IDS
    out.update(
        head(state_dict, ['class_embed.', 'model.decoder.class_embed.'],
             ['bbox_embed.', 'model.decoder.bbox_embed.'],
             decoder_layers + int(as_two_stage), as_two_stage,
             category_rows if mapped else None,
             proposal_rows if mapped else None))
    add_batch_norm_counters(out)
    notes = []
    if mapped:
        notes.append(CATEGORY_MAPPING_NOTE)
    dataset_meta = coco_dataset_meta() if mapped else _labels(config)
    return Converted(
        OrderedDict(sorted(out.items())), name, CONV_BIAS_CONFIGS[name],
        dataset_meta, notes)


def convert_hf(src: str, variant: Optional[str] = None,
               map_classes: bool = True,
               config_file: Optional[str] = None) -> Converted:
    """Read and convert a HuggingFace checkpoint (see :func:`read_hf`)."""
    state_dict, config = read_hf(src, config_file)
    if not is_hf(state_dict):
        raise ValueError(
            f'{src!r} is not a HuggingFace DeformableDetrForObjectDetection '
            'state dict (no model.level_embed, model.backbone.* keys)')
    return convert_hf_state_dict(state_dict, config, variant, map_classes)


def _transformers5_names(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    return rename(state_dict, _V4_NAMES, SOURCE)


def _num_classes(state_dict: Dict[str, Tensor]) -> int:
    for key in ('class_embed.0.bias', 'model.decoder.class_embed.0.bias'):
        if key in state_dict:
            return state_dict[key].shape[0]
    raise KeyError('the checkpoint has no class_embed.0.bias')


def _labels(config: Optional[dict]) -> Optional[dict]:
    """``dataset_meta`` from ``id2label`` when it names every class."""
    id2label = (config or {}).get('id2label')
    if not id2label:
        return None
    names: List[str] = [id2label[k] for k in sorted(id2label, key=int)]
    return dict(classes=tuple(names))
