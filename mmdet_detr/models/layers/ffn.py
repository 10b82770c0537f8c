"""The position-wise feed-forward block of a transformer layer."""
from torch import Tensor, nn

from mmdet_detr.ops import Dropout, ReLUDropout


class FFN(nn.Module):
    """``linear2(dropout(relu(linear1(x))))`` followed by dropout.

    Returns the residual branch only; the layer adds it and normalises.

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
        # the ReLU is applied in the first dropout's pass.
        self.relu_dropout = ReLUDropout(dropout)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., C)."""
        return self.dropout(
            self.linear2(self.relu_dropout(self.linear1(x))))
