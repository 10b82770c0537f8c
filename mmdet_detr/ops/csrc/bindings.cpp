// Python bindings of the compiled ops: the module mmdet_detr.ops._C.
#include <torch/extension.h>

#include "dropout_cpu.h"
#include "ms_deform_attn_cpu.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("ms_deform_attn_cpu_forward", &mmdet_detr::ms_deform_attn_cpu_forward,
        "Multi-scale deformable attention forward on CPU: (value (B, S, M, D), "
        "spatial_shapes (L, 2), level_start_index (L,), sampling_locations "
        "(B, Q, M, L, P, 2), attention_weights (B, Q, M, L, P), "
        "value_padding_mask (B, S) bool or None) -> (B, Q, M * D)",
        py::arg("value"), py::arg("spatial_shapes"),
        py::arg("level_start_index"), py::arg("sampling_locations"),
        py::arg("attention_weights"), py::arg("value_padding_mask"));
  m.def("ms_deform_attn_cpu_backward",
        &mmdet_detr::ms_deform_attn_cpu_backward,
        "Multi-scale deformable attention backward on CPU: the forward's "
        "inputs and grad_output (B, Q, M * D) -> [grad_value, "
        "grad_sampling_locations, grad_attention_weights]",
        py::arg("value"), py::arg("spatial_shapes"),
        py::arg("level_start_index"), py::arg("sampling_locations"),
        py::arg("attention_weights"), py::arg("value_padding_mask"),
        py::arg("grad_output"));
  m.def("dropout_cpu_forward", &mmdet_detr::dropout_cpu_forward,
        "Dropout on CPU with a Philox Bernoulli mask, after a ReLU when relu, "
        "plus residual when given: (input contiguous, p, relu, residual or "
        "None) -> [output, mask (bool)]",
        py::arg("input"), py::arg("p"), py::arg("relu"), py::arg("residual"));
  m.def("dropout_cpu_backward", &mmdet_detr::dropout_cpu_backward,
        "grad_output * mask * scale", py::arg("grad_output"),
        py::arg("mask"), py::arg("scale"));
}
