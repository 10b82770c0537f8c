"""Conversion of facebookresearch/detr's state dict layout.

The official layout is rebuilt here from its source (``models/detr.py``,
``transformer.py``, ``backbone.py``: torchvision's ResNet-50 under
``backbone.0.body`` with frozen batch norm, ``nn.MultiheadAttention``,
``linear1/2``, ``norm1..3``), independently of this project's modules.
"""
import argparse
import runpy
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from mmdet_detr.checkpoint.converters.coco_classes import COCO_CATEGORY_IDS
from mmdet_detr.checkpoint.converters.detr_official import (
    convert_official_detr, convert_official_detr_state_dict)
from mmdet_detr.checkpoint.loader import (ForeignCheckpointError,
                                          check_checkpoint_file)
from mmdet_detr.models.layers.transformer_decoder import \
    TransformerDecoderLayer
from mmdet_detr.models.layers.transformer_encoder import \
    TransformerEncoderLayer
from mmdet_detr.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
C, HEADS, FFN = 256, 8, 2048


def official_resnet50_body() -> dict:
    """Shapes of torchvision's ResNet-50 up to layer4, FrozenBatchNorm2d."""
    shapes = {'conv1.weight': (64, 3, 7, 7)}

    def bn(prefix, n):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{prefix}.{name}'] = (n, )

    bn('bn1', 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(
            zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for block in range(blocks):
            p = f'layer{stage}.{block}'
            shapes[f'{p}.conv1.weight'] = (planes, inplanes, 1, 1)
            bn(f'{p}.bn1', planes)
            shapes[f'{p}.conv2.weight'] = (planes, planes, 3, 3)
            bn(f'{p}.bn2', planes)
            shapes[f'{p}.conv3.weight'] = (planes * 4, planes, 1, 1)
            bn(f'{p}.bn3', planes * 4)
            if block == 0:
                shapes[f'{p}.downsample.0.weight'] = (planes * 4, inplanes,
                                                      1, 1)
                bn(f'{p}.downsample.1', planes * 4)
            inplanes = planes * 4
    return {f'backbone.0.body.{k}': v for k, v in shapes.items()}


def official_layer(decoder: bool) -> nn.Module:
    layer = nn.Module()
    layer.self_attn = nn.MultiheadAttention(C, HEADS)
    if decoder:
        layer.multihead_attn = nn.MultiheadAttention(C, HEADS)
    layer.linear1 = nn.Linear(C, FFN)
    layer.linear2 = nn.Linear(FFN, C)
    for i in range(1, 4 if decoder else 3):
        setattr(layer, f'norm{i}', nn.LayerNorm(C))
    return layer


def official_detr_state_dict(num_logits: int = 92) -> dict:
    """A random state dict in the layout of ``detr-r50-e632da11.pth``."""
    torch.manual_seed(0)
    shapes = official_resnet50_body()
    shapes.update({
        'input_proj.weight': (C, 2048, 1, 1), 'input_proj.bias': (C, ),
        'query_embed.weight': (100, C),
        'class_embed.weight': (num_logits, C),
        'class_embed.bias': (num_logits, ),
        'transformer.decoder.norm.weight': (C, ),
        'transformer.decoder.norm.bias': (C, ),
    })
    for i, (n, k) in enumerate([(C, C), (C, C), (C, 4)]):
        shapes[f'bbox_embed.layers.{i}.weight'] = (k, n)
        shapes[f'bbox_embed.layers.{i}.bias'] = (k, )
    for stack, decoder in (('encoder', False), ('decoder', True)):
        for i in range(6):
            for key, value in official_layer(decoder).state_dict().items():
                shapes[f'transformer.{stack}.layers.{i}.{key}'] = value.shape
    return {k: torch.randn(v) for k, v in shapes.items()}


def build(config: str):
    cfg = Config.fromfile(str(ROOT / 'configs' / config))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('config', ['detr_r50.py', 'detr_r50_dc5.py'])
def test_converted_random_state_dict_loads_without_missing_keys(config):
    official = official_detr_state_dict()
    result = convert_official_detr_state_dict(
        official, dilation=config.endswith('dc5.py'))
    assert result.config == f'configs/{config}'
    converted = result.state_dict
    model = build(config)
    result = model.load_state_dict(converted, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    ours = model.state_dict()
    assert set(ours) == set(converted)
    # Values land where they belong.
    torch.testing.assert_close(ours['query_embedding.weight'],
                               official['query_embed.weight'])
    torch.testing.assert_close(ours['neck.convs.0.conv.weight'],
                               official['input_proj.weight'])
    torch.testing.assert_close(
        ours['backbone.layer4.2.conv3.weight'],
        official['backbone.0.body.layer4.2.conv3.weight'])
    torch.testing.assert_close(ours['decoder.final_norm.bias'],
                               official['transformer.decoder.norm.bias'])
    torch.testing.assert_close(ours['bbox_head.reg_branch.4.weight'],
                               official['bbox_embed.layers.2.weight'])


def test_class_logits_follow_coco_category_ids():
    assert len(COCO_CATEGORY_IDS) == 80
    assert list(COCO_CATEGORY_IDS) == sorted(set(COCO_CATEGORY_IDS))
    assert COCO_CATEGORY_IDS[0] == 1 and COCO_CATEGORY_IDS[-1] == 90
    official = official_detr_state_dict()
    result = convert_official_detr_state_dict(official, dilation=False)
    assert len(result.dataset_meta['classes']) == 80
    converted = result.state_dict
    weight = converted['bbox_head.cls_branch.weight']
    bias = converted['bbox_head.cls_branch.bias']
    assert weight.shape == (81, C) and bias.shape == (81, )
    # person (id 1) -> 0, toothbrush (id 90) -> 79, no-object (row 91) -> 80
    for ours, theirs in ((0, 1), (11, 13), (79, 90), (80, 91)):
        torch.testing.assert_close(weight[ours],
                                   official['class_embed.weight'][theirs])
        torch.testing.assert_close(bias[ours],
                                   official['class_embed.bias'][theirs])
    kept = convert_official_detr_state_dict(official, dilation=False,
                                            map_classes=False)
    assert kept.state_dict['bbox_head.cls_branch.weight'].shape == (92, C)
    assert kept.dataset_meta is None


def test_layers_compute_what_the_official_layers_compute():
    """One encoder and one decoder layer, converted, against DETR's
    ``forward_post`` written out on the official modules."""
    torch.manual_seed(1)
    S, Q, B = 12, 5, 2
    src, pos = torch.randn(S, B, C), torch.randn(S, B, C)
    tgt, query_pos = torch.randn(Q, B, C), torch.randn(Q, B, C)
    mask = torch.zeros(B, S, dtype=torch.bool)
    mask[1, -4:] = True
    enc, dec = official_layer(False).eval(), official_layer(True).eval()
    for module in (enc, dec):
        for p in module.parameters():
            p.data.normal_(0, 0.2)

    q = k = src + pos
    out = enc.norm1(src + enc.self_attn(q, k, src, key_padding_mask=mask)[0])
    memory = enc.norm2(out + enc.linear2(enc.linear1(out).relu()))
    q = k = tgt + query_pos
    out = dec.norm1(tgt + dec.self_attn(q, k, tgt)[0])
    out = dec.norm2(out + dec.multihead_attn(
        out + query_pos, memory + pos, memory, key_padding_mask=mask)[0])
    expected = dec.norm3(out + dec.linear2(dec.linear1(out).relu()))

    state = {f'transformer.encoder.layers.0.{k}': v
             for k, v in enc.state_dict().items()}
    state.update({f'transformer.decoder.layers.0.{k}': v
                  for k, v in dec.state_dict().items()})
    converted = convert_official_detr_state_dict(state, variant='r50')
    converted = converted.state_dict
    ours_enc = TransformerEncoderLayer(C, HEADS, FFN, 0.0).eval()
    ours_dec = TransformerDecoderLayer(C, HEADS, FFN, 0.0).eval()
    for module, prefix in ((ours_enc, 'encoder.layers.0.'),
                           (ours_dec, 'decoder.layers.0.')):
        module.load_state_dict(
            {k[len(prefix):]: v for k, v in converted.items()
             if k.startswith(prefix)}, strict=True)
    with torch.no_grad():
        # Ours is batch-first: (S, B, C) -> (B, S, C).
        got_memory = ours_enc(src.transpose(0, 1), pos.transpose(0, 1), mask)
        got = ours_dec(tgt.transpose(0, 1), query_pos.transpose(0, 1),
                       got_memory, pos.transpose(0, 1), mask)
    torch.testing.assert_close(got_memory, memory.transpose(0, 1).detach(),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, expected.transpose(0, 1).detach(),
                               atol=1e-5, rtol=1e-5)


def test_checkpoint_file_says_dc5_and_foreign_keys_are_refused(tmp_path):
    official = {
        'query_embed.weight': torch.randn(3, C),
        'transformer.decoder.norm.weight': torch.randn(C),
        'class_embed.weight': torch.randn(92, C),
        'class_embed.bias': torch.randn(92),
    }
    src = tmp_path / 'detr-r50-dc5.pth'
    torch.save(dict(model=official, args=argparse.Namespace(dilation=True)),
               src)
    result = convert_official_detr(str(src))
    assert (result.variant, result.config) == ('r50_dc5',
                                               'configs/detr_r50_dc5.py')
    assert result.state_dict['bbox_head.cls_branch.bias'].shape == (81, )
    with pytest.raises(ValueError, match='does not match'):
        convert_official_detr(str(src), variant='r50')
    with pytest.raises(ValueError, match='--variant r50 or'):
        convert_official_detr_state_dict(official)
    prenorm = dict(official)
    prenorm['transformer.encoder.norm.weight'] = torch.ones(C)
    with pytest.raises(ValueError, match='transformer.encoder.norm.weight'):
        convert_official_detr_state_dict(prenorm, variant='r50')
    # Not 91 category ids (a fine-tuned model): the rows stay as they are.
    narrow = dict(official, **{'class_embed.weight': torch.randn(21, C),
                               'class_embed.bias': torch.randn(21)})
    kept = convert_official_detr_state_dict(narrow, variant='r50')
    assert kept.state_dict['bbox_head.cls_branch.bias'].shape == (21, )
    assert kept.dataset_meta is None


def test_convert_tool_reads_official_detr_files(tmp_path, monkeypatch,
                                                capsys):
    official = {
        'query_embed.weight': torch.randn(3, C),
        'transformer.decoder.norm.weight': torch.randn(C),
        'class_embed.weight': torch.randn(92, C),
        'class_embed.bias': torch.randn(92),
    }
    src, dst = tmp_path / 'detr-r50.pth', tmp_path / 'converted.pth'
    torch.save(dict(model=official, args=argparse.Namespace(dilation=False)),
               src)
    # Given to the tools unconverted, it is refused with the command.
    with pytest.raises(ForeignCheckpointError,
                       match=f'{dst.parent / "detr-r50_converted.pth"} '
                       '--from official-detr'):
        check_checkpoint_file(str(src))
    tool = str(Path(__file__).parents[1] / 'tools' / 'convert_checkpoint.py')
    monkeypatch.setattr(sys, 'argv', [
        tool, str(src), str(dst), '--from', 'official-detr'])
    runpy.run_path(tool, run_name='__main__')
    printed = capsys.readouterr().out
    assert 'variant r50' in printed
    assert f'python tools/test.py configs/detr_r50.py {dst}' in printed
    assert torch.load(dst)['state_dict'][
        'bbox_head.cls_branch.bias'].shape == (81, )
