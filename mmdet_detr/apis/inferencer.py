"""This project's detectors through mmdet's ``DetInferencer``."""
from typing import Optional

from mmdet_detr.engine import cli
from .model_loading import resolve_device


def build_det_inferencer(config: str,
                         checkpoint: str,
                         device: str = 'auto',
                         cfg_options: Optional[dict] = None,
                         show_progress: bool = False):
    """mmdet's ``DetInferencer`` for a config and checkpoint of this project.

    Example::

        inferencer = build_det_inferencer(config, checkpoint)
        result = inferencer('image.jpg', out_dir='outputs')

    It runs in the ``mmdet_detr`` scope, and importing
    ``mmdet_detr.engine`` (through ``cli``) has made mmengine load local
    checkpoints safely. Its results are mmdet's dicts (``predictions`` with
    ``bboxes``, ``scores``, ``labels``); its ``out_dir`` writes mmdet's
    drawings and JSON files.
    """
    # Imported here: mmdet.apis pulls in much that Detector does not need.
    from mmdet.apis import DetInferencer
    cli.check_checkpoint_path(checkpoint, 'CHECKPOINT')
    cfg = cli.load_config(config, cfg_options)
    for transform in cfg.test_dataloader.dataset.pipeline:
        name = str(transform['type']).split('.')[-1]
        if name.endswith('LoadImageFromFile'):
            # DetInferencer swaps in its loader where it finds this name.
            transform['type'] = 'LoadImageFromFile'
    return DetInferencer(
        model=cfg,
        weights=checkpoint,
        device=str(resolve_device(device)),
        scope=cfg.default_scope,
        show_progress=show_progress)
