"""Draw where deformable attention samples (Deformable DETR, fig. 6):
``python tools/visualize_sampling.py CONFIG CHECKPOINT IMAGE --out F.png``.

For the chosen decoder queries (by default the --top-k best-scoring), the
predicted box, the reference point and every sampling point of every head
on every level, coloured by attention weight; then the same for the
encoder token at --pixel (by default the centre of the first query's box).
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.apis import Detector, check_new_output  # noqa: E402
from mmdet_detr.visualization.drawing import save_figure  # noqa: E402
from mmdet_detr.visualization.sampling_points import \
    visualize_sampling  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description='Draw the sampling points of deformable attention')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', required=True, help='the PNG to write')
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        '--query', type=int, nargs='+', metavar='K',
        help='decoder query indices to draw (0-based)')
    which.add_argument(
        '--top-k', type=int, default=3,
        help='draw the N best-scoring queries (default 3)')
    parser.add_argument(
        '--layer', type=int, default=-1,
        help='decoder layer, 0-based (default -1: the last)')
    parser.add_argument(
        '--pixel', type=float, nargs=2, metavar=('X', 'Y'),
        help='image pixel whose encoder token is drawn (default: the '
        "centre of the first query's box)")
    parser.add_argument(
        '--encoder-layer', type=int, default=-1,
        help='encoder layer, 0-based (default -1: the last)')
    parser.add_argument(
        '--encoder-level', type=int, default=0,
        help='feature level of the encoder token (default 0, the finest)')
    parser.add_argument(
        '--device', default='auto', help="'auto' (GPU if any), 'cpu', ...")
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out if it exists')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    try:
        check_new_output(args.out, '--out', args.overwrite)
        if not osp.isfile(args.image):
            raise FileNotFoundError(f'IMAGE {args.image!r} does not exist')
        detector = Detector(args.config, args.checkpoint, args.device,
                            args.cfg_options)
        fig = visualize_sampling(detector, args.image, args.query,
                                 args.top_k, args.layer, args.pixel,
                                 args.encoder_layer, args.encoder_level)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f'sampling points: {save_figure(fig, args.out)}')


if __name__ == '__main__':
    main()
