"""The images of a data set as the model sees them: after the pipeline's
resizing, flipping and cropping, with their ground-truth boxes."""
import os.path as osp
from typing import Iterator, List, NamedTuple

import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import set_random_seed

from mmdet_detr.registry import DATASETS
from .drawing import boxes_figure, save_figure

PHASES = ('train', 'val', 'test')


class PipelineSample(NamedTuple):
    """One pipeline output: image (H, W, 3) uint8 RGB; boxes (n, 4)
    ``xyxy`` in its pixels; labels (n, ); the file and what was done."""
    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    img_path: str
    description: str


def build_dataset(cfg: Config, phase: str):
    """The data set of ``{phase}_dataloader`` with its own pipeline."""
    key = f'{phase}_dataloader'
    if phase not in PHASES or cfg.get(key) is None:
        raise ValueError(f'--phase {phase!r}: use one of {PHASES} that the '
                         f'config {cfg.filename!r} defines ({key})')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return DATASETS.build(cfg[key].dataset)


def pipeline_samples(dataset, num: int) -> Iterator[PipelineSample]:
    """The first ``num`` items of ``dataset`` (all with ``num=-1``)."""
    count = len(dataset) if num < 0 else min(num, len(dataset))
    for index in range(count):
        item = dataset[index]
        sample = item['data_samples']
        image = item['inputs'].permute(1, 2, 0).numpy()  # H, W, 3
        # Packed inputs keep the loader's channel order, mmcv's BGR; the
        # data preprocessor converts to RGB later, inside the model.
        image = np.ascontiguousarray(image[..., ::-1])
        gt = sample.gt_instances
        boxes = gt.bboxes
        boxes = getattr(boxes, 'tensor', boxes).numpy().reshape(-1, 4)
        yield PipelineSample(image, boxes, gt.labels.numpy(),
                             sample.img_path, _describe(sample.metainfo))


def _describe(meta: dict) -> str:
    """``'128x128 from 128x128, flipped horizontal'``."""
    h, w = meta['img_shape'][:2]
    oh, ow = meta['ori_shape'][:2]
    text = f'{w}x{h} from {ow}x{oh}'
    if meta.get('flip'):
        text += f", flipped {meta.get('flip_direction', '')}".rstrip()
    return text


def browse_dataset(cfg: Config, phase: str, out_dir: str, num: int = 10,
                   seed: int = 0, overwrite: bool = False) -> List[str]:
    """Write ``<index>_<image stem>.png`` for the first ``num`` images of
    the ``phase`` data set into ``out_dir``; returns the paths.

    Nothing is written when one of them exists and not ``overwrite``.
    """
    from mmdet_detr.apis.output_paths import check_new_output
    dataset = build_dataset(cfg, phase)
    count = len(dataset) if num < 0 else min(num, len(dataset))
    paths = []
    for index in range(count):
        stem = osp.splitext(
            osp.basename(dataset.get_data_info(index)['img_path']))[0]
        paths.append(osp.join(out_dir, f'{index:04d}_{stem}.png'))
        check_new_output(paths[-1], '--out-dir', overwrite)
    set_random_seed(seed)
    classes = dataset.metainfo['classes']
    for path, sample in zip(paths, pipeline_samples(dataset, count)):
        fig = boxes_figure(
            sample.image, sample.boxes, sample.labels, classes,
            f'{osp.basename(sample.img_path)} after the {phase} pipeline: '
            f'{sample.description}, {len(sample.boxes)} boxes')
        save_figure(fig, path)
    return paths
