"""Write the synthetic shapes detection data set (COCO format).

Example:
    python tools/make_shapes_dataset.py data/shapes --num-val 500
"""
import argparse

from mmdet_detr.datasets.shapes import make_shapes_dataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='data set root, e.g. data/shapes')
    parser.add_argument('--num-train', type=int, default=4000,
                        help='images in the train split')
    parser.add_argument('--num-val', type=int, default=500,
                        help='images in the val split')
    parser.add_argument('--seed', type=int, default=0,
                        help='equal seeds give byte-identical data')
    parser.add_argument('--image-size', type=int, default=128,
                        help='side of the square images in pixels')
    parser.add_argument('--max-objects', type=int, default=4,
                        help='most shapes per image')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the data set already in OUT_DIR')
    parser.add_argument('--no-progress', action='store_true',
                        help='hide the progress bars')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        summary = make_shapes_dataset(
            args.out_dir, num_train=args.num_train, num_val=args.num_val,
            seed=args.seed, image_size=args.image_size,
            max_objects=args.max_objects, overwrite=args.overwrite,
            show_progress=not args.no_progress)
    except (FileExistsError, NotADirectoryError, TypeError, ValueError) as e:
        raise SystemExit(f'make_shapes_dataset: error: {e}')
    print(f"shapes data set in {summary['out_dir']} "
          f"(classes: {', '.join(summary['classes'])})")
    for split, info in summary['splits'].items():
        print(f"  {split}: {info['num_images']} images, "
              f"{info['num_annotations']} boxes -> {info['ann_file']}")


if __name__ == '__main__':
    main()
