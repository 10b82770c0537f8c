"""Write a data set's images as the model sees them, with their
ground-truth boxes:
``python tools/browse_dataset.py CONFIG [--phase train] [--out-dir D]``.

Each image goes through the phase's pipeline (resizing, flipping,
cropping), so the pictures show the training augmentation.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.engine import cli  # noqa: E402
from mmdet_detr.visualization import dataset_browser  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description='Draw pipeline outputs with their ground truth')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--phase', choices=dataset_browser.PHASES, default='train',
        help='whose data loader and pipeline to use (default train)')
    parser.add_argument(
        '--out-dir',
        help='where to write (default: work_dirs/<config name>/browse_'
        '<phase>)')
    parser.add_argument(
        '--num', type=int, default=10,
        help='number of images (default 10; -1: all)')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the random augmentation')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='replace pictures already in --out-dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    try:
        cfg = cli.load_config(args.config, args.cfg_options)
        out_dir = args.out_dir or osp.join(cfg.work_dir,
                                           f'browse_{args.phase}')
        written = dataset_browser.browse_dataset(
            cfg, args.phase, out_dir, args.num, args.seed, args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f'{len(written)} pictures of {args.phase} pipeline outputs: '
          f'{out_dir}/')


if __name__ == '__main__':
    main()
