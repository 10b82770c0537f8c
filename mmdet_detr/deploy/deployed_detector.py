"""An exported file behind mmengine's model interface, so that the Runner
(``tools/test.py``, CocoMetric) and the inference API run it as they run
the PyTorch model.

Symbols: B batch, H, W the padded batch's height and width, k detections
per image.
"""
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet_detr.registry import MODELS
from .backends import BACKENDS, open_backend
from .metadata import read_metadata


@MODELS.register_module()
class DeployedDetector(BaseModel):
    """Runs an exported detector with onnxruntime or OpenVINO.

    The data preprocessor (the config's) normalises and pads the batch as
    for the PyTorch model; each image is then cropped back to its own
    ``img_shape`` and images of one size run together, so that no image
    sees padding. Boxes are divided by each image's scale factor, as the
    heads' ``predict(rescale=True)`` does.

    Args:
        model_file: the ``.onnx`` file of ``tools/deploy/export_onnx.py``.
        backend: ``onnxruntime`` (default) or ``openvino``.
        threads: the runtime's thread count (None: its default).
        data_preprocessor: the config's ``model.data_preprocessor``.
    """

    def __init__(self,
                 model_file: str,
                 backend: Optional[str] = None,
                 threads: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.model_file = model_file
        self.backend = backend or 'onnxruntime'
        self.metadata = read_metadata(model_file)
        self.run_backend = open_backend(model_file, self.backend, threads)

    @property
    def class_names(self) -> Tuple[str, ...]:
        """The class names recorded in the file."""
        return self.metadata.class_names

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[DetDataSample]] = None,
                mode: str = 'predict') -> List[DetDataSample]:
        """Detections in ``pred_instances`` of each data sample, for a
        preprocessed (B, 3, H, W) batch."""
        if mode != 'predict':
            raise ValueError(
                f'{self.model_file!r} is an exported model: it predicts '
                f"(mode='predict'), it cannot run mode={mode!r}; train and "
                'export the PyTorch model instead')
        by_shape: Dict[Tuple[int, int], List[int]] = defaultdict(list)
        for i, sample in enumerate(data_samples):
            by_shape[tuple(sample.img_shape[:2])].append(i)
        for (h, w), indices in by_shape.items():
            images = inputs[indices, :, :h, :w].float().cpu().numpy()
            scores, labels, boxes = self.run_backend(images)
            for row, i in enumerate(indices):
                sample = data_samples[i]
                scale = np.tile(np.asarray(sample.scale_factor,
                                           dtype=np.float32), 2)  # 4
                sample.pred_instances = InstanceData(
                    bboxes=torch.from_numpy(boxes[row] / scale),
                    scores=torch.from_numpy(scores[row]),
                    labels=torch.from_numpy(labels[row].astype(np.int64)))
        return data_samples


def use_exported_model(cfg: Config, model_file: str,
                       backend: Optional[str] = None) -> None:
    """Make ``cfg``'s model the exported ``model_file`` run with
    ``backend``, keeping the config's data preprocessor, pipeline and
    evaluator (``tools/test.py MODEL.onnx``)."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f'--backend {backend!r} is not one of {BACKENDS}')
    metadata = read_metadata(model_file)
    if metadata.detector != cfg.model.get('type'):
        raise ValueError(
            f'{model_file!r} holds a {metadata.detector} (exported from '
            f'{metadata.config}) but {cfg.filename!r} builds a '
            f"{cfg.model.get('type')}: pass the config it was exported "
            'from')
    cfg.model = dict(
        type='DeployedDetector',
        model_file=model_file,
        backend=backend,
        data_preprocessor=cfg.model.get('data_preprocessor'))
    cfg.load_from = None
    cfg.resume = False
