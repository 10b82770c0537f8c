"""Export a detector of the family to ONNX and check the file.

The graph is traced with PyTorch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``): the batch size, height and
width are dynamic, read from the input's shape inside the graph.

Symbols: B batch, H, W the input's height and width, k detections kept
per image.
"""
import time
import warnings
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .attention_forms import (CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION,
                              attention_form)
from .comparison import DetectionDifference, compare_detections
from .detector_graph import DetectorGraph
from .metadata import ExportMetadata

# GridSample entered the default domain at 16 and LayerNormalization at
# 17; 17 is the opset both onnxruntime and OpenVINO run in full.
DEFAULT_OPSET = 17
MIN_OPSET = 16
INPUT_NAMES = ('images', )
OUTPUT_NAMES = ('scores', 'labels', 'boxes')
OUTPUTS_DOC = ('scores (B, k) float32 best first; labels (B, k) int64 '
               'class indices; boxes (B, k, 4) float32 xyxy in pixels of '
               'the input, clamped to it')
PREPROCESSING_DOC = (
    'outside the graph: the test pipeline (load, resize), normalisation '
    '(mean, std, channel order) of the data preprocessor, and dividing '
    'the boxes by the resize scale factor; the input is one image or '
    'several of one size, unpadded (padding counts as image content)')


class ExportedCheck(NamedTuple):
    """One run of the exported file against PyTorch on random images."""
    shape: Tuple[int, int, int, int]
    difference: DetectionDifference


def example_images(shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """(B, 3, H, W) float32 images of roughly normalised values."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator)


def export_onnx(model: nn.Module, out: str, metadata: ExportMetadata,
                example_shape: Sequence[int] = (2, 3, 320, 480)) -> float:
    """Write ``model`` (a ``BaseDETR`` in eval mode, on the CPU) to
    ``out`` with ``metadata`` in its ``metadata_props``; returns the
    seconds it took.

    ``example_shape`` is the (B, 3, H, W) traced with; use B >= 2 and
    H != W, so that no size is mistaken for a constant.
    """
    import onnx
    if metadata.opset < MIN_OPSET:
        raise ValueError(f'opset {metadata.opset} is too old: GridSample '
                         f'needs opset >= {MIN_OPSET}; use {DEFAULT_OPSET}')
    start = time.perf_counter()
    graph = DetectorGraph(model).eval()
    images = example_images(example_shape)
    dynamic = {'images': {0: 'batch', 2: 'height', 3: 'width'}}
    dynamic.update({name: {0: 'batch'} for name in OUTPUT_NAMES})
    with attention_form(model, metadata.attention), torch.no_grad(), \
            warnings.catch_warnings():
        # The tracer warns about every shape it reads into Python; sizes
        # that must stay dynamic are read as tensors, and the checks run
        # the file at other shapes than traced.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            graph, (images, ),
            out,
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=metadata.opset,
            custom_opsets=({CUSTOM_DOMAIN: CUSTOM_DOMAIN_VERSION}
                           if metadata.attention == 'custom' else None),
            do_constant_folding=True)
    proto = onnx.load(out)
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f'{metadata.detector} from {metadata.config}'
    onnx.save(proto, out)
    return time.perf_counter() - start


def check_onnx(path: str) -> None:
    """``onnx.checker`` on the file (the custom node's domain is
    declared, its schema is not known to onnx)."""
    import onnx
    onnx.checker.check_model(onnx.load(path))


def pytorch_detections(model: nn.Module, images: torch.Tensor
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the graph computes, in PyTorch with the model's own kernel."""
    with torch.no_grad():
        return tuple(t.numpy() for t in DetectorGraph(model)(images))


def check_against_pytorch(path: str, model: nn.Module,
                          shapes: Sequence[Sequence[int]],
                          backend: str = 'onnxruntime'
                          ) -> List[ExportedCheck]:
    """Run the file with ``backend`` on random images of each (B, 3, H, W)
    in ``shapes`` and compare with PyTorch."""
    from .backends import open_backend
    runner = open_backend(path, backend)
    checks = []
    for i, shape in enumerate(shapes):
        images = example_images(shape, seed=i + 1)
        expected = pytorch_detections(model, images)
        found = runner(images.numpy())
        checks.append(ExportedCheck(tuple(shape),
                                    compare_detections(found, expected)))
    return checks
