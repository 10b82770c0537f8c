"""The inference API: ``Detector(config, checkpoint)(images)``."""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmdet_detr.deploy.backends import is_exported_file
from .images import ImageInput, to_pipeline_input
from .model_loading import (build_test_pipeline, load_exported_model,
                            load_inference_config, load_model, resolve_device)


@dataclass
class Detections:
    """The detections of one image, best first.

    boxes: (n, 4) float32 ``(x1, y1, x2, y2)`` in pixels of the image as
        given; scores: (n, ) float32; labels: (n, ) int64 indices into
        ``class_names``.
    """
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: Tuple[str, ...]

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def names(self) -> List[str]:
        """The class name of each detection."""
        return [self.class_names[i] for i in self.labels]


class Detector:
    """A trained detector of this project, ready to run on images.

    Example::

        det = Detector('configs/demo/deformable_detr_shapes.py',
                       'work_dirs/demo/iter_1600.pth')
        found = det('image.jpg', score_thr=0.3)   # one Detections
        batch = det([path, bgr_array, pil_image])  # a list of them

    An exported ``.onnx`` file (``tools/deploy/export_onnx.py``) in place
    of the checkpoint runs with onnxruntime or OpenVINO on the CPU, with the
    config's pipeline and preprocessing::

        det = Detector(config, 'model.onnx', backend='openvino')

    Args:
        config: a config file or a loaded ``mmengine.Config``.
        checkpoint: a checkpoint of that config (loaded safely and
            strictly, see :func:`load_model`), or an exported ``.onnx``
            file of it.
        device: ``'auto'`` (GPU if any), ``'cpu'``, ``'cuda'``, ...; an
            exported file runs on the CPU.
        cfg_options: config overrides, as ``--cfg-options`` of the tools.
        backend: the runtime of an exported file, ``onnxruntime``
            (default) or ``openvino``.
    """

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: str,
                 device: str = 'auto',
                 cfg_options: Optional[dict] = None,
                 backend: Optional[str] = None) -> None:
        self.cfg = load_inference_config(config, cfg_options)
        if is_exported_file(checkpoint):
            self.device = torch.device('cpu')
            self.model, self.class_names = load_exported_model(
                self.cfg, checkpoint, backend)
        elif backend is not None:
            raise ValueError(
                f'backend={backend!r} runs an exported .onnx file, and '
                f'{checkpoint!r} is not one: export it with '
                'tools/deploy/export_onnx.py')
        else:
            self.device = resolve_device(device)
            self.model, self.class_names = load_model(
                self.cfg, checkpoint, self.device)
        self.pipeline = build_test_pipeline(self.cfg)

    def preprocess(self, images: Sequence[ImageInput],
                   first_index: int = 0) -> dict:
        """Run the test pipeline: ``dict(inputs=[(3, H, W)],
        data_samples=[DetDataSample])``, as a data loader batch."""
        return pseudo_collate([
            self.pipeline(to_pipeline_input(image, first_index + i))
            for i, image in enumerate(images)
        ])

    @torch.no_grad()
    def __call__(
        self,
        images: Union[ImageInput, Sequence[ImageInput]],
        score_thr: float = 0.0,
        batch_size: int = 1
    ) -> Union[Detections, List[Detections]]:
        """Detect objects.

        Args:
            images: one image or a list (see ``ImageInput``: path, BGR
                uint8 array, PIL image).
            score_thr: keep detections scoring at least this.
            batch_size: images per forward pass.

        Returns:
            A :class:`Detections` for one image, a list for a list.
        """
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        results = []
        for start in range(0, len(batch), batch_size):
            data = self.preprocess(batch[start:start + batch_size], start)
            for sample in self.model.test_step(data):
                results.append(self._to_detections(sample.pred_instances,
                                                   score_thr))
        return results[0] if single else results

    def _to_detections(self, pred, score_thr: float) -> Detections:
        keep = pred.scores >= score_thr
        order = pred.scores[keep].argsort(descending=True)
        return Detections(
            boxes=pred.bboxes[keep][order].float().cpu().numpy(),
            scores=pred.scores[keep][order].float().cpu().numpy(),
            labels=pred.labels[keep][order].long().cpu().numpy(),
            class_names=self.class_names)
