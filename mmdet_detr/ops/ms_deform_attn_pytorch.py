"""Multi-scale deformable attention core in plain PyTorch (the reference path).

Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
D channels per head, L levels, P sampling points per level and head.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def ms_deform_attn_pytorch(value: Tensor, spatial_shapes: Tensor,
                           sampling_locations: Tensor,
                           attention_weights: Tensor) -> Tensor:
    """Bilinearly sample every level at the given points and sum by weight.

    Args:
        value: (B, S, M, D) projected values of all levels, flattened and
            concatenated level by level.
        spatial_shapes: (L, 2) long tensor, (H_l, W_l) of every level.
        sampling_locations: (B, Q, M, L, P, 2) points as (x, y) in [0, 1]
            relative to each level's map; points outside sample zeros.
        attention_weights: (B, Q, M, L, P) weights, softmax-normalised over
            L * P by the caller.

    Returns:
        (B, Q, M * D) the attended values of every head, heads concatenated.
    """
    B, _, M, D = value.shape
    _, Q, _, L, P, _ = sampling_locations.shape
    # A CPU tensor's values are read without a device sync.
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    value_per_level = value.split([h * w for h, w in shapes], dim=1)
    # grid_sample wants coordinates in [-1, 1]; align_corners=False makes
    # pixel centres sit at (i + 0.5) / W as in the paper's normalisation.
    sampling_grids = 2 * sampling_locations - 1
    sampled_per_level = []
    for level, (h, w) in enumerate(shapes):
        value_l = (value_per_level[level]
                   .flatten(2)  # B, H_l*W_l, M*D
                   .transpose(1, 2)  # B, M*D, H_l*W_l
                   .reshape(B * M, D, h, w))  # B*M, D, H_l, W_l
        grid_l = (sampling_grids[:, :, :, level]  # B, Q, M, P, 2
                  .transpose(1, 2)  # B, M, Q, P, 2
                  .flatten(0, 1))  # B*M, Q, P, 2
        sampled_per_level.append(
            F.grid_sample(value_l, grid_l, mode='bilinear',
                          padding_mode='zeros',
                          align_corners=False))  # B*M, D, Q, P
    weights = (attention_weights
               .transpose(1, 2)  # B, M, Q, L, P
               .reshape(B * M, 1, Q, L * P))  # B*M, 1, Q, L*P
    sampled = torch.stack(sampled_per_level, dim=-2)  # B*M, D, Q, L, P
    output = (sampled.flatten(-2) * weights).sum(-1)  # B*M, D, Q
    return (output
            .view(B, M * D, Q)  # B, M*D, Q
            .transpose(1, 2)  # B, Q, M*D
            .contiguous())
