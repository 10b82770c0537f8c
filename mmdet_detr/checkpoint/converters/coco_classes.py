"""COCO class indices: 91 logits indexed by category id -> mmdet's 80.

The official Deformable DETR and the HuggingFace ``SenseTime/deformable-detr*``
models score 91 classes indexed by COCO category id (ids 0, 12, 26, 29, 30,
45, 66, 68, 69, 71, 83 are unused). mmdet's ``CocoDataset`` numbers the 80
used categories 0..79 in increasing id order, and so does this project.
"""
from typing import List

import torch
from mmdet.datasets import CocoDataset
from torch import Tensor

NUM_CATEGORY_IDS = 91
# The conversion note of a sigmoid classifier mapped by category_rows.
CATEGORY_MAPPING_NOTE = ('class logits: 91 COCO category ids -> the 80 '
                         "classes of mmdet's CocoDataset")
# Category id of each of mmdet's 80 contiguous COCO classes.
COCO_CATEGORY_IDS: List[int] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
    43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90
]


def category_rows(tensor: Tensor, name: str) -> Tensor:
    """Rows of a (91, ...) classifier weight or bias for the 80 classes."""
    if tensor.shape[0] != NUM_CATEGORY_IDS:
        raise ValueError(
            f'{name} has {tensor.shape[0]} rows, but mapping COCO category '
            f'ids to the 80 classes needs {NUM_CATEGORY_IDS}: pass '
            '--keep-classes to keep the classifier as it is')
    return tensor[torch.tensor(COCO_CATEGORY_IDS)].clone()


def proposal_rows(tensor: Tensor, name: str) -> Tensor:
    """Rows of the two-stage proposal classifier for 80 classes.

    Proposals are ranked by logit 0 alone, which both sources train as
    "object" (every target has label 0), so row 0 stays row 0; the other
    rows only ever serve as negatives and take the category-id rows.
    """
    rows = category_rows(tensor, name)
    rows[0] = tensor[0]
    return rows


def coco_dataset_meta() -> dict:
    """``dataset_meta`` of a checkpoint for the 80 COCO classes."""
    return dict(classes=tuple(CocoDataset.METAINFO['classes']))
