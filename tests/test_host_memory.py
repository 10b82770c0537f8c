"""Freed host memory is kept for reuse on glibc, and only when allowed."""
import platform
import resource

import pytest
import torch

from mmdet_detr.engine import host_memory

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != 'glibc',
                                reason='mallopt settings are glibc-only')


def test_environment_variable_turns_it_off(monkeypatch):
    monkeypatch.setenv(host_memory.ENV_VAR, '0')
    assert host_memory.retain_freed_memory() is False


@glibc_only
def test_a_freed_large_block_is_reused_without_page_faults(monkeypatch):
    monkeypatch.delenv(host_memory.ENV_VAR, raising=False)
    assert host_memory.retain_freed_memory() is True
    numel = 64 * 2**20 // 4  # 64 MiB, twice glibc's largest mmap threshold
    faults = []
    for _ in range(6):  # a step that makes and frees two large tensors
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = torch.ones(numel)
        y = torch.ones(numel)
        del x, y
        faults.append(
            resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    # Fresh mmaps would fault in all 2 x 16384 pages of 4 KiB every time;
    # the heap is reused once it has grown (how soon depends on its layout).
    assert min(faults) < 1000, faults
