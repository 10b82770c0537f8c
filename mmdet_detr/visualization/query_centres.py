"""What each object query specialises in (DETR, Carion et al. 2020, fig.
7): for each of the first object queries, the centres of the boxes it
predicts over a data set, in the unit square of the image, coloured by box
size and shape.

Symbols: I images, Q queries.
"""
import math
from typing import Iterable, Optional, Tuple

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import nn

from .drawing import new_figure
from .query_predictions import query_predictions

SMALL_COLOR = (0.1, 0.65, 0.1)
WIDE_COLOR = (0.85, 0.1, 0.1)
TALL_COLOR = (0.1, 0.25, 0.9)


def check_fixed_queries(model: nn.Module) -> None:
    """Refuse models whose queries are chosen per image (the detector's
    ``fixed_queries``, e.g. two-stage proposals): query k has no identity
    across images."""
    if not model.fixed_queries:
        raise ValueError(
            f'{type(model).__name__} chooses its queries for every image '
            '(two-stage: from the encoder proposals), so a query index '
            'means nothing across images; use a model with learned object '
            'queries')


@torch.no_grad()
def collect_query_boxes(model: nn.Module, batches: Iterable[dict],
                        max_images: Optional[int] = None
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """Every query's final box and score on every image of ``batches``
    (data-loader batches).

    Returns:
        boxes: (I, Q, 4) normalised ``(cx, cy, w, h)`` of each image.
        scores: (I, Q) the best class's probability.
    """
    check_fixed_queries(model)
    boxes, scores = [], []
    seen = 0
    for data in batches:
        preds = query_predictions(model, data)
        boxes.append(preds.boxes.cpu().numpy())
        scores.append(preds.scores.cpu().numpy())
        seen += len(preds.scores)
        if max_images is not None and seen >= max_images:
            break
    if not boxes:
        raise ValueError('the data set gave no images')
    boxes, scores = np.concatenate(boxes), np.concatenate(scores)
    if max_images is not None:
        boxes, scores = boxes[:max_images], scores[:max_images]
    return boxes, scores


def size_colors(boxes: np.ndarray, small_size: float) -> np.ndarray:
    """(n, 3) RGB per (n, 4) normalised ``(cx, cy, w, h)`` box: green when
    ``sqrt(w * h) < small_size``, else red when wider than tall and blue
    when taller than wide."""
    w, h = boxes[:, 2], boxes[:, 3]
    small = np.sqrt(w * h) < small_size
    colors = np.where((w >= h)[:, None], WIDE_COLOR, TALL_COLOR)
    return np.where(small[:, None], SMALL_COLOR, colors)


def query_centres_figure(boxes: np.ndarray,
                         scores: np.ndarray,
                         num_queries: int = 20,
                         score_thr: float = 0.0,
                         small_size: float = 0.2,
                         title: str = '',
                         columns: int = 10) -> Figure:
    """One panel per query ``0..num_queries-1`` with its box centres.

    Args:
        boxes, scores: from :func:`collect_query_boxes`.
        score_thr: drop predictions scoring less (0 keeps all, as in the
            DETR paper).
        small_size: ``sqrt(w * h)`` (fraction of the image side) below
            which a box counts as small.
    """
    Q = boxes.shape[1]
    if not 1 <= num_queries <= Q:
        raise ValueError(f'num_queries must be in 1..{Q} (the model has '
                         f'{Q} queries), got {num_queries}')
    columns = min(columns, num_queries)
    rows = math.ceil(num_queries / columns)
    side, gap, top, bottom, left = 1.5, 0.15, 0.6, 0.55, 0.15
    title_h = 0.25
    fig_w = 2 * left + columns * side + (columns - 1) * gap
    fig_h = top + rows * (side + title_h) + (rows - 1) * gap + bottom
    fig = new_figure((fig_w, fig_h))
    for q in range(num_queries):
        r, c = divmod(q, columns)
        x0 = left + c * (side + gap)
        y0 = fig_h - top - (r + 1) * (side + title_h) - r * gap
        ax = fig.add_axes((x0 / fig_w, y0 / fig_h, side / fig_w,
                           side / fig_h))
        keep = scores[:, q] >= score_thr
        query_boxes = boxes[keep, q]  # n, 4
        ax.scatter(query_boxes[:, 0], query_boxes[:, 1],
                   c=size_colors(query_boxes, small_size), s=4,
                   alpha=0.6, linewidths=0)
        ax.set_xlim(0, 1)
        ax.set_ylim(1, 0)  # image coordinates: y grows downwards
        ax.set_aspect('equal')
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f'query {q} ({len(query_boxes)})', fontsize=8, pad=3)
    handles = [
        Line2D([], [], linestyle='none', marker='o', color=color,
               label=label) for color, label in (
                   (SMALL_COLOR, f'small box (sqrt(w*h) < {small_size:g} '
                    'of the image side)'),
                   (WIDE_COLOR, 'large box, wider than tall'),
                   (TALL_COLOR, 'large box, taller than wide'))
    ]
    fig.legend(handles=handles, loc='lower center', ncol=3, frameon=False,
               fontsize=9)
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / fig_h, va='top')
    return fig


def dataset_batches(cfg, split: str, progress: bool = False) -> Iterable:
    """The batches of ``cfg``'s ``{split}_dataloader`` (its test-time
    pipeline), optionally with a progress bar over images."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from mmengine.utils import ProgressBar
    key = f'{split}_dataloader'
    if split not in ('val', 'test') or cfg.get(key) is None:
        raise ValueError(f'--dataset {split!r}: use val or test, and the '
                         f'config {cfg.filename!r} must define {key}')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        loader = Runner.build_dataloader(cfg[key])
    bar = ProgressBar(len(loader.dataset)) if progress else None
    for data in loader:
        if bar is not None:
            bar.update(len(data['inputs']))
        yield data
