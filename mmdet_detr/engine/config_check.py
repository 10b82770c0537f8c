"""Config mistakes found before anything is built, with what would fit.

mmengine reports an unknown ``type`` as "X is not in the model registry"
and a misspelled argument as "__init__() got an unexpected keyword
argument", from inside the Runner and only once it reaches that part.
:func:`check_config` walks the whole config first and, for every
``dict(type=...)``, checks that the name is registered (in this project's
registries or, through them, mmdet's and mmengine's) and, for this
project's own components, that every key is an argument of the component;
each error names the config path and suggests the nearest names.
"""
import difflib
import inspect
from typing import Iterator, List, Tuple

from mmengine.config import Config
from mmengine.registry import FUNCTIONS, Registry

from mmdet_detr import registry as project_registry

_PROJECT = 'mmdet_detr.'
# Keys the builders consume before calling the class: a hook's priority,
# an optimizer wrapper's constructor and its paramwise_cfg, a scope.
_BUILDER_KEYS = ('type', 'priority', 'constructor', 'paramwise_cfg',
                 '_scope_')


class ConfigError(ValueError):
    """A config value that cannot work, with the path and what would."""


def check_config(cfg: Config) -> None:
    """Raise :class:`ConfigError` for the first unknown component type or
    unknown argument of a ``mmdet_detr`` component in ``cfg``."""
    registries = _registries()
    for path, part in _typed_dicts(cfg.to_dict(), ''):
        name = part['type']
        if not isinstance(name, str):
            continue  # a class object, built as it is
        found = next((r.get(name) for r in registries if r.get(name)), None)
        if found is None:
            raise ConfigError(
                f'{path}.type={name!r} is not a registered component' +
                _suggest(name, _all_names(registries)) +
                ' (names are case-sensitive; a component of another package '
                'needs its module in custom_imports)')
        if inspect.isclass(found) and found.__module__.startswith(_PROJECT):
            _check_arguments(path, found, part)


def _check_arguments(path: str, cls: type, part: dict) -> None:
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [n for n in parameters if n != 'self']
    for key in part:
        if key not in _BUILDER_KEYS and key not in accepted:
            raise ConfigError(
                f'{path}.{key}: {cls.__name__} has no argument {key!r}' +
                _suggest(key, accepted) +
                f'; its arguments are {", ".join(accepted)}')


def _suggest(name: str, candidates: List[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not close:
        lowered = [c for c in candidates if c.lower() == name.lower()]
        close = lowered[:3]
    return f' (did you mean {" or ".join(map(repr, close))}?)' if close \
        else ''


def _typed_dicts(node, path: str) -> Iterator[Tuple[str, dict]]:
    """(config path, dict) for every dict with a ``type`` key."""
    if isinstance(node, dict):
        if 'type' in node:
            yield path or '<root>', node
        for key, value in node.items():
            yield from _typed_dicts(value, f'{path}.{key}' if path else key)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _typed_dicts(value, f'{path}[{i}]')


def _registries() -> List[Registry]:
    found = [
        value for value in vars(project_registry).values()
        if isinstance(value, Registry) and value.scope == 'mmdet_detr'
    ]
    return found + [FUNCTIONS]


def _all_names(registries: List[Registry]) -> List[str]:
    names = set()
    for registry in registries:
        while registry is not None:
            registry.import_from_location()
            names.update(registry.module_dict)
            registry = registry.parent
    return sorted(names)
