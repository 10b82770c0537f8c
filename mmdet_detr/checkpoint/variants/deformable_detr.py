"""The five Deformable DETR variants, what tells them apart in a state
dict, and the config of this project that runs each."""
from typing import Dict, NamedTuple, Optional


class Variant(NamedTuple):
    """num_levels: L; with_box_refine, as_two_stage: as the detector's
    arguments; dilation: the last ResNet stage dilated (DC5)."""
    num_levels: int
    with_box_refine: bool
    as_two_stage: bool
    dilation: bool


VARIANTS: Dict[str, Variant] = {
    'plain': Variant(4, False, False, False),
    'refine': Variant(4, True, False, False),
    'refine_twostage': Variant(4, True, True, False),
    'single_scale': Variant(1, False, False, False),
    'single_scale_dc5': Variant(1, False, False, True),
}
# Configs for this project's own checkpoints and mmdet's.
CONFIGS: Dict[str, str] = {
    'plain': 'configs/deformable_detr_r50.py',
    'refine': 'configs/deformable_detr_refine_r50.py',
    'refine_twostage': 'configs/deformable_detr_refine_twostage_r50.py',
    'single_scale': 'configs/deformable_detr_single_scale_r50.py',
    'single_scale_dc5': 'configs/deformable_detr_single_scale_dc5_r50.py',
}
# The official and HuggingFace input projections have a convolution bias
# (mmdet's have none), so their weights run with these configs.
CONV_BIAS_CONFIGS: Dict[str, str] = {
    name: path.replace('configs/', 'configs/converted/')
    for name, path in CONFIGS.items()
}


def variant_name(num_levels: int, with_box_refine: bool, as_two_stage: bool,
                 dilation: Optional[bool], requested: Optional[str],
                 source: str) -> str:
    """The variant a checkpoint holds.

    ``dilation`` is None when the checkpoint does not say (DC5 has the
    same weights as single-scale). ``requested`` (``--variant``) must agree
    with what the checkpoint shows and settles what it does not.
    """
    candidates = [
        name for name, v in VARIANTS.items()
        if v.num_levels == num_levels and v.with_box_refine == with_box_refine
        and v.as_two_stage == as_two_stage and
        (dilation is None or v.dilation == dilation)
    ]
    found = (f'{num_levels} feature level(s), box refinement '
             f'{"on" if with_box_refine else "off"}, two-stage '
             f'{"on" if as_two_stage else "off"}')
    if not candidates:
        raise ValueError(
            f'the {source} checkpoint has {found}, which is none of the '
            f'variants {sorted(VARIANTS)} this project has configs for')
    if requested is not None:
        if requested not in candidates:
            raise ValueError(
                f'--variant {requested} does not match the {source} '
                f'checkpoint, which has {found}: use --variant '
                f'{" or --variant ".join(candidates)}')
        return requested
    if len(candidates) > 1:
        raise ValueError(
            f'the {source} checkpoint has {found} and does not say whether '
            'the last ResNet stage is dilated (the weights are the same): '
            f'pass --variant {" or --variant ".join(candidates)}')
    return candidates[0]
