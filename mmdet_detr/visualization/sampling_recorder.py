"""Record where multi-scale deformable attention samples.

Symbols: B batch, Q queries (or encoder tokens), L levels, M heads,
P points per head and level.
"""
from typing import Dict, NamedTuple

from torch import Tensor, nn

from mmdet_detr.models.layers.ms_deform_attn import \
    MultiScaleDeformableAttention


class SamplingRecord(NamedTuple):
    """What one attention module sampled in its last forward (on the CPU).

    reference_points: (B, Q, L, 2) ``(x, y)`` or (B, Q, L, 4) boxes.
    locations: (B, Q, M, L, P, 2) ``(x, y)``.
    weights: (B, Q, M, L, P), summing to 1 over L and P for each head.
    spatial_shapes: (L, 2) ``(H_l, W_l)``.

    Coordinates are normalised to each level's padded feature map, the
    frame of the attention kernel: ``x = 0`` and ``x = 1`` are the left and
    right edges of the padded batch input.
    """
    reference_points: Tensor
    locations: Tensor
    weights: Tensor
    spatial_shapes: Tensor


class SamplingRecorder:
    """Within ``with SamplingRecorder(model) as rec:``, every
    :class:`MultiScaleDeformableAttention` of ``model`` reports the tensors
    it hands the kernel; ``rec.records`` maps module names (e.g.
    ``'decoder.layers.2.cross_attn'``) to the :class:`SamplingRecord` of
    their last forward.

    It uses the module's ``sampling_observer`` attribute, so nothing is
    recomputed: the recorded points are the ones sampled.
    """

    def __init__(self, model: nn.Module) -> None:
        self.modules: Dict[str, MultiScaleDeformableAttention] = {
            name: module
            for name, module in model.named_modules()
            if isinstance(module, MultiScaleDeformableAttention)
        }
        if not self.modules:
            raise ValueError(
                f'{type(model).__name__} has no multi-scale deformable '
                'attention, so there are no sampling points to record')
        self.records: Dict[str, SamplingRecord] = {}

    def __enter__(self) -> 'SamplingRecorder':
        for name, module in self.modules.items():
            if module.sampling_observer is not None:
                raise RuntimeError(
                    f'{name} already has a sampling_observer: recorders '
                    'cannot be nested')
        for name, module in self.modules.items():
            module.sampling_observer = self._observer(name)
        return self

    def __exit__(self, *exc_info) -> None:
        for module in self.modules.values():
            module.sampling_observer = None

    def _observer(self, name: str):

        def record(reference_points: Tensor, locations: Tensor,
                   weights: Tensor, spatial_shapes: Tensor) -> None:
            self.records[name] = SamplingRecord(
                reference_points.detach().float().cpu(),
                locations.detach().float().cpu(),
                weights.detach().float().cpu(),
                spatial_shapes.detach().cpu())

        return record
