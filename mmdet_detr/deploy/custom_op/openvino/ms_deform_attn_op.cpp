// mmdet_detr::MultiScaleDeformableAttention as an OpenVINO operation: the
// ONNX node of mmdet_detr/deploy/custom_op/node.py, computed by the CPU
// kernel's loops (mmdet_detr/ops/csrc/ms_deform_attn_kernel.h) on OpenVINO's
// TBB threads. Equal to mmdet_detr.ops.multi_scale_deformable_attn without a
// padding mask.
//
// Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
// D channels per head, L levels, P sampling points per level and head.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/frontend/onnx/extension/op.hpp>
#include <openvino/op/op.hpp>

#include "ms_deform_attn_kernel.h"

namespace mmdet_detr {
namespace {

// torch's at::internal::GRAIN_SIZE: the multiply-adds per chunk of tasks
// below which the torch op stays serial.
constexpr int64_t kGrainSize = 32768;

// The values of an i64 or i32 tensor (a few numbers: the levels' shapes or
// starts) as int64.
std::vector<int64_t> index_values(const ov::Tensor& tensor) {
  const size_t count = tensor.get_size();
  if (tensor.get_element_type() == ov::element::i64) {
    const int64_t* data = tensor.data<const int64_t>();
    return std::vector<int64_t>(data, data + count);
  }
  OPENVINO_ASSERT(tensor.get_element_type() == ov::element::i32,
                  "MultiScaleDeformableAttention: spatial_shapes and "
                  "level_start_index must be i64 or i32, got ",
                  tensor.get_element_type());
  const int32_t* data = tensor.data<const int32_t>();
  return std::vector<int64_t>(data, data + count);
}

class MultiScaleDeformableAttention : public ov::op::Op {
 public:
  OPENVINO_OP("MultiScaleDeformableAttention", "mmdet_detr");

  MultiScaleDeformableAttention() = default;

  // value (B, S, M, D) f32, spatial_shapes (L, 2) i64, level_start_index
  // (L,) i64, sampling_locations (B, Q, M, L, P, 2) f32, attention_weights
  // (B, Q, M, L, P) f32.
  explicit MultiScaleDeformableAttention(const ov::OutputVector& inputs)
      : Op(inputs) {
    constructor_validate_and_infer_types();
  }

  // Output (B, Q, M * D) f32.
  void validate_and_infer_types() override {
    NODE_VALIDATION_CHECK(this, get_input_size() == 5,
                          "takes 5 inputs (value, spatial_shapes, "
                          "level_start_index, sampling_locations, "
                          "attention_weights), got ", get_input_size());
    const char* names[] = {"value", "spatial_shapes", "level_start_index",
                           "sampling_locations", "attention_weights"};
    const int64_t ranks[] = {4, 2, 1, 6, 5};
    for (size_t i = 0; i < 5; ++i) {
      const auto& type = get_input_element_type(i);
      // The CPU plugin turns i64 tensors into i32 before it compiles a
      // model, so the index inputs may arrive in either.
      const bool is_index = i == 1 || i == 2;
      const bool allowed = is_index ? type == ov::element::i64 ||
                                          type == ov::element::i32
                                    : type == ov::element::f32;
      NODE_VALIDATION_CHECK(this, type.is_dynamic() || allowed, names[i],
                            " must be ", is_index ? "i64 (or i32)" : "f32",
                            ", got ", type);
      const auto& shape = get_input_partial_shape(i);
      NODE_VALIDATION_CHECK(
          this, shape.rank().compatible(ranks[i]), names[i], " must have ",
          ranks[i], " dimensions, got shape ", shape);
    }
    const auto& value = get_input_partial_shape(0);
    const auto& locations = get_input_partial_shape(3);
    ov::PartialShape output = ov::PartialShape::dynamic(3);
    if (value.rank().is_static() && locations.rank().is_static()) {
      output = ov::PartialShape{value[0], locations[1], value[2] * value[3]};
    }
    set_output_type(0, ov::element::f32, output);
  }

  std::shared_ptr<ov::Node> clone_with_new_inputs(
      const ov::OutputVector& inputs) const override {
    check_new_args_count(this, inputs);
    return std::make_shared<MultiScaleDeformableAttention>(inputs);
  }

  bool visit_attributes(ov::AttributeVisitor&) override { return true; }

  bool has_evaluate() const override { return true; }

  bool evaluate(ov::TensorVector& outputs,
                const ov::TensorVector& inputs) const override {
    const ov::Shape& value = inputs[0].get_shape();
    const ov::Shape& locations = inputs[3].get_shape();
    const int64_t B = value[0], S = value[1], M = value[2], D = value[3];
    const int64_t Q = locations[1], L = locations[3], P = locations[4];
    const ov::Shape weights{static_cast<size_t>(B), static_cast<size_t>(Q),
                            static_cast<size_t>(M), static_cast<size_t>(L),
                            static_cast<size_t>(P)};
    OPENVINO_ASSERT(locations[0] == value[0] && locations[2] == value[2] &&
                        locations[5] == 2,
                    "MultiScaleDeformableAttention: sampling_locations ",
                    locations, " must be (B, Q, M, L, P, 2) with value's ",
                    value, " B and M");
    OPENVINO_ASSERT(inputs[4].get_shape() == weights,
                    "MultiScaleDeformableAttention: attention_weights must be "
                    "(B, Q, M, L, P) = ", weights, ", got ",
                    inputs[4].get_shape());
    OPENVINO_ASSERT(inputs[1].get_shape() == ov::Shape({weights[3], 2}) &&
                        inputs[2].get_shape() == ov::Shape({weights[3]}),
                    "MultiScaleDeformableAttention: spatial_shapes must be "
                    "(L, 2) and level_start_index (L,) with L = ", L,
                    ", got ", inputs[1].get_shape(), " and ",
                    inputs[2].get_shape());
    const std::vector<int64_t> shape_values = index_values(inputs[1]);
    const std::vector<int64_t> start_values = index_values(inputs[2]);
    const int64_t* shapes = shape_values.data();
    const int64_t* starts = start_values.data();
    const std::string layout_error =
        msda::level_layout_error(shapes, starts, L, S);
    OPENVINO_ASSERT(layout_error.empty(),
                    "MultiScaleDeformableAttention: ", layout_error);

    outputs[0].set_shape({weights[0], weights[1], weights[2] * value[3]});
    float* output = outputs[0].data<float>();
    std::memset(output, 0, outputs[0].get_byte_size());  // tasks add into it
    const msda::Problem<float> pb{inputs[0].data<const float>(),
                                  shapes,
                                  starts,
                                  inputs[3].data<const float>(),
                                  inputs[4].data<const float>(),
                                  /*padded=*/nullptr,
                                  B, S, Q, M, D, L, P};
    // Every task writes its own output slice, so chunks run in any order.
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, B * M * Q,
                                    msda::forward_grain(pb, kGrainSize)),
        [&](const tbb::blocked_range<int64_t>& range) {
          msda::forward_range(pb, output, range.begin(), range.end());
        });
    return true;
  }
};

}  // namespace
}  // namespace mmdet_detr

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<
        mmdet_detr::MultiScaleDeformableAttention>>(),
    std::make_shared<ov::frontend::onnx::OpExtension<
        mmdet_detr::MultiScaleDeformableAttention>>(
        "MultiScaleDeformableAttention", "mmdet_detr"),
}));
