"""The custom ONNX node of multi-scale deformable attention.

One node, ``mmdet_detr::MultiScaleDeformableAttention`` (opset 1 of the
``mmdet_detr`` domain, no attributes), stands for
``mmdet_detr.ops.multi_scale_deformable_attn`` without a padding mask, so
that a runtime that registers it runs the fused kernel instead of the
GridSample graph. Inputs and output, in this order:

    value               float32 (B, S, M, D)
    spatial_shapes      int64   (L, 2) as (H_l, W_l)
    level_start_index   int64   (L,)
    sampling_locations  float32 (B, Q, M, L, P, 2) as normalised (x, y)
    attention_weights   float32 (B, Q, M, L, P)
    -> output           float32 (B, Q, M * D)

Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
D channels per head, L levels, P sampling points per level and head.
"""
from typing import List, Union

import onnx
from onnx import TensorProto, helper

DOMAIN = 'mmdet_detr'
OP_TYPE = 'MultiScaleDeformableAttention'
OPSET_VERSION = 1
INPUT_NAMES = ('value', 'spatial_shapes', 'level_start_index',
               'sampling_locations', 'attention_weights')
OUTPUT_NAME = 'output'


def attention_nodes(model: onnx.ModelProto) -> List[onnx.NodeProto]:
    """The custom attention nodes of ``model``'s main graph."""
    return [
        node for node in model.graph.node
        if node.domain == DOMAIN and node.op_type == OP_TYPE
    ]


def load_model(model: Union[str, onnx.ModelProto]) -> onnx.ModelProto:
    """``model`` itself, or the model read from the file ``model``."""
    return model if isinstance(model, onnx.ModelProto) else onnx.load(model)


def describe(model: Union[str, onnx.ModelProto]) -> str:
    """How an error names ``model``: its path, or 'the given ModelProto'."""
    return repr(model) if isinstance(model, str) else 'the given ModelProto'


def missing_op_message(model: Union[str, onnx.ModelProto], runtime: str,
                       how_to_register: str) -> str:
    """The error text for opening a model that holds the custom node in
    ``runtime`` without the op registered."""
    return (f'{describe(model)} holds {DOMAIN}::{OP_TYPE} nodes (multi-scale '
            f'deformable attention), which {runtime} runs only with '
            f"mmdet_detr's custom op registered: {how_to_register}. Or export "
            'the model with the standard-op (GridSample) attention instead.')


def attention_model(num_levels: int) -> onnx.ModelProto:
    """A model of one custom attention node with dynamic B, S, Q, M, D and
    P over ``num_levels`` levels; inputs and output named as in
    :data:`INPUT_NAMES` and :data:`OUTPUT_NAME`."""
    L = num_levels
    inputs = [
        helper.make_tensor_value_info('value', TensorProto.FLOAT,
                                      ['B', 'S', 'M', 'D']),
        helper.make_tensor_value_info('spatial_shapes', TensorProto.INT64,
                                      [L, 2]),
        helper.make_tensor_value_info('level_start_index', TensorProto.INT64,
                                      [L]),
        helper.make_tensor_value_info('sampling_locations', TensorProto.FLOAT,
                                      ['B', 'Q', 'M', L, 'P', 2]),
        helper.make_tensor_value_info('attention_weights', TensorProto.FLOAT,
                                      ['B', 'Q', 'M', L, 'P']),
    ]
    output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT,
                                           ['B', 'Q', 'MD'])
    node = helper.make_node(OP_TYPE, list(INPUT_NAMES), [OUTPUT_NAME],
                            domain=DOMAIN)
    graph = helper.make_graph([node], 'ms_deform_attn', inputs, [output])
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_operatorsetid('', 17),
            helper.make_operatorsetid(DOMAIN, OPSET_VERSION)
        ])
    # IR 8 (ONNX 1.10), the one of opset 17: older runtimes refuse the
    # newest IR that onnx.helper writes by default.
    model.ir_version = 8
    return model
