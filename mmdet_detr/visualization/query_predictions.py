"""What every object query predicts, before post-processing keeps the best.

Works for any detector of this project whose ``_forward`` returns the
head's ``(cls_logits, boxes)`` of every decoder layer, boxes (N, B, Q, 4)
normalised ``(cx, cy, w, h)`` relative to the unpadded input image; the
head's ``class_probabilities`` turns its logits into the K classes'
probabilities (sigmoids, or a softmax without "no object").

Symbols: N decoder layers, B batch, Q queries, K classes.
"""
from typing import List, NamedTuple

import torch
from torch import Tensor, nn


class QueryPredictions(NamedTuple):
    """One prediction per query of one decoder layer.

    scores: (B, Q) the best class's probability; labels: (B, Q) long;
    boxes: (B, Q, 4) normalised ``(cx, cy, w, h)`` of the input image;
    metas: B image metas (``img_shape``, ``scale_factor``,
    ``batch_input_shape``, ...).
    """
    scores: Tensor
    labels: Tensor
    boxes: Tensor
    metas: List[dict]


@torch.no_grad()
def query_predictions(model: nn.Module, data: dict,
                      layer: int = -1) -> QueryPredictions:
    """Run ``model`` on a data-loader batch and return decoder layer
    ``layer``'s prediction of each query (default: the last layer's, the
    one the detector outputs)."""
    data = model.data_preprocessor(data, False)
    outputs = model._forward(data['inputs'], data['data_samples'])
    if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2):
        raise ValueError(
            f'{type(model).__name__}._forward must return (cls_logits, '
            'boxes) of every decoder layer for per-query pictures')
    cls_logits, boxes = outputs
    if boxes.dim() != 4 or boxes.shape[-1] != 4:
        raise ValueError(
            f'{type(model).__name__}: expected boxes of shape (N, B, Q, 4), '
            f'got {tuple(boxes.shape)}')
    num_layers = boxes.shape[0]
    if not -num_layers <= layer < num_layers:
        raise ValueError(f'layer {layer} does not exist: the decoder has '
                         f'{num_layers} layers (0..{num_layers - 1})')
    logits = cls_logits[layer].float()  # B, Q, K or B, Q, K + 1
    probs = model.bbox_head.class_probabilities(logits)  # B, Q, K
    num_classes = model.bbox_head.num_classes
    if probs.shape[-1] != num_classes:
        raise ValueError(
            f'{type(model).__name__}: {logits.shape[-1]} class logits for '
            f'{num_classes} classes, which its head turns into '
            f'{probs.shape[-1]} class probabilities')
    scores, labels = probs.max(-1)  # B, Q
    return QueryPredictions(scores, labels, boxes[layer].float(),
                            [s.metainfo for s in data['data_samples']])
