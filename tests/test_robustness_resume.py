"""Crash and resume: tools/train.py killed with SIGKILL while a checkpoint is
being written and again in the middle of an epoch loses nothing, and the
resumed run's losses equal an uninterrupted run's, iteration for iteration.
"""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from mmdet_detr.checkpoint.safe_load import load_checkpoint_file
from mmdet_detr.datasets.shapes import make_shapes_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs',
                       'tiny_deformable_detr.py')
ITERS_PER_EPOCH = 4  # 4 images, batch 1
# Deterministic kernels, no validation, one kept checkpoint: with
# mmengine's CheckpointHook the only checkpoint is deleted before the next
# is written, the worst case for a kill while saving.
CFG_OPTIONS = [
    '--cfg-options', 'train_cfg.max_epochs=3', 'train_cfg.val_interval=10',
    'train_dataloader.batch_size=1', 'randomness.deterministic=True',
    'default_hooks.checkpoint.max_keep_ckpts=1'
]

# Imported at start-up of the training process (it is on PYTHONPATH as
# sitecustomize): a disk that stalls halfway through writing any file whose
# path contains $STALL_NAME, after announcing it in the file $STALL_SIGNAL.
# Both plain ``open`` and ``os.fdopen`` writes are covered, so the stall hits
# whichever way a checkpoint is written.
_STALLING_DISK = '''
import builtins, os, time
_name = os.environ.get('STALL_NAME')
_signal = os.environ.get('STALL_SIGNAL')


class _Stalling:
    def __init__(self, file):
        self._file = file

    def write(self, data):
        half = len(data) // 2
        self._file.write(data[:half])
        self._file.flush()
        with open(_signal, 'w') as f:
            f.write('stalled')
        time.sleep(600)
        self._file.write(data[half:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._file, name)


def _wrap(opener, describe):
    def wrapped(target, mode='r', *args, **kwargs):
        file = opener(target, mode, *args, **kwargs)
        if 'w' in mode and _name in describe(target):
            return _Stalling(file)
        return file
    return wrapped


if _name:
    builtins.open = _wrap(builtins.open, str)
    os.fdopen = _wrap(
        os.fdopen, lambda fd: os.readlink(f'/proc/self/fd/{fd}'))
'''


def _env(tmp_path, **extra):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    env.pop('STALL_NAME', None)
    env.update(extra)
    return env


def _train(work_dir, cwd, env, resume=False):
    args = [sys.executable, TRAIN, TINY_CONFIG, '--work-dir', work_dir]
    args += ['--resume'] if resume else []
    return subprocess.Popen(
        args + CFG_OPTIONS,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)


def _finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-5000:]
    return out


def _kill_when(proc, ready, timeout=300):
    """SIGKILL ``proc`` as soon as ``ready(log_so_far)``; returns the log."""
    log = []
    reader = threading.Thread(
        target=lambda: log.extend(iter(proc.stdout.readline, '')),
        daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready(''.join(log)):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            reader.join(timeout=10)
            return ''.join(log)
        time.sleep(0.02)
    proc.kill()
    raise AssertionError('the run ended before the kill point:\n' +
                         ''.join(log)[-5000:])


def _losses(work_dir):
    """{global iteration: loss} from every run logged in ``work_dir``."""
    losses = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' in record:
                    losses.setdefault(record['step'], []).append(
                        record['loss'])
    return losses


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    make_shapes_dataset(
        str(root / 'data' / 'shapes'),
        num_train=ITERS_PER_EPOCH,
        num_val=1,
        seed=0,
        image_size=64,
        show_progress=False)
    (root / 'stall').mkdir()
    (root / 'stall' / 'sitecustomize.py').write_text(_STALLING_DISK)
    return root


def test_killed_runs_resume_exactly(data_dir):
    root = data_dir
    reference = str(root / 'uninterrupted')
    work_dir = str(root / 'interrupted')
    signal_file = str(root / 'stalled')
    # The reference run and the first run to be killed share the CPU.
    uninterrupted = _train(reference, root, _env(root))
    stall_env = _env(
        root,
        STALL_NAME='epoch_2.pth',
        STALL_SIGNAL=signal_file,
        PYTHONPATH=os.pathsep.join(
            [str(root / 'stall'),
             os.environ.get('PYTHONPATH', '')]))
    first = _train(work_dir, root, stall_env)
    log = _kill_when(first, lambda _: osp.exists(signal_file))

    # Killed halfway through writing epoch_2.pth: epoch_1.pth is intact,
    # no truncated epoch_2.pth, last_checkpoint still names epoch_1.pth.
    assert f'Epoch(train) [2][{ITERS_PER_EPOCH}/{ITERS_PER_EPOCH}]' in log
    checkpoints = sorted(glob.glob(osp.join(work_dir, '*.pth')))
    assert checkpoints == [osp.join(work_dir, 'epoch_1.pth')], checkpoints
    assert load_checkpoint_file(checkpoints[0])['meta']['epoch'] == 1
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == checkpoints[0]
    leftovers = glob.glob(osp.join(work_dir, '.epoch_2.pth.*.tmp'))
    assert len(leftovers) == 1  # the half-written temporary file

    # Resumed, then killed in the middle of epoch 2.
    second = _train(work_dir, root, _env(root), resume=True)
    log = _kill_when(second,
                     lambda text: f'Epoch(train) [2][2/{ITERS_PER_EPOCH}]'
                     in text)
    assert f'Auto resumed from the latest checkpoint {checkpoints[0]}' in log
    assert f'removing {leftovers[0]}' in log
    assert not osp.exists(leftovers[0])

    # Resumed again: from epoch_1.pth, to the end.
    log = _finish(_train(work_dir, root, _env(root), resume=True))
    assert f'Auto resumed from the latest checkpoint {checkpoints[0]}' in log
    assert 'resumed epoch: 1, iter: 4' in log
    assert load_checkpoint_file(osp.join(work_dir,
                                         'epoch_3.pth'))['meta']['iter'] == 12
    _finish(uninterrupted)

    expected = _losses(reference)
    assert sorted(expected) == list(range(1, 3 * ITERS_PER_EPOCH + 1))
    got = _losses(work_dir)
    assert sorted(got) == sorted(expected)
    # Iterations 5..8 ran in the first run and again after each resume.
    assert all(len(got[step]) >= 2 for step in (5, 6, 7, 8))
    for step, losses in got.items():
        for loss in losses:
            assert loss == expected[step][0], (step, loss, expected[step])
    assert torch.isfinite(torch.tensor(expected[12]))
