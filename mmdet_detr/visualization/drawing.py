"""Figures of images with labelled boxes (matplotlib, no display needed).

Figures are drawn on their own Agg canvas, without pyplot, so nothing
changes the backend or the figures of a user's session. Labels are placed
so that no two overlap and none leaves the image: each tries a few spots
around its box (above, inside, below) and takes the first free one,
measured with the renderer rather than guessed.
"""
import math
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.patheffects import Normal, Stroke
from matplotlib.text import Text
from matplotlib.transforms import Bbox

# Distinct colours for up to 10 classes, then repeating (matplotlib tab10).
PALETTE = [matplotlib.colormaps['tab10'](i) for i in range(10)]
LABEL_FONT_SIZE = 8
# A white rim under box edges, visible on any background.
OUTLINE = [Stroke(linewidth=4, foreground='white'), Normal()]
DPI = 100


def class_color(label: int) -> tuple:
    return PALETTE[int(label) % len(PALETTE)]


def new_figure(size_inches: Tuple[float, float]) -> Figure:
    """A figure of ``size_inches`` at :data:`DPI` on an Agg canvas."""
    fig = Figure(figsize=size_inches, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def image_figure(image: np.ndarray,
                 title: str,
                 min_side_px: int = 480,
                 max_side_px: int = 1200) -> Tuple[Figure, Axes]:
    """A figure showing an (H, W, 3) RGB image, its longer side scaled to
    ``min_side_px``..``max_side_px`` pixels, with a title above."""
    h, w = image.shape[:2]
    if max(h, w) < min_side_px:
        # Small images grow by a whole factor and show their pixels as
        # blocks (nearest): what the model sees, and PNGs stay small.
        scale = float(math.ceil(min_side_px / max(h, w)))
    else:
        scale = min(1.0, max_side_px / max(h, w))
    fig = new_figure((w * scale / DPI, h * scale / DPI + 0.45))
    ax = fig.add_axes((0, 0, 1, h * scale / (h * scale + 0.45 * DPI)))
    ax.imshow(image, interpolation='nearest' if scale > 1 else 'antialiased')
    ax.set_axis_off()
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    fig.suptitle(title, fontsize=10, y=1 - 0.08 * DPI / (h * scale + 45))
    return fig, ax


def draw_boxes(ax: Axes,
               boxes: np.ndarray,
               texts: Sequence[str],
               colors: Sequence[tuple],
               linewidth: float = 2.0) -> List[Text]:
    """Draw (n, 4) ``xyxy`` boxes in data (pixel) coordinates with a label
    each; returns the placed labels."""
    for box, color in zip(boxes, colors):
        x1, y1, x2, y2 = (float(v) for v in box)
        ax.add_patch(
            Rectangle((x1, y1),
                      x2 - x1,
                      y2 - y1,
                      fill=False,
                      edgecolor=color,
                      linewidth=linewidth,
                      path_effects=OUTLINE))
    return place_labels(ax, boxes, texts, colors)


def place_labels(ax: Axes, boxes: np.ndarray, texts: Sequence[str],
                 colors: Sequence[tuple]) -> List[Text]:
    """One label per box, at the first spot that overlaps no earlier label
    and stays inside the axes (else the least overlapping spot)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    placed: List[Bbox] = []
    labels = []
    for box, text, color in zip(boxes, texts, colors):
        x1, y1, x2, y2 = (float(v) for v in box)
        label = ax.text(
            x1,
            y1,
            text,
            fontsize=LABEL_FONT_SIZE,
            color='white',
            clip_on=False,
            bbox=dict(facecolor=color, edgecolor='none', pad=1.5,
                      alpha=0.85))
        best, best_cost = None, None
        for x, y, ha, va in ((x1, y1, 'left', 'bottom'),
                             (x1, y1, 'left', 'top'),
                             (x1, y2, 'left', 'top'),
                             (x1, y2, 'left', 'bottom'),
                             (x2, y1, 'right', 'bottom'),
                             (x2, y1, 'right', 'top'),
                             (x2, y2, 'right', 'top'),
                             (x2, y2, 'right', 'bottom')):
            label.set_position((x, y))
            label.set_ha(ha)
            label.set_va(va)
            extent = _with_pad(label, renderer)
            cost = _outside(extent, axes_box) + sum(
                _overlap(extent, other) for other in placed)
            if best_cost is None or cost < best_cost:
                best, best_cost = (x, y, ha, va), cost
            if cost == 0:
                break
        x, y, ha, va = best
        label.set_position((x, y))
        label.set_ha(ha)
        label.set_va(va)
        placed.append(_with_pad(label, renderer))
        labels.append(label)
    return labels


def _with_pad(label: Text, renderer) -> Bbox:
    patch = label.get_bbox_patch()
    if patch is None:
        return label.get_window_extent(renderer)
    label.update_bbox_position_size(renderer)
    return patch.get_window_extent(renderer)


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def _outside(a: Bbox, frame: Bbox) -> float:
    """Area of ``a`` outside ``frame``."""
    return a.width * a.height - _overlap(a, frame)


def save_figure(fig: Figure, path: str, dpi: Optional[int] = None) -> str:
    """Write ``fig`` as PNG, making the folder."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi or DPI, format='png')
    return path


def rgb_image(path: str) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array."""
    import mmcv
    return mmcv.imread(path, channel_order='rgb')


def boxes_figure(image: np.ndarray,
                 boxes: np.ndarray,
                 labels: np.ndarray,
                 class_names: Sequence[str],
                 title: str,
                 scores: Optional[np.ndarray] = None) -> Figure:
    """An (H, W, 3) RGB image with (n, 4) ``xyxy`` pixel boxes, each
    labelled with its class name (and score), coloured by class."""
    fig, ax = image_figure(image, title)
    texts = [
        class_names[label] if scores is None else
        f'{class_names[label]} {score:.2f}'
        for label, score in zip(labels, scores if scores is not None else
                                [None] * len(labels))
    ]
    draw_boxes(ax, boxes, texts, [class_color(label) for label in labels])
    return fig
