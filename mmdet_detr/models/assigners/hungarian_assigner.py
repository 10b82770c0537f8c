"""One-to-one matching of predictions to ground truth (DETR's matcher).

Symbols: T prediction layers, B images, Q queries, K classes, G_b targets
of image b.
"""
import warnings
from typing import List, Sequence, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmdet_detr.registry import TASK_UTILS


@TASK_UTILS.register_module()
class HungarianAssigner:
    """Minimum-cost bipartite matching under a weighted sum of match costs.

    All cost matrices of a call are computed on the predictions' device and
    copied to the host in a single transfer; scipy's
    ``linear_sum_assignment`` then solves each set.

    Args:
        match_costs: configs of the costs (``TASK_UTILS`` types), summed.
    """

    def __init__(self, match_costs: Sequence[dict]) -> None:
        if not match_costs:
            raise ValueError('HungarianAssigner needs at least one match '
                             'cost in match_costs')
        self.match_costs = [TASK_UTILS.build(cfg) for cfg in match_costs]
        self._warned_more_targets = False

    @torch.no_grad()
    def assign(self, cls_logits: Tensor, boxes: Tensor,
               gt_labels: List[Tensor],
               gt_boxes: List[Tensor]) -> List[List[Tuple[Tensor, Tensor]]]:
        """Match every image's predictions of every layer to its targets.

        Args:
            cls_logits: (T, B, Q, K) class logits of T prediction layers
                (decoder layers) for B images.
            boxes: (T, B, Q, 4) normalised ``(cx, cy, w, h)``.
            gt_labels: B tensors (G_b, ) long, class indices.
            gt_boxes: B tensors (G_b, 4) normalised ``(cx, cy, w, h)``.

        Returns:
            T lists of B pairs ``(query_index, target_index)``, each a
            (min(Q, G_b), ) long tensor on the predictions' device: target
            ``target_index[j]`` is matched to query ``query_index[j]``.
        """
        T, B, Q, _ = boxes.shape
        if len(gt_labels) != B or len(gt_boxes) != B:
            raise ValueError(f'got predictions for {B} images but '
                             f'{len(gt_labels)} label and {len(gt_boxes)} '
                             'box target sets')
        # One cost computation per image covers all T layers, in float32
        # also under mixed precision: near-ties decide the matching.
        cls_logits, boxes = cls_logits.float(), boxes.float()
        with torch.autocast(boxes.device.type, enabled=False):
            costs = [
                self._cost(cls_logits[:, b], boxes[:, b], gt_labels[b],
                           gt_boxes[b].float()).flatten() for b in range(B)
            ]  # B tensors of T*Q*G_b
        host = torch.cat(costs).cpu().numpy()
        matches = [[] for _ in range(T)]
        start = 0
        for b in range(B):
            num_gts = len(gt_labels[b])
            if num_gts > Q and not self._warned_more_targets:
                warnings.warn(f'an image has {num_gts} targets but only {Q} '
                              f'queries: the best {Q} are matched and the '
                              'rest get no prediction; raise num_queries to '
                              'cover the densest image')
                self._warned_more_targets = True
            cost = host[start:start + T * Q * num_gts].reshape(T, Q, num_gts)
            start += T * Q * num_gts
            for t in range(T):
                matches[t].append(_solve(cost[t]))
        flat = _to_device([m for layer in matches for m in layer],
                          boxes.device)
        return [flat[t * B:(t + 1) * B] for t in range(T)]

    def _cost(self, cls_logits: Tensor, boxes: Tensor, gt_labels: Tensor,
              gt_boxes: Tensor) -> Tensor:
        """(T, Q, K), (T, Q, 4) against G targets -> (T, Q, G) total cost."""
        total = None
        for cost in self.match_costs:
            value = cost(cls_logits, boxes, gt_labels, gt_boxes)
            total = value if total is None else total + value
        return total


def _solve(cost: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Optimal (query_index, target_index) for a (Q, G) cost matrix."""
    if cost.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if not np.isfinite(cost).all():
        raise FloatingPointError(
            'the matching cost has NaN or inf entries: the predictions are '
            'not finite (check the loss for divergence, lower the learning '
            'rate or enable gradient clipping)')
    rows, cols = linear_sum_assignment(cost)
    return rows.astype(np.int64), cols.astype(np.int64)


def _to_device(matches: List[Tuple[np.ndarray, np.ndarray]],
               device: torch.device) -> List[Tuple[Tensor, Tensor]]:
    """Move all index arrays with one host-to-device copy."""
    lengths = [len(rows) for rows, _ in matches]
    flat = np.concatenate([np.zeros(0, dtype=np.int64)] +
                          [np.concatenate([rows, cols])
                           for rows, cols in matches])
    flat = torch.from_numpy(flat).to(device)
    out, start = [], 0
    for n in lengths:
        out.append((flat[start:start + n], flat[start + n:start + 2 * n]))
        start += 2 * n
    return out
