"""The custom attention node in onnxruntime, through onnxruntime-extensions.

onnxruntime-extensions runs operators written in Python: its library,
registered in the session options, calls back into this process, where the
op runs ``mmdet_detr.ops._C``'s compiled kernel on ``torch.from_numpy``
views of the inputs, and hands the output back as an array (see
:func:`_invoke_python_op`). Its Python operators all live in the domain
``ai.onnx.contrib``, so :func:`ort_session_with_custom_op` moves the
``mmdet_detr`` nodes into that domain in the copy it hands onnxruntime; the
model file keeps its ``mmdet_detr`` node.

Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
D channels per head, L levels, P sampling points per level and head.
"""
import copy
from typing import Optional, Union

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import helper

from mmdet_detr.ops import cpu_kernel_available, multi_scale_deformable_attn
from .node import OP_TYPE, attention_nodes, load_model, missing_op_message

_registered = False


def ms_deform_attn_numpy(value: np.ndarray, spatial_shapes: np.ndarray,
                         level_start_index: np.ndarray,
                         sampling_locations: np.ndarray,
                         attention_weights: np.ndarray) -> np.ndarray:
    """The node's computation on numpy arrays (shapes in the module
    docstring): ``multi_scale_deformable_attn`` on tensors that share the
    arrays' memory. Returns (B, Q, M * D) float32."""
    with torch.no_grad():
        output = multi_scale_deformable_attn(
            torch.from_numpy(value), torch.from_numpy(spatial_shapes),
            torch.from_numpy(level_start_index),
            torch.from_numpy(sampling_locations),
            torch.from_numpy(attention_weights))  # B, Q, M*D
    return output.numpy()


def _invoke_python_op(op_id: int, inputs: list, attributes: dict) -> tuple:
    """onnxruntime-extensions' call into Python, for every Python op of the
    process: this op's output goes back as a flat float32 array, which the
    library copies as one buffer; the library's own handler
    (``_on_pyop_invocation``, used for every other op) converts it to a
    Python list first, which made an R50 encoder-shaped call about 10 times
    slower (652 against 61 ms on 2 threads)."""
    from onnxruntime_extensions import _ocos
    opdef = _ocos.Opdef._odlist.get(op_id)
    if opdef is None or opdef.body is not ms_deform_attn_numpy:
        return _ocos._on_pyop_invocation(op_id, inputs, attributes)
    output = ms_deform_attn_numpy(*inputs)  # B, Q, M*D
    return op_id, output.shape, output.reshape(-1)


def register_python_op() -> None:
    """Declare the op to onnxruntime-extensions and install
    :func:`_invoke_python_op` as its handler (once per process)."""
    global _registered
    if _registered:
        return
    if not cpu_kernel_available():
        raise RuntimeError(
            'mmdet_detr.ops._C is not built, and the onnxruntime custom op '
            'runs its kernel. Build it with `pip install --no-build-isolation '
            '-e .` in the repository root.')
    from onnxruntime_extensions import PyCustomOpDef, onnx_op
    onnx_op(
        op_type=OP_TYPE,
        inputs=[
            PyCustomOpDef.dt_float, PyCustomOpDef.dt_int64,
            PyCustomOpDef.dt_int64, PyCustomOpDef.dt_float,
            PyCustomOpDef.dt_float
        ],
        outputs=[PyCustomOpDef.dt_float])(ms_deform_attn_numpy)
    PyCustomOpDef.install_hooker(_invoke_python_op)
    _registered = True


def ort_session_options_with_custom_op(
        options: Optional[onnxruntime.SessionOptions] = None
) -> onnxruntime.SessionOptions:
    """``options`` (new ones when None) with onnxruntime-extensions' library
    registered and this op declared to it. A model needs its nodes moved to
    the extensions' domain as well: see
    :func:`ort_model_for_custom_op`."""
    from onnxruntime_extensions import get_library_path
    register_python_op()
    options = options or onnxruntime.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    return options


def ort_model_for_custom_op(
        model: Union[str, onnx.ModelProto]) -> onnx.ModelProto:
    """A copy of ``model`` whose ``mmdet_detr::MultiScaleDeformableAttention``
    nodes sit in onnxruntime-extensions' domain, where the Python op is
    found."""
    from onnxruntime_extensions import default_opset_domain
    target = default_opset_domain()
    model = copy.deepcopy(load_model(model))
    nodes = attention_nodes(model)
    for node in nodes:
        node.domain = target
    if nodes and all(o.domain != target for o in model.opset_import):
        model.opset_import.append(helper.make_operatorsetid(target, 1))
    return model


def ort_session_with_custom_op(
    model: Union[str, onnx.ModelProto],
    register_custom_op: bool = True,
    options: Optional[onnxruntime.SessionOptions] = None
) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session of ``model`` (a path or a ModelProto).

    With ``register_custom_op`` the attention nodes run the compiled kernel.
    Without it, a model that holds them fails with an error that says so
    (onnxruntime's own names only the unregistered op).
    """
    if register_custom_op:
        options = ort_session_options_with_custom_op(options)
        content = ort_model_for_custom_op(model).SerializeToString()
    else:
        content = load_model(model).SerializeToString()
    try:
        return onnxruntime.InferenceSession(
            content, sess_options=options,
            providers=['CPUExecutionProvider'])
    except Exception as error:  # onnxruntime's errors share no base class
        if register_custom_op or not attention_nodes(load_model(model)):
            raise
        raise RuntimeError(
            missing_op_message(
                model, 'onnxruntime',
                'open it with mmdet_detr.deploy.custom_op.'
                'ort_session_with_custom_op(model) (register_custom_op=True)'
            ) + f' onnxruntime said: {error}') from error
