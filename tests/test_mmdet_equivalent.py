"""Every shipped config has an mmdet 3.3 twin of the same size: the one
config translation that the benchmark's ``--compare-mmdet`` and the parity
tests use."""
import glob
import os.path as osp

import pytest
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdet_detr.benchmark.mmdet_equivalent import (MMDET_TWINS,
                                                   mmdet_model_config)
from mmdet_detr.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(path, REPO_ROOT)
    for path in glob.glob(osp.join(REPO_ROOT, 'configs', '*.py')))


def _parameter_shapes(model):
    return sorted(tuple(p.shape) for p in model.parameters())


@pytest.mark.parametrize('config', CONFIGS)
def test_twin_has_the_same_parameters(config):
    model = Config.fromfile(osp.join(REPO_ROOT, config)).model.to_dict()
    assert model['type'] in MMDET_TWINS
    model['backbone']['init_cfg'] = None
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        ours = MODELS.build(model)
    with DefaultScope.overwrite_default_scope('mmdet'):
        twin = MMDET_MODELS.build(mmdet_model_config(model))
    assert type(twin).__module__.startswith('mmdet.models.detectors')
    assert type(twin.backbone) is type(ours.backbone)
    assert _parameter_shapes(twin) == _parameter_shapes(ours)


def test_unmapped_type_is_named():
    with pytest.raises(ValueError, match="model.type='YOLOX'.*'DETR'"):
        mmdet_model_config(dict(type='YOLOX'))
