"""Train a detector: ``python tools/train.py CONFIG [options]``."""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr.engine import cli  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='the dir to save logs and models (default: '
        'work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or, with no value, from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='train into a work dir that holds the checkpoints of an '
        'earlier run: they are first moved into WORK_DIR/earlier_<timestamp>/'
        ' (without this, such a work dir is refused unless --resume)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: float16 on GPU, bfloat16 on CPU')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr from auto_scale_lr.base_batch_size to the actual '
        'total batch size')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs such as '
        'train_cfg.max_epochs=12 or key="[a,b]" for lists (no spaces)')
    cli.add_launcher_args(parser)
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    cli.set_local_rank(args.local_rank)
    try:
        cfg = cli.load_config(args.config, args.cfg_options, args.work_dir,
                              args.launcher)
        cli.apply_resume(cfg, args.resume)
        cli.check_load_from(cfg)
        if args.amp:
            cli.enable_amp(cfg)
        if args.auto_scale_lr:
            cli.enable_auto_scale_lr(cfg)
        cli.check_config(cfg)
        cli.protect_work_dir(cfg, args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        parser.error(str(error))
    runner = cli.build_runner(cfg)
    runner.train()
    cli.close_process_group()


if __name__ == '__main__':
    main()
