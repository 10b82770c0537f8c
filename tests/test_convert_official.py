"""Official fundamentalvision/Deformable-DETR checkpoints -> this project.

The key names and shapes of every official variant are in
``tests/reference/official_deformable_detr_state_dict.json.gz``. A state
dict of those shapes, each tensor a constant that identifies its source key,
is converted: every source key must land somewhere, the places checked here
are written out independently of the converter's rules, and the result
loads into this project's R50 model of the matching config with no missing
or unexpected keys and no shape mismatch.
"""
import argparse
import gzip
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader

import mmdet_detr.engine  # noqa: F401 (installs the safe local loader)
from mmdet_detr.checkpoint.converters.coco_classes import COCO_CATEGORY_IDS
from mmdet_detr.checkpoint.converters.deformable_detr_official import (
    convert_official, convert_official_state_dict)
from mmdet_detr.checkpoint.loader import (ForeignCheckpointError,
                                          check_checkpoint_file)
from mmdet_detr.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
REFERENCE = osp.join(REPO_ROOT, 'tests', 'reference',
                     'official_deformable_detr_state_dict.json.gz')
# reference file's name -> this project's variant name
VARIANTS = {
    'deformable_detr': 'plain',
    'refine': 'refine',
    'refine_twostage': 'refine_twostage',
    'single_scale': 'single_scale',
    'single_scale_dc5': 'single_scale_dc5',
}
# Where official keys must land, written out by hand.
EXPECTED = {
    'transformer.level_embed': 'level_embed',
    'transformer.encoder.layers.5.norm1.bias':
    'encoder.layers.5.self_attn_norm.bias',
    'transformer.encoder.layers.0.linear2.weight':
    'encoder.layers.0.ffn.linear2.weight',
    'transformer.encoder.layers.3.norm2.weight':
    'encoder.layers.3.ffn_norm.weight',
    'transformer.encoder.layers.2.self_attn.sampling_offsets.weight':
    'encoder.layers.2.self_attn.sampling_offsets.weight',
    # The decoder's norm1 follows cross-attention, norm2 self-attention.
    'transformer.decoder.layers.1.norm1.weight':
    'decoder.layers.1.cross_attn_norm.weight',
    'transformer.decoder.layers.1.norm2.weight':
    'decoder.layers.1.self_attn_norm.weight',
    'transformer.decoder.layers.4.norm3.bias':
    'decoder.layers.4.ffn_norm.bias',
    'transformer.decoder.layers.0.self_attn.in_proj_weight':
    'decoder.layers.0.self_attn.in_proj_weight',
    'transformer.decoder.layers.5.cross_attn.value_proj.weight':
    'decoder.layers.5.cross_attn.value_proj.weight',
    'bbox_embed.0.layers.0.weight': 'bbox_head.reg_branches.0.0.weight',
    'bbox_embed.0.layers.2.bias': 'bbox_head.reg_branches.0.4.bias',
    'input_proj.0.0.weight': 'neck.convs.0.conv.weight',
    'input_proj.0.1.bias': 'neck.convs.0.gn.bias',
    'backbone.0.body.conv1.weight': 'backbone.conv1.weight',
    'backbone.0.body.layer4.2.bn3.running_var':
    'backbone.layer4.2.bn3.running_var',
    'backbone.0.body.layer2.0.downsample.1.weight':
    'backbone.layer2.0.downsample.1.weight',
}
EXPECTED_MULTI_SCALE = {
    'input_proj.2.0.weight': 'neck.convs.2.conv.weight',
    'input_proj.3.0.weight': 'neck.extra_convs.0.conv.weight',
    'input_proj.3.1.weight': 'neck.extra_convs.0.gn.weight',
}
EXPECTED_ONE_STAGE = {
    'query_embed.weight': 'query_embedding.weight',
    'transformer.reference_points.weight': 'reference_points_fc.weight',
}
EXPECTED_REFINE = {'bbox_embed.5.layers.1.weight':
                   'bbox_head.reg_branches.5.2.weight'}
EXPECTED_TWO_STAGE = {
    'transformer.enc_output.weight':
    'proposal_generator.memory_trans_fc.weight',
    'transformer.enc_output_norm.bias':
    'proposal_generator.memory_trans_norm.bias',
    'transformer.pos_trans.weight': 'proposal_generator.pos_trans_fc.weight',
    'transformer.pos_trans_norm.weight':
    'proposal_generator.pos_trans_norm.weight',
}


def reference_shapes():
    with gzip.open(REFERENCE, 'rt') as f:
        return json.load(f)


def tagged_state_dict(shapes):
    """Each tensor a constant (its key's index + 1), as views that take no
    memory; the class logits of the 91 category ids get one value per row.
    Tied copies of the official model hold their original's values."""
    state_dict = {}
    for i, (key, shape) in enumerate(shapes.items()):
        if key.endswith(('class_embed.0.weight', 'class_embed.0.bias')) or (
                re.match(r'^class_embed\.\d+\.', key)):
            rows = (i + 1) * 1000 + torch.arange(91, dtype=torch.float)
            state_dict[key] = rows.view(91, *[1] * (len(shape) - 1)).expand(
                shape)
        else:
            state_dict[key] = torch.full((), float(i + 1)).expand(shape)
    refine = any(k.startswith('transformer.decoder.bbox_embed.')
                 for k in shapes)
    for key in shapes:
        if key.startswith('transformer.decoder.'):
            original = key[len('transformer.decoder.'):]
            if original in state_dict and re.match(r'(class|bbox)_embed',
                                                   original):
                state_dict[key] = state_dict[original]
        elif not refine and re.match(r'^(class|bbox)_embed\.\d+\.', key):
            state_dict[key] = state_dict[re.sub(r'_embed\.\d+\.', '_embed.0.',
                                                key)]
    return state_dict


def first(tensor):
    """The first element, without copying an expanded view."""
    return float(tensor[(0, ) * tensor.dim()])


def build(config):
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('reference_name', list(VARIANTS))
def test_every_official_key_lands_in_our_model(reference_name):
    shapes = reference_shapes()[reference_name]
    variant = VARIANTS[reference_name]
    source = tagged_state_dict(shapes)
    dc5 = variant == 'single_scale_dc5'
    converted = convert_official_state_dict(
        source, dilation=dc5 if variant.startswith('single') else None)
    assert converted.variant == variant
    assert converted.config == (
        'configs/converted/' + {
            'plain': 'deformable_detr_r50.py',
            'refine': 'deformable_detr_refine_r50.py',
            'refine_twostage': 'deformable_detr_refine_twostage_r50.py',
            'single_scale': 'deformable_detr_single_scale_r50.py',
            'single_scale_dc5': 'deformable_detr_single_scale_dc5_r50.py',
        }[variant])
    out = converted.state_dict

    # Every source tensor is found in the output (by its tag).
    tags = {first(v) for v in out.values() if v.is_floating_point()}
    lost = [k for k, v in source.items()
            if first(v) not in tags and 'class_embed.' not in k]
    assert not lost, lost

    expected = dict(EXPECTED)
    if variant in ('plain', 'refine', 'refine_twostage'):
        expected.update(EXPECTED_MULTI_SCALE)
    if variant != 'plain' and variant.startswith('refine'):
        expected.update(EXPECTED_REFINE)
    if variant == 'refine_twostage':
        expected.update(EXPECTED_TWO_STAGE)
    else:
        expected.update(EXPECTED_ONE_STAGE)
    for src_key, dst_key in expected.items():
        assert out[dst_key].shape == source[src_key].shape, src_key
        assert torch.equal(out[dst_key], source[src_key]), src_key

    # Classes: rows of the category ids, in mmdet's order.
    ids = torch.tensor(COCO_CATEGORY_IDS)
    last = 6 if variant == 'refine_twostage' else 5
    for i in range(last):
        assert torch.equal(out[f'bbox_head.cls_branches.{i}.weight'],
                           source[f'class_embed.{i}.weight'][ids])
    if variant == 'refine_twostage':
        # Proposals are ranked by logit 0, the "object" logit of both.
        proposal = out['bbox_head.cls_branches.6.bias']
        assert proposal[0] == source['class_embed.6.bias'][0]
        assert torch.equal(proposal[1:], source['class_embed.6.bias'][ids[1:]])

    model = build(converted.config)
    result = model.load_state_dict(out, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize('dilation', [False, True])
def test_official_file_says_whether_it_is_dc5(dilation, tmp_path):
    """The official file pickles its training args (an argparse.Namespace,
    allowlisted by safe loading); ``args.dilation`` tells DC5."""
    source = tagged_state_dict(reference_shapes()['single_scale'])
    path = str(tmp_path / 'official.pth')
    # Expanded views save their one-element storages: a small file.
    torch.save(dict(model=source, epoch=49,
                    args=argparse.Namespace(dilation=dilation, lr=2e-4)),
               path)
    converted = convert_official(path)
    assert converted.variant == ('single_scale_dc5'
                                 if dilation else 'single_scale')
    assert converted.dataset_meta['classes'][0] == 'person'
    # Given to tools/test.py (or load_from, --resume) as it is, the file is
    # refused with the command, by the loader mmengine reads local files with.
    command = (f'python tools/convert_checkpoint.py {path} '
               f'{tmp_path / "official_converted.pth"} --from official')
    for check in (check_checkpoint_file, CheckpointLoader.load_checkpoint):
        with pytest.raises(ForeignCheckpointError) as error:
            check(path)
        assert command in str(error.value)


def test_tied_copies_must_agree():
    shapes = reference_shapes()['refine']
    source = tagged_state_dict(shapes)
    source['transformer.decoder.bbox_embed.2.layers.0.bias'] = torch.zeros(
        shapes['bbox_embed.2.layers.0.bias'])
    with pytest.raises(ValueError, match='bbox_embed.2.layers.0.bias'):
        convert_official_state_dict(source)


def test_single_scale_needs_dilation_or_variant():
    source = tagged_state_dict(reference_shapes()['single_scale'])
    with pytest.raises(ValueError, match='--variant single_scale or '
                       '--variant single_scale_dc5'):
        convert_official_state_dict(source)
    assert convert_official_state_dict(
        source, variant='single_scale_dc5').variant == 'single_scale_dc5'
    with pytest.raises(ValueError, match='does not match'):
        convert_official_state_dict(source, variant='refine')


def test_unknown_keys_are_refused():
    source = tagged_state_dict(reference_shapes()['deformable_detr'])
    source['transformer.something_new.weight'] = torch.zeros(3)
    with pytest.raises(KeyError, match='transformer.something_new.weight'):
        convert_official_state_dict(source)


# HuggingFace's port of the official model renames its layers; this is the
# way back (transformers 5 names -> official names), written from the two
# sources independently of the converters.
HF_TO_OFFICIAL = [
    (r'^model\.level_embed$', 'transformer.level_embed'),
    (r'^model\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.',
     r'transformer.encoder.layers.\1.norm1.'),
    (r'^model\.encoder\.layers\.(\d+)\.final_layer_norm\.',
     r'transformer.encoder.layers.\1.norm2.'),
    (r'^model\.decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.',
     r'transformer.decoder.layers.\1.norm1.'),
    (r'^model\.decoder\.layers\.(\d+)\.self_attn_layer_norm\.',
     r'transformer.decoder.layers.\1.norm2.'),
    (r'^model\.decoder\.layers\.(\d+)\.final_layer_norm\.',
     r'transformer.decoder.layers.\1.norm3.'),
    (r'^model\.decoder\.layers\.(\d+)\.encoder_attn\.',
     r'transformer.decoder.layers.\1.cross_attn.'),
    (r'^model\.decoder\.layers\.(\d+)\.self_attn\.o_proj\.',
     r'transformer.decoder.layers.\1.self_attn.out_proj.'),
    (r'^model\.(en|de)coder\.layers\.(\d+)\.mlp\.fc(\d)\.',
     r'transformer.\1coder.layers.\2.linear\3.'),
    (r'^model\.encoder\.layers\.(\d+)\.self_attn\.',
     r'transformer.encoder.layers.\1.self_attn.'),
    (r'^model\.decoder\.(class|bbox)_embed\.',
     r'transformer.decoder.\1_embed.'),
    (r'^model\.(reference_points|enc_output|enc_output_norm|pos_trans|'
     r'pos_trans_norm)\.', r'transformer.\1.'),
    (r'^model\.query_position_embeddings\.', 'query_embed.'),
    (r'^model\.input_proj\.', 'input_proj.'),
    (r'^(class|bbox)_embed\.', r'\1_embed.'),
]


def official_from_hf(hf_state, backbone_state):
    """The official state dict of an HF model's transformer, input
    projections and head, with the backbone of ``backbone_state``:
    ``backbone.``-prefixed tensors of torchvision's ResNet names (this
    project's converted checkpoint has them, or torchvision's own)."""
    official = {}
    for key, value in hf_state.items():
        if key.startswith('model.backbone.'):
            continue
        q = re.match(r'^model\.decoder\.layers\.(\d+)\.self_attn\.q_proj\.'
                     r'(weight|bias)$', key)
        if q:
            layer, part = q.groups()
            prefix = f'model.decoder.layers.{layer}.self_attn.'
            official[f'transformer.decoder.layers.{layer}.self_attn.'
                     f'in_proj_{part}'] = torch.cat(
                         [hf_state[f'{prefix}{p}_proj.{part}'] for p in 'qkv'])
            continue
        if re.match(r'^model\.decoder\.layers\.\d+\.self_attn\.[kv]_proj\.',
                    key):
            continue
        for pattern, replacement in HF_TO_OFFICIAL:
            if re.match(pattern, key):
                official[re.sub(pattern, replacement, key)] = value
                break
        else:
            raise AssertionError(f'no official name for {key}')
    for key, value in backbone_state.items():
        if key.startswith('backbone.') and 'num_batches_tracked' not in key:
            official['backbone.0.body.' + key[len('backbone.'):]] = value
    return official


# Two-stage holds every kind of official key (the decoder's copies of the
# head, the proposal layers and classifier); the other variants' keys are a
# subset, placed by the test above.
@pytest.mark.parametrize('variant', ['refine_twostage'])
def test_converted_official_model_predicts_the_same(variant):
    """The official layout of a random model (through HF's port, the
    reference whose outputs test_convert_hf.py matches) converts to a
    model of this project with the same logits and boxes (1e-4)."""
    pytest.importorskip('transformers')
    from convert_helpers import assert_predicts_like_hf, tiny_model
    from test_convert_hf import hf_model

    from mmdet_detr.checkpoint.converters.deformable_detr_hf import \
        convert_hf_state_dict
    reference = hf_model(variant)
    hf_state = reference.state_dict()
    official = official_from_hf(
        hf_state, convert_hf_state_dict(hf_state).state_dict)
    converted = convert_official_state_dict(official)
    assert converted.variant == variant
    ours = tiny_model(variant, num_classes=80, conv_bias=True)
    ours.load_state_dict(converted.state_dict, strict=True)
    assert_predicts_like_hf(ours, reference, f'official {variant}')


def official_dc5_reference():
    """The official single-scale DC5 model, random: HF's port of the
    official transformer, input projection and head on the official
    backbone, torchvision's ResNet-50 with
    ``replace_stride_with_dilation=[False, False, True]`` and frozen batch
    norm, under ``IntermediateLayerGetter``.

    HF's own DC5 (``config.dilation``) dilates only timm's ResNet, which
    is not installed (timm needs torchvision), and transformers' own
    ResNet cannot dilate; so torchvision's network, the code the published
    weights were trained with, takes the place of HF's backbone.

    Returns:
        the reference (eval mode) and the backbone body inside it.
    """
    transformers = pytest.importorskip('transformers')
    from convert_helpers import (DECODER_LAYERS, EMBED, ENCODER_LAYERS, FFN,
                                 HEADS, POINTS, QUERIES, perturb_,
                                 randomize_batch_norm_)
    from torchvision_reference import MapList, official_backbone_body
    from transformers.models.deformable_detr import \
        modeling_deformable_detr as hf_modeling

    config = transformers.DeformableDetrConfig(
        # Replaced below; only its 2048 output channels size the input
        # projection.
        backbone_config=transformers.ResNetConfig(
            embedding_size=8, hidden_sizes=[8, 8, 8, 2048],
            depths=[1, 1, 1, 1], layer_type='bottleneck',
            out_features=['stage4']),
        num_feature_levels=1, d_model=EMBED, encoder_layers=ENCODER_LAYERS,
        decoder_layers=DECODER_LAYERS, encoder_ffn_dim=FFN,
        decoder_ffn_dim=FFN, encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS, encoder_n_points=POINTS,
        decoder_n_points=POINTS, num_queries=QUERIES, num_labels=91,
        with_box_refine=False, two_stage=False)
    torch.manual_seed(0)
    reference = transformers.DeformableDetrForObjectDetection(config)
    perturb_(reference)
    body = official_backbone_body(dilation=True,
                                  return_layers={'layer4': '0'})
    randomize_batch_norm_(body)
    # The official Backbone freezes batch norm (DETR's FrozenBatchNorm2d);
    # HF's replace_batch_norm swaps in its copy of it, statistics kept.
    hf_modeling.replace_batch_norm(body)
    reference.model.backbone.model = MapList(body)
    return reference.eval(), body


def test_converted_official_dc5_model_predicts_the_same():
    """Official single-scale DC5 weights, converted, run with their config
    (its backbone: torchvision's DC5 layout, whose layer4.0 keeps dilation
    1) and predict what the official model does (1e-4)."""
    from convert_helpers import assert_predicts_like_hf, tiny_model
    reference, body = official_dc5_reference()
    official = official_from_hf(
        reference.state_dict(),
        {f'backbone.{k}': v for k, v in body.state_dict().items()})
    converted = convert_official_state_dict(official, dilation=True)
    assert converted.variant == 'single_scale_dc5'
    backbone = Config.fromfile(osp.join(
        REPO_ROOT, converted.config)).model.backbone.to_dict()
    backbone['init_cfg'] = None
    ours = tiny_model('plain', num_classes=80, conv_bias=True,
                      backbone=backbone, backbone_channels=[2048])
    ours.load_state_dict(converted.state_dict, strict=True)
    # float32 rounding through ResNet-50 leaves the reference 6e-5 (logits)
    # from its own float64 result; mmdet's ResNet dilating layer4.0 moves
    # the logits by 0.7.
    assert_predicts_like_hf(ours, reference, 'official single_scale_dc5',
                            atol=3e-4)
