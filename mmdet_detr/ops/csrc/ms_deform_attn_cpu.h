// Multi-scale deformable attention on CPU: bilinear sampling fused with the
// weighted sum over levels and points, forward and backward.
//
// Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
// D channels per head, L levels, P sampling points per level and head.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace mmdet_detr {

// value (B, S, M, D), spatial_shapes (L, 2) long as (H_l, W_l),
// level_start_index (L,) long, sampling_locations (B, Q, M, L, P, 2) as
// (x, y) in [0, 1], attention_weights (B, Q, M, L, P), value_padding_mask
// (B, S) bool or none: value counts as zero where it is True.
// Returns (B, Q, M * D).
at::Tensor ms_deform_attn_cpu_forward(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights,
    const c10::optional<at::Tensor>& value_padding_mask);

// Same inputs plus grad_output (B, Q, M * D); grad_value is zero at padded
// tokens.
// Returns {grad_value (B, S, M, D), grad_sampling_locations
// (B, Q, M, L, P, 2), grad_attention_weights (B, Q, M, L, P)}.
std::vector<at::Tensor> ms_deform_attn_cpu_backward(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights,
    const c10::optional<at::Tensor>& value_padding_mask,
    const at::Tensor& grad_output);

}  // namespace mmdet_detr
