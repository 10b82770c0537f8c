"""Every config under configs/ builds its model and runs a forward pass."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdet_detr.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py')
                 if '_base_' not in p.parts)


def test_every_top_level_config_is_found():
    names = {p.name for p in CONFIGS}
    assert {'deformable_detr_r50.py', 'deformable_detr_refine_r50.py',
            'deformable_detr_refine_twostage_r50.py',
            'deformable_detr_single_scale_r50.py',
            'deformable_detr_single_scale_dc5_r50.py', 'detr_r50.py',
            'detr_r50_150e.py', 'detr_r50_dc5.py', 'deformable_detr_shapes.py',
            'detr_shapes.py', 'dino_4scale_r50_12e.py',
            'dino_4scale_r50_24e.py', 'dino_shapes.py'} <= names


@pytest.mark.parametrize('path', CONFIGS,
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_config_builds_and_runs(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmdet_detr'
    # No downloads here: the real configs point at torchvision weights.
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        model = MODELS.build(cfg.model)
    model.eval()
    # DINO's R50 selects 900 proposals: the input must give that many tokens.
    size = (192, 256) if cfg.model.num_queries > 400 else (128, 160)
    with torch.no_grad():
        logits, boxes = model._forward(torch.randn(1, 3, *size))
    num_layers = cfg.model.decoder.num_layers
    assert logits.shape[:2] == (num_layers, 1)
    # A softmax head (DETR) adds the no-object logit.
    no_object = int(cfg.model.bbox_head.type == 'DETRHead')
    assert logits.shape[-1] == cfg.model.bbox_head.num_classes + no_object
    assert boxes.shape[-1] == 4 and torch.isfinite(boxes).all()


@pytest.mark.parametrize('config', ['tiny_deformable_detr.py', 'tiny_detr.py',
                                    'tiny_dino.py'])
def test_derived_value_in_a_part_config_is_refused(config):
    cfg = Config.fromfile(str(ROOT / 'tests' / 'configs' / config))
    cfg.model.encoder.embed_dims = 64
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        with pytest.raises(ValueError,
                           match=r"model.encoder sets \['embed_dims'\], which "
                           r'the detector derives \(model.embed_dims'):
            MODELS.build(cfg.model)
