"""Per-call time of multi-scale deformable attention in the deployment
runtimes: the custom node against the same attention in standard ONNX ops
(GridSample) in each runtime, and against the torch kernel.

Every variant runs the same inputs, interleaved call by call in one process,
so that the load of the machine weighs on all alike; each reports the median
of its calls. Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries,
M heads, D channels per head, L levels, P sampling points per level and
head.
"""
import io
import statistics
import time
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnxruntime
import openvino as ov
import torch
from torch import nn

from mmdet_detr.ops import ms_deform_attn_pytorch, multi_scale_deformable_attn
from .node import INPUT_NAMES, attention_model
from .onnxruntime_op import ort_session_with_custom_op
from .openvino_extension import openvino_core_with_custom_op

# Deformable DETR R50 on a 512 x 512 image: strides 8 to 64.
R50_512_LEVELS = ((64, 64), (32, 32), (16, 16), (8, 8))


class AttentionShape(NamedTuple):
    """One call's sizes; ``queries`` None means Q = S (the encoder)."""
    name: str
    levels: Tuple[Tuple[int, int], ...]
    queries: Optional[int] = None
    batch: int = 2
    heads: int = 8
    channels: int = 32
    points: int = 4


ENCODER = AttentionShape('encoder', R50_512_LEVELS)
DECODER = AttentionShape('decoder', R50_512_LEVELS, queries=300)


def attention_inputs(shape: AttentionShape,
                     seed: int = 0) -> Dict[str, np.ndarray]:
    """Inputs of the node keyed by name (see ``node.INPUT_NAMES``). Each
    query samples around a reference point, a couple of pixels apart as a
    trained model does; encoder queries sit at their own token."""
    gen = torch.Generator().manual_seed(seed)
    B, M, D, P = shape.batch, shape.heads, shape.channels, shape.points
    spatial_shapes = torch.tensor(shape.levels, dtype=torch.long)  # L, 2
    sizes = spatial_shapes.prod(1)  # L
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    S, L = int(sizes.sum()), len(shape.levels)
    if shape.queries is None:
        Q = S
        centres = [
            torch.stack(torch.meshgrid((torch.arange(w) + 0.5) / w,
                                       (torch.arange(h) + 0.5) / h,
                                       indexing='xy'), dim=-1).view(-1, 2)
            for h, w in shape.levels
        ]  # each H_l*W_l, 2 as (x, y)
        reference = torch.cat(centres)[None].expand(B, Q, 2)  # B, Q, 2
    else:
        Q = shape.queries
        reference = torch.rand(B, Q, 2, generator=gen)  # B, Q, 2
    sides = spatial_shapes.flip(1).float()  # L, 2 as (W_l, H_l)
    offsets = torch.randn(B, Q, M, L, P, 2, generator=gen) * 2 / sides[:, None]
    locations = reference[:, :, None, None, None] + offsets  # B, Q, M, L, P, 2
    weights = torch.rand(B, Q, M, L * P, generator=gen)
    weights = weights.softmax(-1).view(B, Q, M, L, P)
    value = torch.randn(B, S, M, D, generator=gen)
    tensors = (value, spatial_shapes, level_start_index, locations, weights)
    return {
        name: tensor.contiguous().numpy()
        for name, tensor in zip(INPUT_NAMES, tensors)
    }


class _GridSampleAttention(nn.Module):
    """``ms_deform_attn_pytorch`` with the levels fixed, for export."""

    def __init__(self, spatial_shapes: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer('spatial_shapes', spatial_shapes)

    def forward(self, value: torch.Tensor, sampling_locations: torch.Tensor,
                attention_weights: torch.Tensor) -> torch.Tensor:
        return ms_deform_attn_pytorch(value, self.spatial_shapes,
                                      sampling_locations,
                                      attention_weights)  # B, Q, M*D


def gridsample_attention_model(
        feed: Dict[str, np.ndarray]) -> onnx.ModelProto:
    """The attention in standard ONNX ops (GridSample, opset 17) for the
    levels of ``feed``, exported from ``ms_deform_attn_pytorch``; its inputs
    are value, sampling_locations and attention_weights."""
    names = ['value', 'sampling_locations', 'attention_weights']
    module = _GridSampleAttention(torch.from_numpy(feed['spatial_shapes']))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The level sizes become constants of the graph, as intended.
        warnings.simplefilter('ignore')
        torch.onnx.export(
            module, tuple(torch.from_numpy(feed[name]) for name in names),
            buffer, input_names=names, output_names=['output'],
            opset_version=17, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _ort_call(model: onnx.ModelProto, feed: Dict[str, np.ndarray],
              threads: int, custom_op: bool) -> Callable[[], np.ndarray]:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    if custom_op:
        session = ort_session_with_custom_op(model, options=options)
    else:
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), sess_options=options,
            providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    inputs = {name: feed[name] for name in names}
    return lambda: session.run(None, inputs)[0]


def _openvino_call(model: onnx.ModelProto, feed: Dict[str, np.ndarray],
                   threads: int,
                   custom_op: bool) -> Callable[[], np.ndarray]:
    core = openvino_core_with_custom_op() if custom_op else ov.Core()
    ov_model = core.read_model(model.SerializeToString())
    names = [i.get_any_name() for i in ov_model.inputs]
    inputs = {name: feed[name] for name in names}
    # Static shapes, as a model exported for one image size has them (the
    # GridSample graph is exported so).
    ov_model.reshape({name: array.shape for name, array in inputs.items()})
    compiled = core.compile_model(ov_model, 'CPU',
                                  {'INFERENCE_NUM_THREADS': threads})
    request = compiled.create_infer_request()
    # Shared: the arrays are read in place and the output is not copied,
    # as onnxruntime and torch do.
    return lambda: request.infer(inputs, share_inputs=True,
                                 share_outputs=True)[0]


def _torch_call(feed: Dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
    tensors = [torch.from_numpy(feed[name]) for name in INPUT_NAMES]

    def call():
        with torch.no_grad():
            return multi_scale_deformable_attn(*tensors).numpy()

    return call


def attention_calls(feed: Dict[str, np.ndarray], runtimes: Sequence[str],
                    threads: int) -> Dict[str, Callable[[], np.ndarray]]:
    """Variant name -> a call on ``feed``: 'torch kernel', and per runtime
    ('onnxruntime', 'openvino') '<runtime> custom' and '<runtime> gridsample'.
    """
    custom = attention_model(num_levels=len(feed['spatial_shapes']))
    gridsample = gridsample_attention_model(feed)
    makers = {'onnxruntime': _ort_call, 'openvino': _openvino_call}
    calls = {'torch kernel': _torch_call(feed)}
    for runtime in runtimes:
        if runtime not in makers:
            raise ValueError(f'unknown runtime {runtime!r}; choose from '
                             f'{sorted(makers)}')
        calls[f'{runtime} custom'] = makers[runtime](custom, feed, threads,
                                                     True)
        calls[f'{runtime} gridsample'] = makers[runtime](gridsample, feed,
                                                         threads, False)
    return calls


def time_interleaved(calls: Dict[str, Callable[[], np.ndarray]],
                     repeat: int) -> Dict[str, List[float]]:
    """Seconds of each call over ``repeat`` rounds, after one warm-up round
    that also checks every output against the first call's; each round runs
    every call once, in turn."""
    outputs = {name: call() for name, call in calls.items()}
    reference_name, reference = next(iter(outputs.items()))
    for name, output in outputs.items():
        error = float(np.abs(output - reference).max())
        if error > 1e-4:
            raise RuntimeError(f'{name} differs from {reference_name} by '
                               f'{error:.3g}; the timings would compare '
                               'different computations')
    seconds = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median_ms(seconds: Dict[str, List[float]]) -> Dict[str, float]:
    """Median milliseconds of each variant."""
    return {
        name: statistics.median(values) * 1e3
        for name, values in seconds.items()
    }


def best_ms(seconds: Dict[str, List[float]]) -> Dict[str, float]:
    """Fastest call of each variant in milliseconds: the one least
    disturbed by other work on the machine."""
    return {name: min(values) * 1e3 for name, values in seconds.items()}
