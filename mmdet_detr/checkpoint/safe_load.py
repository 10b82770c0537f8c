"""Checkpoint loading that never runs code stored in the file.

A ``.pth`` file is a pickle, and unpickling may call any function the file
names (``os.system`` included). torch >= 2.6 therefore loads with
``weights_only=True``, which only rebuilds tensors, containers and allowlisted
globals. mmengine 0.10.7 calls ``torch.load(filename, map_location=...)``, so
the checkpoints mmengine itself saves fail to load: their message hub holds
``HistoryBuffer`` objects and numpy arrays, scalars and dtypes.

This module keeps ``weights_only=True`` and allowlists exactly the globals
that mmengine's Runner and this project write (found by saving checkpoints
with the Runner and listing them with
``torch.serialization.get_unsafe_globals_in_checkpoint``). The allowlist is
active only inside :func:`load_checkpoint_file`, through
``torch.serialization.safe_globals``, so other ``torch.load`` calls in the
process keep torch's default.

The official Deformable-DETR and DETR checkpoints pickle their training
``args`` as an ``argparse.Namespace``, a plain attribute holder with no code
of its own; it is allowlisted too, so those files load and are recognised
(and refused with the command that converts them) instead of failing as
unsafe.

A file that needs anything else is refused with an error naming the file and
the globals. Trusted legacy files can be loaded with full unpickling by
setting ``MMDET_DETR_TRUST_CHECKPOINTS=1``; each such load is logged as a
warning.

This module reads files and imports nothing of this project, so the
converters read with it too. :mod:`.loader` makes :func:`load_checkpoint_file`
mmengine's loader of local paths.
"""
import argparse
import logging
import os
import pickle
import re
from typing import Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

TRUST_ENV_VAR = 'MMDET_DETR_TRUST_CHECKPOINTS'
_TRUE_VALUES = ('1', 'true', 'yes', 'on')
_FALSE_VALUES = ('', '0', 'false', 'no', 'off')

MapLocation = Union[None, str, torch.device, Callable, dict]

# ``HistoryBuffer.__getstate__`` stores its statistics methods, which pickle
# as ``getattr(HistoryBuffer, 'mean')``. Allowing ``builtins.getattr`` itself
# would let a file fetch any attribute of any object it builds, so the name
# maps to this function, which only returns these four methods.
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_method(owner: type, name: str) -> Callable:
    if owner is not HistoryBuffer or name not in _HISTORY_BUFFER_METHODS:
        raise pickle.UnpicklingError(
            f'getattr({owner!r}, {name!r}) is not allowed: checkpoints may '
            'only reference the statistics methods '
            f'{_HISTORY_BUFFER_METHODS} of mmengine HistoryBuffer')
    return getattr(HistoryBuffer, name)


def _numpy_core_function(name: str) -> Callable:
    # numpy 2 moved ``numpy.core`` to ``numpy._core``; files written under
    # numpy 1.x name the old module.
    core = getattr(np, '_core', None) or np.core
    return getattr(core.multiarray, name)


def _allowlist() -> List[Tuple[object, str]]:
    """(object, pickled name) pairs that checkpoints may reference.

    Every entry is a pair, so the exact name a file uses maps to the object
    it may build, whichever numpy version wrote the file.
    """
    entries = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_history_buffer_method, 'builtins.getattr'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
        (argparse.Namespace, 'argparse.Namespace'),
    ]
    for name in ('_reconstruct', 'scalar'):
        function = _numpy_core_function(name)
        entries.append((function, f'numpy._core.multiarray.{name}'))
        entries.append((function, f'numpy.core.multiarray.{name}'))
    # A pickled dtype is rebuilt as ``numpy.dtype(code)`` and then given its
    # state, which the unpickler allows only for allowlisted types; since
    # numpy 1.25 each dtype has its own class (``numpy.dtypes.Float32DType``).
    # Booleans, integers, floats, complex numbers, bytes and str; not object
    # or structured dtypes.
    for code in '?bBhHiIlLqQefdgFDGSU':
        dtype_cls = type(np.dtype(code))
        if dtype_cls is not np.dtype:
            entries.append(
                (dtype_cls, f'{dtype_cls.__module__}.{dtype_cls.__name__}'))
    return entries


def allowed_global_names() -> List[str]:
    """Sorted names of the globals a checkpoint may reference."""
    return sorted({name for _, name in _allowlist()})


def trust_enabled() -> bool:
    """Whether ``MMDET_DETR_TRUST_CHECKPOINTS`` opts in to full unpickling."""
    value = os.environ.get(TRUST_ENV_VAR, '').strip().lower()
    if value in _TRUE_VALUES:
        return True
    if value in _FALSE_VALUES:
        return False
    raise ValueError(
        f'{TRUST_ENV_VAR}={os.environ[TRUST_ENV_VAR]!r} is not understood: '
        "set it to '1' to load trusted checkpoints with full unpickling, or "
        "unset it (or '0') to keep safe loading")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references globals outside the allowlist."""


def _refused_globals(filename: str, error: Exception) -> List[str]:
    """Names of the globals that made ``weights_only`` loading fail."""
    names = set(re.findall(r'GLOBAL ([\w.]+)', str(error)))
    try:
        # A static scan of the pickle's opcodes; nothing is executed.
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # legacy (non-zip) files, unusual opcodes
        found = []
    names.update(found)
    return sorted(names - set(allowed_global_names()))


def _torch_reason(error: Exception) -> str:
    """The lines of torch's message that say what was refused and why."""
    boilerplate = ('Weights only load failed', 'Please file an issue',
                   'Check the documentation')
    lines = [line.strip() for line in str(error).splitlines()]
    reason = [
        line for line in lines if line and not line.startswith(boilerplate)
    ]
    return ' '.join(reason) if reason else str(error)


def load_checkpoint_file(filename: str,
                         map_location: MapLocation = None) -> object:
    """``torch.load`` a local file with ``weights_only=True`` and the
    allowlist of this module.

    Args:
        filename: Path of a checkpoint written by ``torch.save``.
        map_location: As in ``torch.load``.

    Returns:
        The unpickled object (usually a dict with ``state_dict``, ``meta``,
        ``optimizer``, ``message_hub``, ``param_schedulers``).

    Raises:
        UnsafeCheckpointError: The file references globals outside the
            allowlist and ``MMDET_DETR_TRUST_CHECKPOINTS`` is not set.
    """
    try:
        # torch keeps allowlists in one process-wide set; the context adds
        # this one for the duration of this load only.
        with torch.serialization.safe_globals(_allowlist()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _refused_globals(filename, error)
        if refused:
            what = ('it references globals outside the safe-loading '
                    f'allowlist: {", ".join(refused)}')
        else:
            what = 'its pickle does something safe loading does not allow'
        if not trust_enabled():
            raise UnsafeCheckpointError(
                f'Refused to load checkpoint {filename!r}: {what} (torch: '
                f'{_torch_reason(error)}). Loading it anyway could run code '
                'stored in the file. If you trust this file, because you '
                'wrote it or got it from a source you trust, set '
                f'{TRUST_ENV_VAR}=1 to load it with full unpickling, and '
                "consider re-saving it as a plain {'state_dict': ...} of "
                'tensors.') from error
    print_log(
        f'{TRUST_ENV_VAR} is set: loading {filename!r} with full unpickling '
        f'(weights_only=False) because {what}. Code stored in the file can '
        'run; do this only for files you trust.',
        logger='current',
        level=logging.WARNING)
    return torch.load(filename, map_location=map_location, weights_only=False)
