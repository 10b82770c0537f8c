"""Parameters and FLOPs of a detector, per part.

    python tools/get_flops.py configs/deformable_detr_r50.py --size 800 1333

One image of H x W pixels, one forward pass with every decoder layer's
predictions; the deformable attention's sampling and weighting is counted
too (see mmdet_detr/benchmark/flops.py for the formula).
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.benchmark import (build_model_pair, count_flops,  # noqa: E402
                                  format_flops, synthetic_batch)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--size', type=int, nargs=2, default=[800, 1333],
                        metavar=('H', 'W'), help='input image size')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    model, _ = build_model_pair(cfg.model, compare_mmdet=False)
    num_classes = cfg.model['bbox_head']['num_classes']
    try:
        images, samples = synthetic_batch(1, tuple(args.size), num_classes)
    except ValueError as error:
        parser.error(str(error))
    print(f'{args.config}, one {args.size[0]}x{args.size[1]} image:')
    print(format_flops(count_flops(model, images, samples)))


if __name__ == '__main__':
    main()
