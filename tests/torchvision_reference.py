"""torchvision's own ResNet code, the backbone of the official DETR and
Deformable DETR, for parity tests.

``make setup`` unpacks the torchvision release of requirements/reference.txt
into ``.venv/reference/``, off ``sys.path``: PyPI's Linux torchvision is a
CUDA build whose compiled ops do not load beside this project's CPU torch,
and its package ``__init__`` then fails ("operator torchvision::nms does not
exist"). The model code needs none of those ops, so ``torchvision_models``
runs torchvision's ``models/resnet.py`` and ``models/_utils.py`` (with the
pure-Python modules they import) under a bare ``torchvision`` package whose
``__init__`` -- the part that registers the compiled ops -- is skipped. The
code that runs is the released file, unchanged.
"""
import functools
import importlib
import sys
import types
from pathlib import Path
from typing import Dict, List, NamedTuple

from torch import Tensor, nn

REFERENCE = Path(__file__).resolve().parents[1] / '.venv' / 'reference'


class TorchvisionModels(NamedTuple):
    version: str
    resnet: types.ModuleType  # torchvision.models.resnet
    utils: types.ModuleType  # torchvision.models._utils


def _version() -> str:
    found = sorted(REFERENCE.glob('torchvision-*.dist-info'))
    if not found or not (REFERENCE / 'torchvision' / 'models' /
                         'resnet.py').is_file():
        raise FileNotFoundError(
            f'torchvision\'s source is not in {REFERENCE}: `make setup` '
            'unpacks it there (requirements/reference.txt), or run '
            f'`python -m pip install --no-deps --target {REFERENCE} '
            '-r requirements/reference.txt`')
    return found[-1].name[len('torchvision-'):-len('.dist-info')]


@functools.lru_cache(maxsize=None)
def torchvision_models() -> TorchvisionModels:
    """torchvision's ``models.resnet`` and ``models._utils`` modules."""
    version = _version()
    package = REFERENCE / 'torchvision'

    def ours(name):
        return name == 'torchvision' or name.startswith('torchvision.')

    saved = {k: v for k, v in sys.modules.items() if ours(k)}
    try:
        for name, path in (('torchvision', package),
                           ('torchvision.models', package / 'models')):
            bare = types.ModuleType(name)
            bare.__path__ = [str(path)]
            sys.modules[name] = bare
        resnet = importlib.import_module('torchvision.models.resnet')
        utils = importlib.import_module('torchvision.models._utils')
    finally:
        # Nothing else in the process sees this partial torchvision.
        for name in [k for k in sys.modules if ours(k)]:
            del sys.modules[name]
        sys.modules.update(saved)
    return TorchvisionModels(version, resnet, utils)


def official_backbone_body(dilation: bool,
                           return_layers: Dict[str, str]) -> nn.Module:
    """The official ``Backbone.body`` before its batch norm is frozen:
    torchvision's ResNet-50 with ``replace_stride_with_dilation=[False,
    False, dilation]`` under torchvision's ``IntermediateLayerGetter`` (its
    ``forward`` returns an ordered dict of the maps of ``return_layers``)."""
    tv = torchvision_models()
    resnet = tv.resnet.resnet50(
        weights=None, replace_stride_with_dilation=[False, False, dilation])
    return tv.utils.IntermediateLayerGetter(resnet, return_layers)


class MapList(nn.Module):
    """The maps of a ``return_layers`` body as a list, in its order."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, images: Tensor) -> List[Tensor]:
        return list(self.body(images).values())
