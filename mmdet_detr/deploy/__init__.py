"""Deployment: export a detector of the family to ONNX (the attention in
standard operators or as one custom node), check it, and run the exported
file with onnxruntime or OpenVINO, in the Runner (``tools/test.py``) and
the inference API."""
from .attention_forms import (ATTENTION_FORMS, attention_form,
                              custom_node_attention, grid_sample_attention)
from .backends import BACKENDS, is_exported_file, open_backend
from .comparison import DetectionDifference, compare_detections
from .deployed_detector import DeployedDetector, use_exported_model
from .detector_graph import DetectorGraph
from .export import (DEFAULT_OPSET, check_against_pytorch, check_onnx,
                     export_onnx, pytorch_detections)
from .export_checkpoint import ExportReport, export_checkpoint
from .metadata import ExportMetadata, read_metadata

__all__ = [
    'ATTENTION_FORMS', 'BACKENDS', 'DEFAULT_OPSET', 'DeployedDetector',
    'DetectionDifference', 'DetectorGraph', 'ExportMetadata',
    'ExportReport', 'attention_form',
    'check_against_pytorch', 'check_onnx',
    'compare_detections', 'custom_node_attention', 'export_checkpoint',
    'export_onnx', 'grid_sample_attention', 'is_exported_file',
    'open_backend', 'pytorch_detections', 'read_metadata',
    'use_exported_model'
]
