"""Datasets, checked loading and demo data of the ``mmdet_detr`` scope."""
from .checked_coco import CheckedCocoDataset
from .checked_loading import CheckedLoadImageFromFile
from .skipping_batch_sampler import SkippingBatchSampler

__all__ = [
    'CheckedCocoDataset', 'CheckedLoadImageFromFile', 'SkippingBatchSampler'
]
