"""Refuse a checkpoint of another model variant before it is used.

mmengine loads ``load_from`` and test checkpoints with ``strict=False``: a
box-refinement checkpoint evaluated with the plain config loads all shared
weights, logs the rest as "missing keys" among hundreds of lines, and the
run reports a meaningless mAP; resuming with another variant fails later
inside the optimizer. :class:`CheckpointVariantHook` compares the
checkpoint's parameter names and shapes with the model's, and the model
settings of the config saved in the checkpoint (box refinement has the
plain model's parameter names: only its branches stop being shared)
with the model's, as soon as the file is read (for test, ``load_from`` and
resume alike), and names every difference.

A different number of classes (only the classifier shapes differ) is let
through: that is fine-tuning, and the classifiers are initialised anew.
Checkpoints in a foreign layout (mmdet's, the reference implementation's)
are refused with the command that converts them. Both are done by
:func:`mmdet_detr.checkpoint.loader.prepare_state_dict`, which the
hook calls before mmengine copies the state dict into the model.
"""
import ast
from typing import Dict, List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet_detr.checkpoint.loader import prepare_state_dict
from mmdet_detr.registry import HOOKS

_SHOWN = 5


@HOOKS.register_module()
class CheckpointVariantHook(Hook):
    """Raise ``ValueError`` when a loaded checkpoint's parameters do not
    fit the model (see module doc); refuse foreign layouts and
    re-initialise classifiers of another class count
    (:func:`~mmdet_detr.checkpoint.loader.prepare_state_dict`).

    The model says what to compare: its ``parameter_settings`` (config
    paths under ``model``) and its head's ``classifiers()``, whose class
    rows may differ.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        state = checkpoint.get('state_dict', checkpoint)
        if not isinstance(state, dict):
            return
        own = model.state_dict()
        if set(state) & set(own):
            settings = getattr(model, 'parameter_settings', ())
            _check_variant(own, state, checkpoint.get('meta') or {},
                           runner.cfg.get('model'), model, settings)
        prepare_state_dict(model, state)


def _check_variant(own: dict, state: dict, meta: dict, model_cfg,
                   model, settings: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the keys and settings that differ."""
    classifier_keys = _classifier_keys(model)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [
        k for k in own if k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(own[k].shape)
        and k not in classifier_keys
    ]
    saved = _model_settings(meta.get('cfg'), settings)
    current = _model_settings(model_cfg, settings)
    current.update(_model_attributes(model, settings))
    differ = [
        f'{key}={saved[key]!r} (config: {current.get(key, "default")!r})'
        for key in settings
        if key in saved and saved[key] != current.get(key, saved[key])
    ]
    if not (missing or unexpected or reshaped or differ):
        return
    keys = (f'{_listed("missing", missing)}'
            f'{_listed("unexpected", unexpected)}'
            f'{_listed("of another shape", reshaped)}')
    raise ValueError(
        'the checkpoint was saved by another model variant than the '
        'config builds' + (f': {keys.rstrip("; ")}' if keys else '') +
        '. ' +
        (f'The checkpoint has model.{", model.".join(differ)}: use the '
         'config it was trained with, or set these values (e.g. with '
         '--cfg-options).' if differ else
         'Use the config the checkpoint was trained with.'))


def _classifier_keys(model) -> set:
    """State-dict keys of the head's classifiers, whose class rows may
    differ (fine-tuning)."""
    head = getattr(model, 'bbox_head', None)
    if head is None or not hasattr(head, 'classifiers'):
        return set()
    return {
        f'bbox_head.{name}.{part}'
        for name, classifier in head.classifiers().items()
        for part, _ in classifier.named_parameters()
    }


def _listed(what: str, keys: List[str]) -> str:
    if not keys:
        return ''
    more = ', ...' if len(keys) > _SHOWN else ''
    return f'{len(keys)} keys {what} ({", ".join(keys[:_SHOWN])}{more}); '


def _model_settings(model, settings: Sequence[str]) -> Dict[str, object]:
    """The ``settings`` a model config sets, from a config dict or from the
    config text saved in a checkpoint (read with ``ast``, never
    executed)."""
    if isinstance(model, str):
        model = _model_from_text(model)
    if not isinstance(model, dict):
        return {}
    values = {}
    for key in settings:
        node = model
        for part in key.split('.'):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            values[key] = node
    return values


def _model_attributes(model, settings: Sequence[str]) -> Dict[str, object]:
    """The ``settings`` as the built model holds them (defaults
    included)."""
    values = {}
    for key in settings:
        node = model
        for part in key.split('.'):
            node = getattr(node, part, None)
        if isinstance(node, (bool, int, float, str)):
            values[key] = node
    return values


def _model_from_text(text: str) -> Optional[dict]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and getattr(stmt.targets[0], 'id', None) == 'model'):
            return _literal(stmt.value)
    return None


def _literal(node):
    """``dict(a=1, b=dict(...))`` and literals to Python values; anything
    else to None."""
    if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'dict':
        return {
            kw.arg: _literal(kw.value)
            for kw in node.keywords if kw.arg is not None
        }
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None
