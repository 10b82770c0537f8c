"""What ``tools/infer.py`` does: detect on image files, write one picture
per image and ``predictions.json`` (COCO results)."""
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from mmengine.utils import ProgressBar

from mmdet_detr.visualization.drawing import (boxes_figure, rgb_image,
                                              save_figure)
from .coco_results import category_ids_for, image_ids_for, to_coco_results
from .detector import Detections, Detector
from .output_paths import check_new_output, picture_names

PREDICTIONS_FILE = 'predictions.json'


def infer_files(detector: Detector,
                files: Sequence[str],
                out_dir: str,
                score_thr: float = 0.3,
                batch_size: int = 1,
                overwrite: bool = False,
                progress: bool = True) -> dict:
    """Detect on ``files`` and write into ``out_dir``:
    ``<image stem>.png`` with the detections scoring at least
    ``score_thr`` drawn, and ``predictions.json`` with the same detections
    in COCO results format.

    Nothing is written when a file to write exists and not ``overwrite``.

    Returns:
        ``dict(pictures=[...], predictions=path, num_detections=n,
        category_ids_from=...)``.
    """
    if batch_size < 1:
        raise ValueError(f'--batch-size must be >= 1, got {batch_size}')
    pictures, predictions = check_outputs(files, out_dir, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    bar = ProgressBar(len(files)) if progress else None
    found: List[Detections] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        for path, picture, detections in zip(
                chunk, pictures[start:start + batch_size],
                detector(list(chunk), score_thr, batch_size)):
            found.append(detections)
            fig = boxes_figure(
                rgb_image(path), detections.boxes, detections.labels,
                detector.class_names,
                f'{osp.basename(path)}: {len(detections)} detections '
                f'(score >= {score_thr:g})', detections.scores)
            save_figure(fig, picture)
        if bar is not None:
            bar.update(len(chunk))
    category_ids, source = category_ids_for(detector.cfg,
                                            detector.class_names)
    results = to_coco_results(found, image_ids_for(files), category_ids)
    with open(predictions, 'w') as f:
        json.dump(results, f)
    return dict(
        pictures=pictures,
        predictions=predictions,
        num_detections=len(results),
        category_ids_from=source)


def check_outputs(files: Sequence[str], out_dir: str,
                  overwrite: bool) -> Tuple[List[str], str]:
    """The pictures and predictions file :func:`infer_files` will write,
    after checking that none exists (unless ``overwrite``)."""
    pictures = [osp.join(out_dir, name) for name in picture_names(files)]
    predictions = osp.join(out_dir, PREDICTIONS_FILE)
    for path in pictures + [predictions]:
        check_new_output(path, '--out-dir', overwrite)
    return pictures, predictions


def default_out_dir(config: str, out_dir: Optional[str]) -> str:
    """``work_dirs/<config name>/infer`` unless ``--out-dir`` is given."""
    if out_dir:
        return out_dir
    return osp.join('work_dirs',
                    osp.splitext(osp.basename(config))[0], 'infer')
