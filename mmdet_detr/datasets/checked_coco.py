"""A COCO dataset that checks its annotation file before training starts.

mmdet's ``CocoDataset`` fails on a broken annotation file with a
``JSONDecodeError`` or ``KeyError`` from inside pycocotools, silently drops
boxes with a side below one pixel or outside their image, silently drops
annotations whose category is not in the file's ``categories``, and finds a
missing image only when the data loader reaches it, possibly hours in.
:class:`CheckedCocoDataset` reports each of these with the file, the
annotation or image id, and what to do:

- not valid JSON, or no ``images``/``annotations``/``categories`` list:
  ``ValueError`` naming the file;
- an annotation whose ``category_id`` is not in ``categories``, or whose
  ``image_id`` is not in ``images``, or whose ``bbox`` is not four finite
  numbers: ``ValueError`` naming the annotation id;
- a class of ``metainfo`` missing from ``categories``: ``ValueError``;
- a box with width or height below one pixel, or entirely outside its
  image: skipped (as mmdet does), with one warning giving the count and
  the first annotation ids;
- a box reaching outside its image: clipped to the image, counted in the
  same warning;
- image files that do not exist: ``FileNotFoundError`` listing the count
  and the first paths (local files only).

Images without boxes stay in the data set (``filter_empty_gt=False`` in the
base configs) and train on the no-object loss.
"""
import copy
import json
import logging
import math
import os.path as osp
from collections import defaultdict
from typing import Dict, List

from mmdet.datasets import CocoDataset
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from mmdet_detr.registry import DATASETS

_REQUIRED_KEYS = ('images', 'annotations', 'categories')
_SHOWN = 5  # ids or paths quoted in a message


def read_coco_json(path: str) -> dict:
    """The parsed annotation file, or an error naming what is wrong."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'annotation file {path!r} does not exist: check data_root and '
            'ann_file in the dataset config')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f'annotation file {path!r} is not valid JSON ({error}): '
            're-export it, or check that the download was complete') from None
    if not isinstance(data, dict):
        raise ValueError(f'annotation file {path!r} holds a JSON '
                         f'{type(data).__name__}, not a COCO object with '
                         f'the lists {_REQUIRED_KEYS}')
    missing = [k for k in _REQUIRED_KEYS if not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(
            f'annotation file {path!r} has no {missing} list (COCO detection '
            f'files have {_REQUIRED_KEYS}; a file of images without objects '
            'needs "annotations": [])')
    return data


def check_coco_references(data: dict, path: str) -> None:
    """Every annotation names a known category and image and has a box."""
    ann_ids = [a.get('id') for a in data['annotations']]
    if len(set(ann_ids)) != len(ann_ids):
        seen, repeated = set(), []
        for ann_id in ann_ids:
            if ann_id in seen:
                repeated.append(ann_id)
            seen.add(ann_id)
        raise ValueError(
            f'{path!r}: annotation ids are not unique (e.g. '
            f'{repeated[:_SHOWN]}): give every annotation its own id')
    category_ids = {c.get('id') for c in data['categories']}
    image_ids = {i.get('id') for i in data['images']}
    for ann in data['annotations']:
        ann_id = ann.get('id', '?')
        if ann.get('category_id') not in category_ids:
            raise ValueError(
                f'{path!r}: annotation {ann_id} has category_id '
                f"{ann.get('category_id')!r}, which is not among the "
                f'categories {sorted(category_ids, key=str)}: add the '
                'category to "categories" or fix the annotation')
        if ann.get('image_id') not in image_ids:
            raise ValueError(
                f'{path!r}: annotation {ann_id} has image_id '
                f"{ann.get('image_id')!r}, which is not in \"images\": add "
                'the image or remove the annotation')
        box = ann.get('bbox')
        if (not isinstance(box, list) or len(box) != 4 or not all(
                isinstance(v, (int, float)) and math.isfinite(v)
                for v in box)):
            raise ValueError(
                f'{path!r}: annotation {ann_id} has bbox {box!r}; COCO '
                'boxes are [x, y, width, height], four finite numbers')


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` (same arguments) with the checks of the
    module docstring, all done when the dataset is built."""

    def load_data_list(self) -> List[dict]:
        with get_local_path(
                self.ann_file, backend_args=self.backend_args) as local_path:
            data = read_coco_json(local_path)
        check_coco_references(data, self.ann_file)
        names = {c.get('name') for c in data['categories']}
        unknown = [c for c in self.metainfo['classes'] if c not in names]
        if unknown:
            raise ValueError(
                f'metainfo classes {unknown} are not categories of '
                f'{self.ann_file!r} (it has {sorted(names, key=str)}): fix '
                'metainfo.classes in the dataset config')
        self._problems: Dict[str, list] = defaultdict(list)
        self.coco = self.COCOAPI()
        self.coco.dataset = data
        self.coco.createIndex()
        self.cat_ids = self.coco.get_cat_ids(
            cat_names=self.metainfo['classes'])
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = copy.deepcopy(self.coco.cat_img_map)
        data_list = []
        for img_id in self.coco.get_img_ids():
            raw_img_info = self.coco.load_imgs([img_id])[0]
            raw_img_info['img_id'] = img_id
            anns = self.coco.load_anns(self.coco.get_ann_ids(img_ids=[img_id]))
            data_list.append(
                self.parse_data_info({
                    'raw_ann_info': [self._checked_box(a, raw_img_info)
                                     for a in anns],
                    'raw_img_info': raw_img_info
                }))
        del self.coco
        self._report_box_problems()
        if self.backend_args is None:
            _check_images_exist(data_list, self.ann_file)
        return data_list

    def _checked_box(self, ann: dict, img_info: dict) -> dict:
        """The annotation with its box clipped to the image, or marked
        ``ignore`` (which mmdet skips) when nothing usable is left."""
        x, y, w, h = ann['bbox']
        width, height = img_info['width'], img_info['height']
        ann_id = ann.get('id', '?')
        if w < 1 or h < 1:
            self._problems['a width or height below 1 pixel'].append(ann_id)
            return dict(ann, ignore=True)
        x1, y1 = max(x, 0), max(y, 0)
        x2, y2 = min(x + w, width), min(y + h, height)
        if x2 - x1 < 1 or y2 - y1 < 1:
            self._problems['no part inside the image'].append(ann_id)
            return dict(ann, ignore=True)
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            self._problems['clipped to the image'].append(ann_id)
        # mmdet also drops boxes whose ``area`` is missing or zero.
        return dict(ann, bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=ann.get('area') or (x2 - x1) * (y2 - y1))

    def _report_box_problems(self) -> None:
        if not self._problems:
            return
        parts = []
        for what, ids in self._problems.items():
            verb = 'clipped' if what.startswith('clipped') else 'skipped'
            what = 'reaching outside the image' if verb == 'clipped' else (
                f'with {what}')
            shown = ', '.join(str(i) for i in ids[:_SHOWN])
            more = ', ...' if len(ids) > _SHOWN else ''
            parts.append(f'{verb} {len(ids)} boxes {what} (annotation ids '
                         f'{shown}{more})')
        print_log(
            f'{self.ann_file}: ' + '; '.join(parts) + '. Fix these '
            'annotations to train on them.',
            logger='current',
            level=logging.WARNING)


def _check_images_exist(data_list: List[dict], ann_file: str) -> None:
    missing = [
        d['img_path'] for d in data_list if not osp.isfile(d['img_path'])
    ]
    if missing:
        shown = ', '.join(repr(p) for p in missing[:_SHOWN])
        raise FileNotFoundError(
            f'{len(missing)} of the {len(data_list)} images listed in '
            f'{ann_file!r} do not exist, e.g. {shown}: put the images there, '
            'fix data_root / data_prefix.img in the dataset config, or '
            'remove them from the annotation file')
