"""Test (and evaluate) a detector:
``python tools/test.py CONFIG CHECKPOINT [options]``.

CHECKPOINT may be an exported ``.onnx`` file (tools/deploy/export_onnx.py),
run with onnxruntime or, with ``--backend openvino``, OpenVINO."""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.deploy import (BACKENDS, is_exported_file,  # noqa: E402
                               use_exported_model)
from mmdet_detr.engine import cli  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test a detector and print its COCO metrics')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint', help='checkpoint file, or an exported .onnx file')
    parser.add_argument(
        '--backend', choices=BACKENDS,
        help='the runtime of an exported .onnx file (default onnxruntime)')
    parser.add_argument(
        '--work-dir',
        help='the dir for logs and the metrics file (default: '
        'work_dirs/<config name>)')
    parser.add_argument(
        '--out', help='also dump the predictions to this .pkl file')
    parser.add_argument(
        '--show', action='store_true', help='show the predictions')
    parser.add_argument(
        '--show-dir',
        help='save images with predictions drawn here (a relative path is '
        'taken under work_dir/<timestamp>/)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each image is shown with --show')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs such as '
        'test_dataloader.batch_size=4 or key="[a,b]" for lists (no spaces)')
    cli.add_launcher_args(parser)
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    cli.set_local_rank(args.local_rank)
    try:
        cli.check_checkpoint_path(args.checkpoint, 'CHECKPOINT')
        cli.check_dump_path(args.out)
        cfg = cli.load_config(args.config, args.cfg_options, args.work_dir,
                              args.launcher)
        if is_exported_file(args.checkpoint):
            use_exported_model(cfg, args.checkpoint, args.backend)
        elif args.backend:
            raise ValueError(f'--backend {args.backend} runs an exported '
                             f'.onnx file, and {args.checkpoint!r} is not '
                             'one: export it with '
                             'tools/deploy/export_onnx.py')
        else:
            cli.set_test_checkpoint(cfg, args.checkpoint)
        cli.enable_visualization(cfg, args.show, args.show_dir, args.wait_time)
        cli.check_config(cfg)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    runner = cli.build_runner(cfg)
    if args.out is not None:
        cli.add_dump_metric(runner, args.out)
    runner.test()
    cli.close_process_group()


if __name__ == '__main__':
    main()
