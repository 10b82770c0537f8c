"""What a converter returns, and how it is written to disk."""
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Optional

import torch
from torch import Tensor


class Converted(NamedTuple):
    """A state dict in this project's layout.

    variant: a key of the detector's ``VARIANTS`` (``variants/``).
    config: the config of this project to run it with.
    dataset_meta: ``{'classes': ...}`` when the source says, else None.
    notes: what the conversion changed, one line each.
    """
    state_dict: Dict[str, Tensor]
    variant: str
    config: str
    dataset_meta: Optional[dict]
    notes: List[str]


def save_converted(converted: Converted, dst: str, source: str,
                   src: str) -> None:
    """Write a checkpoint that ``tools/test.py``, ``load_from`` and
    ``tools/train.py --resume`` accept.

    It has mmengine's keys: ``state_dict``, ``meta`` (epoch and iteration
    0, so a resumed run starts training from these weights) and an empty
    ``message_hub``. The config to use is ``meta['config_file']``:
    mmengine reads ``meta['config']`` as the text of a config. An existing
    ``dst`` is never replaced.
    """
    if osp.exists(dst):
        raise FileExistsError(
            f'{dst!r} exists; choose another output path or remove it '
            'yourself (it is never overwritten)')
    if osp.abspath(dst) == osp.abspath(src):
        raise ValueError(f'the output {dst!r} is the input file')
    meta = dict(
        epoch=0,
        iter=0,
        converted_from=source,
        source_file=osp.basename(src),
        variant=converted.variant,
        config_file=converted.config)
    if converted.dataset_meta is not None:
        meta['dataset_meta'] = converted.dataset_meta
    checkpoint = dict(
        meta=meta,
        state_dict=converted.state_dict,
        message_hub=dict(log_scalars={}, runtime_info={}, resumed_keys={}))
    folder = osp.dirname(osp.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    partial = dst + '.partial'
    torch.save(checkpoint, partial)
    # Only a complete file takes the final name.
    os.replace(partial, dst)
