"""Calibration images for post-training quantization: images of the
config's training set, loaded, resized and normalised as an exported
graph's input is at test time.

Symbols: H, W an image's height and width after the test pipeline's resize.
"""
import copy
from typing import List

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from mmdet_detr.registry import DATASETS, MODELS


def calibration_indices(dataset_size: int, num_images: int) -> List[int]:
    """``num_images`` indices spread evenly over the data set (the first
    and the last among them), so that the calibration sees more than the
    first few files."""
    if num_images < 1:
        raise ValueError(f'--num-images {num_images}: at least one '
                         'calibration image is needed')
    if dataset_size < 1:
        raise ValueError('the training set of the config holds no image')
    count = min(num_images, dataset_size)
    return sorted({int(i) for i in np.linspace(0, dataset_size - 1, count)})


def calibration_images(cfg: Config, num_images: int) -> List[np.ndarray]:
    """Up to ``num_images`` images of ``cfg.train_dataloader.dataset``,
    each a (1, 3, H, W) float32 array as the exported graph takes it.

    The training set's files go through the config's *test* pipeline
    (loading and resizing without the training augmentation, which
    inference never sees) and its data preprocessor (channel order,
    mean, std); each image is cropped back to its own ``img_shape``, as
    ``DeployedDetector`` does, so no padding is calibrated on.
    """
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg['pipeline'] = copy.deepcopy(
        cfg.test_dataloader.dataset.pipeline)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        dataset = DATASETS.build(dataset_cfg)
        preprocessor = MODELS.build(copy.deepcopy(
            cfg.model.data_preprocessor))
    images = []
    with torch.no_grad():
        for index in calibration_indices(len(dataset), num_images):
            batch = preprocessor(pseudo_collate([dataset[index]]), False)
            h, w = batch['data_samples'][0].img_shape[:2]
            images.append(batch['inputs'][:, :, :h, :w].float().numpy())
    return images
