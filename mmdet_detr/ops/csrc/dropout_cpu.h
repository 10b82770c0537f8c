// Dropout on CPU with a Philox mask; see dropout_cpu.cpp.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace mmdet_detr {

// (input, p) -> [output = input * mask / (1 - p), mask (bool)].
std::vector<at::Tensor> dropout_cpu_forward(const at::Tensor& input,
                                            double p);

// grad_output * mask * scale.
at::Tensor dropout_cpu_backward(const at::Tensor& grad_output,
                                const at::Tensor& mask, double scale);

}  // namespace mmdet_detr
