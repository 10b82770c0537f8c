"""Synthetic "shapes" detection data set in COCO format, for demos and tests.

Each image holds 1 to ``max_objects`` filled shapes (:data:`SHAPE_CLASSES`) of
random size, rotation and colour on a textured background (smooth noise, a
linear gradient or stripes, plus pixel noise). Shapes never overlap, so every
box is the exact pixel extent of a fully visible object and the task is about
detection, not occlusion reasoning.

Layout written under ``out_dir``::

    train/000001.jpg ...                 # split images, RGB JPEG
    val/000001.jpg ...
    annotations/instances_train.json     # COCO: images, annotations,
                                         # categories
    annotations/instances_val.json

Image ``i`` of a split is drawn from its own random generator seeded with
``(seed, split, i)``, so a seed fixes the data byte for byte, and the two
splits never share an image.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CLASSES = ('circle', 'square', 'triangle', 'cross')

# Shape side as a fraction of the image side: small enough for a few shapes
# to fit side by side, large enough to stay recognisable at 128 px.
_MIN_SIZE_FRAC = 0.15
_MAX_SIZE_FRAC = 0.45
# Free pixels kept between two boxes, so no shape touches another.
_GAP_PX = 2
_PLACEMENT_TRIES = 30
# Least RGB distance between a shape and the mean background under it.
_MIN_CONTRAST = 90.0
_SPLITS = ('train', 'val')
_DATASET_ENTRIES = ('train', 'val', 'annotations')


def _check_int(name: str, value, low: int, high: Optional[int] = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{name} must be an int, got {value!r} '
                        f'({type(value).__name__})')
    if value < low or (high is not None and value > high):
        bound = f'>= {low}' if high is None else f'in [{low}, {high}]'
        raise ValueError(f'{name} must be {bound}, got {value}')


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured RGB background, float32 (size, size, 3) in [0, 255]."""
    kind = rng.integers(3)
    if kind == 0:  # smooth noise: a coarse random grid, bicubically upsampled
        cells = int(rng.integers(2, 7))
        grid = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.uint8)
        img = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
        bg = np.asarray(img, dtype=np.float32)
    else:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        angle = rng.uniform(0, np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy  # (size, size)
        if kind == 1:  # linear gradient between two colours
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        else:  # stripes: a sinusoid between two colours
            t = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 10) * t +
                                   rng.uniform(0, 2 * np.pi))
        c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        bg = c0 + (c1 - c0) * t[..., None]
    return bg + 6 * rng.standard_normal(size=bg.shape, dtype=np.float32)


def _shape_mask(rng: np.random.Generator, label: int, side: int) -> np.ndarray:
    """Boolean (side, side) mask of shape ``SHAPE_CLASSES[label]``."""
    canvas = Image.new('L', (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    r = side / 2.0
    name = SHAPE_CLASSES[label]
    if name == 'circle':
        draw.ellipse([0, 0, side - 1, side - 1], fill=255)
    else:
        if name == 'square':
            pts = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) / np.sqrt(2)
        elif name == 'triangle':
            a = np.arange(3) * 2 * np.pi / 3
            pts = np.stack([np.cos(a), np.sin(a)], axis=1)
        else:  # cross: a plus sign whose arms are a third of its span wide
            s, w = 3.0, 1.0
            pts = np.array([[w, s], [w, w], [s, w], [s, -w], [w, -w],
                            [w, -s], [-w, -s], [-w, -w], [-s, -w], [-s, w],
                            [-w, w], [-w, s]]) / np.hypot(s, w)
        # Unit-radius vertices (V, 2), rotated, scaled into the canvas circle.
        t = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        pts = (side - 1) / 2.0 + (r - 0.5) * pts @ rot.T  # (V, 2)
        draw.polygon([tuple(p) for p in pts.tolist()], fill=255)
    return np.asarray(canvas) > 127


def _overlaps(box: Tuple[int, int, int, int],
              boxes: List[Tuple[int, int, int, int]]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < bx1 + _GAP_PX and bx0 < x1 + _GAP_PX and
               y0 < by1 + _GAP_PX and by0 < y1 + _GAP_PX
               for bx0, by0, bx1, by1 in boxes)


def _shape_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A colour at least ``_MIN_CONTRAST`` away from ``under``'s mean."""
    mean = under.reshape(-1, 3).mean(axis=0)
    for _ in range(20):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - mean) >= _MIN_CONTRAST:
            return colour
    return np.where(mean > 127, 0.0, 255.0)


def _render_image(rng: np.random.Generator, size: int,
                  max_objects: int) -> Tuple[np.ndarray, List[dict]]:
    """One image, uint8 (size, size, 3), and its objects.

    Objects are dicts with ``label`` (index into SHAPE_CLASSES), ``bbox``
    ``[x, y, w, h]`` (pixels, the exact extent of the drawn shape) and
    ``area`` (the shape's pixel count).
    """
    img = _background(rng, size)
    lo = max(4, int(round(_MIN_SIZE_FRAC * size)))
    hi = max(lo, int(round(_MAX_SIZE_FRAC * size)))
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        mask = _shape_mask(rng, label, int(rng.integers(lo, hi + 1)))
        ys, xs = np.nonzero(mask)
        mask = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        h, w = mask.shape
        for _ in range(_PLACEMENT_TRIES):
            x0 = int(rng.integers(0, size - w + 1))
            y0 = int(rng.integers(0, size - h + 1))
            box = (x0, y0, x0 + w, y0 + h)
            if not _overlaps(box, boxes):
                break
        else:
            continue  # no free spot: draw fewer objects
        region = img[y0:y0 + h, x0:x0 + w]  # view: painted in place
        colour = _shape_colour(rng, region)
        shading = rng.normal(0, 4, size=(h, w, 1))
        region[mask] = (colour + shading)[mask]
        boxes.append(box)
        objects.append(dict(label=label, bbox=[x0, y0, w, h],
                            area=int(mask.sum())))
    return np.clip(img, 0, 255).astype(np.uint8), objects


def _write_split(out_dir: str, split: str, split_id: int, num_images: int,
                 seed: int, size: int, max_objects: int,
                 show_progress: bool) -> dict:
    img_dir = osp.join(out_dir, split)
    os.makedirs(img_dir)
    images, annotations = [], []
    indices = range(1, num_images + 1)
    if show_progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc=f'shapes {split}', unit='img')
    for image_id in indices:
        rng = np.random.default_rng((seed, split_id, image_id))
        pixels, objects = _render_image(rng, size, max_objects)
        file_name = f'{image_id:06d}.jpg'
        # JPEG encodes much faster than PNG on these noisy images
        # (docs/benchmarks.md); full chroma resolution keeps the small
        # shapes' edges crisp.
        Image.fromarray(pixels).save(
            osp.join(img_dir, file_name), format='JPEG', quality=95,
            subsampling=0)
        images.append(dict(id=image_id, file_name=file_name, width=size,
                           height=size))
        for obj in objects:
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id,
                category_id=obj['label'] + 1, bbox=obj['bbox'],
                area=obj['area'], iscrowd=0))
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(SHAPE_CLASSES)]
    ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=categories), f)
    return dict(num_images=len(images), num_annotations=len(annotations),
                image_dir=img_dir, ann_file=ann_file)


def make_shapes_dataset(out_dir: str,
                        num_train: int = 4000,
                        num_val: int = 500,
                        seed: int = 0,
                        image_size: int = 128,
                        max_objects: int = 4,
                        overwrite: bool = False,
                        show_progress: bool = True) -> Dict:
    """Write a COCO-format shapes detection data set under ``out_dir``.

    Args:
        out_dir: Data set root; created if missing. An existing non-empty
            directory is refused unless ``overwrite``.
        num_train: Images in the train split (>= 1).
        num_val: Images in the val split (>= 1).
        seed: Seed of all randomness (>= 0); equal seeds give byte-identical
            images and annotation files.
        image_size: Side of the square images in pixels, in [32, 2048].
        max_objects: Most shapes per image (>= 1); each image has at least
            one. Fewer are drawn when a shape finds no free spot.
        overwrite: Replace the ``train/``, ``val/`` and ``annotations/``
            entries of an existing ``out_dir``.
        show_progress: Show a tqdm progress bar per split.

    Returns:
        dict: ``out_dir``, ``classes``, ``seed``, ``image_size`` and
        ``splits``: per split ``num_images``, ``num_annotations``,
        ``image_dir`` and ``ann_file``.
    """
    _check_int('num_train', num_train, 1)
    _check_int('num_val', num_val, 1)
    _check_int('seed', seed, 0)
    _check_int('image_size', image_size, 32, 2048)
    _check_int('max_objects', max_objects, 1)
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir):
        raise TypeError(f'out_dir must be a non-empty path, got {out_dir!r}')
    out_dir = str(out_dir)
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(
            f'out_dir {out_dir!r} exists and is not a directory')
    if osp.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise FileExistsError(
                f'dataset directory {out_dir!r} is not empty; pass '
                '--overwrite (overwrite=True) to replace its train/, val/ '
                'and annotations/, or pick another directory')
        for entry in _DATASET_ENTRIES:
            path = osp.join(out_dir, entry)
            if osp.isdir(path) and not osp.islink(path):
                shutil.rmtree(path)
            elif osp.lexists(path):
                os.remove(path)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    counts = dict(train=num_train, val=num_val)
    splits = {
        split: _write_split(out_dir, split, split_id, counts[split], seed,
                            image_size, max_objects, show_progress)
        for split_id, split in enumerate(_SPLITS)
    }
    return dict(out_dir=out_dir, classes=SHAPE_CLASSES, seed=seed,
                image_size=image_size, splits=splits)
