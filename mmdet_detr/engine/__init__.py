"""Runner-side pieces of the ``mmdet_detr`` scope.

The registries of ``mmdet_detr/registry.py`` import this package the first
time a Runner with ``default_scope='mmdet_detr'`` looks up a hook, optimizer
wrapper, metric or visualizer. Importing it also makes mmengine load local
checkpoints through :mod:`mmdet_detr.checkpoint.loader` (``weights_only``
unpickling with an explicit allowlist), before the Runner loads any.
"""
from mmdet_detr.checkpoint.loader import install_safe_local_loader
from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .bf16_optim_wrapper import BF16AutocastOptimWrapper
from .checkpoint_variant_hook import CheckpointVariantHook
from .finite_loss_hook import FiniteLossHook
from .resumable_iter_loop import ResumableIterBasedTrainLoop
from .rng_state_hook import RNGStateHook

install_safe_local_loader()

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'BF16AutocastOptimWrapper',
    'CheckpointVariantHook', 'FiniteLossHook', 'RNGStateHook',
    'ResumableIterBasedTrainLoop'
]
