"""mmdet 3.3's checkpoints of the Deformable DETR family: ``DeformableDETR``
and ``DINO`` share layer names, so one source (``--from mmdet``) reads
both, told apart by DINO's denoising label embedding."""
from typing import Dict, Optional

from ..safe_load import load_checkpoint_file
from .converted import Converted
from .deformable_detr_mmdet import convert_mmdet_checkpoint, is_mmdet
from .dino_mmdet import convert_dino_mmdet_checkpoint, is_dino_mmdet


def is_mmdet_family(checkpoint: Dict) -> bool:
    """Whether ``checkpoint`` (a file's object or its ``state_dict``)
    holds mmdet 3.3's ``DeformableDETR`` or ``DINO`` names."""
    return is_dino_mmdet(checkpoint) or is_mmdet(checkpoint)


def convert_mmdet_family(src: str, variant: Optional[str] = None,
                         map_classes: bool = True) -> Converted:
    """Read an mmdet 3.3 Deformable DETR or DINO checkpoint and rename it
    (``map_classes`` is unused: mmdet's classes are already the 80
    contiguous ones)."""
    checkpoint = load_checkpoint_file(src, map_location='cpu')
    if isinstance(checkpoint, dict) and is_dino_mmdet(checkpoint):
        return convert_dino_mmdet_checkpoint(checkpoint, src, variant)
    return convert_mmdet_checkpoint(checkpoint, src, variant)
