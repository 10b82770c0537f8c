"""Safe checkpoint loading: what mmengine saves loads, code in a file never
runs, and full unpickling happens only on explicit opt-in."""
import fractions
import os
import os.path as osp
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint,
                                        load_checkpoint, load_from_http,
                                        load_from_openmmlab,
                                        load_from_torchvision)

import mmdet_detr.engine  # noqa: F401  (installs the safe local loader)
from mmdet_detr.checkpoint import safe_load
from mmdet_detr.checkpoint.loader import load_from_local_safe
from mmdet_detr.checkpoint.safe_load import (TRUST_ENV_VAR,
                                             UnsafeCheckpointError,
                                             load_checkpoint_file)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Trains a toy model for 2 epochs with mmengine's Runner in a fresh process,
# with default_scope='mmdet_detr' and nothing of mmdet_detr imported by hand,
# then loads the saved checkpoint through the Runner.
_RUNNER_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import Dataset
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import CheckpointLoader

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.fc(inputs)
            if mode == 'loss':
                return dict(loss=((out - labels) ** 2).mean())
            return out

    class Points(Dataset):
        metainfo = dict(classes=('a', 'b'), palette=[(1, 2, 3)])

        def __len__(self):
            return 8

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return dict(inputs=torch.randn(2, generator=g),
                        labels=torch.randn(1, generator=g))

    def make_runner(work_dir):
        return Runner(
            model=Toy(), work_dir=work_dir, default_scope='mmdet_detr',
            train_dataloader=dict(
                dataset=Points(), batch_size=2, collate_fn=dict(
                    type='default_collate'),
                sampler=dict(type='DefaultSampler', shuffle=True)),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
            param_scheduler=dict(type='MultiStepLR', milestones=[1]),
            train_cfg=dict(by_epoch=True, max_epochs=2),
            default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                               interval=1)),
            randomness=dict(seed=0))

    work_dir = sys.argv[1]
    make_runner(work_dir).train()
    loader = CheckpointLoader._get_checkpoint_loader(work_dir + '/x.pth')
    print('LOADER', loader.__module__, loader.__name__)
    ckpt = work_dir + '/epoch_2.pth'
    runner = make_runner(work_dir + '/again')
    runner.load_checkpoint(ckpt)
    runner.resume(ckpt)
    print('RESUMED', runner.epoch, runner.iter)
''')


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """A checkpoint written by mmengine's Runner (optimizer, schedulers,
    message hub, numpy meta) and the output of the process that wrote and
    re-loaded it."""
    work_dir = str(tmp_path_factory.mktemp('runner'))
    script = osp.join(work_dir, 'toy_runner.py')
    with open(script, 'w') as f:
        f.write(_RUNNER_SCRIPT)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    env.pop(TRUST_ENV_VAR, None)
    proc = subprocess.run([sys.executable, script, work_dir],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return osp.join(work_dir, 'epoch_2.pth'), proc.stdout + proc.stderr


def _save_with_reduce(path, obj):
    torch.save({'state_dict': {'w': torch.ones(2)}, 'extra': obj}, path)


class _RunsShell:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command, ))


class _FetchesAttribute:
    """Unpickling this calls ``getattr(HistoryBuffer, name)``."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return (getattr, (HistoryBuffer, self.name))


def test_runner_checkpoint_needs_the_allowlist(runner_checkpoint):
    # Without the allowlist torch refuses the file, so the tests below
    # exercise it rather than torch's defaults.
    path, _ = runner_checkpoint
    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    assert 'numpy.ndarray' in unsafe
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert unsafe <= set(safe_load.allowed_global_names())


def test_runner_builds_install_loader_and_resume(runner_checkpoint):
    _, output = runner_checkpoint
    # mmdet_detr.engine was imported through the registry's location only.
    assert ('LOADER mmdet_detr.checkpoint.loader load_from_local_safe'
            in output)
    assert 'Loads checkpoint by local_safe backend' in output
    assert 'RESUMED 2 8' in output


def test_mmengine_loads_runner_checkpoint(runner_checkpoint):
    path, _ = runner_checkpoint
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 8
    assert ckpt['meta']['dataset_meta']['classes'] == ('a', 'b')
    scalars = ckpt['message_hub']['log_scalars']
    loss = scalars['train/loss']
    assert isinstance(loss, HistoryBuffer)
    assert loss.data[0].shape == (8, )
    assert np.isclose(loss.mean(), loss.data[0].mean())
    assert isinstance(ckpt['message_hub']['runtime_info']['eta'], np.floating)
    assert set(ckpt['optimizer']['state'][0]) >= {'exp_avg', 'exp_avg_sq'}
    assert ckpt['param_schedulers'][0]['milestones'] == {1: 1}

    model = torch.nn.Module()
    model.fc = torch.nn.Linear(2, 1)
    load_checkpoint(model, path, map_location='cpu', strict=True)
    torch.testing.assert_close(model.fc.weight,
                               ckpt['state_dict']['fc.weight'])


def test_code_in_checkpoint_never_runs(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV_VAR, raising=False)
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    _save_with_reduce(path, _RunsShell(f'touch {marker}'))
    system = f'{os.system.__module__}.{os.system.__name__}'  # posix.system

    for load in (lambda: _load_checkpoint(path),
                 lambda: load_checkpoint_file(path)):
        with pytest.raises(UnsafeCheckpointError) as info:
            load()
        message = str(info.value)
        assert path in message
        assert system in message
        assert TRUST_ENV_VAR in message
    assert not marker.exists()


def test_getattr_is_limited_to_history_buffer_statistics(
        tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV_VAR, raising=False)
    allowed = str(tmp_path / 'mean.pth')
    _save_with_reduce(allowed, _FetchesAttribute('mean'))
    assert load_checkpoint_file(allowed)['extra'] is HistoryBuffer.mean

    refused = str(tmp_path / 'register.pth')
    _save_with_reduce(refused, _FetchesAttribute('register_statistics'))
    with pytest.raises(UnsafeCheckpointError, match='register_statistics'):
        load_checkpoint_file(refused)


def test_trust_opt_in_only_when_set(tmp_path, monkeypatch):
    path = str(tmp_path / 'fraction.pth')
    _save_with_reduce(path, fractions.Fraction(1, 3))
    warnings = []
    monkeypatch.setattr(safe_load, 'print_log',
                        lambda msg, **kw: warnings.append((msg, kw)))

    monkeypatch.delenv(TRUST_ENV_VAR, raising=False)
    with pytest.raises(UnsafeCheckpointError, match='fractions.Fraction'):
        load_checkpoint_file(path)
    monkeypatch.setenv(TRUST_ENV_VAR, '0')
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(path)
    monkeypatch.setenv(TRUST_ENV_VAR, 'maybe')
    with pytest.raises(ValueError, match=TRUST_ENV_VAR):
        load_checkpoint_file(path)
    assert warnings == []

    monkeypatch.setenv(TRUST_ENV_VAR, '1')
    assert load_checkpoint_file(path)['extra'] == fractions.Fraction(1, 3)
    assert len(warnings) == 1
    message, kwargs = warnings[0]
    assert path in message and 'fractions.Fraction' in message
    assert kwargs['level'] == 30  # logging.WARNING

    # A file that is safe loads without the warning, even when trusted.
    safe = str(tmp_path / 'safe.pth')
    torch.save({'state_dict': {'w': torch.ones(1)}}, safe)
    load_checkpoint_file(safe)
    assert len(warnings) == 1


def test_numpy_1_names_and_legacy_format(tmp_path, monkeypatch):
    # Files written under numpy 1.x name ``numpy.core.multiarray``; the
    # legacy (non-zip) torch format is a plain pickle stream, so the name
    # can be rewritten in place to produce such a file.
    monkeypatch.delenv(TRUST_ENV_VAR, raising=False)
    path = str(tmp_path / 'legacy.pth')
    meta = {
        'arr': np.arange(6, dtype=np.float32).reshape(2, 3),
        'scalar': np.float64(0.25),
        'flag': np.bool_(True)
    }
    torch.save({'meta': meta}, path, _use_new_zipfile_serialization=False)
    with open(path, 'rb') as f:
        data = f.read()
    assert b'numpy._core.multiarray\n' in data
    with open(path, 'wb') as f:
        f.write(
            data.replace(b'numpy._core.multiarray\n',
                         b'numpy.core.multiarray\n'))

    loaded = _load_checkpoint(path)['meta']
    np.testing.assert_array_equal(loaded['arr'], meta['arr'])
    assert loaded['arr'].dtype == np.float32
    assert loaded['scalar'] == 0.25 and loaded['flag']


def test_only_the_local_scheme_is_replaced(tmp_path):
    get = CheckpointLoader._get_checkpoint_loader
    assert get(str(tmp_path / 'a.pth')) is load_from_local_safe
    assert get('work_dirs/epoch_1.pth') is load_from_local_safe
    assert get('torchvision://resnet50') is load_from_torchvision
    assert get('https://host/model.pth') is load_from_http
    assert get('open-mmlab://resnet50_caffe') is load_from_openmmlab
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        _load_checkpoint(str(tmp_path / 'missing.pth'))


@pytest.mark.parametrize('resume', [False, True])
def test_runner_load_from_and_resume_refuse_code(tmp_path, monkeypatch,
                                                 resume):
    # The Runner's own load paths (``load_from``, ``resume``) go through the
    # safe loader: the file is refused before anything in it runs.
    from mmengine.runner import Runner
    monkeypatch.delenv(TRUST_ENV_VAR, raising=False)
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    _save_with_reduce(path, _RunsShell(f'touch {marker}'))
    runner = Runner(
        model=torch.nn.Linear(2, 1),
        work_dir=str(tmp_path / 'work'),
        default_scope='mmdet_detr',
        load_from=path,
        resume=resume)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        runner.load_or_resume()
    assert not marker.exists()
