"""The position-wise feed-forward block of a transformer layer."""
import torch
from torch import Tensor, nn

from mmdet_detr.ops import ReLUDropout


class FFN(nn.Module):
    """``linear2(dropout(relu(linear1(x))))``.

    As in DETR, the dropout of the output belongs to the layer's residual
    sum, ``norm(x + dropout(ffn(x)))``, like the attention's (mmcv's FFN
    adds its input itself; here the layer shows the sum).

    Args:
        embed_dims: C, input and output width.
        feedforward_channels: the hidden width.
        dropout: dropout after the activation.
    """

    def __init__(self, embed_dims: int, feedforward_channels: int,
                 dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dims, feedforward_channels)
        self.linear2 = nn.Linear(feedforward_channels, embed_dims)
        # dropout(relu(.)) in one pass of the compiled kernel
        # (ops/dropout_func.py).
        self.relu_dropout = ReLUDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., C)."""
        hidden = self.linear1(x)  # (..., feedforward_channels)
        if self.training or torch.is_grad_enabled():
            hidden = self.relu_dropout(hidden)
        else:  # inference: the hidden tensor is this block's own
            hidden = hidden.relu_()
        return self.linear2(hidden)
