"""Resuming a DINO run with ``tools/train.py --resume`` is exact: the
denoising queries are drawn from the global random generator, whose state
the checkpoint restores, so the second epoch of a resumed run has the
losses of an uninterrupted run, iteration for iteration."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

from mmdet_detr.datasets.shapes import make_shapes_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
TINY_DINO = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_dino.py')
# 4 images, batch 2: two iterations an epoch; no validation.
CFG_OPTIONS = [
    '--cfg-options', 'train_cfg.max_epochs=2', 'train_cfg.val_interval=10',
    'randomness.deterministic=True', 'default_hooks.logger.interval=1'
]


def _train(root, work_dir, *extra):
    proc = subprocess.run(
        [sys.executable, TRAIN, TINY_DINO, '--work-dir', work_dir, *extra,
         *CFG_OPTIONS],
        cwd=root, env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout + proc.stderr


def _losses(work_dir):
    """{iteration: (loss, dn_loss_bbox)} logged in ``work_dir``."""
    losses = {}
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'dn_loss_bbox' in record:
                    losses[record['step']] = (record['loss'],
                                              record['dn_loss_bbox'])
    return losses


def test_resumed_run_has_the_losses_of_an_uninterrupted_one(tmp_path):
    make_shapes_dataset(str(tmp_path / 'data' / 'shapes'), num_train=4,
                        num_val=1, seed=0, image_size=64,
                        show_progress=False)
    whole = str(tmp_path / 'whole')
    _train(tmp_path, whole)
    resumed = str(tmp_path / 'resumed')
    log = _train(tmp_path, resumed, '--resume',
                 osp.join(whole, 'epoch_1.pth'))
    assert 'resumed epoch: 1, iter: 2' in log
    expected, got = _losses(whole), _losses(resumed)
    assert sorted(expected) == [1, 2, 3, 4] and sorted(got) == [3, 4]
    for step in (3, 4):
        assert got[step] == expected[step], step
