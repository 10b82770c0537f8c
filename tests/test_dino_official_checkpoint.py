"""IDEA-Research/DINO checkpoints -> this project.

The official layout is written out here from its source
(``models/dino/dino.py``, ``models/dino/deformable_transformer.py``,
``config/DINO/DINO_4scale.py``), independently of the converter's rules:
torchvision's ResNet under ``backbone.0.body`` (frozen batch norm: no
counters), ``input_proj.l.{0,1}`` (convolution with bias, GroupNorm),
Deformable-DETR-named encoder and decoder layers (the decoder's ``norm2``
follows self-attention, ``norm1`` cross-attention), ``transformer.tgt_embed``,
``transformer.enc_output(_norm)``, ``transformer.enc_out_{class,bbox}_embed``,
``transformer.decoder.ref_point_head.layers.{0,1}`` and ``.norm``, one class
and box branch shared by every decoder layer (``dec_pred_*_embed_share``)
and saved under ``class_embed.i`` / ``bbox_embed.i`` and again under
``transformer.decoder.``, 91 category-id logits and ``label_enc`` with
91 + 1 rows.

The reference model is mmdet 3.3's DINO, the port whose outputs
``test_dino_parity.py`` matches, at 91 classes; its weights are written in
the official layout, converted, and our model must predict what it does.
"""
import argparse
import copy
import os.path as osp
import re

import pytest
import torch
from mmdet_twins import PERTURB, dino_config, make_batch
from mmengine.runner import load_checkpoint
from tool_helpers import run_tool

from mmdet_detr.benchmark import build_model_pair
from mmdet_detr.checkpoint.converters.coco_classes import COCO_CATEGORY_IDS
from mmdet_detr.checkpoint.converters.dino_official import \
    convert_official_dino_state_dict
from mmdet_detr.checkpoint.loader import (ForeignCheckpointError,
                                          check_checkpoint_file)
from mmdet_detr.checkpoint.sources import recognise
from mmdet_detr.engine import cli

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CATEGORY_IDS = 91
UNUSED_IDS = sorted(set(range(CATEGORY_IDS)) - set(COCO_CATEGORY_IDS))

# mmdet 3.3's DINO names -> the official ones.
MMDET_TO_OFFICIAL = [
    (r'^level_embed$', 'transformer.level_embed'),
    (r'^encoder\.layers\.(\d+)\.self_attn\.',
     r'transformer.encoder.layers.\1.self_attn.'),
    (r'^encoder\.layers\.(\d+)\.norms\.0\.',
     r'transformer.encoder.layers.\1.norm1.'),
    (r'^encoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.',
     r'transformer.encoder.layers.\1.linear1.'),
    (r'^encoder\.layers\.(\d+)\.ffn\.layers\.1\.',
     r'transformer.encoder.layers.\1.linear2.'),
    (r'^encoder\.layers\.(\d+)\.norms\.1\.',
     r'transformer.encoder.layers.\1.norm2.'),
    (r'^decoder\.layers\.(\d+)\.self_attn\.attn\.',
     r'transformer.decoder.layers.\1.self_attn.'),
    (r'^decoder\.layers\.(\d+)\.norms\.0\.',
     r'transformer.decoder.layers.\1.norm2.'),
    (r'^decoder\.layers\.(\d+)\.cross_attn\.',
     r'transformer.decoder.layers.\1.cross_attn.'),
    (r'^decoder\.layers\.(\d+)\.norms\.1\.',
     r'transformer.decoder.layers.\1.norm1.'),
    (r'^decoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.',
     r'transformer.decoder.layers.\1.linear1.'),
    (r'^decoder\.layers\.(\d+)\.ffn\.layers\.1\.',
     r'transformer.decoder.layers.\1.linear2.'),
    (r'^decoder\.layers\.(\d+)\.norms\.2\.',
     r'transformer.decoder.layers.\1.norm3.'),
    (r'^decoder\.ref_point_head\.', 'transformer.decoder.ref_point_head.'),
    (r'^decoder\.norm\.', 'transformer.decoder.norm.'),
    (r'^query_embedding\.', 'transformer.tgt_embed.'),
    (r'^memory_trans_fc\.', 'transformer.enc_output.'),
    (r'^memory_trans_norm\.', 'transformer.enc_output_norm.'),
]


def official_from_mmdet(state: dict, decoder_layers: int) -> dict:
    """The official DINO's ``checkpoint['model']`` holding the weights of
    mmdet's DINO ``state`` (whose decoder branches must all be equal, as
    the official ones are one module)."""
    official = {}
    for key, value in state.items():
        if key.startswith('backbone.'):
            if not key.endswith('num_batches_tracked'):
                official['backbone.0.body.' + key[len('backbone.'):]] = value
            continue
        m = re.match(r'^neck\.(convs|extra_convs)\.(\d+)\.(conv|gn)\.(.*)$',
                     key)
        if m:
            kind, level, part, rest = m.groups()
            if kind == 'extra_convs':
                level = f'extra{level}'
            official[f'input_proj.{level}.{int(part == "gn")}.{rest}'] = value
            continue
        m = re.match(r'^bbox_head\.(cls|reg)_branches\.(\d+)\.(.*)$', key)
        if m:
            kind, branch, rest = m.groups()
            branch = int(branch)
            if kind == 'reg':
                index, part = rest.split('.')
                rest = f'layers.{int(index) // 2}.{part}'
            name = 'class_embed' if kind == 'cls' else 'bbox_embed'
            if branch == decoder_layers:
                official[f'transformer.enc_out_{name}.{rest}'] = value
            else:
                official[f'{name}.{branch}.{rest}'] = value
                official[f'transformer.decoder.{name}.{branch}.{rest}'] = value
            continue
        if key == 'dn_query_generator.label_embedding.weight':
            # dn_labelbook_size + 1 rows; the last is never looked up.
            official['label_enc.weight'] = torch.cat(
                [value, torch.randn(1, value.shape[1])])
            continue
        for pattern, replacement in MMDET_TO_OFFICIAL:
            if re.match(pattern, key):
                official[re.sub(pattern, replacement, key)] = value
                break
        else:
            raise AssertionError(f'no official name for {key}')
    # The extra levels follow the backbone's in input_proj.
    levels = sum(1 for k in official
                 if re.match(r'^input_proj\.\d+\.0\.weight$', k))
    for key in [k for k in official if k.startswith('input_proj.extra')]:
        m = re.match(r'^input_proj\.extra(\d+)\.(.*)$', key)
        official[f'input_proj.{levels + int(m.group(1))}.{m.group(2)}'] = (
            official.pop(key))
    return official


def reference_config(num_classes: int) -> dict:
    """The parity test's DINO with the official convolution bias."""
    config = dino_config(dropout=0.0)
    config['neck']['bias'] = True
    config['bbox_head']['num_classes'] = num_classes
    return config


@pytest.fixture(scope='module')
def reference():
    """mmdet's DINO at 91 category-id classes, with one class and box
    branch for every decoder layer (the official sharing), and the 11
    unused ids never scored, as in the trained official models."""
    config = reference_config(CATEGORY_IDS)
    _, model = build_model_pair(config, compare_mmdet=True, perturb=PERTURB)
    head = model.bbox_head
    layers = config['decoder']['num_layers']
    with torch.no_grad():
        for i in range(1, layers):
            head.cls_branches[i].load_state_dict(
                head.cls_branches[0].state_dict())
            head.reg_branches[i].load_state_dict(
                head.reg_branches[0].state_dict())
        for branch in head.cls_branches:
            branch.bias[UNUSED_IDS] = -30.0
    return model.eval(), layers


@pytest.fixture(scope='module')
def official_file(reference, tmp_path_factory):
    model, layers = reference
    path = tmp_path_factory.mktemp('official') / 'checkpoint0011_4scale.pth'
    official = official_from_mmdet(model.state_dict(), layers)
    torch.save(dict(model=official, epoch=11,
                    args=argparse.Namespace(num_classes=CATEGORY_IDS)), path)
    return path, official


def predictions(model, num_classes: int):
    """Per image (scores, boxes, labels) and every layer's raw class
    scores and boxes, in eval mode."""
    inputs, samples = make_batch()
    with torch.no_grad():
        detections = model.predict(inputs, copy.deepcopy(samples))
        cls_scores, boxes = model._forward(inputs, copy.deepcopy(samples))
    assert cls_scores.shape[-1] == num_classes
    return [(d.pred_instances.scores, d.pred_instances.bboxes,
             d.pred_instances.labels) for d in detections], cls_scores, boxes


def test_converted_official_dino_predicts_the_same(reference, official_file,
                                                   tmp_path):
    model, _ = reference
    src, official = official_file
    expected, expected_scores, expected_boxes = predictions(
        model, CATEGORY_IDS)

    # Loaded as it is, it is refused with the command that converts it.
    assert recognise(dict(model=official)) == 'official-dino'
    with pytest.raises(ForeignCheckpointError,
                       match=f'{src.parent / "checkpoint0011_4scale"}'
                       '_converted.pth --from official-dino'):
        check_checkpoint_file(str(src))

    # The 80 classes: category ids -> mmdet's contiguous labels.
    dst = tmp_path / 'dino.pth'
    run_tool(['tools/convert_checkpoint.py', str(src), str(dst),
              '--from', 'official-dino'])
    ours, _ = build_model_pair(reference_config(80), compare_mmdet=False)
    checkpoint = load_checkpoint(ours, str(dst), strict=True)
    meta = checkpoint['meta']
    assert meta['config_file'] == 'configs/converted/dino_4scale_r50.py'
    assert len(meta['dataset_meta']['classes']) == 80
    got, got_scores, got_boxes = predictions(ours.eval(), 80)
    ids = torch.tensor(COCO_CATEGORY_IDS)
    torch.testing.assert_close(got_scores, expected_scores[..., ids],
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_boxes, expected_boxes, atol=1e-5,
                               rtol=1e-5)
    for (e_scores, e_boxes, e_labels), (scores, boxes, labels) in zip(
            expected, got):
        torch.testing.assert_close(scores, e_scores, atol=1e-5, rtol=0)
        torch.testing.assert_close(boxes, e_boxes, atol=1e-5 * 128,
                                   rtol=1e-5)
        assert torch.equal(ids[labels], e_labels)

    # --keep-classes: the 91 logits and label rows as they are.
    kept = convert_official_dino_state_dict(official, map_classes=False)
    assert kept.dataset_meta is None
    ours, _ = build_model_pair(reference_config(CATEGORY_IDS),
                               compare_mmdet=False)
    ours.load_state_dict(kept.state_dict, strict=True)
    torch.testing.assert_close(
        kept.state_dict['bbox_head.denoising.label_embedding.weight'],
        official['label_enc.weight'][:CATEGORY_IDS])
    got, got_scores, _ = predictions(ours.eval(), CATEGORY_IDS)
    torch.testing.assert_close(got_scores, expected_scores, atol=1e-5,
                               rtol=1e-5)
    for (e_scores, _, e_labels), (scores, _, labels) in zip(expected, got):
        torch.testing.assert_close(scores, e_scores, atol=1e-5, rtol=0)
        assert torch.equal(labels, e_labels)


def test_label_embedding_keeps_the_rows_of_the_80_classes(official_file):
    _, official = official_file
    converted = convert_official_dino_state_dict(official)
    torch.testing.assert_close(
        converted.state_dict['bbox_head.denoising.label_embedding.weight'],
        official['label_enc.weight'][COCO_CATEGORY_IDS])
    assert converted.variant == 'dino'


def _with(key, value_of):
    """The state dict with ``key`` set to ``value_of(state_dict)``."""
    return lambda official: {**official, key: value_of(official)}


REFUSED = {
    'untied decoder copy': (
        _with('transformer.decoder.bbox_embed.1.layers.0.bias',
              lambda sd: sd['bbox_embed.1.layers.0.bias'] + 1),
        ValueError, 'bbox_embed.1.layers.0.bias'),
    'five levels': (
        _with('transformer.level_embed', lambda sd: torch.zeros(5, 256)),
        ValueError, '5 feature levels'),
    'single-stage': (
        lambda sd: {k: v for k, v in sd.items()
                    if not k.startswith('transformer.enc_output.')},
        ValueError, "two_stage_type='no'"),
    'unknown key': (
        _with('transformer.pat_embed_for_2stage',
              lambda sd: torch.zeros(1, 256)),
        KeyError, 'pat_embed_for_2stage'),
}


@pytest.mark.parametrize('case', sorted(REFUSED))
def test_official_dino_files_that_do_not_fit_are_refused(case,
                                                         official_file):
    change, error, message = REFUSED[case]
    with pytest.raises(error, match=message):
        convert_official_dino_state_dict(change(official_file[1]))


def test_improved_variant_is_mmdet_only(official_file):
    with pytest.raises(ValueError, match='--variant dino_improved does not'):
        convert_official_dino_state_dict(official_file[1], 'dino_improved')


def test_published_layout_converts_into_the_converted_config():
    """The R50 4-scale model of config/DINO/DINO_4scale.py (900 queries,
    6 + 6 layers, FFN 2048) in the official layout loads into
    configs/converted/dino_4scale_r50.py, and its parameters, each shared
    module counted once, are the paper's 47M."""
    cfg = cli.load_config(
        osp.join(REPO_ROOT, 'configs', 'converted', 'dino_4scale_r50.py'),
        {'model.backbone.init_cfg': None})
    model = copy.deepcopy(cfg.model.to_dict())
    model['bbox_head']['num_classes'] = CATEGORY_IDS
    _, reference = build_model_pair(model, compare_mmdet=True)
    official = official_from_mmdet(reference.state_dict(), 6)
    assert official['transformer.tgt_embed.weight'].shape == (900, 256)
    assert official['label_enc.weight'].shape == (92, 256)
    assert official['input_proj.3.0.weight'].shape == (256, 2048, 3, 3)
    unique = sum(
        v.numel() for k, v in official.items()
        if not k.startswith('transformer.decoder.class_embed.') and
        not k.startswith('transformer.decoder.bbox_embed.') and
        not re.match(r'^(class|bbox)_embed\.[1-9]', k) and
        'running_' not in k)
    print(f"official DINO-4scale R50: {unique / 1e6:.2f}M parameters")
    assert round(unique / 1e6) == 47
    converted = convert_official_dino_state_dict(official)
    ours, _ = build_model_pair(cfg.model, compare_mmdet=False)
    ours.load_state_dict(converted.state_dict, strict=True)
