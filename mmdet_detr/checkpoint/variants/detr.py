"""DETR's two variants, what tells them apart in a checkpoint, and the
config of this project that runs each."""
from typing import Dict, NamedTuple, Optional


class Variant(NamedTuple):
    """dilation: the last ResNet stage dilated (DC5)."""
    dilation: bool


VARIANTS: Dict[str, Variant] = {
    'r50': Variant(False),
    'r50_dc5': Variant(True),
}
# DC5 has the same weights as R50; only the checkpoint's ``args.dilation``
# (or ``--variant``) tells them apart.
CONFIGS: Dict[str, str] = {
    'r50': 'configs/detr_r50.py',
    'r50_dc5': 'configs/detr_r50_dc5.py',
}


def variant_name(dilation: Optional[bool], requested: Optional[str],
                 source: str) -> str:
    """The variant a checkpoint holds.

    ``dilation`` (the official ``args.dilation``) is None when the
    checkpoint does not say. ``requested`` (``--variant``) must agree with
    it when both are given, and settles it otherwise.
    """
    if requested is not None and requested not in VARIANTS:
        raise ValueError(f'--variant {requested} is not a DETR variant: use '
                         f'one of {sorted(VARIANTS)}')
    found = None if dilation is None else next(
        name for name, v in VARIANTS.items() if v.dilation == bool(dilation))
    if requested is not None and found is not None and requested != found:
        raise ValueError(
            f'--variant {requested} does not match the {source} checkpoint, '
            f'whose args.dilation={dilation} says {found}')
    if requested is None and found is None:
        raise ValueError(
            f'the {source} checkpoint does not say whether the last ResNet '
            'stage is dilated (the weights are the same): pass --variant '
            f'{" or --variant ".join(VARIANTS)}')
    return requested or found
