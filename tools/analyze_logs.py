"""Plot training curves of one or more runs:
``python tools/analyze_logs.py plot WORK_DIR [WORK_DIR ...] --out F.png``.

Reads mmengine's scalar logs (<work_dir>/<timestamp>/vis_data/
scalars.json); every curve is drawn against the training iteration, or
with ``--x time`` against the training seconds (validation not counted), to
compare models at equal training budgets.
"""
import argparse
import os.path as osp
import sys

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.apis import check_new_output  # noqa: E402
from mmdet_detr.visualization.drawing import save_figure  # noqa: E402
from mmdet_detr.visualization.training_curves import X_AXES  # noqa: E402
from mmdet_detr.visualization.training_curves import (  # noqa: E402
    curves_figure, load_curves, run_labels)


def parse_args():
    parser = argparse.ArgumentParser(description='Analyse training logs')
    commands = parser.add_subparsers(dest='command', required=True)
    plot = commands.add_parser(
        'plot', help='plot logged values against the iteration or time')
    plot.add_argument(
        'runs', nargs='+', metavar='WORK_DIR',
        help='work dirs (or scalars.json files) of training runs')
    plot.add_argument(
        '--keys', nargs='+', default=['loss', 'bbox_mAP'],
        help='logged keys, one plot each; bbox_mAP stands for '
        'coco/bbox_mAP (default: loss bbox_mAP)')
    plot.add_argument(
        '--legend', nargs='+', help='run names (default: the work dirs)')
    plot.add_argument(
        '--x', choices=X_AXES, default='iteration',
        help='x axis: the training iteration, or the training seconds '
        '(the logged time per iteration summed; validation not counted)')
    plot.add_argument('--title', default='', help='figure title')
    plot.add_argument('--out', required=True, help='the PNG to write')
    plot.add_argument(
        '--overwrite', action='store_true', help='replace --out if it exists')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    try:
        check_new_output(args.out, '--out', args.overwrite)
        labels = run_labels(args.runs, args.legend)
        runs = {label: load_curves(path, args.x)
                for label, path in zip(labels, args.runs)}
        fig = curves_figure(runs, args.keys, args.title, args.x)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f'curves: {save_figure(fig, args.out)}')


if __name__ == '__main__':
    main()
