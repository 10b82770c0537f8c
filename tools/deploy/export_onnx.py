"""Export a trained detector to ONNX:
``python tools/deploy/export_onnx.py CONFIG CHECKPOINT --out model.onnx``.

The graph takes a normalised (B, 3, H, W) float32 batch of one size and
gives scores (B, k), labels (B, k) and xyxy boxes (B, k, 4) in pixels of
the input; batch, height and width are dynamic. See docs/deploy.md.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmdet_detr.deploy import (ATTENTION_FORMS, DEFAULT_OPSET,  # noqa: E402
                               export_checkpoint)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export a detector to ONNX and check it against PyTorch')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--attention', choices=ATTENTION_FORMS, default='onnx',
        help='onnx: standard operators (stock onnxruntime, OpenVINO); '
        'custom: one mmdet_detr::MultiScaleDeformableAttention node per '
        'call (run with mmdet_detr.deploy.custom_op registered)')
    parser.add_argument(
        '--opset', type=int, default=DEFAULT_OPSET,
        help='ONNX opset of the default domain (>= 16)')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=(320, 480),
        metavar=('H', 'W'), help='image size traced with (H != W)')
    parser.add_argument(
        '--score-thr', type=float, default=0.3,
        help='the default score threshold recorded for the backends')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace --out')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    try:
        report = export_checkpoint(
            args.config, args.checkpoint, args.out, args.attention,
            args.opset, args.shape, args.score_thr, args.cfg_options,
            args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f'{report.out}: {report.size_mb:.1f} MB, exported in '
          f'{report.seconds:.1f} s, opset {args.opset}, attention '
          f'{args.attention} ({report.attention_modules} modules); '
          'onnx.checker passed')
    for check in report.checks:
        diff = check.difference
        print(f'onnxruntime vs PyTorch on {"x".join(map(str, check.shape))}'
              f' random images: scores {diff.max_score:.2e}, boxes '
              f'{diff.max_box:.2e} px, labels '
              f'{"equal" if diff.labels_equal else "DIFFER"}')


if __name__ == '__main__':
    main()
