"""A batch sampler that can skip the batches a resumed run has trained on,
by their indices, without loading them.

mmengine's ``IterBasedTrainLoop`` resumes at iteration ``N`` by drawing
``N`` batches from the data loader and dropping them: every image of the
trained steps is decoded and augmented again (1.6 M images at iteration
100,000 of COCO), and the augmentations drawn meanwhile move the random
generators on. :class:`SkippingBatchSampler` wraps the configured batch
sampler (or a plain ``BatchSampler``) and holds its batches back until
:meth:`start` says how many batches to skip; the skipped batches are
drawn from the wrapped sampler as index lists only, so the data loader's
stream of indices is where an uninterrupted run would be, and no image is
read. :class:`~mmdet_detr.engine.ResumableIterBasedTrainLoop` builds it
around the training data loader's batch sampler.
"""
from typing import Iterator, List, Optional

from torch.utils.data import BatchSampler, Sampler

from mmdet_detr.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class SkippingBatchSampler:
    """Batches of ``batch_sampler`` (or of ``BatchSampler(sampler,
    batch_size, drop_last)``), held back until :meth:`start`.

    Args:
        sampler: the data loader's sampler (``DefaultSampler``,
            ``InfiniteSampler``, ...), given by mmengine's ``build_dataloader``.
        batch_size: images per batch, given by ``build_dataloader``.
        batch_sampler: config of the batch sampler to wrap (for example
            ``dict(type='AspectRatioBatchSampler')``); ``None`` for a plain
            ``BatchSampler``.
        drop_last: drop the last incomplete batch of a pass (plain
            ``BatchSampler`` only).
    """

    def __init__(self,
                 sampler: Sampler,
                 batch_size: int,
                 batch_sampler: Optional[dict] = None,
                 drop_last: bool = False) -> None:
        if batch_sampler is None:
            self.batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        else:
            self.batch_sampler = DATA_SAMPLERS.build(
                batch_sampler,
                default_args=dict(sampler=sampler, batch_size=batch_size))
        self._started = False
        # The pass the skipping stopped in, continued by the next __iter__.
        self._current_pass: Optional[Iterator[List[int]]] = None

    @property
    def sampler(self) -> Sampler:
        """The wrapped sampler: mmengine's hooks call its ``set_epoch``."""
        return self.batch_sampler.sampler

    @property
    def batch_size(self) -> int:
        return self.batch_sampler.batch_size

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def start(self, skip: int) -> int:
        """Release the batches, after drawing and dropping the first
        ``skip`` of them as indices. Returns the number of passes over the
        data (epochs of the sampler) that the skipped batches completed:
        each completed pass moves a ``set_epoch`` sampler to the next epoch,
        as the data loader's restarts do in an uninterrupted run."""
        passes = 0
        batches = iter(self.batch_sampler)
        for _ in range(skip):
            if next(batches, None) is None:
                passes += 1
                if hasattr(self.sampler, 'set_epoch'):
                    self.sampler.set_epoch(passes)
                batches = iter(self.batch_sampler)
                if next(batches, None) is None:
                    raise ValueError(
                        'the training data loader gives no batches: check '
                        'train_dataloader.dataset and its batch_size')
        self._current_pass = batches
        self._started = True
        return passes

    def __iter__(self) -> Iterator[List[int]]:
        if not self._started:
            # Data loaders built before the run starts (mmengine's loop makes
            # its iterator in __init__, and workers prefetch at once) get no
            # batches, so nothing is loaded before the skip is known.
            return
        batches, self._current_pass = self._current_pass, None
        yield from batches if batches is not None else self.batch_sampler
