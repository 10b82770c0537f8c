"""Time the custom attention node in onnxruntime and OpenVINO against the
same attention in standard ONNX ops (GridSample) and the torch kernel.

The Deformable DETR R50 shapes on a 512 x 512 image (B 2, levels 64x64 to
8x8, M 8, D 32, P 4): the encoder (Q = S = 5440) and the decoder (Q = 300),
all variants interleaved in one run. Each variant prints the median and the
best of its calls; the ratios use the best, the call least disturbed by
other work on the machine.

    nice -n 15 python tools/deploy/benchmark_custom_op.py --repeat 10
"""
import argparse

import torch

from mmdet_detr.deploy.custom_op.benchmark import (DECODER, ENCODER,
                                                   attention_calls,
                                                   attention_inputs, best_ms,
                                                   median_ms, time_interleaved)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runtimes', nargs='+',
                        default=['onnxruntime', 'openvino'],
                        choices=['onnxruntime', 'openvino'])
    parser.add_argument('--repeat', type=int, default=10,
                        help='timed rounds after one warm-up round')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='threads of torch and of each runtime')
    return parser.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(f'{args.threads} threads, {args.repeat} calls of each variant')
    for shape in (ENCODER, DECODER):
        feed = attention_inputs(shape)
        calls = attention_calls(feed, args.runtimes, args.threads)
        seconds = time_interleaved(calls, args.repeat)
        median, best = median_ms(seconds), best_ms(seconds)
        Q = feed['sampling_locations'].shape[1]
        print(f'\n{shape.name} (B {shape.batch}, Q {Q}, S '
              f'{feed["value"].shape[1]}):')
        print(f'  {"":24s} {"median":>9s} {"best":>9s} (ms)')
        for name in seconds:
            print(f'  {name:24s} {median[name]:9.2f} {best[name]:9.2f}')
        torch_ms = best['torch kernel']
        for runtime in args.runtimes:
            custom = best[f'{runtime} custom']
            grid = best[f'{runtime} gridsample']
            print(f'  {runtime}: gridsample / custom {grid / custom:.2f}x, '
                  f'custom / torch kernel {custom / torch_ms:.2f}x')


if __name__ == '__main__':
    main()
