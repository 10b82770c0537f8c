// Dropout on CPU with a Philox mask; see dropout_cpu.cpp.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace mmdet_detr {

// (input, p, relu, residual) -> [output = residual + f(input) * mask /
// (1 - p), mask (bool)], f = ReLU when relu, else the identity, residual 0
// when none; with relu the mask is also false where the input is negative
// or zero.
std::vector<at::Tensor> dropout_cpu_forward(
    const at::Tensor& input, double p, bool relu,
    const c10::optional<at::Tensor>& residual);

// grad_output * mask * scale.
at::Tensor dropout_cpu_backward(const at::Tensor& grad_output,
                                const at::Tensor& mask, double scale);

}  // namespace mmdet_detr
