"""Numerical faults and checkpoint writes: a non-finite loss stops training
(or skips the step) with the iteration, loss terms and image ids, and the
last good checkpoint is kept; checkpoint files are written atomically."""
import glob
import os
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmdet_detr.checkpoint.safe_load import load_checkpoint_file
from mmdet_detr.engine import atomic_checkpoint_hook
from mmdet_detr.engine.atomic_checkpoint_hook import atomic_write
from mmdet_detr.engine.finite_loss_hook import FiniteLossHook
from mmdet_detr.engine.rng_state_hook import RNG_KEY, RNGStateHook

BAD_IMAGE = 5  # the loss of a batch holding this image id is NaN


class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(torch.stack(inputs))
        if mode != 'loss':
            return out
        ids = [s.metainfo['img_id'] for s in data_samples]
        scale = float('nan') if BAD_IMAGE in ids else 1.0
        return dict(
            loss_a=out.square().mean() * scale, loss_b=out.abs().mean())


class Points(Dataset):
    """Eight samples in a fixed order; image ids 0..7."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        sample = DetDataSample(metainfo=dict(img_id=i, img_path=f'{i}.png'))
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(2, generator=g), data_samples=sample)


def _runner(work_dir, on_non_finite):
    return Runner(
        model=Toy(),
        work_dir=str(work_dir),
        default_scope='mmdet_detr',
        train_dataloader=dict(
            dataset=Points(),
            batch_size=2,
            collate_fn=dict(type='pseudo_collate'),
            sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(
            checkpoint=dict(
                type='AtomicCheckpointHook', by_epoch=False, interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[
            dict(type='FiniteLossHook', on_non_finite=on_non_finite)
        ],
        randomness=dict(seed=0))


def _weights(path):
    return load_checkpoint_file(path)['state_dict']['fc.weight']


def test_non_finite_loss_stops_with_the_batch(tmp_path):
    runner = _runner(tmp_path, 'stop')
    with pytest.raises(FloatingPointError) as info:
        runner.train()
    message = str(info.value)
    # Images 4 and 5 form the third batch.
    assert 'non-finite loss at iteration 3' in message
    assert 'loss_a=nan' in message and 'loss_b=' in message
    assert '4 (4.png), 5 (5.png)' in message
    assert osp.join(str(tmp_path), 'iter_2.pth') in message
    # The last good checkpoint is kept and nothing was saved after it.
    saved = sorted(osp.basename(p) for p in glob.glob(str(tmp_path / '*.pth')))
    assert saved == ['iter_1.pth', 'iter_2.pth']
    assert torch.isfinite(_weights(tmp_path / 'iter_2.pth')).all()
    # The bad step was never applied to the weights in memory either.
    torch.testing.assert_close(runner.model.fc.weight,
                               _weights(tmp_path / 'iter_2.pth'))


def test_non_finite_loss_skips_the_step_when_asked(tmp_path):
    runner = _runner(tmp_path, 'skip')
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, FiniteLossHook))
    assert hook.num_skipped == 1
    before, after = (_weights(tmp_path / f'iter_{i}.pth') for i in (2, 3))
    torch.testing.assert_close(after, before)  # step 3 was skipped
    last = _weights(tmp_path / 'iter_4.pth')
    assert torch.isfinite(last).all() and not torch.equal(last, after)


def test_finite_loss_hook_rejects_unknown_mode():
    with pytest.raises(ValueError, match="'stop'.*'skip'"):
        FiniteLossHook(on_non_finite='ignore')


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = str(tmp_path / 'epoch_1.pth')
    atomic_write(b'old', path)

    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        atomic_write(b'new content', path)
    with open(path, 'rb') as f:
        assert f.read() == b'old'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temporary left


def test_atomic_write_gives_the_permissions_of_a_plain_write(tmp_path):
    old_umask = os.umask(0o022)
    try:
        atomic_write(b'x', str(tmp_path / 'atomic'))
        (tmp_path / 'plain_022').write_bytes(b'x')
    finally:
        os.umask(old_umask)
    mode = os.stat(tmp_path / 'atomic').st_mode & 0o777
    assert mode == os.stat(tmp_path / 'plain_022').st_mode & 0o777 == 0o644


def test_stale_temporaries_are_removed(tmp_path):
    stale = tmp_path / '.epoch_2.pth.abc123.tmp'
    stale.write_bytes(b'half')
    mine = tmp_path / '.notes.tmp'
    mine.write_bytes(b'a user file')
    atomic_checkpoint_hook._remove_stale_temporaries(str(tmp_path))
    assert not stale.exists() and mine.exists()


def test_rng_state_round_trip(tmp_path):
    hook = RNGStateHook()
    checkpoint = {}
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    hook.before_save_checkpoint(None, checkpoint)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    path = str(tmp_path / 'c.pth')
    torch.save(checkpoint, path)
    # weights_only loading keeps the states.
    hook.after_load_checkpoint(None, load_checkpoint_file(path))
    assert RNG_KEY in checkpoint

    class Resumed:
        iter = 4

    random.seed(2)
    np.random.seed(2)
    torch.manual_seed(2)
    hook.before_train(Resumed())
    assert (random.random(), np.random.rand(),
            torch.rand(1).item()) == expected
