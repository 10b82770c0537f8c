"""Resuming an iteration-based run (the demo configs) with ``tools/train.py
--resume`` is exact and loads no image of the trained steps.

16 images in batches of 4 are 4 iterations a pass over the data: resuming
at iteration 5 skips one whole pass and one batch of the next, so the
sampler's epoch, its position in the pass and the data loader's restart
must all come out as in the uninterrupted run. The tiny tests' RandomFlip
draws from numpy's generator, which mmengine's own replay of the trained
batches moved on after the checkpoint's states were restored.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from mmdet_detr.datasets.shapes import make_shapes_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
MAX_ITERS = 8
RESUME_AT = 5


def _options(num_workers):
    return [
        '--cfg-options', f'train_cfg.max_iters={MAX_ITERS}',
        f'train_cfg.val_interval={MAX_ITERS + 1}',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1',
        'default_hooks.logger.interval=1', 'randomness.deterministic=True',
        'train_dataloader.batch_size=4',
        f'train_dataloader.num_workers={num_workers}',
        f'train_dataloader.persistent_workers={num_workers > 0}',
        # The pipelines' RandomFlip draws in the workers, whose generators
        # start again from their seeds on resume (docs/robustness.md).
        *(['train_dataloader.dataset.pipeline.3.prob=0.0']
          if num_workers else [])
    ]


def _train(root, config, work_dir, num_workers, *extra):
    proc = subprocess.run(
        [sys.executable, TRAIN, config, '--work-dir', work_dir, *extra,
         *_options(num_workers)],
        cwd=root, env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout + proc.stderr


def _losses(work_dir):
    """{iteration: every logged loss term}."""
    losses = {}
    for run in os.listdir(work_dir):
        path = osp.join(work_dir, run, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            with open(path) as f:
                for line in f:
                    record = json.loads(line)
                    if 'loss' in record:
                        losses[record['step']] = {
                            k: v
                            for k, v in record.items() if 'loss' in k
                        }
    return losses


@pytest.mark.parametrize('config,num_workers', [
    ('deformable_detr_shapes.py', 0),
    ('dino_shapes.py', 0),
    ('deformable_detr_shapes.py', 1),
])
def test_resumed_iterations_have_the_losses_of_an_uninterrupted_run(
        tmp_path, config, num_workers):
    make_shapes_dataset(str(tmp_path / 'data' / 'shapes'), num_train=16,
                        num_val=2, seed=0, image_size=64,
                        show_progress=False)
    config = osp.join(REPO_ROOT, 'configs', 'demo', config)
    whole = str(tmp_path / 'whole')
    _train(tmp_path, config, whole, num_workers)
    resumed = str(tmp_path / 'resumed')
    os.makedirs(resumed)
    shutil.copy(osp.join(whole, f'iter_{RESUME_AT}.pth'), resumed)
    log = _train(tmp_path, config, resumed, num_workers, '--resume',
                 osp.join(resumed, f'iter_{RESUME_AT}.pth'))
    assert (f'skipped the {RESUME_AT} trained batches by index (1 complete '
            'passes over the data), without loading them') in log
    assert 'Advance dataloader' not in log
    expected, got = _losses(whole), _losses(resumed)
    assert sorted(expected) == list(range(1, MAX_ITERS + 1))
    assert sorted(got) == list(range(RESUME_AT + 1, MAX_ITERS + 1))
    for step in got:
        assert got[step] == expected[step], step
