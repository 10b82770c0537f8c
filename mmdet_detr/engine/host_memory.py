"""Keep freed host memory in the process instead of returning it to the OS.

glibc's ``malloc`` serves every block above its mmap threshold (32 MiB at
most) with a fresh ``mmap`` and unmaps it on ``free``, so the next block of
that size starts as untouched pages that the kernel must fault in and zero
one by one. A training step on CPU allocates and frees the same large
activations every step, so every step pays those page faults again
(docs/benchmarks.md has the figures for a Deformable DETR R50 step).

:func:`retain_freed_memory` makes ``malloc`` serve those blocks from its heap
and never give the heap back, so after the first step the process reuses its
own pages, as PyTorch's caching allocator does on the GPU. The process's
resident memory then stays at its peak instead of falling between steps.
``tools/train.py`` and ``tools/test.py`` call it when no GPU is present, and
``tools/benchmark.py --device cpu`` for both models it compares; set the
environment variable ``MMDET_DETR_RETAIN_FREED_MEMORY=0`` to keep glibc's
defaults. Other C libraries are left alone.
"""
import ctypes
import os
import platform

ENV_VAR = 'MMDET_DETR_RETAIN_FREED_MEMORY'

# mallopt parameters of glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def retain_freed_memory() -> bool:
    """Serve large blocks from the heap and never trim it (glibc only).

    Returns:
        Whether glibc accepted both settings; False when the environment
        variable is ``0``, the C library is not glibc, or ``mallopt``
        refused.
    """
    if os.environ.get(ENV_VAR, '1') == '0':
        return False
    if platform.libc_ver()[0] != 'glibc':
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # No block is served by mmap any more, and freed memory at the top of
    # the heap is returned to the OS only above 2 GiB.
    return (mallopt(_M_MMAP_MAX, 0) == 1
            and mallopt(_M_TRIM_THRESHOLD, _INT_MAX) == 1)
