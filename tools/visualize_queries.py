"""Draw what each object query predicts over a data set (DETR, fig. 7):
``python tools/visualize_queries.py CONFIG CHECKPOINT --out F.png``.

One panel per query with the centres of all the boxes it predicts on the
--dataset images, in the unit square of the image, green for small boxes,
red for large wide ones and blue for large tall ones.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.apis import Detector, check_new_output  # noqa: E402
from mmdet_detr.visualization.drawing import save_figure  # noqa: E402
from mmdet_detr.visualization.query_centres import (  # noqa: E402
    check_fixed_queries, collect_query_boxes, dataset_batches,
    query_centres_figure)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Draw the box centres each object query predicts')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument(
        '--dataset', choices=['val', 'test'], default='val',
        help="the config's data loader to run on (default val)")
    parser.add_argument(
        '--num-queries', type=int, default=20,
        help='draw queries 0..N-1 (default 20)')
    parser.add_argument(
        '--max-images', type=int,
        help='stop after this many images (default: all)')
    parser.add_argument(
        '--score-thr', type=float, default=0.0,
        help='leave out predictions scoring less (default 0: all, as in '
        'the DETR paper)')
    parser.add_argument(
        '--small-size', type=float, default=0.2,
        help='boxes with sqrt(w*h) below this fraction of the image side '
        'count as small (default 0.2)')
    parser.add_argument(
        '--device', default='auto', help="'auto' (GPU if any), 'cpu', ...")
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out if it exists')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs such as '
        'val_dataloader.batch_size=32')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    try:
        check_new_output(args.out, '--out', args.overwrite)
        detector = Detector(args.config, args.checkpoint, args.device,
                            args.cfg_options)
        check_fixed_queries(detector.model)
        boxes, scores = collect_query_boxes(
            detector.model,
            dataset_batches(detector.cfg, args.dataset, progress=True),
            args.max_images)
        title = (f'Box centres predicted by each object query on '
                 f'{len(boxes)} {args.dataset} images '
                 f'({osp.basename(args.config)})')
        if args.score_thr > 0:
            title += f', score >= {args.score_thr:g}'
        fig = query_centres_figure(boxes, scores, args.num_queries,
                                   args.score_thr, args.small_size, title)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f'\nquery picture: {save_figure(fig, args.out)}')


if __name__ == '__main__':
    main()
