"""Distributed training and testing on machines without a GPU.

mmengine 0.10.7's ``init_dist('pytorch')`` calls
``torch.cuda.set_device(LOCAL_RANK)`` before it creates the process group,
which fails on a CPU-only torch (``torch._C`` has no ``_cuda_setDevice``);
its ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to
``DistributedDataParallel``, which refuses CPU modules. The Runner only calls
``init_dist`` when no process group exists yet, and takes ``device_ids``
from ``model_wrapper_cfg`` when the config sets it. So, without a GPU, this
module creates the gloo process group itself from torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and sets
``device_ids=None``; with a GPU nothing changes.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

_TORCHRUN_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def prepare_cpu_distributed(cfg: Config) -> bool:
    """Set up a CPU (gloo) run of ``cfg.launcher``; True when it did.

    Does nothing for ``launcher='none'`` or when CUDA is available.

    Raises:
        ValueError: a launcher other than ``pytorch`` without a GPU, or a
            ``dist_cfg.backend`` other than gloo.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise ValueError(
            f'--launcher {launcher}: without a GPU only the pytorch launcher '
            'is supported (tools/dist_train.sh, tools/dist_test.sh or '
            'torchrun ... --launcher pytorch)')
    missing = [name for name in _TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise ValueError(
            f'--launcher pytorch needs the environment variables {missing}, '
            'which torchrun sets: start the run with tools/dist_train.sh '
            '(or python -m torch.distributed.run)')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get('backend', 'gloo')
    if backend == 'nccl':
        # nccl is the GPU default of the base runtime; gloo is its CPU peer.
        backend = 'gloo'
    if backend != 'gloo':
        raise ValueError(
            f'env_cfg.dist_cfg.backend={backend!r} needs a GPU; without one '
            "use 'gloo'")
    dist_cfg['backend'] = backend
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    return True


def close_process_group() -> None:
    """Wait for every process, then destroy the default process group, if
    there is one.

    Called when a run has finished. Left to interpreter shutdown, the
    process group's communication threads can be destroyed while still
    joinable, and the C++ runtime aborts the process ("terminate called
    without an active exception", exit code -6) after the run itself
    succeeded.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        # Every process reaches this point before any tears its group
        # down, so none sees a peer vanish mid-teardown.
        torch_dist.barrier()
        torch_dist.destroy_process_group()
