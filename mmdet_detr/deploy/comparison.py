"""How far a backend's detections are from PyTorch's.

Symbols: B batch, k detections per image.
"""
from typing import NamedTuple, Tuple

import numpy as np

Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]


class DetectionDifference(NamedTuple):
    """max_score: the largest score difference, rank by rank; max_box:
    the largest box coordinate difference in pixels, each detection
    against the detection of PyTorch of the same label whose score is
    nearest (two detections of almost equal score may trade ranks
    between runtimes); labels_equal: whether every rank has the same
    label, ranks of scores closer than 1e-4 aside."""
    max_score: float
    max_box: float
    labels_equal: bool


def compare_detections(found: Detections,
                       expected: Detections) -> DetectionDifference:
    """Compare (scores (B, k), labels (B, k), boxes (B, k, 4)) triples."""
    scores, labels, boxes = (np.asarray(a) for a in found)
    ref_scores, ref_labels, ref_boxes = (np.asarray(a) for a in expected)
    if scores.shape != ref_scores.shape:
        raise ValueError(f'scores of shape {scores.shape}, PyTorch gives '
                         f'{ref_scores.shape}')
    max_box = 0.0
    labels_equal = True
    for b in range(scores.shape[0]):
        for i in range(scores.shape[1]):
            same_label = np.flatnonzero(ref_labels[b] == labels[b, i])
            if same_label.size == 0:
                return DetectionDifference(
                    float(np.abs(scores - ref_scores).max()), float('inf'),
                    False)
            j = same_label[np.argmin(
                np.abs(ref_scores[b, same_label] - scores[b, i]))]
            max_box = max(max_box,
                          float(np.abs(boxes[b, i] - ref_boxes[b, j]).max()))
            tie = np.abs(ref_scores[b] - ref_scores[b, i]) < 1e-4
            labels_equal &= bool(labels[b, i] == ref_labels[b, i]
                                 or tie.sum() > 1)
    return DetectionDifference(float(np.abs(scores - ref_scores).max()),
                               max_box, labels_equal)
