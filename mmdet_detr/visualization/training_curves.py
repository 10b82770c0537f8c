"""Training curves from mmengine's scalar logs, several runs in one figure.

mmengine's ``LocalVisBackend`` writes ``<work_dir>/<timestamp>/vis_data/
scalars.json``: one JSON object per line, training lines with ``iter``
(and ``epoch`` for epoch-based loops) and the logged values (``loss``,
``loss_cls``, ``lr``, ...), validation lines with the metrics
(``coco/bbox_mAP``, ...) and a ``step`` that is the epoch or the
iteration depending on the loop. Every curve is drawn against the training
iteration or the training time: a validation line is placed at the last
training line logged before it (exact when validation follows a logged
iteration, as with ``logger.interval`` dividing the validation interval).

Training time is the sum over training lines of the logged ``time`` (the
mean seconds of an iteration, data loading included, over the logger's
window) times the iterations since the previous line: exact when the log
processor's ``window_size`` equals ``logger.interval`` (50 in the configs
here). Validation and checkpointing are not counted, so runs of different
models compare at equal training budgets.
"""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from .drawing import new_figure


def find_scalar_logs(path: str) -> List[str]:
    """The ``scalars.json`` files of a work dir, oldest run first (a
    resumed run adds a newer one), or ``path`` itself if it is one."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path!r} is neither a work dir nor a '
                                'scalars.json file')
    found = sorted(
        glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise FileNotFoundError(
            f'{path!r} holds no <timestamp>/vis_data/scalars.json: is it '
            "the work dir of a training run with vis_backends="
            "[dict(type='LocalVisBackend')]?")
    return found


X_AXES = ('iteration', 'time')


Curves = Dict[str, Tuple[np.ndarray, np.ndarray]]


def load_curves(path: str, x: str = 'iteration') -> Curves:
    """``{key: (xs, values)}`` of every numeric key of a run, ``xs`` the
    training iteration or, with ``x='time'``, the training seconds.

    Runs of ``tools/test.py`` (metrics without training lines) are
    skipped; a resumed run's lines follow the earlier run's.
    """
    if x not in X_AXES:
        raise ValueError(f'x={x!r}: use one of {X_AXES}')
    curves: Dict[str, Tuple[list, list]] = {}
    last_iter, seconds = 0, 0.0
    for log in find_scalar_logs(path):
        with open(log) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        if not any('iter' in row for row in rows):
            continue
        for row in rows:
            if 'iter' in row:
                if x == 'time' and 'time' not in row:
                    raise ValueError(
                        f'{log!r}: training lines log no time, so the '
                        'curves cannot be drawn against the training time')
                seconds += row.get('time', 0.0) * (row['iter'] - last_iter)
                last_iter = row['iter']
            for key, value in row.items():
                if key in ('iter', 'epoch', 'step') or not isinstance(
                        value, (int, float)):
                    continue
                xs, ys = curves.setdefault(key, ([], []))
                xs.append(last_iter if x == 'iteration' else seconds)
                ys.append(value)
    if not curves:
        raise ValueError(f'{path!r}: no training lines in its scalar logs')
    return {k: (np.asarray(x), np.asarray(y)) for k, (x, y) in curves.items()}


def match_key(key: str, available: Sequence[str]) -> str:
    """``key`` itself or the logged key it abbreviates: ``bbox_mAP`` is
    ``coco/bbox_mAP``."""
    if key in available:
        return key
    matches = [k for k in available if k.split('/')[-1] == key]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(
        f'key {key!r} is ' +
        (f'ambiguous ({", ".join(matches)})' if matches else 'not logged') +
        f'; logged keys: {", ".join(sorted(available))}')


def curves_figure(runs: Dict[str, Curves],
                  keys: Sequence[str], title: str = '',
                  x: str = 'iteration') -> Figure:
    """One plot per key, one line per run (a run lacking a key is left
    out of that plot; a key no run logged is an error)."""
    resolved = []
    for key in keys:
        names = set()
        for curves in runs.values():
            try:
                names.add(match_key(key, list(curves)))
            except ValueError:
                pass
        if not names:
            match_key(key, sorted({k for c in runs.values() for k in c}))
        resolved.append((key, names))
    fig = new_figure((5.0 * len(keys), 3.8))
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, (key, names) in zip(axes, resolved):
        for run, curves in runs.items():
            name = next((n for n in names if n in curves), None)
            if name is None:
                continue
            xs, ys = curves[name]
            # Markers when there are few points (validation metrics).
            ax.plot(xs, ys, label=run, linewidth=1.5,
                    marker='o' if len(xs) < 30 else None, markersize=4)
        ax.set_title(' / '.join(sorted(names)), fontsize=10)
        ax.set_xlabel('training seconds' if x == 'time' else 'iteration')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def run_labels(paths: Sequence[str],
               names: Optional[Sequence[str]] = None) -> List[str]:
    """Legend names: ``names`` if given (one per run), else each work
    dir's name, or its whole path where two names are equal."""
    if names is not None:
        if len(names) != len(paths):
            raise ValueError(f'--legend gives {len(names)} names for '
                             f'{len(paths)} runs')
        return list(names)
    short = [osp.basename(osp.normpath(p)) for p in paths]
    return [s if short.count(s) == 1 else osp.normpath(p)
            for s, p in zip(short, paths)]
