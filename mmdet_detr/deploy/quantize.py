"""Post-training static int8 quantization of an exported file with
onnxruntime's tools (``quantize_static``): QDQ format, int8 weights per
output channel, uint8 activations, min-max ranges from calibration images.

Only convolutions and matrix products become int8 (they hold nearly all
the work). Kept in float, because a small error there moves where
attention looks or where a box lies by whole pixels rather than shifting
a feature slightly:

- the linear layers of the deformable attention's sampling offsets and
  attention weights, and every product that feeds a ``GridSample``'s
  sampling grid or the custom attention node's sampling locations (the
  reference points);
- the box branches (``reg_branches``) and the products feeding the
  ``boxes`` output (the last layers of box and class prediction).

Both attention forms quantize. The custom node (``--attention custom``)
stays float; stock onnxruntime cannot run it, so its file is calibrated in
a session with the node registered (onnxruntime-extensions, as
``deploy.custom_op`` runs it) and quantized from those ranges.

The file keeps the export's metadata and adds ``mmdet_detr.precision``
(``int8``), ``mmdet_detr.quantization`` (how) and
``mmdet_detr.float_nodes`` (the products kept in float), so every backend
and tool runs it as it runs the float file.
"""
import json
import os
import os.path as osp
import tempfile
import time
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

import numpy as np

from .custom_op.node import DOMAIN, INPUT_NAMES, OP_TYPE
from .metadata import PREFIX, ExportMetadata, read_metadata

QUANTIZED_OPS = ('Conv', 'MatMul', 'Gemm')
# Modules whose products stay float, matched in the node names that the
# exporter writes from module paths (``/decoder/layers.1/cross_attn/
# sampling_offsets/MatMul``).
FLOAT_MODULES = ('sampling_offsets', 'attention_weights', 'reference_points',
                 'reg_branches')
# Operators whose output depends only on their input's shape: the walk
# that finds what feeds a sampling grid does not go through them.
SHAPE_OPS = ('Shape', 'Size')
# The custom attention node's input of the sampling locations.
SAMPLING_LOCATIONS = INPUT_NAMES.index('sampling_locations')
DEFAULT_NUM_IMAGES = 32
PRECISION_KEY = PREFIX + 'precision'
QUANTIZATION_KEY = PREFIX + 'quantization'
FLOAT_NODES_KEY = PREFIX + 'float_nodes'


class QuantizationReport(NamedTuple):
    """out: the file written; seconds: calibration and quantization;
    size_mb: the file's size; num_images: the calibration images;
    quantized_nodes: convolutions and products made int8; float_nodes:
    those kept in float."""
    out: str
    seconds: float
    size_mb: float
    num_images: int
    quantized_nodes: int
    float_nodes: List[str]


def float_nodes(graph) -> List[str]:
    """Names of the convolutions and products of ``graph`` (an
    ``onnx.GraphProto``) kept in float: those of ``FLOAT_MODULES``, and
    the nearest ones upstream of every ``GridSample`` grid and of the
    ``boxes`` output (found by walking the graph backwards, not through
    operators that read only a shape)."""
    producers = {out: node for node in graph.node for out in node.output}
    kept = {
        node.name for node in graph.node if node.op_type in QUANTIZED_OPS
        and any(f'/{module}' in node.name for module in FLOAT_MODULES)
    }
    pending = [n.input[1] for n in graph.node if n.op_type == 'GridSample']
    pending.extend(n.input[SAMPLING_LOCATIONS] for n in graph.node
                   if n.domain == DOMAIN and n.op_type == OP_TYPE)
    pending.append('boxes')
    visited = set()
    while pending:
        node = producers.get(pending.pop())
        if node is None or id(node) in visited:
            continue
        visited.add(id(node))
        if node.op_type in QUANTIZED_OPS:
            kept.add(node.name)
        elif node.op_type not in SHAPE_OPS:
            pending.extend(node.input)
    return sorted(kept)


def inline_constant_identities(model) -> int:
    """Let the consumers of every ``Identity`` of an initializer read the
    initializer itself, and drop those nodes; returns how many.

    The exporter shares the folded convolution biases through ``Identity``
    nodes, and onnxruntime's quantizer only makes a convolution int8 end
    to end (``QLinearConv``) when its bias is an initializer.
    """
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    source = {
        node.output[0]: node.input[0]
        for node in graph.node if node.op_type == 'Identity'
        and node.input[0] in initializers and node.output[0] not in outputs
    }
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in source:
                node.input[i] = source[name]
    kept = [n for n in graph.node
            if not (n.op_type == 'Identity' and n.output[0] in source)]
    del graph.node[:]
    graph.node.extend(kept)
    return len(source)


class _ImagesReader:
    """onnxruntime's ``CalibrationDataReader`` over (1, 3, H, W) arrays."""

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self.images = iter(images)

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        image = next(self.images, None)
        return None if image is None else {'images': image}


def check_quantizable(path: str) -> ExportMetadata:
    """The metadata of ``path`` if it is a float file this project
    exported; else a clear error."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'exported model {path!r} does not exist')
    try:
        metadata = read_metadata(path)
    except Exception as error:  # onnx's DecodeError on a file not ONNX
        if isinstance(error, ValueError) and 'metadata_props' in str(error):
            raise
        raise ValueError(f'{path!r} is not an ONNX file ({error}); pass '
                         'the .onnx of tools/deploy/export_onnx.py') from None
    if read_precision(path) != 'float32':
        raise ValueError(f'{path!r} is already quantized; quantize the '
                         'float file it came from')
    return metadata


def _custom_node_calibrater(model_path: str, augmented_path: str):
    """onnxruntime's min-max calibrater of ``model_path`` whose session has
    the custom attention node registered (the subclass is made here:
    onnxruntime is imported only when quantizing)."""
    import onnxruntime
    from onnxruntime.quantization.calibrate import MinMaxCalibrater

    from .custom_op import ort_session_options_with_custom_op

    class CustomNodeCalibrater(MinMaxCalibrater):

        def create_inference_session(self):
            options = ort_session_options_with_custom_op()
            options.graph_optimization_level = (
                onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL)
            self.infer_session = onnxruntime.InferenceSession(
                self.augmented_model_path, sess_options=options,
                providers=['CPUExecutionProvider'])

    return CustomNodeCalibrater(model_path, list(QUANTIZED_OPS),
                                augmented_path)


def calibrate_with_custom_node(model, images: Sequence[np.ndarray],
                               folder: str) -> str:
    """Min-max ranges of the tensors that ``quantize_static`` calibrates,
    from running ``model`` (an exported ``onnx.ModelProto`` holding the
    custom attention node) on ``images`` with the node registered; written
    as the calibration cache that ``quantize_static`` then reads instead
    of calibrating in stock onnxruntime.

    Returns:
        the cache's path in ``folder``.
    """
    import onnx
    from onnxruntime.quantization.calibrate import save_tensors_data

    from .custom_op import ort_model_for_custom_op
    runnable = osp.join(folder, 'runnable.onnx')
    onnx.save(ort_model_for_custom_op(model), runnable)
    calibrater = _custom_node_calibrater(
        runnable, osp.join(folder, 'augmented.onnx'))
    calibrater.augment_graph()
    calibrater.create_inference_session()
    calibrater.collect_data(_ImagesReader(images))
    cache = osp.join(folder, 'ranges.json')
    save_tensors_data(calibrater.compute_data(), cache)
    return cache


def read_precision(path: str) -> str:
    """``int8`` for a file of :func:`quantize_exported`, else
    ``float32``."""
    import onnx
    props = {p.key: p.value
             for p in onnx.load(path, load_external_data=False)
             .metadata_props}
    return props.get(PRECISION_KEY, 'float32')


def quantize_exported(path: str, out: str,
                      images: Iterable[np.ndarray],
                      calibration_source: str) -> QuantizationReport:
    """Write the int8 version of the exported float file ``path`` to
    ``out``.

    Args:
        path: a float ``.onnx`` of ``tools/deploy/export_onnx.py`` (either
            ``--attention`` form).
        out: the int8 ``.onnx``.
        images: calibration images, each (1, 3, H, W) float32 as the graph
            takes it (``calibration.calibration_images``).
        calibration_source: where the images came from, for the metadata.
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    metadata = check_quantizable(path)
    images = list(images)
    if not images:
        raise ValueError('no calibration images')
    start = time.perf_counter()
    graph = onnx.load(path, load_external_data=False).graph
    kept = float_nodes(graph)
    quantized = [n.name for n in graph.node
                 if n.op_type in QUANTIZED_OPS and n.name not in kept]
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    model = onnx.load(path)
    inline_constant_identities(model)
    with tempfile.TemporaryDirectory() as folder:
        source = osp.join(folder, 'float.onnx')
        onnx.save(model, source)
        ranges = None
        if metadata.attention == 'custom':
            ranges = calibrate_with_custom_node(model, images, folder)
        quantize_static(
            source, out, None if ranges else _ImagesReader(images),
            calibration_cache_path=ranges,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=kept,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_providers=['CPUExecutionProvider'])
    proto = onnx.load(out)
    del proto.metadata_props[:]
    props = metadata.to_props()
    props[PRECISION_KEY] = 'int8'
    props[QUANTIZATION_KEY] = (
        'onnxruntime quantize_static, QDQ: int8 weights per output channel, '
        'uint8 activations, min-max ranges from '
        f'{len(images)} images of {calibration_source}; '
        f'{len(quantized)} of the {len(quantized) + len(kept)} '
        f'{"/".join(QUANTIZED_OPS)} nodes int8, the others float '
        '(sampling offsets, attention weights, what feeds the sampling '
        'grids, box branches, what feeds the boxes output)')
    props[FLOAT_NODES_KEY] = json.dumps(kept)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, out)
    return QuantizationReport(out, time.perf_counter() - start,
                              osp.getsize(out) / 2**20, len(images),
                              len(quantized), kept)


def quantize_with_config(config: str,
                         model_file: str,
                         out: str,
                         num_images: int = DEFAULT_NUM_IMAGES,
                         cfg_options: Optional[dict] = None,
                         overwrite: bool = False) -> QuantizationReport:
    """What ``tools/deploy/quantize_onnx.py`` runs: calibrate the exported
    ``model_file`` on ``num_images`` images of ``config``'s training set
    and write the int8 file ``out``."""
    from mmdet_detr.engine import cli
    from .calibration import calibration_images
    if osp.exists(out) and not overwrite:
        raise FileExistsError(f'{out!r} exists; pass --overwrite to '
                              'replace it')
    if osp.abspath(out) == osp.abspath(model_file):
        raise ValueError(f'--out {out!r} is the input file; write the int8 '
                         'model to a new file')
    metadata = check_quantizable(model_file)
    cfg = cli.load_config(config, cfg_options)
    if metadata.detector != cfg.model.get('type'):
        raise ValueError(
            f'{model_file!r} holds a {metadata.detector} (exported from '
            f'{metadata.config}) but {config!r} builds a '
            f"{cfg.model.get('type')}: pass the config it was exported "
            'from')
    images = calibration_images(cfg, num_images)
    return quantize_exported(
        model_file, out, images,
        f'the training set of {osp.basename(config)}')
