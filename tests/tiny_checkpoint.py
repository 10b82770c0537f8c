"""A tiny Deformable DETR (or DETR, or DINO) trained for a few iterations on a
generated shapes data set, shared by the inference and picture tests of one
pytest process.

Trained in process with the functions ``tools/train.py`` runs (the
subprocess tests of the tools live in test_tools.py), under a folder that
holds ``data/shapes/``, the tiny config's relative data root: the tests
using it run with that folder as the working directory.
"""
import os
import os.path as osp
from typing import NamedTuple

from mmdet_detr.datasets.shapes import make_shapes_dataset
from mmdet_detr.engine import cli

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs',
                       'tiny_deformable_detr.py')
TINY_DETR_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_detr.py')
TINY_DINO_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_dino.py')
IMAGE_SIZE = 64
NUM_VAL = 2


class TinyRun(NamedTuple):
    root: str  # holds data/shapes/ and work/
    work_dir: str
    checkpoint: str


_RUNS = {}


def tiny_run(tmp_path_factory, config: str = TINY_CONFIG) -> TinyRun:
    """Make the data and train ``config`` for one epoch (2 iterations),
    once a process."""
    if config not in _RUNS:
        root = str(tmp_path_factory.mktemp('tiny_run'))
        make_shapes_dataset(
            osp.join(root, 'data', 'shapes'),
            num_train=4,
            num_val=NUM_VAL,
            seed=0,
            image_size=IMAGE_SIZE,
            show_progress=False)
        work_dir = osp.join(root, 'work')
        cwd = os.getcwd()
        os.chdir(root)
        try:
            cfg = cli.load_config(
                config, {
                    'train_cfg.max_epochs': 1,
                    'train_cfg.val_interval': 2,  # no validation
                    'default_hooks.logger.interval': 1,
                }, work_dir)
            cli.build_runner(cfg).train()
        finally:
            os.chdir(cwd)
        _RUNS[config] = TinyRun(root, work_dir,
                                osp.join(work_dir, 'epoch_1.pth'))
    return _RUNS[config]
