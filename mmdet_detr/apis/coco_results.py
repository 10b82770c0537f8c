"""Detections as a COCO results file (``predictions.json``): a list of
``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``, which
pycocotools' ``COCO.loadRes`` reads."""
import json
import os.path as osp
from typing import Dict, List, Sequence, Tuple

from mmengine.config import Config

from .detector import Detections


def image_ids_for(paths: Sequence[str]) -> List[int]:
    """COCO image ids: the file names when all are numbers, as in COCO
    (``000000397133.jpg``) and the shapes data (``000001.jpg``), so the
    results match those annotation files; else 1, 2, ... in input order."""
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    if all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(
            stems):
        return [int(s) for s in stems]
    return list(range(1, len(paths) + 1))


def category_ids_for(cfg: Config,
                     class_names: Sequence[str]) -> Tuple[List[int], str]:
    """COCO category id of each class, and where it comes from.

    The ids of the config's test annotation file when it can be read (COCO's
    are 1..90 with gaps), else 1..K in class order.
    """
    dataset = cfg.test_dataloader.dataset
    ann_file = dataset.get('ann_file')
    if ann_file and not osp.isabs(ann_file):
        ann_file = osp.join(dataset.get('data_root') or '', ann_file)
    if ann_file and osp.isfile(ann_file):
        with open(ann_file) as f:
            categories = json.load(f).get('categories', [])
        by_name: Dict[str, int] = {c['name']: c['id'] for c in categories}
        if all(name in by_name for name in class_names):
            return [by_name[name] for name in class_names], ann_file
    return list(range(1, len(class_names) + 1)), 'class order (1..K)'


def to_coco_results(detections: Sequence[Detections],
                    image_ids: Sequence[int],
                    category_ids: Sequence[int]) -> List[dict]:
    """One COCO result per detection; boxes as ``[x, y, w, h]`` pixels.

    Values are not rounded, as in mmdet's ``CocoMetric``: rounding boxes
    to 0.01 px changed the demo model's mAP in the third decimal.
    """
    results = []
    for found, image_id in zip(detections, image_ids):
        for box, score, label in zip(found.boxes, found.scores, found.labels):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                dict(
                    image_id=int(image_id),
                    category_id=int(category_ids[label]),
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    score=float(score)))
    return results
