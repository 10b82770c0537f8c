"""A synthetic batch for timing: random images with random boxes."""
from typing import List, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor


def synthetic_batch(batch_size: int,
                    size: Tuple[int, int],
                    num_classes: int,
                    boxes_per_image: int = 7,
                    seed: int = 0,
                    device: str = 'cpu'
                    ) -> Tuple[Tensor, List[DetDataSample]]:
    """A (B, 3, H, W) normalised image batch and its data samples.

    Each image gets ``boxes_per_image`` boxes ``xyxy`` in pixels, at least 8
    pixels on a side, with random labels below ``num_classes``. The batch
    is what a data preprocessor hands the model: no padding, scale 1.

    Args:
        batch_size: B.
        size: ``(H, W)`` of every image.
        num_classes: labels are drawn from ``range(num_classes)``.
        boxes_per_image: targets per image.
        seed: seed of a private generator (the global one is untouched).
        device: where the images and targets go.
    """
    if batch_size < 1 or min(size) < 32:
        raise ValueError(f'a batch needs at least one image of at least '
                         f'32x32 pixels, got --batch {batch_size} and size '
                         f'{size}')
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    images = torch.randn(batch_size, 3, h, w, generator=gen)
    samples = []
    for _ in range(batch_size):
        corner = torch.rand(boxes_per_image, 2, generator=gen) * 0.7
        extent = torch.rand(boxes_per_image, 2, generator=gen) * 0.29 + 0.01
        scale = torch.tensor([w, h], dtype=torch.float32)
        xy1 = corner * scale
        xy2 = xy1 + torch.maximum(extent * scale, torch.tensor(8.0))
        boxes = torch.cat([xy1, xy2], 1)  # G, 4
        labels = torch.randint(num_classes, (boxes_per_image, ),
                               generator=gen)
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), batch_input_shape=(h, w),
            pad_shape=(h, w), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=boxes.to(device),
                                           labels=labels.to(device))
        samples.append(sample)
    return images.to(device), samples
