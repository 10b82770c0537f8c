"""Mixed-precision training in bfloat16, on CPU as well as on GPU."""
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast

from mmdet_detr.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward and loss run under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` refuses to start without a GPU (it builds
    a CUDA ``GradScaler``), and CPU autocast supports bfloat16 only. bfloat16
    has float32's exponent range, so gradients need no loss scaling and this
    wrapper is a plain ``OptimWrapper`` (same ``clip_grad``, accumulation and
    state dict) plus the autocast context. Parameters, gradients and the
    optimizer state stay float32.
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        # ``device_type=None``: mmengine picks the device the run is on.
        with super().optim_context(model), autocast(dtype=torch.bfloat16):
            yield
