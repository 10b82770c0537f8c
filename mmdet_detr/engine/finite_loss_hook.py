"""Stop (or skip the step) when a loss or gradient is not finite.

A NaN loss gives NaN gradients, one optimizer step with them turns every
weight into NaN, and mmengine would then log ``loss: nan`` for the rest of
the run and save NaN checkpoints over the good ones. This hook

- looks at the loss terms the model returns (a forward hook on the model)
  and at the gradients just before the optimizer steps (a step pre-hook on
  the optimizer); when either is not finite the step is cancelled by
  dropping the gradients (torch optimizers skip parameters without a
  gradient), so the weights and the optimizer state stay as they were;
- after the iteration, either raises ``FloatingPointError`` naming the
  iteration, every loss term and the image ids of the batch
  (``on_non_finite='stop'``, the default), before any later hook can save a
  checkpoint, or logs that message as a warning with a running count and
  goes on (``on_non_finite='skip'``).

Under a loss-scaling ``AmpOptimWrapper`` infinite gradients are routine and
the scaler skips those steps itself; only non-finite losses count there.
"""
import logging
import math
from typing import List, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmdet_detr.registry import HOOKS

_MODES = ('stop', 'skip')


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Guard training against non-finite losses and gradients.

    Args:
        on_non_finite: ``'stop'`` raises ``FloatingPointError``; ``'skip'``
            drops the step, warns and trains on.
    """

    # Before CheckpointHook (VERY_LOW) and LoggerHook (BELOW_NORMAL), so a
    # stopped run saves nothing after the bad step.
    priority = 'VERY_HIGH'

    def __init__(self, on_non_finite: str = 'stop') -> None:
        if on_non_finite not in _MODES:
            raise ValueError(
                f'FiniteLossHook: on_non_finite={on_non_finite!r} is not one '
                f'of {_MODES}: use "stop" to end training at the first '
                'non-finite loss or "skip" to drop such steps')
        self.on_non_finite = on_non_finite
        self.num_skipped = 0
        self._bad_loss = False
        self._dropped_step = False
        self._handles: List = []

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self._handles.append(model.register_forward_hook(self._check_losses))
        wrappers = getattr(runner.optim_wrapper, 'optim_wrappers',
                           {'': runner.optim_wrapper})
        for wrapper in wrappers.values():
            self._handles.append(
                wrapper.optimizer.register_step_pre_hook(self._drop_step))

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self.num_skipped:
            print_log(
                f'FiniteLossHook: {self.num_skipped} optimizer steps were '
                'skipped for non-finite losses or gradients',
                logger='current',
                level=logging.WARNING)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        self._bad_loss = self._dropped_step = False

    def _check_losses(self, module, args, output) -> None:
        """Forward hook: note a non-finite loss term in training mode."""
        if not module.training or not isinstance(output, dict):
            return
        for name, value in output.items():
            if 'loss' not in name:
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if torch.is_tensor(v) and not bool(torch.isfinite(v).all()):
                    self._bad_loss = True

    def _drop_step(self, optimizer, args, kwargs) -> None:
        """Optimizer step pre-hook: cancel the step on bad values."""
        grads = [
            p.grad for group in optimizer.param_groups
            for p in group['params'] if p.grad is not None
        ]
        bad_grads = bool(grads) and not bool(
            torch.stack([torch.isfinite(g).all() for g in grads]).all())
        if self._bad_loss or bad_grads:
            for group in optimizer.param_groups:
                for p in group['params']:
                    p.grad = None
            self._dropped_step = True

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        terms = {
            k: float(v.detach()) if torch.is_tensor(v) else float(v)
            for k, v in (outputs or {}).items()
        }
        local_bad = (self._bad_loss or self._dropped_step
                     or not all(math.isfinite(v) for v in terms.values()))
        # Every rank must stop together, or the others wait forever in
        # their next collective.
        flag = torch.tensor([float(local_bad)])
        all_reduce(flag)
        if not flag.item():
            return
        if local_bad:
            message = self._describe(runner, terms, data_batch)
        else:
            message = (f'iteration {runner.iter + 1}: another process had a '
                       'non-finite loss or gradient (see its log)')
        if self.on_non_finite == 'stop':
            last = runner.message_hub.get_info('last_ckpt')
            raise FloatingPointError(
                f'{message}. Training stopped; this step was not applied and '
                'no checkpoint was written after it (last checkpoint: '
                f'{last or "none yet"}). Lower the learning rate, clip the '
                'gradients (optim_wrapper.clip_grad), check the annotations '
                'of these images, or set custom_hooks FiniteLossHook '
                "on_non_finite='skip' to drop such steps and train on")
        self.num_skipped += 1
        print_log(
            f'{message}. The optimizer step was skipped ({self.num_skipped} '
            'so far)',
            logger='current',
            level=logging.WARNING)

    def _describe(self, runner, terms: dict,
                  data_batch: Optional[dict]) -> str:
        what = ('non-finite gradients' if self._dropped_step
                and all(math.isfinite(v)
                        for v in terms.values()) else 'non-finite loss')
        listed = ', '.join(f'{k}={v:.4g}' for k, v in terms.items())
        return (f'{what} at iteration {runner.iter + 1} (epoch '
                f'{runner.epoch + 1}): {listed}; images of the batch: '
                f'{_image_ids(data_batch)}')


def _image_ids(data_batch: Optional[dict]) -> str:
    """``img_id (img_path)`` of every sample in a batch."""
    samples = (data_batch or {}).get('data_samples') or []
    described = []
    for sample in samples:
        meta = getattr(sample, 'metainfo', {})
        described.append(f"{meta.get('img_id', '?')} "
                         f"({meta.get('img_path', 'unknown path')})")
    return ', '.join(described) if described else 'unknown'
