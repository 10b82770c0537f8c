"""Parameters and FLOPs of a detector, per part.

torch's ``FlopCounterMode`` counts the matrix products and convolutions
(2 FLOPs per multiply-add) of every module. It cannot see multi-scale
deformable attention's sampling, which runs in a compiled kernel (or in
``grid_sample``, which the common counters skip with a warning), so a hook on
every ``MultiScaleDeformableAttention`` adds it: each of the B * Q * M * L * P
sampling points reads 4 corners of D channels (4 D multiply-adds) and adds
them into the output with its weight (D multiply-adds), 10 * D FLOPs. The
corner weights themselves (a few FLOPs per point, independent of D) are left
out, like the element-wise work everywhere else.

Symbols: B batch, Q queries, M heads, L levels, P points, D channels per
head.
"""
from collections import defaultdict
from typing import Dict, List

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mmdet_detr.models.layers.ms_deform_attn import \
    MultiScaleDeformableAttention

# Parts of the detector in forward order, by attribute name.
PARTS = ('backbone', 'neck', 'encoder', 'decoder', 'bbox_head')


def deformable_sampling_flops(module: MultiScaleDeformableAttention,
                              query: torch.Tensor) -> int:
    """FLOPs of bilinear sampling and weighting for a (B, Q, C) query."""
    B, Q, C = query.shape
    D = C // module.num_heads
    return 10 * B * Q * module.num_heads * module.num_levels * \
        module.num_points * D


def count_flops(model: nn.Module, images: torch.Tensor,
                samples: List) -> Dict[str, Dict[str, int]]:
    """Per part: ``params``, ``flops`` (all of one forward pass of
    ``images`` in tensor mode, every decoder layer's predictions included)
    and ``sampling_flops`` (the deformable attention's part of ``flops``).

    Parts are :data:`PARTS` plus ``other`` (positional encoding, query
    selection, two-stage proposals) and ``total``.
    """
    sampling: Dict[str, int] = defaultdict(int)
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, MultiScaleDeformableAttention):
            part = name.split('.')[0]

            def hook(module, args, output, part=part):
                sampling[part] += deformable_sampling_flops(module, args[0])

            handles.append(module.register_forward_hook(hook))
    model.eval()
    try:
        # Without no_grad: its module tracker needs the autograd graph.
        with FlopCounterMode(display=False) as counter:
            model._forward(images, samples)
    finally:
        for handle in handles:
            handle.remove()
    # ``_forward`` is not a module call, so the counter names each part by
    # its class.
    by_module = counter.get_flop_counts()
    result = {}
    for part in PARTS:
        name = type(getattr(model, part)).__name__
        flops = sum(by_module.get(name, {}).values())
        result[part] = dict(
            params=sum(p.numel() for p in getattr(model, part).parameters()),
            flops=flops + sampling[part],
            sampling_flops=sampling[part])
    total_params = sum(p.numel() for p in model.parameters())
    total_flops = counter.get_total_flops() + sum(sampling.values())
    result['other'] = dict(
        params=total_params - sum(r['params'] for r in result.values()),
        flops=total_flops - sum(r['flops'] for r in result.values()),
        sampling_flops=0)
    result['total'] = dict(params=total_params, flops=total_flops,
                           sampling_flops=sum(sampling.values()))
    return result


def format_flops(result: Dict[str, Dict[str, int]]) -> str:
    """The table printed by ``tools/get_flops.py``."""
    lines = [f"{'part':12s}{'params (M)':>12s}{'GFLOPs':>10s}"
             f"{'of which deformable sampling':>30s}"]
    for part, row in result.items():
        lines.append(f"{part:12s}{row['params'] / 1e6:12.3f}"
                     f"{row['flops'] / 1e9:10.3f}"
                     f"{row['sampling_flops'] / 1e9:30.3f}")
    return '\n'.join(lines)
