"""Time multi-scale deformable attention on CPU, forward plus backward.

Three implementations run interleaved in one process on the same inputs:
the compiled kernel behind ``mmdet_detr.ops.multi_scale_deformable_attn``,
this project's PyTorch reference ``ms_deform_attn_pytorch``, and mmcv's
``multi_scale_deformable_attn_pytorch``. Defaults are the Deformable DETR
encoder: levels 64x64, 32x32, 16x16, 8x8 (S = 5440), every token a query,
each sampling a few pixels around its own position.

    nice -n 15 python tools/benchmark_attention.py --repeat 10
"""
import argparse
import os
import statistics
import time

import torch
from mmcv.ops.multi_scale_deform_attn import \
    multi_scale_deformable_attn_pytorch

from mmdet_detr.ops import (cpu_kernel_available, ms_deform_attn_pytorch,
                            multi_scale_deformable_attn)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=2, help='B')
    parser.add_argument('--queries', type=int, default=5440,
                        help='Q; when it equals S, query i sits at token i')
    parser.add_argument('--heads', type=int, default=8, help='M')
    parser.add_argument('--levels', type=int, default=4,
                        help='L, square maps of side 64, 32, 16, ...')
    parser.add_argument('--points', type=int, default=4, help='P')
    parser.add_argument('--channels', type=int, default=32,
                        help='D, channels per head')
    parser.add_argument('--repeat', type=int, default=5,
                        help='timed rounds after one warm-up round')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch default)')
    return parser.parse_args()


def make_inputs(B, Q, M, L, P, D, seed=0):
    """Encoder-like inputs: value, spatial_shapes, level_start_index,
    sampling_locations, attention_weights."""
    gen = torch.Generator().manual_seed(seed)
    sides = [64 >> level for level in range(L)]
    if min(sides) < 1:
        raise ValueError(f'--levels {L} halves 64 below one pixel; use at '
                         'most 7 levels')
    spatial_shapes = torch.tensor([(s, s) for s in sides])  # L, 2
    sizes = spatial_shapes.prod(1)  # L
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    S = int(sizes.sum())
    value = torch.randn(B, S, M, D, generator=gen)
    if Q == S:  # each query at the centre of its own token
        centres = [
            torch.stack(torch.meshgrid(
                (torch.arange(s) + 0.5) / s, (torch.arange(s) + 0.5) / s,
                indexing='xy'), dim=-1).view(-1, 2)  # H*W, 2 as (x, y)
            for s in sides
        ]
        reference_points = torch.cat(centres)  # Q, 2
    else:
        reference_points = torch.rand(Q, 2, generator=gen)  # Q, 2
    # Offsets of about two pixels of each level, as trained models use.
    pixel = 1.0 / torch.tensor(sides, dtype=torch.float).view(1, 1, 1, L, 1, 1)
    offsets = 2 * pixel * torch.randn(B, Q, M, L, P, 2, generator=gen)
    sampling_locations = reference_points.view(1, Q, 1, 1, 1, 2) + offsets
    attention_weights = torch.randn(B, Q, M, L * P, generator=gen)
    attention_weights = attention_weights.softmax(-1).view(B, Q, M, L, P)
    return (value, spatial_shapes, level_start_index, sampling_locations,
            attention_weights)


def time_forward_backward(fn, inputs, grad_output):
    """Seconds of fn's forward and of its backward, and fn's output."""
    value, spatial_shapes, level_start_index, locations, weights = inputs
    leaves = [t.detach().requires_grad_() for t in (value, locations, weights)]
    start = time.perf_counter()
    out = fn(leaves[0], spatial_shapes, level_start_index, leaves[1],
             leaves[2])
    middle = time.perf_counter()
    out.backward(grad_output)
    end = time.perf_counter()
    return middle - start, end - middle, out.detach()


def main():
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not cpu_kernel_available():
        raise SystemExit('mmdet_detr.ops._C is not built, so there is no '
                         'kernel to time; build it with `pip install '
                         '--no-build-isolation -e .`')
    inputs = make_inputs(args.batch, args.queries, args.heads, args.levels,
                         args.points, args.channels)
    grad_output = torch.randn(args.batch, args.queries,
                              args.heads * args.channels)
    candidates = {
        'kernel (mmdet_detr.ops._C)': multi_scale_deformable_attn,
        'reference (ms_deform_attn_pytorch)':
        lambda v, ss, lsi, loc, w: ms_deform_attn_pytorch(v, ss, loc, w),
        'mmcv multi_scale_deformable_attn_pytorch':
        lambda v, ss, lsi, loc, w: multi_scale_deformable_attn_pytorch(
            v, ss, loc, w),
    }
    print(f'B={args.batch} Q={args.queries} M={args.heads} L={args.levels} '
          f'P={args.points} D={args.channels} S={inputs[0].shape[1]}; '
          f'{torch.get_num_threads()} threads; load average '
          f'{os.getloadavg()[0]:.2f} before')
    outputs = {
        name: time_forward_backward(fn, inputs, grad_output)[2]
        for name, fn in candidates.items()  # warm-up round
    }
    names = list(candidates)
    error = (outputs[names[0]] - outputs[names[1]]).abs().max().item()
    print(f'max |kernel - reference| forward: {error:.2e}')
    times = {name: ([], []) for name in candidates}
    for _ in range(args.repeat):
        for name, fn in candidates.items():
            forward, backward, _ = time_forward_backward(
                fn, inputs, grad_output)
            times[name][0].append(forward)
            times[name][1].append(backward)
    medians = {
        name: (statistics.median(f), statistics.median(b),
               statistics.median(x + y for x, y in zip(f, b)))
        for name, (f, b) in times.items()
    }
    kernel_total = medians[names[0]][2]
    print(f'median of {args.repeat} rounds, milliseconds:')
    print(f'{"":42s} {"forward":>9s} {"backward":>9s} {"total":>9s} '
          f'{"total / kernel":>15s}')
    for name, (forward, backward, total) in medians.items():
        print(f'{name:42s} {forward * 1e3:9.1f} {backward * 1e3:9.1f} '
              f'{total * 1e3:9.1f} {total / kernel_total:15.2f}')
    print(f'load average {os.getloadavg()[0]:.2f} after')


if __name__ == '__main__':
    main()
