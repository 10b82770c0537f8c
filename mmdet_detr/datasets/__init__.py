"""Datasets, checked loading and demo data of the ``mmdet_detr`` scope."""
from .checked_coco import CheckedCocoDataset
from .checked_loading import CheckedLoadImageFromFile

__all__ = ['CheckedCocoDataset', 'CheckedLoadImageFromFile']
