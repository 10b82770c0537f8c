"""The position-wise feed-forward block of a transformer layer."""
import torch
from torch import Tensor, nn

from mmdet_detr.ops import ReLUDropout, ResidualDropout


class FFN(nn.Module):
    """``x + dropout(linear2(dropout(relu(linear1(x)))))``.

    Returns the residual sum; the layer normalises it.

    Args:
        embed_dims: C, input and output width.
        feedforward_channels: the hidden width.
        dropout: dropout after the activation and after ``linear2``.
    """

    def __init__(self, embed_dims: int, feedforward_channels: int,
                 dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dims, feedforward_channels)
        self.linear2 = nn.Linear(feedforward_channels, embed_dims)
        # The compiled kernel's dropout: cheaper on CPU, same distribution;
        # the ReLU and the residual sum are applied in the dropouts' passes.
        self.relu_dropout = ReLUDropout(dropout)
        self.residual_dropout = ResidualDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., C)."""
        hidden = self.linear1(x)  # (..., feedforward_channels)
        if self.training or torch.is_grad_enabled():
            hidden = self.relu_dropout(hidden)
        else:  # inference: the hidden tensor is this block's own
            hidden = hidden.relu_()
        return self.residual_dropout(x, self.linear2(hidden))
