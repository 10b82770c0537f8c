"""Run an exported file: onnxruntime or OpenVINO on the CPU, called with a
(B, 3, H, W) float32 array, returning (scores (B, k), labels (B, k),
boxes (B, k, 4)) as the graph does (see ``detector_graph``).

A file exported with ``--attention custom`` runs with the custom node
registered (``mmdet_detr.deploy.custom_op``: onnxruntime-extensions for
onnxruntime, a C++ extension built on first use for OpenVINO)."""
import os.path as osp
from typing import Optional, Tuple

import numpy as np

from .attention_forms import ATTENTION_FORMS
from .metadata import ExportMetadata, read_metadata

BACKENDS = ('onnxruntime', 'openvino')
Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]


class OnnxRuntimeRunner:
    """onnxruntime's CPU execution provider on ``path``; ``threads`` is its
    intra-op thread count (None: onnxruntime's default, one per core);
    ``custom_op``: register the custom attention node."""

    def __init__(self, path: str, threads: Optional[int] = None,
                 custom_op: bool = False) -> None:
        import onnxruntime
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if custom_op:
            from .custom_op import ort_session_with_custom_op
            self.session = ort_session_with_custom_op(path, options=options)
        else:
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
    ``INFERENCE_NUM_THREADS`` (None: its default); ``custom_op``: add the
    custom attention node's extension."""

    def __init__(self, path: str, threads: Optional[int] = None,
                 custom_op: bool = False) -> None:
        import openvino
        core = openvino.Core()
        if custom_op:
            from .custom_op import openvino_core_with_custom_op
            core = openvino_core_with_custom_op(core)
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
    """Refuse an unknown backend or attention form, with what to do."""
    if backend not in BACKENDS:
        raise ValueError(f'backend {backend!r} is not one of {BACKENDS}')
    if metadata.attention not in ATTENTION_FORMS:
        raise ValueError(
            f'{path!r} records the attention form {metadata.attention!r}, '
            f'not one of {ATTENTION_FORMS}: export it again with '
            'tools/deploy/export_onnx.py')


def open_backend(path: str, backend: Optional[str] = None,
                 threads: Optional[int] = None):
    """A callable running the exported file ``path`` with ``backend``
    (``onnxruntime``, the default, or ``openvino``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'exported model {path!r} does not exist')
    backend = backend or 'onnxruntime'
    metadata = read_metadata(path)
    check_backend(path, backend, metadata)
    return RUNNERS[backend](path, threads, metadata.attention == 'custom')
