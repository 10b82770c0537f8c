"""Iteration-based training whose resume skips the trained steps by index.

mmengine's ``IterBasedTrainLoop`` resumes at iteration ``N`` by loading
``N`` batches and dropping them, after the hooks' ``before_train``. That
decodes every trained image again, and, since the dropped batches run the
augmentation pipeline, it moves the random generators on after
:class:`~mmdet_detr.engine.RNGStateHook` has restored them: the resumed
losses drift from an uninterrupted run's (RandomFlip draws from numpy).

This loop wraps the training batch sampler in
:class:`~mmdet_detr.datasets.SkippingBatchSampler` and, before any hook
runs, skips the ``N`` trained batches as index lists: the sampler's
position, its epoch and the data loader's restarts are where an
uninterrupted run has them, no image is read, and the generators are
restored afterwards, untouched by the skip. With the transforms in the main
process (``num_workers=0``) the resumed run is then the uninterrupted one,
loss for loss. Data-loading workers start again from their seeds, so with
``num_workers > 0`` the images and the model's own random draws match but
the augmentations drawn in the workers do not (docs/robustness.md).
"""
import copy
from typing import Dict, List, Optional, Tuple

from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from mmdet_detr.datasets.skipping_batch_sampler import SkippingBatchSampler
from mmdet_detr.registry import LOOPS


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` with an exact, index-only resume.

    Takes the arguments of mmengine's loop; ``dataloader`` must be a config
    dict (as the Runner passes it), so that its batch sampler can be
    wrapped before the data loader is built.
    """

    def __init__(self,
                 runner,
                 dataloader: Dict,
                 max_iters: int,
                 val_begin: int = 1,
                 val_interval: int = 1000,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None
                 ) -> None:
        if not isinstance(dataloader, dict):
            raise TypeError(
                'ResumableIterBasedTrainLoop needs train_dataloader as a '
                f'config dict, got a built {type(dataloader).__name__}; use '
                "type='IterBasedTrainLoop' for a data loader built by hand")
        super().__init__(runner, _with_skipping_batches(dataloader),
                         max_iters, val_begin, val_interval,
                         dynamic_intervals)

    def run(self):
        """Launch training; the same steps as mmengine's ``run``, with the
        trained batches skipped by index before the hooks run."""
        self._start_data()
        self.runner.call_hook('before_train')
        # The whole run is one big epoch, as in mmengine's loop.
        self.runner.call_hook('before_train_epoch')
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _start_data(self) -> None:
        """Skip the ``self._iter`` trained batches by index and make the
        iterator that gives the first batch to train on.

        Runs before ``before_train``: RNGStateHook restores the generators
        there, and the data loader restarts of the skipped passes (each
        draws a worker base seed from torch's generator) must come first.
        """
        batch_sampler = self.dataloader.batch_sampler
        passes = batch_sampler.start(skip=self._iter)
        if self._iter > 0:
            self.runner.logger.info(
                f'Resuming at iteration {self._iter}: skipped the '
                f'{self._iter} trained batches by index ({passes} complete '
                'passes over the data), without loading them')
        self.dataloader_iterator = _InfiniteDataloaderIterator(
            self.dataloader)
        # The restarts of mmengine's iterator count passes in ``_epoch`` and
        # hand the next one to the sampler's set_epoch; the skipped passes
        # already happened.
        self.dataloader_iterator._epoch = passes


def _with_skipping_batches(dataloader: Dict) -> Dict:
    """``dataloader`` with its batch sampler wrapped in
    :class:`SkippingBatchSampler` (``drop_last`` moves into it, since a
    data loader with a batch sampler takes none)."""
    dataloader = copy.deepcopy(dataloader)
    wrapped = dataloader.pop('batch_sampler', None)
    dataloader['batch_sampler'] = dict(
        type=SkippingBatchSampler,
        batch_sampler=wrapped,
        drop_last=dataloader.pop('drop_last', False))
    return dataloader
