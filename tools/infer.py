"""Detect objects in images and draw them:
``python tools/infer.py CONFIG CHECKPOINT INPUT... [options]``.

INPUT may be image files, folders (their images) or glob patterns
(quoted, e.g. 'data/shapes/val/00000*.jpg'). Writes one PNG per image with
the boxes, class names and scores drawn, and predictions.json in COCO
results format, into --out-dir. CHECKPOINT may be an exported ``.onnx``
file (tools/deploy/export_onnx.py), run with onnxruntime or, with
``--backend openvino``, OpenVINO.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.apis import (Detector, check_outputs,  # noqa: E402
                             collect_image_files, default_out_dir, infer_files)
from mmdet_detr.deploy import BACKENDS  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description='Detect objects in images; write drawn detections and '
        'predictions.json')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint', help='checkpoint file, or an exported .onnx file')
    parser.add_argument(
        'inputs', nargs='+', metavar='INPUT',
        help='image files, folders or glob patterns')
    parser.add_argument(
        '--out-dir',
        help='where to write (default: work_dirs/<config name>/infer)')
    parser.add_argument(
        '--score-thr', type=float, default=0.3,
        help='draw and save detections scoring at least this')
    parser.add_argument(
        '--device', default='auto', help="'auto' (GPU if any), 'cpu', ...")
    parser.add_argument(
        '--backend', choices=BACKENDS,
        help='the runtime of an exported .onnx file (default onnxruntime)')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='replace pictures and predictions.json already in --out-dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs such as '
        'model.test_cfg.max_per_img=50')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    out_dir = default_out_dir(args.config, args.out_dir)
    try:
        files = collect_image_files(args.inputs)
        check_outputs(files, out_dir, args.overwrite)
        detector = Detector(args.config, args.checkpoint, args.device,
                            args.cfg_options, args.backend)
        summary = infer_files(detector, files, out_dir, args.score_thr,
                              args.batch_size, args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f'\n{len(files)} images, {summary["num_detections"]} detections '
          f'with score >= {args.score_thr:g}')
    print(f'pictures: {out_dir}/')
    print(f'predictions (COCO results, category ids from '
          f'{summary["category_ids_from"]}): {summary["predictions"]}')


if __name__ == '__main__':
    main()
