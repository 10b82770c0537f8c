"""Random number generator states saved in checkpoints, so that a resumed
run draws the same augmentations as an uninterrupted one.

mmengine's resume restores the model, optimizer, schedulers and counters,
then keeps the generators where the seeding at start-up left them: a run
resumed at epoch 3 flips and crops as if it were at epoch 1. This hook saves
the states of Python's ``random``, numpy's global generator and torch's
generators with each checkpoint and puts them back just before a resumed run
trains. The data loader's sampler has its own generator seeded from the seed
and the epoch, so it needs nothing here.

Exactness holds for transforms run in the main process (``num_workers=0``)
or in workers started anew every epoch (``persistent_workers=False``: their
seeds depend only on the seed, rank and worker index). Persistent workers
carry their generators across epochs in other processes, which a checkpoint
cannot capture.
"""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook

from mmdet_detr.registry import HOOKS

RNG_KEY = 'rng_state'


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save generator states with every checkpoint, restore them on resume.

    Loading weights with ``load_from`` (no resume) leaves the generators to
    the seed, as a new run should.
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._loaded: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint[RNG_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(RNG_KEY)

    def before_train(self, runner) -> None:
        # The runner loads the checkpoint, then builds the loop's data
        # iterators; restoring here, the last moment before the first
        # batch, keeps anything drawn in between from shifting the states.
        state, self._loaded = self._loaded, None
        if state is None or runner.iter == 0:
            return
        random.setstate(_python_state(state['python']))
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])


def _python_state(state) -> tuple:
    """``random.setstate`` needs tuples; a checkpoint may give lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss
