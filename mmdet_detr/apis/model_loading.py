"""Build a detector from a config and a checkpoint for inference, and the
test pipeline that turns images into its inputs."""
import copy
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from mmdet_detr.checkpoint.loader import prepare_state_dict
from mmdet_detr.deploy.deployed_detector import use_exported_model
from mmdet_detr.engine import cli
from mmdet_detr.registry import DATASETS, MODELS


def resolve_device(device: str) -> torch.device:
    """``'auto'``: the GPU when there is one, else the CPU."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not understood ({error}); "
                         "use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r}: this machine has no usable '
                         "GPU; use device='cpu' or 'auto'")
    return resolved


def load_inference_config(config: Union[str, Config],
                          cfg_options: Optional[dict] = None) -> Config:
    """A config file (with ``--cfg-options`` merged, as ``tools/test.py``
    does) or a copy of a loaded config."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        if cfg.get('default_scope') is None:
            cfg.default_scope = cli.DEFAULT_SCOPE
        return cfg
    return cli.load_config(str(config), cfg_options)


def load_model(cfg: Config, checkpoint: str,
               device: torch.device) -> Tuple[nn.Module, Tuple[str, ...]]:
    """The model of ``cfg`` with the weights of ``checkpoint``, in eval
    mode on ``device``, and its class names.

    Weights are loaded safely (``mmdet_detr.checkpoint.safe_load``; URLs
    such as ``https://`` through mmengine) and strictly: a checkpoint of
    another model is refused, not half loaded. Class names come from the
    checkpoint's ``meta.dataset_meta`` (the Runner saves them), else from
    the config's test dataset.
    """
    cli.check_checkpoint_path(checkpoint, 'CHECKPOINT')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    # Local files load through mmdet_detr.checkpoint.loader (importing
    # mmdet_detr.engine installed it); URLs through mmengine's loaders.
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {checkpoint!r} holds no state dict')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    advice = ('pass the config it was trained with (mmdet checkpoints: '
              'convert them with mmdet_detr.checkpoint)')
    prepare_state_dict(model, state, checkpoint)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensors of other shapes
        raise ValueError(
            f'checkpoint {checkpoint!r} does not fit the model of config '
            f'{cfg.filename!r}: {" ".join(str(error).split())} {advice}'
        ) from None
    if missing or unexpected:
        raise ValueError(
            f'checkpoint {checkpoint!r} does not fit the model of config '
            f'{cfg.filename!r}: {len(missing)} missing keys '
            f'{_head(missing)}, {len(unexpected)} unexpected keys '
            f'{_head(unexpected)}; {advice}')
    model.to(device).eval()
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    classes = (meta.get('dataset_meta') or {}).get('classes')
    if classes is None:
        classes = _config_classes(cfg)
    num_classes = getattr(getattr(model, 'bbox_head', None), 'num_classes',
                          len(classes))
    if len(classes) != num_classes:
        raise ValueError(
            f'the model of {cfg.filename!r} predicts {num_classes} classes '
            f'but its data set names {len(classes)}: set '
            'test_dataloader.dataset.metainfo.classes')
    return model, tuple(classes)


def load_exported_model(
        cfg: Config, model_file: str,
        backend: Optional[str]) -> Tuple[nn.Module, Tuple[str, ...]]:
    """The exported ``model_file`` run by ``backend``
    (``mmdet_detr.deploy.DeployedDetector``) with the data preprocessor of
    ``cfg``, and the class names recorded in the file."""
    cfg = copy.deepcopy(cfg)
    use_exported_model(cfg, model_file, backend)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    return model.eval(), model.class_names


def _head(keys: Sequence[str], n: int = 4) -> str:
    shown = ', '.join(keys[:n])
    return f'[{shown}{", ..." if len(keys) > n else ""}]'


def _config_classes(cfg: Config) -> Tuple[str, ...]:
    """Class names of the config's test dataset (its ``metainfo`` or the
    dataset class's own), without reading any annotation file."""
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    classes = (dataset_cfg.get('metainfo') or {}).get('classes')
    if classes is not None:
        return tuple(classes)
    dataset_cfg['lazy_init'] = True
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return tuple(DATASETS.build(dataset_cfg).metainfo['classes'])


def build_test_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline for images without annotations.

    Its file loader (``LoadImageFromFile`` or a subclass named
    ``...LoadImageFromFile``, with the same arguments) becomes mmdet's
    ``InferencerLoader`` (files and arrays) and ``LoadAnnotations`` is
    dropped; resizing and packing stay exactly as in ``tools/test.py``.
    """
    pipeline = []
    for transform in copy.deepcopy(cfg.test_dataloader.dataset.pipeline):
        name = transform['type']
        name = (name if isinstance(name, str) else name.__name__).split('.')
        if name[-1] == 'LoadAnnotations':
            continue
        if name[-1].endswith('LoadImageFromFile'):
            transform['type'] = 'mmdet.InferencerLoader'
        pipeline.append(transform)
    if not pipeline or pipeline[0]['type'] != 'mmdet.InferencerLoader':
        raise ValueError(
            f'{cfg.filename!r}: test_dataloader.dataset.pipeline must start '
            "with dict(type='LoadImageFromFile') to run on images")
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return Compose(pipeline)
