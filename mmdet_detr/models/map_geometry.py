"""Where tokens sit on a padded feature map: the map's unpadded extent, its
pixel centres, and points carried from the valid image onto every level.

A batch is padded to one size, so each image covers only the top-left part
of every feature map. Points and boxes are normalised to that valid part;
the attention samples in the frame of the whole padded map.

Symbols: B batch, H, W a map's height and width, L levels, N points.
"""
import torch
from torch import Tensor


def valid_size(padding_mask: Tensor) -> Tensor:
    """(B, H, W) bool padding mask, True at padding -> (B, 2) long, the
    unpadded width and height ``(w, h)`` in pixels of the map.

    Padding is at the bottom and the right, so the first column and the
    first row count the valid rows and columns.
    """
    valid_h = (~padding_mask[:, :, 0]).sum(1)  # B
    valid_w = (~padding_mask[:, 0, :]).sum(1)  # B
    return torch.stack([valid_w, valid_h], -1)  # B, 2


def valid_ratio(padding_mask: Tensor) -> Tensor:
    """(B, H, W) bool padding mask -> (B, 2) float32, the unpadded fraction
    ``(w, h)`` of the map."""
    _, H, W = padding_mask.shape
    valid_w, valid_h = valid_size(padding_mask).float().unbind(-1)  # B; B
    return torch.stack([valid_w / W, valid_h / H], -1)  # B, 2


def pixel_centres(height: int, width: int,
                  device: torch.device) -> Tensor:
    """The centre of every pixel of an ``height`` x ``width`` map.

    Returns:
        (H, W, 2) float32 ``(x, y) = (j + 0.5, i + 0.5)`` in pixels, for
        the pixel in row i and column j. The values are exact.
    """
    ys = torch.arange(height, dtype=torch.float32, device=device) + 0.5
    xs = torch.arange(width, dtype=torch.float32, device=device) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')  # H, W; H, W
    return torch.stack([grid_x, grid_y], -1)  # H, W, 2


def points_on_levels(points: Tensor, valid_ratios: Tensor) -> Tensor:
    """Points (or boxes) relative to the valid image -> the same points on
    every level, relative to that level's padded map.

    Args:
        points: (B, N, 2) normalised ``(x, y)`` or (B, N, 4) normalised
            ``(cx, cy, w, h)``.
        valid_ratios: (B, L, 2) unpadded fraction ``(w, h)`` of each level
            (:func:`valid_ratio`).

    Returns:
        (B, N, L, 2 or 4), each coordinate scaled by its axis's ratio.
    """
    if points.shape[-1] == 4:
        valid_ratios = torch.cat([valid_ratios, valid_ratios], -1)  # B, L, 4
    return points[:, :, None] * valid_ratios[:, None]  # B, N, L, 2 or 4
