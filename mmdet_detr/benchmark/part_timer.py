"""Where a training step's time goes: backbone, neck, encoder, decoder,
matching, loss and optimizer, forward and backward.

Forward: hooks around the detector's ``backbone``, ``neck``, ``encoder`` and
``decoder``, and around its head's ``loss`` and the assigner's ``assign``
(this project's detector and mmdet's have these attribute names).

Backward: the autograd engine runs the parts in reverse order, so a part's
backward starts when the gradient of its first output is complete and ends
when that of the part before it is. Hooks on every part's output tensors record
those moments: encoder backward = (neck output's gradient complete) -
(encoder output's gradient complete), and so on; the head and the loss run
from the start of ``backward()`` to the decoder's output gradient, the
backbone from its output gradient to the end of ``backward()``.
"""
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional

import torch
from torch import nn

# Model parts in forward order; their attribute names on the detector.
PARTS = ('backbone', 'neck', 'encoder', 'decoder')
# Rows of the breakdown, in the order printed.
ROWS = PARTS + ('matching', 'loss', 'optimizer')
# Printed after the rows: the rest of the step, and the whole step.
TOTALS = ('other', 'step')


class PartTimer:
    """Accumulates per-part seconds over the steps it is installed for.

    Args:
        sync: called before every clock reading (``torch.cuda.synchronize``
            on a GPU, so that the clock sees finished work), or None.
        read_clock: the clock, in seconds (a test gives a simulated one).
    """

    def __init__(self,
                 sync: Optional[Callable[[], None]] = None,
                 read_clock: Callable[[], float] = time.perf_counter) -> None:
        self.sync = sync
        self.read_clock = read_clock
        self.seconds: Dict[str, List[float]] = defaultdict(list)
        self._forward: Dict[str, float] = {}
        self._grad_done: Dict[str, float] = {}
        self._starts: Dict[str, float] = {}

    def _now(self) -> float:
        return clock(self.sync, self.read_clock)

    @contextmanager
    def installed(self, model: nn.Module) -> Iterator['PartTimer']:
        """Hooks on ``model`` while the block runs, removed afterwards."""
        handles = []
        for name in PARTS:
            part = getattr(model, name)
            handles.append(part.register_forward_pre_hook(
                self._pre_hook(name)))
            handles.append(part.register_forward_hook(self._post_hook(name)))
        head = model.bbox_head
        assigner = head.assigner
        head.loss = self._wrap(head.loss, 'head_loss')
        assigner.assign = self._wrap(assigner.assign, 'matching')
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            del head.loss  # the instance attribute; the method shows again
            del assigner.assign

    def _pre_hook(self, name: str):

        def hook(module, args):
            self._starts[name] = self._now()

        return hook

    def _post_hook(self, name: str):

        def hook(module, args, output):
            self._forward[name] = self._forward.get(name, 0.0) + (
                self._now() - self._starts.pop(name))
            for tensor in _tensors(output):
                if tensor.requires_grad:
                    tensor.register_hook(self._grad_hook(name))

        return hook

    def _grad_hook(self, name: str):

        def hook(grad):
            # The first output whose gradient is complete starts the
            # part's backward; a later one (e.g. reference points that the
            # decoder's layers themselves use) completes inside it.
            self._grad_done.setdefault(name, self._now())

        return hook

    def _wrap(self, method, name: str):

        def timed(*args, **kwargs):
            start = self._now()
            try:
                return method(*args, **kwargs)
            finally:
                self._forward[name] = self._forward.get(name, 0.0) + (
                    self._now() - start)

        return timed

    def step(self, forward: Callable[[], torch.Tensor],
             backward: Callable[[torch.Tensor], None],
             optimize: Callable[[], None]) -> float:
        """Time one training step: ``loss = forward()``, ``backward(loss)``,
        ``optimize()``; record its breakdown; return its total seconds."""
        self._forward.clear()
        self._grad_done.clear()
        start = self._now()
        loss = forward()
        backward_start = self._now()
        backward(loss)
        backward_end = self._now()
        optimize()
        end = self._now()
        fwd, done = self._forward, self._grad_done
        matching = fwd.get('matching', 0.0)
        # Gradient-complete moments in backward order; a part whose output
        # got no gradient (frozen) takes the moment of the part after it.
        moments = [backward_start]
        for name in reversed(PARTS):
            moments.append(done.get(name, moments[-1]))
        moments.append(backward_end)
        # moments: start, decoder, encoder, neck, backbone, end
        backward_of = {'loss': moments[1] - moments[0]}
        for i, name in enumerate(reversed(PARTS)):
            backward_of[name] = moments[i + 2] - moments[i + 1]
        for name in PARTS:
            self.seconds[name].append(fwd.get(name, 0.0) + backward_of[name])
        self.seconds['matching'].append(matching)
        self.seconds['loss'].append(
            fwd.get('head_loss', 0.0) - matching + backward_of['loss'])
        self.seconds['optimizer'].append(end - backward_end)
        total = end - start
        # Positional encoding, flattening, masks: between the parts.
        self.seconds['other'].append(
            total - sum(self.seconds[row][-1] for row in ROWS))
        self.seconds['step'].append(total)
        return end - start


def clock(sync: Optional[Callable[[], None]] = None,
          read_clock: Callable[[], float] = time.perf_counter) -> float:
    """``read_clock()`` after ``sync()`` (when given)."""
    if sync is not None:
        sync()
    return read_clock()


def _tensors(output) -> Iterator[torch.Tensor]:
    """Every tensor in a module's output (tensors, tuples, lists)."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, (tuple, list)):
        for item in output:
            yield from _tensors(item)
