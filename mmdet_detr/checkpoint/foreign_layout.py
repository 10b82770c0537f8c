"""Checks made when a state dict is loaded into the detector.

- A checkpoint of another layout (official, mmdet, HuggingFace) is refused
  with the command that converts it, instead of loading nothing and
  reporting hundreds of missing keys.
- A checkpoint with another number of classes (fine-tuning on a new data
  set) loads everything but the classification layers, which are
  re-initialised; one log line says so.

:func:`check_layout_pre_hook` runs as a ``load_state_dict`` pre-hook of
the detector, so ``tools/test.py``, ``load_from``, ``--resume`` and
``model.load_state_dict`` all go through it; it does not know the file
name, so its command says ``CHECKPOINT``. The local-file loader of
:mod:`.safe_load`, which those paths read files with, calls
:func:`raise_if_foreign` first, with the file name in the command;
:func:`check_checkpoint_file` does the same for a file not yet loaded.
"""
import logging
import math
import re
from typing import Dict, List, Mapping, Optional

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from .safe_load import load_checkpoint_file
from .sources import SOURCES, recognise

# Deformable DETR's sigmoid classifiers (one per layer) and DETR's softmax
# classifier, whose last row is the no-object class.
_CLS_KEY = re.compile(
    r'^bbox_head\.(?P<branch>cls_branches\.\d+|cls_branch)\.'
    r'(?P<part>weight|bias)$')


class ForeignCheckpointError(RuntimeError):
    """The checkpoint is in another implementation's layout."""


def foreign_layout_message(checkpoint: Mapping,
                           filename: Optional[str] = None) -> Optional[str]:
    """What to do about a checkpoint of another layout; None if it is not
    one. ``filename`` goes into the command when known."""
    source = recognise(checkpoint)
    if source is None:
        return None
    src = filename or 'CHECKPOINT'
    dst = (re.sub(r'(\.pth|\.bin|\.safetensors)?$', '_converted.pth', src, 1)
           if filename else 'CONVERTED.pth')
    return (f'the checkpoint{" " + repr(filename) if filename else ""} is in '
            f'the layout of {SOURCES[source].description}, not this '
            'project\'s; convert it first with\n'
            f'    python tools/convert_checkpoint.py {src} {dst} '
            f'--from {source}\n'
            'and load the converted file with the config the command names')


def raise_if_foreign(checkpoint: object, filename: str) -> None:
    """Refuse a loaded checkpoint of another layout, naming ``filename`` in
    the convert command.

    Raises:
        ForeignCheckpointError: the checkpoint is official, mmdet or HF.
    """
    if isinstance(checkpoint, dict):
        state_dict = checkpoint.get('state_dict', checkpoint)
        message = foreign_layout_message(state_dict, filename)
        if message is not None:
            raise ForeignCheckpointError(message)


def check_checkpoint_file(filename: str) -> None:
    """Refuse a checkpoint file of another layout, naming it in the
    convert command.

    Of a ``.safetensors`` file only the key names are read; other files
    are read as safely as any checkpoint.

    Raises:
        ForeignCheckpointError: the file is official, mmdet or HF.
    """
    if filename.endswith('.safetensors'):
        try:
            from safetensors import safe_open
        except ImportError:  # then it cannot be loaded either
            return
        with safe_open(filename, 'pt') as f:
            checkpoint = dict.fromkeys(f.keys())
    else:
        checkpoint = load_checkpoint_file(filename, map_location='cpu')
    raise_if_foreign(checkpoint, filename)


def check_layout_pre_hook(module: nn.Module, state_dict: Dict[str, Tensor],
                          prefix: str, local_metadata: dict, strict: bool,
                          missing_keys: List[str],
                          unexpected_keys: List[str],
                          error_msgs: List[str]) -> None:
    """``register_load_state_dict_pre_hook`` of the detector.

    Raises:
        ForeignCheckpointError: the state dict is official, mmdet or HF.
    """
    own = {k[len(prefix):]: v for k, v in state_dict.items()
           if k.startswith(prefix)}
    message = foreign_layout_message(own)
    if message is not None:
        raise ForeignCheckpointError(message)
    _reinit_mismatched_classifiers(module, state_dict, prefix)


def _reinit_mismatched_classifiers(module: nn.Module,
                                   state_dict: Dict[str, Tensor],
                                   prefix: str) -> None:
    """Replace classification weights of another class count, in place,
    by freshly initialised ones of the model's shapes."""
    params = dict(module.named_parameters(remove_duplicate=False))
    replaced, source_rows, no_object = [], None, 0
    for key in list(state_dict):
        name = key[len(prefix):] if key.startswith(prefix) else None
        match = _CLS_KEY.match(name) if name in params else None
        if match is None:
            continue
        target, value = params[name], state_dict[key]
        if value.shape == target.shape or value.shape[1:] != target.shape[1:]:
            continue
        source_rows = value.shape[0]
        softmax = match.group('branch') == 'cls_branch'
        no_object = int(softmax)
        fan_in = params[_weight_key(name)].shape[1]
        state_dict[key] = _fresh(target, match.group('part'), softmax,
                                 fan_in)
        replaced.append(name)
    if replaced:
        model_rows = params[replaced[0]].shape[0]
        print_log(
            f'the checkpoint scores {source_rows - no_object} classes and '
            f'the model {model_rows - no_object}: loaded everything but the '
            f'classification layers ({", ".join(sorted(replaced))}), which '
            'are re-initialised',
            logger='current',
            level=logging.WARNING)


def _weight_key(key: str) -> str:
    """The weight's key beside a classifier's ``weight`` or ``bias`` key."""
    return key.rsplit('.', 1)[0] + '.weight'


def _fresh(target: Tensor, part: str, softmax: bool, fan_in: int) -> Tensor:
    """A new classifier weight or bias of ``target``'s shape: torch's
    ``Linear`` init, except the bias of a sigmoid classifier, which starts
    at the head's 0.01 foreground prior."""
    with torch.no_grad():
        value = torch.empty(target.shape, dtype=target.dtype)
        if part == 'weight':
            nn.init.kaiming_uniform_(value, a=math.sqrt(5))
        elif softmax:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(value, -bound, bound)
        else:
            value.fill_(-math.log((1 - 0.01) / 0.01))
    return value
