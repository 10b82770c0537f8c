"""Time this project's detector and, optionally, mmdet 3.3's on the same
weights and inputs, interleaved in one process.

Each round runs one training step (forward, backward, optimizer) of every
model, then one inference batch of every model, so that a change in the
machine's load hits both alike. A warm-up round precedes the timed ones,
and the peak memory of a step is measured in an untimed run of its own.
"""
import copy
import logging
import os
import platform
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

from mmdet_detr.engine.host_memory import retain_freed_memory
from .inputs import synthetic_batch
from .mmdet_equivalent import build_model_pair, quiet_logger
from .part_timer import ROWS, TOTALS, PartTimer, clock
from .peak_memory import peak_memory_bytes

OURS, MMDET = 'mmdet_detr', 'mmdet'


def _optim_wrapper(cfg: Config, model: nn.Module, scope: str):
    """The config's optimizer (AdamW, parameter multipliers, gradient
    clipping) for ``model``; ``scope`` resolves ``type=`` names."""
    if 'optim_wrapper' not in cfg:
        raise ValueError(f'{cfg.filename}: the benchmark times the '
                         'optimizer of the config, and it has no '
                         '`optim_wrapper`')
    # quiet: mmengine logs the settings of every parameter, and warns about
    # every frozen one (the backbone's norms and first stage).
    with DefaultScope.overwrite_default_scope(scope), \
            quiet_logger(logging.ERROR):
        return build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))


def _summary(values: Sequence[float]) -> Dict[str, float]:
    return dict(median=statistics.median(values), min=min(values),
                max=max(values), n=len(values))


def predictions_max_difference(ours: nn.Module, reference: nn.Module,
                               images: torch.Tensor, samples: list) -> dict:
    """Largest differences of eval-mode predictions on the same batch:
    scores, boxes (pixels) and the number of differing labels."""
    ours.eval()
    reference.eval()
    with torch.no_grad():
        got = ours.predict(images, copy.deepcopy(samples))
        expected = reference.predict(images, copy.deepcopy(samples))
    scores = boxes = 0.0
    labels = 0
    for g, e in zip(got, expected):
        g, e = g.pred_instances, e.pred_instances
        scores = max(scores, (g.scores - e.scores).abs().max().item())
        boxes = max(boxes, (g.bboxes - e.bboxes).abs().max().item())
        labels += int((g.labels != e.labels).sum())
    return dict(scores=scores, boxes=boxes, labels=labels)


def run_benchmark(config: str,
                  size: int = 512,
                  batch: int = 2,
                  device: str = 'cpu',
                  steps: int = 5,
                  compare_mmdet: bool = False,
                  retain_memory: bool = False,
                  seed: int = 0,
                  log=print) -> dict:
    """Benchmark ``config``'s model; the figures as a dict.

    Args:
        config: path of a config whose ``model`` is a ``DeformableDETR`` or
            a ``DINO``.
        size: images are ``size x size``.
        batch: images per batch.
        device: ``'cpu'`` or ``'cuda'``.
        steps: timed rounds (after one warm-up round).
        compare_mmdet: also build and time mmdet's equivalent model.
        retain_memory: on CPU, keep freed host memory for reuse, as
            ``tools/train.py`` does without a GPU
            (:mod:`mmdet_detr.engine.host_memory`); it holds for the whole
            process, so for both models alike.
        seed: weights and inputs.
        log: called with progress lines.

    Returns:
        ``models``: per model the ``train_step``, ``inference`` (wall
        seconds: median, min, max), ``train_step_cpu``, ``inference_cpu``
        (CPU seconds of this process, which other processes on a shared
        machine disturb less), ``train_peak_bytes``,
        ``inference_peak_bytes`` and ``breakdown`` (median wall seconds per
        part); with ``compare_mmdet`` also ``train_step_speedup`` and
        ``inference_speedup`` (mmdet's median time / this project's), the
        same for CPU time (``train_step_cpu_speedup``,
        ``inference_cpu_speedup``), ``train_memory_ratio`` (this project's
        peak / mmdet's) and ``predictions_max_difference``;
        ``retain_freed_memory``: whether freed host memory is kept for
        reuse (CPU with glibc, :mod:`mmdet_detr.engine.host_memory`).
    """
    if steps < 1:
        raise ValueError(f'--steps {steps}: at least one timed step needed')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError('--device cuda: torch sees no GPU here; use --device '
                         'cpu')
    retained = retain_memory and device == 'cpu' and retain_freed_memory()
    cfg = Config.fromfile(config)
    num_classes = cfg.model['bbox_head']['num_classes']
    ours, reference = build_model_pair(cfg.model, compare_mmdet, seed=seed)
    models = {OURS: ours.to(device)}
    if reference is not None:
        models[MMDET] = reference.to(device)
    images, samples = synthetic_batch(batch, (size, size), num_classes,
                                      seed=seed, device=device)
    result = dict(config=config, size=size, batch=batch, device=device,
                  steps=steps, threads=torch.get_num_threads(),
                  retain_freed_memory=retained,
                  machine=_machine(device), torch=torch.__version__)
    if reference is not None:
        result['predictions_max_difference'] = predictions_max_difference(
            ours, reference, images, samples)
        log(f"predictions, max |mmdet_detr - mmdet|: "
            f"{result['predictions_max_difference']}")
    sync = torch.cuda.synchronize if device.startswith('cuda') else None
    timers = {name: PartTimer(sync) for name in models}
    wrappers = {
        name: _optim_wrapper(cfg, model, 'mmdet_detr' if name == OURS else
                             'mmdet')
        for name, model in models.items()
    }

    def train_step(name: str, timer: Optional[PartTimer]) -> Tuple[float,
                                                                   float]:
        model, wrapper = models[name], wrappers[name]
        model.train()
        batch_samples = copy.deepcopy(samples)
        timer = timer or PartTimer(sync)
        cpu = time.process_time()
        with timer.installed(model):
            wall = timer.step(
                lambda: sum(model.loss(images, batch_samples).values()),
                wrapper.backward, lambda: (wrapper.step(),
                                           wrapper.zero_grad()))
        return wall, time.process_time() - cpu

    def inference(name: str) -> Tuple[float, float]:
        model = models[name]
        model.eval()
        batch_samples = copy.deepcopy(samples)
        cpu, start = time.process_time(), clock(sync)
        with torch.no_grad():
            model.predict(images, batch_samples)
        return clock(sync) - start, time.process_time() - cpu

    # Per model and kind: (wall seconds, CPU seconds of this process).
    times: Dict[str, Dict[str, List[Tuple[float, float]]]] = {
        name: dict(train_step=[], inference=[]) for name in models
    }
    for round_id in range(steps + 1):
        for kind, run in (('train_step', lambda n: train_step(
                n, timers[n] if round_id else None)),
                          ('inference', inference)):
            for name in models:
                wall, cpu = run(name)
                if round_id:
                    times[name][kind].append((wall, cpu))
                log(f'round {round_id}{" (warm-up)" if not round_id else ""}'
                    f': {name} {kind} {wall:.3f} s, CPU {cpu:.3f} s')
    result['models'] = {}
    for name in models:
        train_peak = peak_memory_bytes(lambda: train_step(name, None), device)
        models[name].eval()
        with torch.no_grad():
            infer_peak = peak_memory_bytes(
                lambda: models[name].predict(images, copy.deepcopy(samples)),
                device)
        result['models'][name] = dict(
            train_step=_summary([w for w, _ in times[name]['train_step']]),
            inference=_summary([w for w, _ in times[name]['inference']]),
            train_step_cpu=_summary(
                [c for _, c in times[name]['train_step']]),
            inference_cpu=_summary([c for _, c in times[name]['inference']]),
            train_peak_bytes=train_peak,
            inference_peak_bytes=infer_peak,
            breakdown={
                row: statistics.median(timers[name].seconds[row])
                for row in ROWS + TOTALS
            })
    if reference is not None:
        mine, theirs = result['models'][OURS], result['models'][MMDET]
        for key in ('train_step', 'inference', 'train_step_cpu',
                    'inference_cpu'):
            result[f'{key}_speedup'] = (theirs[key]['median'] /
                                        mine[key]['median'])
        result['train_memory_ratio'] = (mine['train_peak_bytes'] /
                                        theirs['train_peak_bytes'])
        result['inference_memory_ratio'] = (mine['inference_peak_bytes'] /
                                            theirs['inference_peak_bytes'])
    return result


def _machine(device: str) -> str:
    if device.startswith('cuda'):
        return torch.cuda.get_device_name()
    return f'{platform.processor() or platform.machine()}, ' \
           f'{os.cpu_count()} CPUs'
