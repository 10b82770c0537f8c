"""The loading side: what happens when a checkpoint goes into the detector.

- Local files are read with :func:`.safe_load.load_checkpoint_file`
  (``weights_only`` and an allowlist): :func:`install_safe_local_loader`
  makes mmengine's ``CheckpointLoader`` use :func:`load_from_local_safe`
  for local paths, the prefix ``''`` that ``Runner.load_checkpoint``,
  ``Runner.resume``, ``load_from`` and
  ``init_cfg=dict(type='Pretrained', checkpoint=<local file>)`` all go
  through. The URL schemes (``torchvision://``, ``http(s)://``, ...) keep
  mmengine's loaders.
- A checkpoint of another layout (official, mmdet, HuggingFace; the table
  of :mod:`.sources`) is refused with the command that converts it,
  instead of loading nothing and reporting hundreds of missing keys.
- A checkpoint with another number of classes (fine-tuning on a new data
  set) loads everything but the classification layers, which are
  re-initialised; one log line says so (:mod:`.class_count`).

:func:`prepare_state_dict` does the last two; the loading side calls it
before a state dict goes into a model: ``CheckpointVariantHook`` for the
Runner's ``tools/test.py``, ``load_from`` and ``--resume``, and the
inference API. Without the file name its command says ``CHECKPOINT``.
:func:`load_from_local_safe`, which those paths read files with, calls
:func:`raise_if_foreign` first, with the file name in the command;
:func:`check_checkpoint_file` does the same for a file not yet loaded.

Imports point one way: this module imports :mod:`.safe_load` and
:mod:`.sources` (and through it the converters); none of them imports it.
"""
import os.path as osp
import re
from typing import Dict, Mapping, Optional

from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

from .class_count import fit_class_count
from .safe_load import MapLocation, load_checkpoint_file
from .sources import SOURCES, recognise


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


def prepare_state_dict(model: nn.Module, state_dict: Dict[str, Tensor],
                       filename: Optional[str] = None) -> None:
    """What every loading path does before ``state_dict`` goes into
    ``model``: refuse another implementation's layout, and re-initialise
    classifiers of another class count (in place, see
    :func:`.class_count.fit_class_count`).

    Raises:
        ForeignCheckpointError: the state dict is official, mmdet or HF.
    """
    message = foreign_layout_message(state_dict, filename)
    if message is not None:
        raise ForeignCheckpointError(message)
    fit_class_count(model, state_dict)


def load_from_local_safe(filename: str,
                         map_location: MapLocation = None) -> object:
    """mmengine's local-path loader, with :func:`load_checkpoint_file`;
    refuses a checkpoint of another layout (:func:`raise_if_foreign`)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    checkpoint = load_checkpoint_file(filename, map_location)
    raise_if_foreign(checkpoint, filename)
    return checkpoint


def install_safe_local_loader() -> None:
    """Register :func:`load_from_local_safe` for local paths (prefix ``''``)
    in mmengine's ``CheckpointLoader``, replacing ``load_from_local``.

    Idempotent. Other prefixes keep their loaders.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safe, force=True)


def safe_local_loader_installed() -> bool:
    """Whether local paths currently load through this module."""
    return CheckpointLoader._get_checkpoint_loader(
        'any/local/file.pth') is load_from_local_safe
