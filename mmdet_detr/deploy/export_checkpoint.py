"""From a config and a checkpoint to a checked ONNX file: what
``tools/deploy/export_onnx.py`` runs."""
import os
import os.path as osp
from typing import List, NamedTuple, Optional, Sequence

import torch

from mmdet_detr.apis.model_loading import load_inference_config, load_model
from .export import (DEFAULT_OPSET, OUTPUTS_DOC, PREPROCESSING_DOC,
                     ExportedCheck, check_against_pytorch, check_onnx,
                     export_onnx)
from .metadata import ExportMetadata


class ExportReport(NamedTuple):
    """out: the file written; seconds: the export's time (tracing,
    conversion, metadata); size_mb: the file's size; attention_modules:
    the deformable attention modules in the graph (0 for DETR); checks:
    onnxruntime against PyTorch at the traced and at another shape (the
    custom form with its node registered)."""
    out: str
    seconds: float
    size_mb: float
    attention_modules: int
    checks: List[ExportedCheck]


def export_checkpoint(config: str,
                      checkpoint: str,
                      out: str,
                      attention: str = 'onnx',
                      opset: int = DEFAULT_OPSET,
                      image_size: Sequence[int] = (320, 480),
                      score_thr: float = 0.3,
                      cfg_options: Optional[dict] = None,
                      overwrite: bool = False) -> ExportReport:
    """Export the model of ``config`` with the weights of ``checkpoint``
    to ``out``, check it with ``onnx.checker`` and run it in onnxruntime
    against PyTorch on random images of 2 x ``image_size`` (the traced
    shape) and of 1 x the transposed size.

    Args:
        image_size: ``(H, W)`` traced with; H != W, so that no size
            becomes a constant of the graph.
        score_thr: recorded in the file, the default score threshold of
            the backends.
    """
    if osp.exists(out) and not overwrite:
        raise FileExistsError(f'{out!r} exists; pass --overwrite to '
                              'replace it')
    height, width = image_size
    if height == width:
        raise ValueError(f'--shape {height} {width}: trace with a height '
                         'other than the width (e.g. 320 480)')
    cfg = load_inference_config(config, cfg_options)
    model, class_names = load_model(cfg, checkpoint, torch.device('cpu'))
    metadata = ExportMetadata(
        attention=attention, detector=type(model).__name__,
        config=osp.basename(config), class_names=class_names,
        score_thr=score_thr, opset=opset, outputs=OUTPUTS_DOC,
        preprocessing=PREPROCESSING_DOC)
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    seconds = export_onnx(model, out, metadata, (2, 3, height, width))
    check_onnx(out)
    checks = check_against_pytorch(
        out, model, [(2, 3, height, width), (1, 3, width, height)])
    attention_modules = sum(
        1 for m in model.modules()
        if type(m).__name__ == 'MultiScaleDeformableAttention')
    return ExportReport(out, seconds, osp.getsize(out) / 2**20,
                        attention_modules, checks)
