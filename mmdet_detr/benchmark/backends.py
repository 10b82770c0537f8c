"""Inference side by side in every backend: mmdet 3.3's PyTorch model (the
reference), this project's PyTorch model, and the exported file in
onnxruntime and OpenVINO, float32 (attention in standard operators or as
this project's custom node) and int8, all on the same weights and the same
batch, interleaved in one process.

The weights are those of ``build_model_pair`` (random, perturbed); the
int8 file is calibrated on the timed batch itself, since random weights
give no accuracy to preserve and the time of an int8 graph does not
depend on its ranges. Both attention forms are quantized: the int8
custom-node rows run the custom form's int8 file.
"""
import copy
import logging
import os.path as osp
import statistics
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional

import torch
from mmengine.config import Config

from mmdet_detr.deploy import ExportMetadata, export_onnx, open_backend
from mmdet_detr.deploy.quantize import quantize_exported
from .compare import _machine
from .inputs import synthetic_batch
from .mmdet_equivalent import build_model_pair

REFERENCE = 'mmdet PyTorch'
# The rows of the comparison, in the order they run and print: name ->
# (runtime, model file kind: None for PyTorch, else float32 / custom /
# int8 / int8_custom; custom is float32 with the attention as the custom
# node, int8_custom its int8 version).
BACKEND_ROWS = {
    REFERENCE: (None, None),
    'mmdet_detr PyTorch': (None, None),
    'onnxruntime float32': ('onnxruntime', 'float32'),
    'OpenVINO float32': ('openvino', 'float32'),
    'onnxruntime custom op': ('onnxruntime', 'custom'),
    'OpenVINO custom op': ('openvino', 'custom'),
    'onnxruntime int8': ('onnxruntime', 'int8'),
    'OpenVINO int8': ('openvino', 'int8'),
    'onnxruntime int8 custom op': ('onnxruntime', 'int8_custom'),
    'OpenVINO int8 custom op': ('openvino', 'int8_custom'),
}
# The width of the table's first column (the longest row name).
NAME_WIDTH = max(len(name) for name in BACKEND_ROWS)
# Each int8 file and the float file it is quantized from.
QUANTIZED_FROM = {'int8': 'float32', 'int8_custom': 'custom'}


def run_backend_comparison(config: str,
                           size: int = 512,
                           batch: int = 2,
                           steps: int = 5,
                           threads: Optional[int] = None,
                           seed: int = 0,
                           log=print) -> dict:
    """Time one inference batch in each of ``BACKEND_ROWS``.

    Each round runs the batch once in every backend, so that a change in
    the machine's load hits all alike; one warm-up round precedes the
    ``steps`` timed ones.

    Args:
        config: a config whose ``model`` is a ``DeformableDETR``.
        size: images are ``size x size``.
        batch: images per batch.
        steps: timed rounds.
        threads: torch's, onnxruntime's and OpenVINO's thread count (None:
            each one's default).

    Returns:
        ``backends``: per row the wall seconds of a batch (``median``,
        ``min``, ``max``, ``n``) and ``speedup``, mmdet's median divided
        by the row's; ``export_seconds_onnx``, ``export_seconds_custom``,
        ``quantize_seconds_int8`` and ``quantize_seconds_int8_custom``.
    """
    if steps < 1:
        raise ValueError(f'--steps {steps}: at least one timed step needed')
    cfg = Config.fromfile(config)
    ours, reference = build_model_pair(cfg.model, True, seed=seed)
    ours.eval()
    reference.eval()
    images, samples = synthetic_batch(
        batch, (size, size), cfg.model['bbox_head']['num_classes'],
        seed=seed)
    array = images.numpy()
    result = dict(config=config, size=size, batch=batch, steps=steps,
                  threads=threads or torch.get_num_threads(),
                  machine=_machine('cpu'), torch=torch.__version__)
    with tempfile.TemporaryDirectory() as folder:
        files = {kind: osp.join(folder, f'{kind}.onnx')
                 for kind in ('float32', 'custom', *QUANTIZED_FROM)}
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            for kind, form in (('float32', 'onnx'), ('custom', 'custom')):
                metadata = ExportMetadata(
                    form, type(ours).__name__, osp.basename(config),
                    ('class', ) * cfg.model['bbox_head']['num_classes'], 0.3,
                    17, 'scores, labels, boxes', 'normalised images')
                result[f'export_seconds_{form}'] = export_onnx(
                    ours, files[kind], metadata, (2, 3, size, size + 32))
        logging.getLogger().setLevel(logging.ERROR)  # per-node warnings
        for kind, source in QUANTIZED_FROM.items():
            result[f'quantize_seconds_{kind}'] = quantize_exported(
                files[source], files[kind],
                [array[i:i + 1] for i in range(batch)],
                'the timed batch (random weights)').seconds
        runs: Dict[str, Callable[[], object]] = {}
        for name, (runtime, kind) in BACKEND_ROWS.items():
            if runtime is None:
                model = reference if name == REFERENCE else ours
                runs[name] = _pytorch_run(model, images, samples)
            else:
                runner = open_backend(files[kind], runtime, threads)
                runs[name] = (lambda r=runner: r(array))
        times = time_interleaved(runs, steps, log)
    reference_median = statistics.median(times[REFERENCE])
    result['backends'] = {
        name: dict(median=statistics.median(values), min=min(values),
                   max=max(values), n=len(values),
                   speedup=reference_median / statistics.median(values))
        for name, values in times.items()
    }
    return result


def _pytorch_run(model, images, samples) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return model.predict(images, copy.deepcopy(samples))

    return run


def time_interleaved(runs: Dict[str, Callable[[], object]], steps: int,
                     log=print) -> Dict[str, List[float]]:
    """Wall seconds of each of ``runs`` in ``steps`` rounds after one
    warm-up round; every round calls each run once, in order."""
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for round_id in range(steps + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
            if round_id:
                times[name].append(seconds)
            log(f'round {round_id}{" (warm-up)" if not round_id else ""}: '
                f'{name} {seconds:.3f} s')
    return times


def format_backend_comparison(result: dict) -> str:
    """The comparison as a table: seconds per batch and speed-up over
    mmdet."""
    lines = [
        f"{result['config']}: inference of a batch of {result['batch']} x "
        f"{result['size']}x{result['size']}, CPU ({result['machine']}), "
        f"{result['threads']} threads, torch {result['torch']}, "
        f"{result['steps']} timed rounds, interleaved",
        '',
        f"{'backend':{NAME_WIDTH}s}{'median s':>10s}{'min s':>10s}"
        f"{'max s':>10s}{'vs mmdet':>10s}",
    ]
    for name, row in result['backends'].items():
        lines.append(f"{name:{NAME_WIDTH}s}{row['median']:10.3f}"
                     f"{row['min']:10.3f}{row['max']:10.3f}"
                     f"{row['speedup']:9.2f}x")
    return '\n'.join(lines)
