"""Inference time of one model in PyTorch and in the runtimes of its
exported file, measured side by side on the same images: what
``tools/deploy/benchmark_backends.py`` prints."""
import os.path as osp
import statistics
import tempfile
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
from mmengine.registry import DefaultScope
from torch import nn

from mmdet_detr.apis.model_loading import load_inference_config, load_model
from mmdet_detr.registry import MODELS
from .backends import open_backend
from .comparison import DetectionDifference, compare_detections
from .detector_graph import DetectorGraph
from .export import (DEFAULT_OPSET, OUTPUTS_DOC, PREPROCESSING_DOC,
                     example_images, export_onnx)
from .metadata import ExportMetadata


class BackendTiming(NamedTuple):
    """seconds: one forward pass per round, rounds interleaved across the
    backends; difference: the backend's detections against PyTorch's
    (None for PyTorch itself)."""
    seconds: List[float]
    difference: Optional[DetectionDifference]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timing_model(config: str, checkpoint: Optional[str],
                 cfg_options: Optional[dict] = None) -> nn.Module:
    """The model of ``config`` in eval mode on the CPU, with the weights of
    ``checkpoint`` or, without one, its initial weights (the backbone's
    pretrained weights are not fetched)."""
    cfg = load_inference_config(config, cfg_options)
    if checkpoint:
        return load_model(cfg, checkpoint, torch.device('cpu'))[0]
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def time_backends(model: nn.Module,
                  onnx_path: str,
                  images: torch.Tensor,
                  backends: Sequence[str] = ('onnxruntime', 'openvino'),
                  rounds: int = 5,
                  threads: Optional[int] = None) -> Dict[str, BackendTiming]:
    """Time ``model`` (PyTorch, with this project's CPU kernel) and
    ``onnx_path`` in each backend on (B, 3, H, W) ``images``.

    Each backend runs once untimed first (graph optimisation, OpenVINO's
    compilation for the shape); then ``rounds`` rounds run every backend
    once in turn, so that load from other processes falls on all alike.
    ``threads``: the thread count of every backend (None: each one's
    default; torch's is ``torch.get_num_threads()``).
    """
    graph = DetectorGraph(model).eval()
    array = images.numpy()
    if threads:
        torch.set_num_threads(threads)

    def run_torch():
        with torch.no_grad():
            return tuple(t.numpy() for t in graph(images))

    runners = {'pytorch': run_torch}
    for backend in backends:
        runner = open_backend(onnx_path, backend, threads)
        runners[backend] = (lambda r=runner: r(array))
    expected = run_torch()
    differences = {
        name: None if name == 'pytorch' else compare_detections(
            run(), expected)
        for name, run in runners.items()
    }
    seconds = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {
        name: BackendTiming(seconds[name], differences[name])
        for name in runners
    }


class BackendBenchmark(NamedTuple):
    """export_seconds and size_mb of the exported file; timings per
    backend (``pytorch`` first), as :func:`time_backends` gives them."""
    export_seconds: float
    size_mb: float
    timings: Dict[str, BackendTiming]


def benchmark_backends(config: str,
                       checkpoint: Optional[str] = None,
                       batch: int = 2,
                       image_size: Sequence[int] = (512, 512),
                       rounds: int = 5,
                       threads: Optional[int] = None,
                       attention: str = 'onnx',
                       backends: Sequence[str] = ('onnxruntime', 'openvino'),
                       cfg_options: Optional[dict] = None
                       ) -> BackendBenchmark:
    """Export the model of ``config`` (traced at 2 x H x (W + 32), so that
    the height differs from the width) to a temporary file and time it on
    random images of ``batch`` x 3 x ``image_size`` in PyTorch and in
    ``backends``."""
    model = timing_model(config, checkpoint, cfg_options)
    height, width = image_size
    names = tuple(str(i) for i in range(model.bbox_head.num_classes))
    metadata = ExportMetadata(attention, type(model).__name__,
                              osp.basename(config), names, 0.3,
                              DEFAULT_OPSET, OUTPUTS_DOC, PREPROCESSING_DOC)
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'model.onnx')
        seconds = export_onnx(model, path, metadata,
                              (2, 3, height, width + 32))
        size_mb = osp.getsize(path) / 2**20
        images = example_images((batch, 3, height, width), seed=1)
        timings = time_backends(model, path, images, backends, rounds,
                                threads)
    return BackendBenchmark(seconds, size_mb, timings)
