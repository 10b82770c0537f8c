"""What ``tools/train.py`` and ``tools/test.py`` do to a config, as functions.

Each function applies one command-line option to a loaded
:class:`mmengine.Config` (or checks one), so the tools stay argument parsing
over mmengine's Runner and the tests can call the same code.
"""
import argparse
import ast
import glob
import os
import os.path as osp
import re
import shutil
import time
from typing import List, Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmdet_detr.registry import RUNNERS
from .config_check import check_config
from .distributed import close_process_group, prepare_cpu_distributed
from .host_memory import ENV_VAR as RETAIN_MEMORY_ENV_VAR
from .host_memory import retain_freed_memory

__all__ = [
    'add_launcher_args', 'add_dump_metric', 'apply_resume', 'build_runner',
    'check_checkpoint_path', 'check_config', 'check_dump_path',
    'check_load_from', 'close_process_group', 'enable_amp',
    'enable_auto_scale_lr', 'enable_visualization', 'load_config',
    'protect_work_dir', 'set_local_rank', 'set_test_checkpoint'
]

DEFAULT_SCOPE = 'mmdet_detr'
# ``scheme://...`` paths are fetched by mmengine's CheckpointLoader
# (torchvision://, open-mmlab://, http(s)://, s3://, ...), not read locally.
_REMOTE_PATH = re.compile(r'^[\w.+-]+:(\w+:)?//')


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Read ``config``, merge ``--cfg-options`` and fill in the run settings.

    The work directory is, by priority, ``work_dir``, the config's own
    ``work_dir``, then ``work_dirs/<config file name without .py>``. A config
    without ``default_scope`` gets ``'mmdet_detr'``, so the Runner resolves
    ``type=`` names in this project's registries and, through them, mmdet's.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    _check_bases(config, [])
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    if cfg.get('default_scope') is None:
        cfg.default_scope = DEFAULT_SCOPE
    return cfg


def _check_bases(config: str, chain: List[str]) -> None:
    """Every local ``_base_`` file that ``config`` includes, directly or
    through its bases, exists; else the error names the config that
    includes the missing one (mmengine names only the missing path)."""
    chain = chain + [config]
    for base in _base_files(config):
        if '::' in base:
            continue  # a package's config (mmdet::...), found by mmengine
        path = osp.normpath(osp.join(osp.dirname(config), base))
        if not osp.isfile(path):
            included = ' <- '.join(map(repr, reversed(chain)))
            raise FileNotFoundError(
                f'config {config!r}: its _base_ file {base!r} does not exist '
                f'(looked for {path!r}; included by '
                f'{included})')
        if osp.abspath(path) not in map(osp.abspath, chain):
            _check_bases(path, chain)


def _base_files(config: str) -> List[str]:
    """The ``_base_`` paths a Python config assigns as literals."""
    if not config.endswith('.py'):
        return []
    with open(config, encoding='utf-8') as f:
        try:
            tree = ast.parse(f.read(), filename=config)
        except SyntaxError:
            return []  # mmengine reports it with the line
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_'
                for t in node.targets)):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            value = [value] if isinstance(value, str) else value
            return [v for v in value if isinstance(v, str)]
    return []


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and ``--local_rank``, shared by the train and test
    tools."""
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank(local_rank: int) -> None:
    """Export ``LOCAL_RANK`` for launchers that pass ``--local_rank``
    instead of setting it (``torch.distributed.launch``)."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)


def enable_amp(cfg: Config) -> None:
    """Train with automatic mixed precision (``--amp``).

    bfloat16 autocast (``BF16AutocastOptimWrapper``) on CPU and on GPUs that
    support it: float32's exponent range, so no loss scaling, and the model
    keeps sampling locations, reference points and matching costs in
    float32. GPUs without bfloat16 (before Ampere) get mmengine's
    ``AmpOptimWrapper`` (float16, dynamic loss scaling), as in mmdet.
    """
    if 'optim_wrapper' not in cfg:
        raise ValueError(f'--amp needs an `optim_wrapper` in the config, and '
                         f'{cfg.filename!r} has none')
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        cfg.optim_wrapper.type = 'BF16AutocastOptimWrapper'


def enable_auto_scale_lr(cfg: Config) -> None:
    """Scale the learning rate linearly from ``auto_scale_lr.base_batch_size``
    to the actual total batch size (``--auto-scale-lr``)."""
    if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
        raise ValueError(
            '--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=N)` '
            'in the config (N: the total batch size its lr is meant for), '
            f'and {cfg.filename!r} has none')
    cfg.auto_scale_lr.enable = True


def check_checkpoint_path(path: str, option: str) -> None:
    """Fail early, before any model is built, on a missing local file.

    ``option`` names the command-line argument in the message.
    """
    if _REMOTE_PATH.match(path):
        return
    if not osp.isfile(osp.expanduser(path)):
        raise FileNotFoundError(
            f'{option}: checkpoint file {path!r} does not exist (working '
            f'directory: {os.getcwd()!r})')


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """Resume training (``--resume [CHECKPOINT]``).

    ``'auto'`` resumes from the latest checkpoint of the work directory
    (its ``last_checkpoint`` file) and is refused when there is none (a
    mistyped work dir would silently start over); a path resumes from that
    checkpoint. ``None`` leaves the config's
    ``resume`` and ``load_from`` as they are. Resuming restores the model,
    optimizer, parameter schedulers, epoch and iteration.
    """
    if resume is None:
        return
    cfg.resume = True
    if resume == 'auto':
        if not osp.isfile(osp.join(cfg.work_dir, 'last_checkpoint')):
            found = _checkpoints_in(cfg.work_dir)
            raise FileNotFoundError(
                f'--resume: work dir {cfg.work_dir!r} has no '
                'last_checkpoint file, so there is no run to resume' +
                (f' (it holds {", ".join(found)}: pass one as --resume '
                 'PATH)' if found else '') +
                '; check --work-dir, or drop --resume to start a new run')
        cfg.load_from = None
    else:
        check_checkpoint_path(resume, '--resume')
        cfg.load_from = resume


def check_load_from(cfg: Config) -> None:
    """A local ``load_from`` exists, checked before any model is built."""
    if cfg.get('load_from'):
        check_checkpoint_path(cfg.load_from, 'load_from')


def protect_work_dir(cfg: Config, overwrite: bool) -> None:
    """Keep the checkpoints of an earlier run in the work directory.

    mmengine writes ``iter_N.pth``/``epoch_N.pth`` and ``last_checkpoint``
    into the work directory whatever is there, so a second run, of the same
    or of another config, replaces the first run's model without a word.
    Unless the run resumes, a work directory with checkpoints is refused;
    with ``overwrite`` (``--overwrite``) they are first moved, with
    ``last_checkpoint``, into ``<work_dir>/earlier_<timestamp>/``, where
    nothing of this run writes.
    """
    if cfg.get('resume'):
        return
    found = _checkpoints_in(cfg.work_dir)
    marker = osp.join(cfg.work_dir, 'last_checkpoint')
    if not found and not osp.isfile(marker):
        return
    if not overwrite:
        raise FileExistsError(
            f'work dir {cfg.work_dir!r} already holds the checkpoints of an '
            f'earlier run ({", ".join(found) or "last_checkpoint"}), which '
            'this run would write over: resume it with --resume, train '
            'into another --work-dir, or pass --overwrite to move them into '
            f'{osp.join(cfg.work_dir, "earlier_<timestamp>")}/ first')
    if int(os.environ.get('RANK', '0')) != 0:
        return  # the first process moves them
    kept = osp.join(cfg.work_dir,
                    'earlier_' + time.strftime('%Y%m%d_%H%M%S'))
    os.makedirs(kept)
    for name in found + (['last_checkpoint'] if osp.isfile(marker) else []):
        shutil.move(osp.join(cfg.work_dir, name), kept)
    print(f'--overwrite: the earlier checkpoints of {cfg.work_dir!r} are '
          f'now in {kept!r}')


def _checkpoints_in(work_dir: str) -> List[str]:
    return sorted(
        osp.basename(p) for p in glob.glob(osp.join(work_dir, '*.pth')))


def set_test_checkpoint(cfg: Config, checkpoint: str) -> None:
    """Evaluate the weights in ``checkpoint`` (``tools/test.py``).

    Only the model weights are loaded: ``resume`` is switched off, since
    resuming restores training state that a test run does not build.
    """
    check_checkpoint_path(checkpoint, 'CHECKPOINT')
    cfg.load_from = checkpoint
    cfg.resume = False


def enable_visualization(cfg: Config,
                         show: bool = False,
                         show_dir: Optional[str] = None,
                         wait_time: float = 2.0) -> None:
    """Draw test predictions (``--show``, ``--show-dir``).

    Turns on ``default_hooks.visualization`` (mmdet's
    ``DetVisualizationHook``): ``show`` opens a window per image for
    ``wait_time`` seconds, ``show_dir`` writes the drawn images there
    (a relative ``show_dir`` lands under ``<work_dir>/<timestamp>/``).
    """
    if not (show or show_dir):
        return
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ValueError(
            '--show/--show-dir need `default_hooks.visualization` in the '
            "config, e.g. visualization=dict(type='DetVisualizationHook') "
            "(configs/_base_/default_runtime.py has it), and "
            f'{cfg.filename!r} has none')
    hook.draw = True
    if show:
        hook.show = True
        hook.wait_time = wait_time
    if show_dir:
        hook.test_out_dir = show_dir


def check_dump_path(out: Optional[str]) -> None:
    """``--out`` must name a pickle file."""
    if out is not None and not out.endswith(('.pkl', '.pickle')):
        raise ValueError(
            f'--out {out!r}: predictions are dumped as a pickle, so the file '
            'name must end with .pkl or .pickle')


def build_runner(cfg: Config) -> Runner:
    """mmengine's Runner, or the ``runner_type`` the config names.

    Without a GPU, a distributed launcher gets a gloo process group first
    (see :mod:`mmdet_detr.engine.distributed`), and freed host memory is
    kept for reuse (:mod:`mmdet_detr.engine.host_memory`).
    """
    prepare_cpu_distributed(cfg)
    retained = not torch.cuda.is_available() and retain_freed_memory()
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    if retained:
        runner.logger.info(
            'No GPU: freed host memory is kept for reuse (glibc malloc '
            f'without mmap or trimming); {RETAIN_MEMORY_ENV_VAR}=0 turns '
            'this off')
    return runner


def add_dump_metric(runner: Runner, out: str) -> None:
    """Also write the test predictions to ``out`` (``--out``), with mmdet's
    ``DumpDetResults`` (mmengine's ``DumpResults`` without ground truth)."""
    from mmdet.evaluation import DumpDetResults
    runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
