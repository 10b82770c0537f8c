"""Count the places where the host reads tensor data back, by phase.

On a GPU each such read (``.item()``, ``.tolist()``, ``.cpu()``,
``.numpy()``, ``int(t)``, ``bool(t)``, a copy to the CPU) waits for all queued
work: it is a synchronisation. On CPU they cost nothing, but they are the
same calls, so counting them on CPU finds them before a GPU run does.

Two mechanisms together see every kind: a ``TorchDispatchMode`` sees
``aten._local_scalar_dense`` (``item``, ``int``, ``float``, ``bool``) and
copies from a device to the CPU; patched ``Tensor.tolist``, ``Tensor.cpu``
and ``Tensor.numpy`` see the reads that never reach the dispatcher for a CPU
tensor. ``t.cpu().numpy()`` counts once.
"""
import traceback
from collections import Counter, defaultdict
from contextlib import contextmanager
from typing import Dict, Iterator, List

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_PATCHED = ('tolist', 'cpu', 'numpy')


class HostTransferCounter(TorchDispatchMode):
    """``with HostTransferCounter() as counter:`` counts host reads.

    Reads are attributed to the current :meth:`phase` (``'forward'`` until
    one is set). ``counts[phase]`` is the number of reads,
    ``sites[phase]`` where each came from (``file:line function``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()
        self.sites: Dict[str, List[str]] = defaultdict(list)
        self._phase = 'forward'
        self._from_cpu_call: List[torch.Tensor] = []
        self._originals = {}
        self._inside_patched = 0

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Attribute the reads inside the block to ``name``."""
        previous, self._phase = self._phase, name
        try:
            yield
        finally:
            self._phase = previous

    def _record(self, kind: str) -> None:
        self.counts[self._phase] += 1
        frame = _caller()
        self.sites[self._phase].append(f'{kind} at {frame}')

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._inside_patched:
            return out
        if func is torch.ops.aten._local_scalar_dense.default:
            self._record('item')
        elif func is torch.ops.aten._to_copy.default and isinstance(
                out, torch.Tensor) and out.device.type == 'cpu' and \
                args[0].device.type != 'cpu':
            self._record('copy to cpu')
        return out

    def _patch(self, name: str):
        original = getattr(torch.Tensor, name)
        counter = self

        def patched(tensor, *args, **kwargs):
            counted = not (name == 'numpy' and any(
                t is tensor for t in counter._from_cpu_call))
            if counted:
                counter._record(name)
            counter._inside_patched += 1
            try:
                out = original(tensor, *args, **kwargs)
            finally:
                counter._inside_patched -= 1
            if name == 'cpu':
                counter._from_cpu_call.append(out)
            return out

        return original, patched

    def __enter__(self):
        for name in _PATCHED:
            self._originals[name] = torch.Tensor.__dict__.get(name)
            _, patched = self._patch(name)
            setattr(torch.Tensor, name, patched)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for name in _PATCHED:
                if self._originals[name] is None:
                    delattr(torch.Tensor, name)
                else:
                    setattr(torch.Tensor, name, self._originals[name])
            self._from_cpu_call.clear()


def _caller() -> str:
    """The innermost stack frame outside torch and this file."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if '/torch/' not in frame.filename and \
                not frame.filename.endswith('host_transfers.py'):
            return f'{frame.filename}:{frame.lineno} {frame.name}'
    return '?'
