"""``TorchvisionDilationResNet`` against torchvision's ResNet-50, the
backbone of the official DETR and Deformable DETR
(tests/torchvision_reference.py runs torchvision's released code).

Both get the same random weights, with batch-norm scales, shifts and running
statistics away from their initial values, and are compared in eval mode.
mmdet's plain ``ResNet`` with the same strides and dilations differs in the
dilated stage, which is why the DC5 configs use the new backbone.
"""
from pathlib import Path

import pytest
import torch
from convert_helpers import randomize_batch_norm_
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn
from torchvision_reference import torchvision_models

from mmdet_detr.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
# torchvision's replace_stride_with_dilation (stages 2..4) -> mmdet's
# (strides, dilations) of stages 1..4.
LAYOUTS = {
    (False, False, False): ((1, 2, 2, 2), (1, 1, 1, 1)),
    (False, False, True): ((1, 2, 2, 1), (1, 1, 1, 2)),  # DC5
    (False, True, True): ((1, 2, 1, 1), (1, 1, 2, 4)),
}
DC5 = (False, False, True)
ALL_STAGES = {f'layer{i + 1}': str(i) for i in range(4)}
DC5_CONFIGS = ['configs/detr_r50_dc5.py',
               'configs/deformable_detr_single_scale_dc5_r50.py',
               'configs/converted/deformable_detr_single_scale_dc5_r50.py']


def build_backbone(cfg: dict) -> nn.Module:
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        model = MODELS.build(dict(cfg, init_cfg=None))
    model.eval()  # mmdet's ResNet.train returns None
    return model


def ours(layout, backbone_type='TorchvisionDilationResNet',
         out_indices=(0, 1, 2, 3)) -> nn.Module:
    strides, dilations = LAYOUTS[layout]
    return build_backbone(
        dict(type=backbone_type, depth=50, strides=strides,
             dilations=dilations, out_indices=out_indices))


def torchvision_resnet50(layout) -> nn.Module:
    return torchvision_models().resnet.resnet50(
        weights=None, replace_stride_with_dilation=list(layout))


def torchvision_body(layout, return_layers) -> nn.Module:
    """torchvision's ResNet-50 under its ``IntermediateLayerGetter``, as
    the official repositories wrap it, random (``randomize_batch_norm_``),
    in eval mode."""
    torch.manual_seed(0)
    body = torchvision_models().utils.IntermediateLayerGetter(
        torchvision_resnet50(layout), return_layers)
    randomize_batch_norm_(body)
    return body


def images() -> torch.Tensor:
    return torch.randn(1, 3, 64, 96,
                       generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope='module')
def dc5_body():
    return torchvision_body(DC5, ALL_STAGES)


def test_torchvision_keeps_the_first_dilated_block_undilated():
    """The oracle itself: torchvision's DC5 ResNet-50 gives layer4.0's 3x3
    dilation 1 (stride 1, padding 1) and the later blocks dilation 2."""
    assert torchvision_models().version == '0.28.0'
    with torch.device('meta'):
        first, *later = torchvision_resnet50(DC5).layer4
    assert (first.conv2.stride, first.conv2.padding,
            first.conv2.dilation) == ((1, 1), (1, 1), (1, 1))
    assert later and all(b.conv2.dilation == (2, 2) for b in later)


@pytest.mark.parametrize('layout', list(LAYOUTS), ids=str)
def test_every_convolution_has_torchvision_geometry(layout):
    """Stride, padding and dilation of each convolution, by name."""
    with torch.device('meta'):
        reference = dict(torchvision_resnet50(layout).named_modules())
        convs = [(name, m) for name, m in ours(layout).named_modules()
                 if isinstance(m, nn.Conv2d)]
    assert len(convs) == 53  # the stem, 16 blocks of 3, 4 downsamples
    for name, conv in convs:
        expected = reference[name]
        assert (conv.stride, conv.padding, conv.dilation) == (
            expected.stride, expected.padding, expected.dilation), name


def test_dc5_matches_torchvision_and_mmdet_resnet_does_not(dc5_body):
    state = dc5_body.state_dict()
    with torch.no_grad():
        expected = list(dc5_body(images()).values())
    # Strides 4, 8, 16 and 16: the last stage is dilated, not strided.
    assert [tuple(m.shape[-2:]) for m in expected] == [(16, 24), (8, 12),
                                                       (4, 6), (4, 6)]
    for backbone_type in ('TorchvisionDilationResNet', 'ResNet'):
        model = ours(DC5, backbone_type)
        # torchvision's names and shapes (fc is not in the body).
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            maps = model(images())
        errors = [float((a - b).abs().max()) for a, b in zip(maps, expected)]
        print(f'{backbone_type} vs torchvision DC5: max |difference| per '
              f'stage {errors}; max |map| '
              f'{[float(m.abs().max()) for m in expected]}')
        if backbone_type == 'TorchvisionDilationResNet':
            for a, b in zip(maps, expected):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        else:
            # Stages 1-3 agree; mmdet also dilates layer4.0, and the last
            # map differs by the order of its own size.
            assert max(errors[:3]) <= 1e-5
            assert errors[3] > 0.1 * float(expected[3].abs().max())


@pytest.mark.parametrize('config', DC5_CONFIGS)
def test_dc5_configs_compute_torchvision_dc5(config, dc5_body):
    """The backbone a DC5 config builds computes torchvision's DC5 map."""
    cfg = Config.fromfile(str(ROOT / config)).model.backbone
    assert cfg.out_indices == (3, )
    model = build_backbone(cfg.to_dict())
    model.load_state_dict(dc5_body.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(images())[0],
                                   dc5_body(images())['3'], atol=1e-5,
                                   rtol=1e-5)


def test_two_dilated_stages_match_torchvision():
    """layer4's first block keeps layer3's dilation 2, the others 4."""
    layout = (False, True, True)
    body = torchvision_body(layout, {'layer4': '3'})
    model = ours(layout, out_indices=(3, ))
    model.load_state_dict(body.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(images())[0], body(images())['3'],
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('settings, message', [
    (dict(strides=(1, 2, 2, 2), dilations=(1, 1, 1, 2)),
     r'stage 4 must either have stride 2 and keep dilation 1, or replace '
     r'the stride with dilation \(stride 1, dilation 2\)'),
    (dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 2)),
     'stage 4 must either have stride 2 and keep dilation 2'),
    (dict(strides=(2, 2, 2, 2)), 'stage 1 has stride 2 and dilation 1'),
    (dict(strides=(1, 2, 2), dilations=(1, 1, 1, 2)),
     r'must have one entry per stage \(num_stages=4\)'),
    (dict(num_stages=3), r'must have one entry per stage \(num_stages=3\)'),
    (dict(depth=42), r"depth 42: mmdet's ResNet has depths \[18, 34, 50"),
    (dict(style='caffe'), "style='caffe'"),
    (dict(depth=18, strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)),
     'depth 18: torchvision dilates bottleneck blocks only'),
])
def test_layouts_torchvision_cannot_express_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        build_backbone(dict(dict(type='TorchvisionDilationResNet', depth=50),
                            **settings))


@pytest.mark.parametrize('depth', [18, 50])
def test_without_dilation_it_is_mmdet_resnet(depth):
    """Undilated, nothing changes: the same modules and outputs as mmdet's
    ``ResNet`` on the same weights."""
    cfg = dict(depth=depth, out_indices=(0, 1, 2, 3))
    torch.manual_seed(0)
    theirs = build_backbone(dict(cfg, type='ResNet'))
    model = build_backbone(dict(cfg, type='TorchvisionDilationResNet'))
    assert repr(model).replace('TorchvisionDilationResNet',
                               'ResNet') == repr(theirs)
    model.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        for a, b in zip(model(images()), theirs(images())):
            assert torch.equal(a, b)
