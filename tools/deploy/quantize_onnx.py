"""Quantize an exported detector to int8 (post-training, static):
``python tools/deploy/quantize_onnx.py CONFIG MODEL.onnx --out
MODEL_int8.onnx [--num-images N]``.

Calibrates on N images of the config's training set (its test pipeline
and data preprocessor); the int8 file runs wherever the float one does
(tools/test.py, tools/infer.py, the Detector API). See docs/deploy.md.
"""
import argparse
import logging
import os.path as osp
import sys

from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmdet_detr.deploy import quantize  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description='Quantize an exported detector to int8')
    parser.add_argument('config', help='the config the model was trained '
                        'and exported with')
    parser.add_argument('model', help='the float .onnx of '
                        'tools/deploy/export_onnx.py (either --attention)')
    parser.add_argument('--out', required=True, help='the int8 .onnx')
    parser.add_argument(
        '--num-images', type=int, default=quantize.DEFAULT_NUM_IMAGES,
        help='calibration images from the training set')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    # onnxruntime's quantizer warns once per node about graph details
    # (biases computed by the exporter's folding) that do not matter here.
    logging.getLogger().setLevel(logging.ERROR)
    try:
        report = quantize.quantize_with_config(
            args.config, args.model, args.out, args.num_images,
            args.cfg_options, args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f'{report.out}: {report.size_mb:.1f} MB, int8 in '
          f'{report.seconds:.1f} s, calibrated on {report.num_images} '
          f'images; {report.quantized_nodes} Conv/MatMul/Gemm nodes int8, '
          f'{len(report.float_nodes)} kept float (recorded in the file)')


if __name__ == '__main__':
    main()
