"""Where deformable attention looks (Deformable DETR, Zhu et al. 2021,
fig. 6): for chosen decoder queries, the predicted box, the reference point
and every sampling point of every head on every level, coloured by its
attention weight; and the same for the encoder token at a chosen pixel.

Symbols: B batch, Q queries, S tokens, L levels, M heads, P points.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from mmdet_detr.apis import Detector
from mmdet_detr.apis.images import ImageInput, to_pipeline_input
from mmdet_detr.models.box_ops import boxes_to_pixels
from .drawing import OUTLINE, class_color, new_figure, rgb_image
from .query_predictions import query_predictions
from .sampling_recorder import SamplingRecord, SamplingRecorder

LEVEL_MARKERS = ('o', 's', '^', 'D', 'v', 'p')
WEIGHT_CMAP = 'plasma'


class SamplingPanel(NamedTuple):
    """One picture's points, in pixels of the original image.

    points: (M * L * P, 2) ``(x, y)``; weights: (M * L * P, );
    levels: (M * L * P, ) level index of each point; reference: (2, );
    box: (4, ) ``xyxy`` or None; box_color: an RGBA tuple.
    """
    title: str
    points: np.ndarray
    weights: np.ndarray
    levels: np.ndarray
    reference: np.ndarray
    box: Optional[np.ndarray]
    box_color: tuple


def map_to_pixels(xy: torch.Tensor, meta: dict) -> np.ndarray:
    """(..., 2) ``(x, y)`` normalised to the padded feature maps -> pixels
    of the original image.

    Every level's map spans the padded batch input (``batch_input_shape``),
    so ``x = 1`` is its right edge; ``scale_factor`` undoes the resize.
    """
    pad_h, pad_w = meta['batch_input_shape']
    sx, sy = meta['scale_factor']
    scale = xy.new_tensor([pad_w / sx, pad_h / sy])
    return (xy * scale).numpy()


def token_panel(record: SamplingRecord, batch: int, token: int, meta: dict,
                title: str, box: Optional[np.ndarray],
                box_color: tuple) -> SamplingPanel:
    """The sampling points of query (or encoder token) ``token``."""
    locations = record.locations[batch, token]  # M, L, P, 2
    weights = record.weights[batch, token]  # M, L, P
    M, L, P, _ = locations.shape
    levels = torch.arange(L).view(1, L, 1).expand(M, L, P)  # M, L, P
    # The reference is the same image point on every level; level 0's.
    reference = record.reference_points[batch, token, 0, :2]  # 2
    return SamplingPanel(
        title=title,
        points=map_to_pixels(locations.reshape(-1, 2), meta),  # M*L*P, 2
        weights=weights.reshape(-1).numpy(),  # M*L*P
        levels=levels.reshape(-1).numpy(),  # M*L*P
        reference=map_to_pixels(reference, meta),
        box=box,
        box_color=box_color)


def pixel_to_token(pixel: Tuple[float, float], level: int,
                   spatial_shapes: torch.Tensor, meta: dict) -> int:
    """Index in S of the level-``level`` encoder token whose cell holds
    ``pixel`` (``(x, y)`` in the original image)."""
    L = len(spatial_shapes)
    if not 0 <= level < L:
        raise ValueError(f'encoder level {level} does not exist: the model '
                         f'has {L} levels (0..{L - 1})')
    pad_h, pad_w = meta['batch_input_shape']
    sx, sy = meta['scale_factor']
    x, y = pixel
    h, w = meta['ori_shape'][:2]
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f'pixel ({x}, {y}) is outside the {w}x{h} image')
    H_l, W_l = spatial_shapes[level].tolist()
    col = min(int(x * sx / pad_w * W_l), W_l - 1)
    row = min(int(y * sy / pad_h * H_l), H_l - 1)
    start = int((spatial_shapes[:level, 0] * spatial_shapes[:level, 1]).sum())
    return start + row * W_l + col


def _layer_record(records: dict, stack: str, attention: str,
                  layer: int) -> Tuple[SamplingRecord, int, int]:
    """The record of ``{stack}.layers.{layer}.{attention}``, the layer
    index made non-negative, and the number of layers."""
    prefix, suffix = f'{stack}.layers.', f'.{attention}'
    found = sorted(
        int(name[len(prefix):-len(suffix)]) for name in records
        if name.startswith(prefix) and name.endswith(suffix))
    if not found:
        raise ValueError(
            f'the model has no deformable attention at {prefix}N{suffix}; '
            'sampling pictures need a Deformable DETR')
    n = len(found)
    if not -n <= layer < n:
        raise ValueError(f'{stack} layer {layer} does not exist: the '
                         f'{stack} has {n} layers (0..{n - 1})')
    layer = layer % n
    return records[f'{prefix}{layer}{suffix}'], layer, n


def sampling_panels(detector: Detector,
                    image: ImageInput,
                    queries: Optional[Sequence[int]] = None,
                    top_k: int = 3,
                    layer: int = -1,
                    pixel: Optional[Tuple[float, float]] = None,
                    encoder_layer: int = -1,
                    encoder_level: int = 0
                    ) -> Tuple[List[SamplingPanel], str, List[int]]:
    """Decoder panels (the ``queries`` given, else the ``top_k``
    best-scoring) and one encoder panel (at ``pixel``, by default the
    centre of the first query's box); returns them, a figure title and
    each level's stride."""
    model = detector.model
    data = detector.preprocess([image])
    with SamplingRecorder(model) as recorder:
        preds = query_predictions(model, data)
    meta = preds.metas[0]
    scores, labels = preds.scores[0].cpu(), preds.labels[0].cpu()
    Q = len(scores)
    if queries is None:
        if top_k < 0:
            raise ValueError(f'top_k must be >= 0, got {top_k}')
        queries = scores.argsort(descending=True)[:top_k].tolist()
    for q in queries:
        if not 0 <= q < Q:
            raise ValueError(f'query {q} does not exist: the model has {Q} '
                             f'queries (0..{Q - 1})')
    boxes = boxes_to_pixels(preds.boxes[0].cpu(), meta['img_shape'],
                            meta['scale_factor']).numpy()  # Q, 4
    record, layer, num_layers = _layer_record(recorder.records, 'decoder',
                                              'cross_attn', layer)
    panels = []
    for q in queries:
        name = detector.class_names[labels[q]]
        panels.append(
            token_panel(record, 0, q, meta,
                        f'query {q}: {name} {scores[q]:.2f}', boxes[q],
                        class_color(labels[q])))
    enc_record, encoder_layer, num_enc = _layer_record(
        recorder.records, 'encoder', 'self_attn', encoder_layer)
    if pixel is None:
        if queries:
            x1, y1, x2, y2 = boxes[queries[0]]
            pixel = ((x1 + x2) / 2, (y1 + y2) / 2)
        else:
            h, w = meta['ori_shape'][:2]
            pixel = (w / 2, h / 2)
    token = pixel_to_token(pixel, encoder_level, enc_record.spatial_shapes,
                           meta)
    panels.append(
        token_panel(
            enc_record, 0, token, meta,
            f'encoder: pixel ({pixel[0]:.0f}, {pixel[1]:.0f}), '
            f'level {encoder_level}', None, (0, 0, 0, 1)))
    title = (f'Sampling points of decoder layer {layer + 1} of {num_layers} '
             f'(cross-attention) and encoder layer {encoder_layer + 1} of '
             f'{num_enc}, over the image in grey\ncolour: attention weight '
             f'of each point ({record.weights.shape[2]} heads x '
             f'{record.weights.shape[3]} levels x {record.weights.shape[4]} '
             'points); marker: feature level')
    return panels, title, _strides(record.spatial_shapes, meta)


def _strides(spatial_shapes: torch.Tensor, meta: dict) -> List[int]:
    """Each level's stride in input pixels."""
    pad_w = meta['batch_input_shape'][1]
    return [round(pad_w / w) for w in spatial_shapes[:, 1].tolist()]


def sampling_figure(image: np.ndarray, panels: Sequence[SamplingPanel],
                    title: str, strides: Sequence[int]) -> Figure:
    """The panels side by side over the (H, W, 3) RGB image, with a legend
    of the levels and one colour bar of the weights."""
    h, w = image.shape[:2]
    n = len(panels)
    panel_w = 3.0
    panel_h = panel_w * h / w
    gap, left, right, top, bottom = 0.25, 0.2, 1.0, 0.8, 0.75
    fig_w = left + n * panel_w + (n - 1) * gap + right
    fig_h = bottom + panel_h + 0.35 + top
    fig = new_figure((fig_w, fig_h))
    vmax = max(float(p.weights.max()) for p in panels)
    norm = Normalize(0.0, vmax)
    for i, panel in enumerate(panels):
        ax = fig.add_axes(((left + i * (panel_w + gap)) / fig_w,
                           bottom / fig_h, panel_w / fig_w, panel_h / fig_h))
        _draw_panel(ax, image, panel, norm)
    cax = fig.add_axes(((fig_w - right + 0.2) / fig_w, bottom / fig_h,
                        0.15 / fig_w, panel_h / fig_h))
    fig.colorbar(ScalarMappable(norm, WEIGHT_CMAP), cax=cax,
                 label='attention weight')
    handles = [
        Line2D([], [], linestyle='none', marker=LEVEL_MARKERS[level],
               markerfacecolor='0.6', markeredgecolor='black',
               label=f'level {level} (stride {stride})')
        for level, stride in enumerate(strides)
    ]
    handles.append(Line2D([], [], linestyle='none', marker='+',
                          markeredgecolor='lime', markersize=12,
                          markeredgewidth=2.5, label='reference point'))
    handles.append(Rectangle((0, 0), 1, 1, fill=False, edgecolor='0.3',
                             linewidth=2, label='predicted box'))
    fig.legend(handles=handles, loc='lower center', ncol=len(handles),
               frameon=False, fontsize=9, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / fig_h, va='top')
    return fig


def _draw_panel(ax, image: np.ndarray, panel: SamplingPanel,
                norm: Normalize) -> None:
    h, w = image.shape[:2]
    # Grey and lightened, so that colour means attention weight only.
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114])
    ax.imshow(0.2 + 0.8 * grey / 255.0, cmap='gray', vmin=0, vmax=1,
              interpolation='bilinear')
    if panel.box is not None:
        x1, y1, x2, y2 = panel.box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                               edgecolor=panel.box_color, linewidth=2,
                               path_effects=OUTLINE))
    for level in np.unique(panel.levels):
        keep = panel.levels == level
        order = np.argsort(panel.weights[keep])  # heaviest on top
        ax.scatter(panel.points[keep][order, 0], panel.points[keep][order, 1],
                   c=panel.weights[keep][order], cmap=WEIGHT_CMAP, norm=norm,
                   marker=LEVEL_MARKERS[level % len(LEVEL_MARKERS)], s=36,
                   edgecolors='black', linewidths=0.5, zorder=3,
                   label=f'level {level}')
    ax.plot(*panel.reference, marker='+', color='lime', markersize=14,
            markeredgewidth=2.5, zorder=4, label='reference point')
    outside = int(((panel.points < -0.5) |
                   (panel.points > [w - 0.5, h - 0.5])).any(1).sum())
    subtitle = panel.title
    if outside:
        subtitle += f'\n({outside} of {len(panel.points)} points outside)'
    ax.set_title(subtitle, fontsize=9)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def visualize_sampling(detector: Detector,
                       image: ImageInput,
                       queries: Optional[Sequence[int]] = None,
                       top_k: int = 3,
                       layer: int = -1,
                       pixel: Optional[Tuple[float, float]] = None,
                       encoder_layer: int = -1,
                       encoder_level: int = 0) -> Figure:
    """The sampling-point figure of ``image`` (see :func:`sampling_panels`
    for the arguments)."""
    panels, title, strides = sampling_panels(detector, image, queries, top_k,
                                             layer, pixel, encoder_layer,
                                             encoder_level)
    return sampling_figure(_rgb(image), panels, title, strides)


def _rgb(image: ImageInput) -> np.ndarray:
    loaded = to_pipeline_input(image, 0)
    if 'img' in loaded:
        return np.ascontiguousarray(loaded['img'][..., ::-1])
    return rgb_image(loaded['img_path'])
