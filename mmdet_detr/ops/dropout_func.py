"""Dropout whose CPU mask comes from the compiled kernel.

``nn.Dropout`` on CPU draws a float mask with ``bernoulli_``, divides it by
the keep probability, multiplies, and keeps the float mask for the backward
pass. ``mmdet_detr.ops._C`` (``csrc/dropout_cpu.cpp``) draws the mask from a
Philox generator and applies it in the same pass, keeping a bool mask. The
mask has the same distribution: every element is kept independently with
probability ``1 - p`` (to within 2**-33), and the kept ones are scaled by
``1 / (1 - p)``; the masks differ from ``nn.Dropout``'s for the same seed.
The seed is drawn from torch's default CPU generator, so
``torch.manual_seed`` reproduces a run. Other devices, and CPU without the
compiled kernel, use ``torch.nn.functional.dropout``.

:func:`relu_dropout` is ``dropout(relu(x))`` in that same pass: the saved
mask is "kept and positive", so the ReLU needs no pass, tensor or backward
of its own (the FFN's hidden activation is the largest tensor of an encoder
layer). :func:`dropout_add` is ``residual + dropout(x)``, the residual sum
of a transformer layer, in that same pass too.
"""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function

from .ms_deform_attn_func import _C


class _DropoutCPUFunction(Function):

    @staticmethod
    def forward(ctx, x: Tensor, p: float, relu: bool,
                residual: Optional[Tensor]) -> Tensor:
        output, mask = _C.dropout_cpu_forward(x, p, relu, residual)
        ctx.save_for_backward(mask)
        ctx.scale = 1.0 / (1.0 - p)
        ctx.with_residual = residual is not None
        return output

    @staticmethod
    def backward(ctx, grad: Tensor):
        mask, = ctx.saved_tensors
        grad_x = _C.dropout_cpu_backward(grad.contiguous(), mask, ctx.scale)
        return grad_x, None, None, grad if ctx.with_residual else None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout(x, p, training)``, on CPU through the compiled kernel."""
    if not training or p == 0.0:
        return x
    if x.device.type != 'cpu' or _C is None or p >= 1.0:
        return F.dropout(x, p, training)
    return _DropoutCPUFunction.apply(x.contiguous(), p, False, None)


def dropout_add(residual: Tensor, x: Tensor, p: float,
                training: bool) -> Tensor:
    """``residual + dropout(x, p, training)``, on CPU in one compiled pass
    when both are contiguous-able tensors of one shape and dtype."""
    if (not training or p == 0.0 or x.device.type != 'cpu' or _C is None
            or p >= 1.0 or residual.shape != x.shape
            or residual.dtype != x.dtype or residual.device != x.device):
        return residual + dropout(x, p, training)
    return _DropoutCPUFunction.apply(x.contiguous(), p, False,
                                     residual.contiguous())


def relu_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``dropout(relu(x), p, training)``, on CPU in one compiled pass."""
    if not training or p == 0.0:
        return F.relu(x)
    if x.device.type != 'cpu' or _C is None or p >= 1.0:
        return F.dropout(F.relu(x), p, training)
    return _DropoutCPUFunction.apply(x.contiguous(), p, True, None)


class Dropout(nn.Module):
    """``nn.Dropout(p)`` (not in-place) over :func:`dropout`.

    Args:
        p: the probability of zeroing an element, in [0, 1].
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'dropout probability must be in [0, 1], got '
                             f'{p}')
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """(...) -> (...)."""
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f'p={self.p}'


class ResidualDropout(Dropout):
    """``residual + Dropout(p)(x)`` over :func:`dropout_add`.

    Args:
        p: the probability of zeroing an element of ``x``, in [0, 1].
    """

    def forward(self, residual: Tensor, x: Tensor) -> Tensor:
        """(...), (...) of one shape -> (...)."""
        return dropout_add(residual, x, self.p, self.training)


class ReLUDropout(Dropout):
    """``Dropout(p)(relu(x))`` over :func:`relu_dropout`.

    Args:
        p: the probability of zeroing an element, in [0, 1].
    """

    def forward(self, x: Tensor) -> Tensor:
        """(...) -> (...)."""
        return relu_dropout(x, self.p, self.training)
