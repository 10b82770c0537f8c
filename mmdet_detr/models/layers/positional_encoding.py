"""Sine positional encoding of a feature map, built from its padding mask."""
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
        dim_t = torch.arange(
            self.num_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature**(2 * (dim_t // 2) / self.num_feats)
        pos_x = x_embed[..., None] / dim_t  # B, H, W, num_feats
        pos_y = y_embed[..., None] / dim_t  # B, H, W, num_feats
        # Interleave sin of even and cos of odd frequencies, as DETR does.
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()),
                            dim=4).flatten(3)  # B, H, W, num_feats
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()),
                            dim=4).flatten(3)  # B, H, W, num_feats
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
