"""mmdet 3.3 checkpoints of every detector this project has a twin of:
``--from mmdet`` tells the detector from the file's keys.

Adding a detector is one entry of :data:`MMDET_DETECTORS`: a test of a
loaded file's object and a converter of it.
"""
from typing import Callable, Dict, NamedTuple, Optional

from ..safe_load import load_checkpoint_file
from .converted import Converted
from .deformable_detr_mmdet import (convert_mmdet_deformable_detr,
                                    is_mmdet_deformable_detr)
from .detr_mmdet import convert_mmdet_detr, is_mmdet_detr
from .dino_mmdet import convert_dino_mmdet, is_dino_mmdet


class MMDetDetector(NamedTuple):
    """detect(checkpoint) -> bool; convert(checkpoint, variant)."""
    detect: Callable[[Dict], bool]
    convert: Callable[[Dict, Optional[str]], Converted]


# In the order they are tried: DINO has Deformable DETR's names and more.
MMDET_DETECTORS: Dict[str, MMDetDetector] = {
    'DINO': MMDetDetector(is_dino_mmdet, convert_dino_mmdet),
    'DeformableDETR': MMDetDetector(is_mmdet_deformable_detr,
                                    convert_mmdet_deformable_detr),
    'DETR': MMDetDetector(is_mmdet_detr, convert_mmdet_detr),
}


def mmdet_detector(checkpoint: object) -> Optional[str]:
    """The mmdet detector whose names ``checkpoint`` (a file's object or
    its state dict) holds, or None."""
    if not isinstance(checkpoint, dict):
        return None
    for name, detector in MMDET_DETECTORS.items():
        if detector.detect(checkpoint):
            return name
    return None


def is_mmdet(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` holds the names of an mmdet 3.3 detector."""
    return mmdet_detector(checkpoint) is not None


def convert_mmdet(src: str, variant: Optional[str] = None,
                  map_classes: bool = True) -> Converted:
    """Read an mmdet 3.3 checkpoint and rename it for this project's
    detector. ``map_classes`` is unused: mmdet's classes are already the
    80 contiguous ones."""
    checkpoint = load_checkpoint_file(src, map_location='cpu')
    name = mmdet_detector(checkpoint)
    if name is None:
        raise ValueError(
            f'{src!r} is not an mmdet 3.3 checkpoint of '
            f'{" or ".join(MMDET_DETECTORS)} (no state_dict with their '
            'mmdet layer names)')
    return MMDET_DETECTORS[name].convert(checkpoint, variant)
