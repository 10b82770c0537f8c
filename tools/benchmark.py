"""Time a detector, and mmdet 3.3's equivalent, on CPU or GPU.

    python tools/benchmark.py configs/deformable_detr_r50.py --compare-mmdet
    python tools/benchmark.py configs/deformable_detr_r50.py --compare-backends

Training step (forward, backward, the config's optimizer), inference batch
and peak memory, with a per-part breakdown; or, with --compare-backends,
the inference batch in PyTorch (mmdet's and this project's), onnxruntime
and OpenVINO, float32 and int8; see mmdet_detr/benchmark/.
"""
import argparse
import json
import os.path as osp
import sys

import torch

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.benchmark import format_report, run_benchmark  # noqa: E402
from mmdet_detr.benchmark.backends import (  # noqa: E402
    format_backend_comparison, run_backend_comparison)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--size', type=int, default=512,
                        help='images are SIZE x SIZE pixels')
    parser.add_argument('--batch', type=int, default=2,
                        help='images per batch')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--steps', type=int, default=5,
                        help='timed rounds after one warm-up round')
    parser.add_argument('--compare-mmdet', action='store_true',
                        help="also time mmdet 3.3's model on the same "
                        'weights and inputs, interleaved')
    parser.add_argument('--compare-backends', action='store_true',
                        help='inference only, interleaved: mmdet, this '
                        'project in PyTorch, the exported file in '
                        'onnxruntime and OpenVINO, float32 and int8 (CPU)')
    parser.add_argument('--retain-freed-memory', action='store_true',
                        help='CPU: keep freed host memory for reuse, as '
                        'tools/train.py does without a GPU, for both models '
                        "(default: glibc's allocator as it is)")
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s '
                        'default, one per core)')
    parser.add_argument('--json', metavar='OUT',
                        help='also write the figures to OUT (JSON)')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    if args.json and osp.exists(args.json):
        parser.error(f'--json {args.json!r} exists; choose a new file name '
                     '(an existing file is never replaced)')
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f'--threads {args.threads}: at least 1')
            torch.set_num_threads(args.threads)
        if args.compare_backends:
            if args.device != 'cpu':
                raise ValueError('--compare-backends runs on the CPU; drop '
                                 '--device cuda')
            result = run_backend_comparison(args.config, args.size,
                                            args.batch, args.steps,
                                            args.threads)
            print(format_backend_comparison(result))
        else:
            result = run_benchmark(args.config, args.size, args.batch,
                                   args.device, args.steps,
                                   args.compare_mmdet,
                                   args.retain_freed_memory)
            print(format_report(result))
    except ValueError as error:
        parser.error(str(error))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
        print(f'figures written to {args.json}')


if __name__ == '__main__':
    main()
