"""Mixed precision: a few bfloat16 autocast training steps of a tiny model.

The losses stay finite, and where precision decides the result, float32 is
kept: the sampling locations, attention weights and reference points of
every deformable attention, and the matching costs.
"""
import copy
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmdet_detr.engine  # noqa: F401  (registers the optim wrapper)
from mmdet_detr.benchmark import build_model_pair, synthetic_batch
from mmdet_detr.models.layers import ms_deform_attn
from mmdet_detr.models.layers.ms_deform_attn import \
    MultiScaleDeformableAttention

# (config, model settings over it)
VARIANTS = {
    'plain': ('tests/configs/tiny_deformable_detr.py', dict()),
    'refine_twostage': ('tests/configs/tiny_deformable_detr.py',
                        dict(with_box_refine=True, as_two_stage=True)),
    'dino': ('tests/configs/tiny_dino.py', dict()),
}


@pytest.mark.parametrize('name', list(VARIANTS))
def test_bf16_autocast_trains_with_float32_locations_and_costs(
        name, monkeypatch):
    config, settings = VARIANTS[name]
    cfg = Config.fromfile(config)
    model, _ = build_model_pair({**cfg.model, **settings},
                                compare_mmdet=False)
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        wrapper = build_optim_wrapper(
            model,
            dict(type='BF16AutocastOptimWrapper',
                 optimizer=dict(type='AdamW', lr=1e-4),
                 clip_grad=dict(max_norm=0.1, norm_type=2)))
    images, samples = synthetic_batch(2, (64, 96), num_classes=4,
                                      boxes_per_image=3)
    dtypes = {'value': set(), 'locations': set(), 'weights': set(),
              'reference_points': set(), 'costs': set()}
    kernel = ms_deform_attn.multi_scale_deformable_attn

    def recording_kernel(value, spatial_shapes, level_start_index,
                         locations, weights, im2col_step,
                         value_padding_mask):
        dtypes['value'].add(value.dtype)
        dtypes['locations'].add(locations.dtype)
        dtypes['weights'].add(weights.dtype)
        return kernel(value, spatial_shapes, level_start_index, locations,
                      weights, im2col_step, value_padding_mask)

    monkeypatch.setattr(ms_deform_attn, 'multi_scale_deformable_attn',
                        recording_kernel)
    for module in model.modules():
        if isinstance(module, MultiScaleDeformableAttention):
            module.register_forward_pre_hook(
                lambda m, args: dtypes['reference_points'].add(args[3].dtype))
    assigner = model.bbox_head.assigner
    cost = assigner._cost
    monkeypatch.setattr(
        assigner, '_cost', lambda *args: _record(cost(*args), dtypes))
    model.train()
    for _ in range(3):
        with wrapper.optim_context(model):
            losses = model.loss(images, copy.deepcopy(samples))
        total = sum(losses.values())
        assert math.isfinite(total.item()), losses
        wrapper.update_params(total)
    # Autocast was on: the projected values reached the kernel in bfloat16.
    assert dtypes['value'] == {torch.bfloat16}
    for key in ('locations', 'weights', 'reference_points', 'costs'):
        assert dtypes[key] == {torch.float32}, (key, dtypes[key])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _record(costs, dtypes):
    dtypes['costs'].add(costs.dtype)
    return costs
