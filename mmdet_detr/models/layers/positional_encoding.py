"""Sine positional encodings: the embedding of a position, and the encoding
of a feature map built from its padding mask."""
import math

import torch
from torch import Tensor, nn

from mmdet_detr.registry import MODELS


@MODELS.register_module()
class SinePositionalEncoding(nn.Module):
    """The fixed 2-D sine/cosine encoding of DETR.

    Positions count valid (unpadded) pixels only, so every image of a padded
    batch is encoded over its own extent.

    Args:
        num_feats: channels per axis; the output has ``2 * num_feats``
            channels (y first, then x) and must equal the transformer width.
        temperature: base of the geometric frequency progression.
        normalize: scale positions to ``[0, scale]`` over the valid extent.
        scale: upper end of the normalised range.
        offset: added to the 1-based positions before normalising; -0.5
            puts each position at its pixel centre (Deformable DETR).
        eps: keeps the normalisation finite for a fully padded row.
    """

    def __init__(self,
                 num_feats: int = 128,
                 temperature: int = 10000,
                 normalize: bool = True,
                 scale: float = 2 * math.pi,
                 offset: float = -0.5,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.num_feats = num_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale
        self.offset = offset
        self.eps = eps

    def forward(self, mask: Tensor) -> Tensor:
        """Encode positions.

        Args:
            mask: (B, H, W) bool, True where the pixel is padding.

        Returns:
            (B, 2 * num_feats, H, W) the encoding, y channels first.
        """
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)  # B, H, W
        x_embed = not_mask.cumsum(2, dtype=torch.float32)  # B, H, W
        if self.normalize:
            y_embed = ((y_embed + self.offset) /
                       (y_embed[:, -1:, :] + self.eps) * self.scale)
            x_embed = ((x_embed + self.offset) /
                       (x_embed[:, :, -1:] + self.eps) * self.scale)
        pos_x = sine_embedding(x_embed, self.num_feats,
                               self.temperature)  # B, H, W, num_feats
        pos_y = sine_embedding(y_embed, self.num_feats,
                               self.temperature)  # B, H, W, num_feats
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def sine_embedding(positions: Tensor,
                   num_feats: int,
                   temperature: int = 10000) -> Tensor:
    """The sine embedding of each position (DETR's, for one axis).

    Frequencies fall geometrically: channel pair i sees
    ``position / temperature**(2 * i / num_feats)``; sin of the even and
    cos of the odd channels, interleaved as DETR does.

    Args:
        positions: (...) positions, already scaled (e.g. to ``[0, 2 pi]``).
        num_feats: F, channels per position (even).
        temperature: base of the geometric frequency progression.

    Returns:
        (..., F) float32.
    """
    dim_t = torch.arange(num_feats, dtype=torch.float32,
                         device=positions.device)  # F
    dim_t = temperature**(2 * (dim_t // 2) / num_feats)  # F
    pos = positions[..., None] / dim_t  # ..., F
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()),
                       dim=-1).flatten(-2)  # ..., F/2, 2 -> ..., F
