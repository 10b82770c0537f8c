"""A ResNet whose dilated stages follow torchvision's
``replace_stride_with_dilation``.

The official DETR and Deformable DETR build their backbone with
``torchvision.models.resnet50(replace_stride_with_dilation=[False, False,
dilation])``. In a stage whose stride is replaced by dilation, torchvision's
``ResNet._make_layer`` gives the first block the *previous* stage's dilation
and only the later blocks the new one: for DC5, ``layer4.0.conv2`` is a 3x3
convolution with dilation 1 and padding 1, ``layer4.1`` and ``layer4.2``
have dilation 2. mmdet's ``ResNet`` (``dilations=(1, 1, 1, 2)``) dilates
every block of the stage, the first included, so the published DC5 weights
compute something else in it.
"""
from typing import Sequence

from mmdet.models.backbones import ResNet
from mmdet.models.backbones.resnet import Bottleneck
from mmdet.models.layers import ResLayer

from mmdet_detr.registry import MODELS


def check_torchvision_layout(depth: int, num_stages: int,
                             strides: Sequence[int],
                             dilations: Sequence[int], style: str) -> None:
    """Refuse settings that torchvision's ResNet cannot express.

    Stage 1 has stride 1 and dilation 1; each later stage either strides by
    2 and keeps the previous stage's dilation, or replaces the stride with
    dilation (stride 1, twice the previous dilation).
    """
    if not len(strides) == len(dilations) == num_stages:
        raise ValueError(f'strides {tuple(strides)} and dilations '
                         f'{tuple(dilations)} must have one entry per stage '
                         f'(num_stages={num_stages})')
    if style != 'pytorch':
        raise ValueError(
            f"style={style!r}: torchvision strides the 3x3 convolution, as "
            "style='pytorch' does; use mmdet's ResNet for the caffe style")
    if tuple(strides[:1]) != (1, ) or tuple(dilations[:1]) != (1, ):
        raise ValueError(
            f'stage 1 has stride {strides[0]} and dilation {dilations[0]}; '
            'torchvision keeps both at 1 (the stem already strides by 4)')
    for i in range(1, len(strides)):
        previous = dilations[i - 1]
        if (strides[i], dilations[i]) not in ((2, previous),
                                              (1, 2 * previous)):
            raise ValueError(
                f'strides {tuple(strides)} and dilations {tuple(dilations)} '
                f'are not a torchvision layout: stage {i + 1} must either '
                f'have stride 2 and keep dilation {previous}, or replace '
                f'the stride with dilation (stride 1, dilation '
                f'{2 * previous}). DC5 is strides=(1, 2, 2, 1), '
                'dilations=(1, 1, 1, 2)')
    if depth not in ResNet.arch_settings:
        raise ValueError(f'depth {depth}: mmdet\'s ResNet has depths '
                         f'{sorted(ResNet.arch_settings)}')
    if ResNet.arch_settings[depth][0] is not Bottleneck and max(
            dilations) > 1:
        raise ValueError(
            f'depth {depth}: torchvision dilates bottleneck blocks only '
            '(depth 50, 101 or 152); its BasicBlock refuses dilation > 1')


@MODELS.register_module()
class TorchvisionDilationResNet(ResNet):
    """mmdet's ``ResNet`` in which the first block of a dilated stage keeps
    the previous stage's dilation, as torchvision's does.

    Why: the official DETR-DC5 and Deformable DETR single-scale DC5 weights
    were trained with torchvision's ``ResNet`` (``_make_layer`` passes
    ``previous_dilation`` to the first block of a stage), so only this
    layout reproduces their outputs. Parameter names and shapes are those of
    mmdet's ``ResNet`` (dilation changes none), so converted checkpoints and
    ``torchvision://resnet50`` load as they do there.

    Args:
        depth, num_stages, strides, dilations, style: as mmdet's
            ``ResNet``; ``strides`` and ``dilations`` must be a layout
            torchvision can express (see ``check_torchvision_layout``),
            e.g. DC5: ``strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)``.
        **kwargs: mmdet's ``ResNet``'s other arguments, passed on to its
            named parameters (a misspelled one is a TypeError there).

    Shapes: (B, 3, H, W) images in; one (B, C_i, H / s_i, W / s_i) map per
    ``out_indices`` entry out, s_i the product of the stem's 4 and the
    strides up to stage i (16 for the last stage of DC5, 32 without).
    """

    def __init__(self,
                 depth: int,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 style: str = 'pytorch',
                 **kwargs) -> None:
        check_torchvision_layout(depth, num_stages, strides, dilations, style)
        super().__init__(depth=depth, num_stages=num_stages, strides=strides,
                         dilations=dilations, style=style, **kwargs)

    def make_res_layer(self, **kwargs) -> ResLayer:
        """Stage ``i``'s blocks: the first with the dilation of stage
        ``i - 1`` (1 for the first stage), the others with ``dilation``."""
        # mmdet's ResNet builds stage i with planes = base_channels * 2**i.
        stage = (kwargs['planes'] // self.base_channels).bit_length() - 1
        first_dilation = self.dilations[stage - 1] if stage > 0 else 1
        num_blocks = kwargs['num_blocks']
        layer = ResLayer(**dict(kwargs, num_blocks=1,
                                dilation=first_dilation))
        if num_blocks > 1:
            # Input width equal to the output width and stride 1: no
            # downsample branch, as in the later blocks of mmdet's ResLayer.
            layer.extend(ResLayer(**dict(
                kwargs,
                inplanes=kwargs['planes'] * kwargs['block'].expansion,
                num_blocks=num_blocks - 1,
                stride=1)))
        return layer
