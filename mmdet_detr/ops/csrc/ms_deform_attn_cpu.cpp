// Multi-scale deformable attention on CPU, forward and backward: the torch
// op around the loops of ms_deform_attn_kernel.h, which checks the tensors
// and runs the tasks on torch's thread pool.
//
// Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
// D channels per head, L levels, P sampling points per level and head.
#include "ms_deform_attn_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ms_deform_attn_kernel.h"

namespace mmdet_detr {
namespace {

void check_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                  const at::Tensor& level_start_index,
                  const at::Tensor& sampling_locations,
                  const at::Tensor& attention_weights,
                  const c10::optional<at::Tensor>& value_padding_mask) {
  const at::Tensor* tensors[] = {&value, &spatial_shapes, &level_start_index,
                                 &sampling_locations, &attention_weights};
  const char* names[] = {"value", "spatial_shapes", "level_start_index",
                         "sampling_locations", "attention_weights"};
  for (int i = 0; i < 5; ++i) {
    TORCH_CHECK(tensors[i]->device().is_cpu(), "ms_deform_attn_cpu: ",
                names[i], " must be a CPU tensor, got one on ",
                tensors[i]->device());
    TORCH_CHECK(tensors[i]->is_contiguous(), "ms_deform_attn_cpu: ",
                names[i], " must be contiguous; call .contiguous() first");
  }
  TORCH_CHECK(value.dim() == 4, "ms_deform_attn_cpu: value must be (B, S, M, "
              "D), got shape ", value.sizes());
  TORCH_CHECK(
      sampling_locations.dim() == 6 && sampling_locations.size(5) == 2,
      "ms_deform_attn_cpu: sampling_locations must be (B, Q, M, L, P, 2), got "
      "shape ", sampling_locations.sizes());
  const int64_t B = value.size(0), M = value.size(2);
  const int64_t Q = sampling_locations.size(1);
  const int64_t L = sampling_locations.size(3);
  const int64_t P = sampling_locations.size(4);
  TORCH_CHECK(
      sampling_locations.size(0) == B && sampling_locations.size(2) == M,
      "ms_deform_attn_cpu: sampling_locations ", sampling_locations.sizes(),
      " must match value ", value.sizes(), " in B and M");
  TORCH_CHECK(
      attention_weights.sizes() == at::IntArrayRef({B, Q, M, L, P}),
      "ms_deform_attn_cpu: attention_weights must be (B, Q, M, L, P) = (", B,
      ", ", Q, ", ", M, ", ", L, ", ", P, "), got ", attention_weights.sizes());
  const bool float_or_double = value.scalar_type() == at::kFloat ||
                               value.scalar_type() == at::kDouble;
  TORCH_CHECK(float_or_double &&
                  sampling_locations.scalar_type() == value.scalar_type() &&
                  attention_weights.scalar_type() == value.scalar_type(),
              "ms_deform_attn_cpu: value, sampling_locations and "
              "attention_weights must all be float32 or all float64 "
              "(multi_scale_deformable_attn casts other dtypes), got ",
              value.scalar_type(), ", ", sampling_locations.scalar_type(), ", ",
              attention_weights.scalar_type());
  TORCH_CHECK(spatial_shapes.scalar_type() == at::kLong &&
                  spatial_shapes.sizes() == at::IntArrayRef({L, 2}),
              "ms_deform_attn_cpu: spatial_shapes must be a long (L, 2) = (", L,
              ", 2) tensor of (H, W), got ", spatial_shapes.scalar_type(), " ",
              spatial_shapes.sizes());
  TORCH_CHECK(level_start_index.scalar_type() == at::kLong &&
                  level_start_index.sizes() == at::IntArrayRef({L}),
              "ms_deform_attn_cpu: level_start_index must be a long (L,) = (",
              L, ",) tensor, got ", level_start_index.scalar_type(), " ",
              level_start_index.sizes());
  const int64_t S = value.size(1);
  const std::string layout_error = msda::level_layout_error(
      spatial_shapes.data_ptr<int64_t>(), level_start_index.data_ptr<int64_t>(),
      L, S);
  TORCH_CHECK(layout_error.empty(), "ms_deform_attn_cpu: ", layout_error);
  if (value_padding_mask.has_value()) {
    const at::Tensor& mask = *value_padding_mask;
    TORCH_CHECK(mask.device().is_cpu() && mask.is_contiguous() &&
                    mask.scalar_type() == at::kBool &&
                    mask.sizes() == at::IntArrayRef({B, S}),
                "ms_deform_attn_cpu: value_padding_mask must be a contiguous "
                "bool CPU tensor of shape (B, S) = (", B, ", ", S, "), got ",
                mask.scalar_type(), " ", mask.sizes());
  }
}
template <typename scalar_t>
void forward_kernel(const msda::Problem<scalar_t>& pb, scalar_t* output) {
  at::parallel_for(0, pb.B * pb.M * pb.Q,
                   msda::forward_grain(pb, at::internal::GRAIN_SIZE),
                   [&](int64_t begin, int64_t end) {
    msda::forward_range(pb, output, begin, end);
  });
}

template <typename scalar_t>
void backward_kernel(const msda::Problem<scalar_t>& pb,
                     const scalar_t* grad_output, scalar_t* grad_value,
                     scalar_t* grad_locations, scalar_t* grad_weights) {
  // One task per (b, m) keeps a query's levels together (faster on one
  // thread, docs/benchmarks.md); one per (b, m, l) when that leaves threads
  // idle.
  const bool few_tasks = pb.B * pb.M < 2 * at::get_num_threads();
  const int64_t groups = few_tasks && pb.L > 0 ? pb.L : 1;
  at::parallel_for(0, pb.B * pb.M * groups, 1, [&](int64_t begin,
                                                   int64_t end) {
    msda::backward_range(pb, grad_output, grad_value, grad_locations,
                         grad_weights, groups, begin, end);
  });
}

template <typename scalar_t>
msda::Problem<scalar_t> make_problem(const at::Tensor& value,
                               const at::Tensor& spatial_shapes,
                               const at::Tensor& level_start_index,
                               const at::Tensor& sampling_locations,
                               const at::Tensor& attention_weights,
                               const c10::optional<at::Tensor>& padding) {
  return {value.data_ptr<scalar_t>(),
          spatial_shapes.data_ptr<int64_t>(),
          level_start_index.data_ptr<int64_t>(),
          sampling_locations.data_ptr<scalar_t>(),
          attention_weights.data_ptr<scalar_t>(),
          padding.has_value() ? padding->data_ptr<bool>() : nullptr,
          /*B=*/value.size(0),
          /*S=*/value.size(1),
          /*Q=*/sampling_locations.size(1),
          /*M=*/value.size(2),
          /*D=*/value.size(3),
          /*L=*/sampling_locations.size(3),
          /*P=*/sampling_locations.size(4)};
}

}  // namespace

at::Tensor ms_deform_attn_cpu_forward(const at::Tensor& value,
                                      const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index,
                                      const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights,
                                      const c10::optional<at::Tensor>& value_padding_mask) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_locations,
               attention_weights, value_padding_mask);
  const int64_t B = value.size(0), M = value.size(2), D = value.size(3);
  const int64_t Q = sampling_locations.size(1);
  at::Tensor output = at::zeros({B, Q, M * D}, value.options());
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cpu_forward",
                             [&] {
    forward_kernel(make_problem<scalar_t>(value, spatial_shapes,
                                          level_start_index,
                                          sampling_locations,
                                          attention_weights,
                                          value_padding_mask),
                   output.data_ptr<scalar_t>());
  });
  return output;
}

std::vector<at::Tensor> ms_deform_attn_cpu_backward(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& attention_weights,
    const c10::optional<at::Tensor>& value_padding_mask,
    const at::Tensor& grad_output) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_locations,
               attention_weights, value_padding_mask);
  const int64_t B = value.size(0), M = value.size(2), D = value.size(3);
  const int64_t Q = sampling_locations.size(1);
  TORCH_CHECK(grad_output.device().is_cpu() && grad_output.is_contiguous() &&
                  grad_output.scalar_type() == value.scalar_type() &&
                  grad_output.sizes() == at::IntArrayRef({B, Q, M * D}),
              "ms_deform_attn_cpu: grad_output must be a contiguous CPU tensor "
              "of value's dtype and shape (B, Q, M * D) = (", B, ", ", Q, ", ",
              M * D, "), got ", grad_output.scalar_type(), " ",
              grad_output.sizes());
  at::Tensor grad_value = at::zeros_like(value);
  at::Tensor grad_locations = at::empty_like(sampling_locations);
  at::Tensor grad_weights = at::empty_like(attention_weights);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cpu_backward",
                             [&] {
    backward_kernel(make_problem<scalar_t>(value, spatial_shapes,
                                           level_start_index,
                                           sampling_locations,
                                           attention_weights,
                                           value_padding_mask),
                    grad_output.data_ptr<scalar_t>(),
                    grad_value.data_ptr<scalar_t>(),
                    grad_locations.data_ptr<scalar_t>(),
                    grad_weights.data_ptr<scalar_t>());
  });
  return {grad_value, grad_locations, grad_weights};
}

}  // namespace mmdet_detr
