"""Export a model and time it in PyTorch, onnxruntime and OpenVINO side by
side: ``python tools/deploy/benchmark_backends.py CONFIG [--checkpoint F]``.

Without --checkpoint the model has its initial weights (timing does not
depend on them); prints the export time, each backend's largest
difference from PyTorch and its median time per forward pass.
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmdet_detr.deploy import (ATTENTION_FORMS, BACKENDS,  # noqa: E402
                               benchmark_backends)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Time a model in PyTorch and its exported file in '
        'onnxruntime and OpenVINO')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='weights (default: initial)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, nargs=2, default=(512, 512),
                        metavar=('H', 'W'))
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--threads', type=int,
                        help='threads of every backend (default: each '
                        "backend's own)")
    parser.add_argument('--attention', choices=ATTENTION_FORMS,
                        default='onnx')
    parser.add_argument('--backends', nargs='+', choices=BACKENDS,
                        default=list(BACKENDS))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main():
    args = parse_args()
    report = benchmark_backends(args.config, args.checkpoint, args.batch,
                                args.size, args.rounds, args.threads,
                                args.attention, args.backends,
                                args.cfg_options)
    h, w = args.size
    print(f'export: {report.export_seconds:.1f} s, '
          f'{report.size_mb:.0f} MB')
    print(f'{args.batch} x 3 x {h} x {w}, torch threads '
          f'{torch.get_num_threads()}, {args.rounds} rounds')
    print(f'{"backend":<12} {"median s":>9} {"vs pytorch":>10}  '
          'max score / box difference')
    base = report.timings['pytorch'].median
    for name, timing in report.timings.items():
        diff = timing.difference
        shown = ('' if diff is None else
                 f'{diff.max_score:.1e} / {diff.max_box:.1e} px')
        print(f'{name:<12} {timing.median:>9.3f} '
              f'{base / timing.median:>9.2f}x  {shown}')


if __name__ == '__main__':
    main()
