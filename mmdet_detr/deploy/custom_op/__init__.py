"""The custom ONNX node of multi-scale deformable attention in the
deployment runtimes (onnxruntime, OpenVINO), backed by the compiled kernel
of ``mmdet_detr.ops``."""
from .node import DOMAIN, OP_TYPE, OPSET_VERSION, attention_model
from .onnxruntime_op import (ort_model_for_custom_op,
                             ort_session_options_with_custom_op,
                             ort_session_with_custom_op)
from .openvino_extension import (openvino_compiled_model_with_custom_op,
                                 openvino_core_with_custom_op,
                                 openvino_extension_path)

__all__ = [
    'DOMAIN', 'OP_TYPE', 'OPSET_VERSION', 'attention_model',
    'openvino_compiled_model_with_custom_op', 'openvino_core_with_custom_op',
    'openvino_extension_path',
    'ort_model_for_custom_op', 'ort_session_options_with_custom_op',
    'ort_session_with_custom_op'
]
