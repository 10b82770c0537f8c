"""Peak tensor memory of a piece of work, on CPU as well as on CUDA."""
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile


def peak_memory_bytes(work: Callable[[], None], device: str) -> int:
    """The most tensor memory held at once while ``work()`` runs, above
    what was held when it started.

    On CUDA: the caching allocator's peak statistics. On CPU, which keeps
    no such statistics: the profiler's allocation and free events, summed
    in time order (tensors only; memory a library allocates outside
    torch's allocator is not seen, the same for every model measured).
    """
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        work()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        work()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == '[memory]' and e.device_type().name == 'CPU')
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak
