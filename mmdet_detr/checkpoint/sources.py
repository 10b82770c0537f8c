"""The checkpoint layouts ``tools/convert_checkpoint.py --from`` reads.

A source is one entry: a test of a loaded file's object (or state dict),
used to recognise it when it is loaded unconverted, and a converter from a
file path. Adding a source is adding its module to ``converters/`` and
one entry here.
"""
import os.path as osp
from typing import Callable, Dict, Mapping, NamedTuple, Optional

from .converters.converted import Converted, save_converted
from .converters.deformable_detr_hf import convert_hf, is_hf
from .converters.deformable_detr_official import convert_official, is_official
from .converters.detr_official import convert_official_detr, is_official_detr
from .converters.dino_official import convert_official_dino, is_official_dino
from .converters.mmdet import convert_mmdet, is_mmdet


class Source(NamedTuple):
    """detect(checkpoint) -> bool; convert(src, variant, map_classes)."""
    detect: Callable[[Mapping], bool]
    convert: Callable[[str, Optional[str], bool], Converted]
    description: str


SOURCES: Dict[str, Source] = {
    'official': Source(
        is_official, convert_official,
        "fundamentalvision/Deformable-DETR (checkpoint['model'])"),
    'mmdet': Source(is_mmdet, convert_mmdet,
                    "mmdet 3.3's DeformableDETR, DINO or DETR"),
    'hf': Source(is_hf, convert_hf,
                 "HuggingFace transformers' DeformableDetrForObjectDetection"),
    'official-detr': Source(
        is_official_detr, convert_official_detr,
        "facebookresearch/detr (checkpoint['model'])"),
    'official-dino': Source(
        is_official_dino, convert_official_dino,
        "IDEA-Research/DINO (checkpoint['model'])"),
}


def recognise(checkpoint: Mapping) -> Optional[str]:
    """The name of the source whose layout ``checkpoint`` has, or None."""
    for name, source in SOURCES.items():
        if source.detect(checkpoint):
            return name
    return None


def convert_checkpoint(src: str,
                       dst: str,
                       source: str,
                       variant: Optional[str] = None,
                       map_classes: bool = True) -> Converted:
    """Convert the ``source``-layout checkpoint ``src`` and write ``dst``
    (never replacing an existing file)."""
    if source not in SOURCES:
        raise ValueError(f'unknown source {source!r}: use one of '
                         f'{sorted(SOURCES)}')
    if not osp.exists(src):
        raise FileNotFoundError(f'checkpoint {src!r} does not exist')
    if osp.exists(dst):
        raise FileExistsError(
            f'{dst!r} exists; choose another output path or remove it '
            'yourself (it is never overwritten)')
    converted = SOURCES[source].convert(src, variant, map_classes)
    save_converted(converted, dst, source, src)
    return converted
