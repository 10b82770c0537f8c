"""Inference: :class:`Detector` on paths, arrays and PIL images; mmdet's
``DetInferencer`` for this project's models; COCO results files."""
from .coco_results import category_ids_for, image_ids_for, to_coco_results
from .detector import Detections, Detector
from .images import ImageInput, collect_image_files
from .infer_files import check_outputs, default_out_dir, infer_files
from .inferencer import build_det_inferencer
from .model_loading import (build_test_pipeline, load_inference_config,
                            load_model, resolve_device)
from .output_paths import check_new_output, picture_names

__all__ = [
    'Detector', 'Detections', 'ImageInput', 'collect_image_files',
    'build_det_inferencer', 'build_test_pipeline', 'load_inference_config',
    'load_model', 'resolve_device', 'to_coco_results', 'category_ids_for',
    'image_ids_for', 'check_new_output', 'picture_names', 'infer_files',
    'default_out_dir', 'check_outputs'
]
