"""Run an exported file: onnxruntime or OpenVINO on the CPU, called with a
(B, 3, H, W) float32 array, returning (scores (B, k), labels (B, k),
boxes (B, k, 4)) as the graph does (see ``detector_graph``)."""
import os.path as osp
from typing import Optional, Tuple

import numpy as np

from .metadata import ExportMetadata, read_metadata

BACKENDS = ('onnxruntime', 'openvino')
Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]


class OnnxRuntimeRunner:
    """onnxruntime's CPU execution provider on ``path``; ``threads`` is its
    intra-op thread count (None: onnxruntime's default, one per core)."""

    def __init__(self, path: str, threads: Optional[int] = None) -> None:
        import onnxruntime
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            path, options, providers=['CPUExecutionProvider'])

    def __call__(self, images: np.ndarray) -> Detections:
        scores, labels, boxes = self.session.run(
            ['scores', 'labels', 'boxes'],
            {'images': np.ascontiguousarray(images, dtype=np.float32)})
        return scores, labels, boxes


class OpenVINORunner:
    """OpenVINO's CPU plugin on ``path``, in float32 (its default on CPUs
    with bfloat16 units would be bfloat16); ``threads`` is its
    ``INFERENCE_NUM_THREADS`` (None: its default)."""

    def __init__(self, path: str, threads: Optional[int] = None) -> None:
        import openvino
        core = openvino.Core()
        config = {'INFERENCE_PRECISION_HINT': 'f32'}
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        self.model = core.compile_model(core.read_model(path), 'CPU', config)

    def __call__(self, images: np.ndarray) -> Detections:
        result = self.model(
            [np.ascontiguousarray(images, dtype=np.float32)])
        scores, labels, boxes = (result[self.model.output(name)]
                                 for name in ('scores', 'labels', 'boxes'))
        return scores, labels.astype(np.int64), boxes


RUNNERS = {'onnxruntime': OnnxRuntimeRunner, 'openvino': OpenVINORunner}


def is_exported_file(path: str) -> bool:
    """Whether ``path`` names an exported model (an ``.onnx`` file) rather
    than a checkpoint."""
    return osp.splitext(str(path))[1].lower() == '.onnx'


def check_backend(path: str, backend: str,
                  metadata: ExportMetadata) -> None:
    """Refuse an unknown backend, and a custom-node graph (which stock
    runtimes cannot run), with what to do."""
    if backend not in BACKENDS:
        raise ValueError(f'backend {backend!r} is not one of {BACKENDS}')
    if metadata.attention != 'onnx':
        raise ValueError(
            f'{path!r} was exported with --attention {metadata.attention}: '
            'its MultiScaleDeformableAttention nodes need that custom '
            "operator's runtime library, which stock " + backend + ' lacks; '
            'export with --attention onnx to run it here')


def open_backend(path: str, backend: Optional[str] = None,
                 threads: Optional[int] = None):
    """A callable running the exported file ``path`` with ``backend``
    (``onnxruntime``, the default, or ``openvino``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'exported model {path!r} does not exist')
    backend = backend or 'onnxruntime'
    check_backend(path, backend, read_metadata(path))
    return RUNNERS[backend](path, threads)
