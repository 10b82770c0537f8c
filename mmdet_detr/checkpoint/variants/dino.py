"""The DINO variants, what tells them apart in a state dict, and the
config of this project that runs each."""
from typing import Dict, NamedTuple, Optional


class Variant(NamedTuple):
    """num_levels: L, the feature levels (4-scale: the level embedding has
    four rows)."""
    num_levels: int


# mmdet's "improved" model has the plain one's parameters; its positional
# encoding and training settings differ, so the file cannot tell them
# apart and ``--variant`` says which it is.
VARIANTS: Dict[str, Variant] = {
    'dino': Variant(4),
    'dino_improved': Variant(4),
}
CONFIGS: Dict[str, str] = {
    'dino': 'configs/dino_4scale_r50_12e.py',
    'dino_improved': 'configs/dino_4scale_r50_improved_12e.py',
}
# The official DINO's input projections have a convolution bias.
CONV_BIAS_CONFIGS: Dict[str, str] = {
    'dino': 'configs/converted/dino_4scale_r50.py',
}


def variant_name(num_levels: int, requested: Optional[str],
                 source: str) -> str:
    """The variant a checkpoint with ``num_levels`` levels holds:
    ``requested`` (``--variant``) if it fits, else ``'dino'``."""
    candidates = [name for name, v in VARIANTS.items()
                  if v.num_levels == num_levels]
    if not candidates:
        raise ValueError(
            f'the {source} DINO checkpoint has {num_levels} feature levels; '
            'this project has configs for the 4-scale R50 model only')
    if requested is None:
        return 'dino'
    if requested not in candidates:
        raise ValueError(
            f'--variant {requested} does not apply to a {source} DINO '
            f'checkpoint: use --variant {" or --variant ".join(candidates)} '
            '(dino_improved for dino-4scale_r50_improved_*)')
    return requested
