"""Bad data: every broken annotation file, box and image gets an error that
names it and says what to do, or a counted, documented skip; images without
boxes, grayscale and RGBA images train."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdet_detr.datasets import checked_coco
from mmdet_detr.datasets.checked_coco import CheckedCocoDataset
from mmdet_detr.datasets.checked_loading import (CheckedLoadImageFromFile,
                                                 truncation_problem)
from mmdet_detr.registry import DATASETS, MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLASSES = ('circle', 'square')


def _image(path, shape=(40, 60, 3), ext='.png'):
    img = np.random.RandomState(0).randint(0, 255, shape).astype(np.uint8)
    ok, data = cv2.imencode(ext, img)
    assert ok
    path.write_bytes(data.tobytes())
    return data.tobytes()


def _coco(tmp_path, annotations, images=None, categories=None, raw=None):
    """Write an annotation file and images 1 and 2 (60x40) under tmp_path."""
    (tmp_path / 'img').mkdir(exist_ok=True)
    for name in ('1.png', '2.png'):
        if not (tmp_path / 'img' / name).exists():
            _image(tmp_path / 'img' / name)
    data = dict(
        images=images if images is not None else [
            dict(id=1, file_name='1.png', width=60, height=40),
            dict(id=2, file_name='2.png', width=60, height=40)
        ],
        annotations=annotations,
        categories=categories if categories is not None else [
            dict(id=1, name='circle'),
            dict(id=2, name='square')
        ])
    path = tmp_path / 'ann.json'
    path.write_text(raw if raw is not None else json.dumps(data))
    return str(path)


def _ann(ann_id, bbox, image_id=1, category_id=1):
    return dict(
        id=ann_id,
        image_id=image_id,
        category_id=category_id,
        bbox=bbox,
        area=100,
        iscrowd=0)


def _dataset(ann_file, tmp_path, pipeline=()):
    return CheckedCocoDataset(
        ann_file=ann_file,
        data_prefix=dict(img=str(tmp_path / 'img') + '/'),
        metainfo=dict(classes=CLASSES),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=list(pipeline))


@pytest.mark.parametrize('raw, match', [
    ('{"images": [', 'is not valid JSON'),
    ('[]', 'holds a JSON list'),
    ('{"images": [], "categories": []}', r"no \['annotations'\] list"),
    ('{"annotations": []}', r"no \['images', 'categories'\] list"),
])
def test_broken_annotation_file(tmp_path, raw, match):
    ann_file = _coco(tmp_path, [], raw=raw)
    with pytest.raises(ValueError, match=match) as info:
        _dataset(ann_file, tmp_path)
    assert ann_file in str(info.value)
    with pytest.raises(FileNotFoundError, match='nope.json'):
        _dataset(str(tmp_path / 'nope.json'), tmp_path)


@pytest.mark.parametrize('ann, match', [
    (_ann(7, [1, 1, 5, 5], category_id=9), 'annotation 7 has category_id 9'),
    (_ann(8, [1, 1, 5, 5], image_id=5), 'annotation 8 has image_id 5'),
    (_ann(9, [1, 1, 5]), r'annotation 9 has bbox \[1, 1, 5\]'),
    (_ann(3, [1, 1, float('nan'), 5]), 'annotation 3 has bbox'),
])
def test_bad_annotation_references(tmp_path, ann, match):
    ann_file = _coco(tmp_path, [_ann(1, [1, 1, 5, 5]), ann])
    with pytest.raises(ValueError, match=match) as info:
        _dataset(ann_file, tmp_path)
    assert ann_file in str(info.value)


def test_duplicate_ids_and_unknown_classes(tmp_path):
    ann_file = _coco(tmp_path, [_ann(1, [1, 1, 5, 5]), _ann(1, [2, 2, 5, 5])])
    with pytest.raises(ValueError, match=r'not unique \(e.g. \[1\]\)'):
        _dataset(ann_file, tmp_path)
    ann_file = _coco(
        tmp_path, [_ann(1, [1, 1, 5, 5])],
        categories=[dict(id=1, name='circle'),
                    dict(id=2, name='disc')])
    with pytest.raises(ValueError, match=r"classes \['square'\] are not"):
        _dataset(ann_file, tmp_path)


def test_bad_boxes_are_skipped_or_clipped_with_a_count(
        tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr(checked_coco, 'print_log',
                        lambda msg, **kw: messages.append(msg))
    ann_file = _coco(tmp_path, [
        _ann(1, [10, 10, 20, 10]),
        _ann(2, [10, 10, 0, 10]),  # zero width
        _ann(3, [10, 10, 5, -4]),  # negative height
        _ann(4, [70, 10, 5, 5]),  # right of the 60 px image
        _ann(5, [50, 30, 20, 20]),  # reaches outside: clipped
        _ann(6, [5, 5, 5, 5], image_id=2),
    ])
    dataset = _dataset(ann_file, tmp_path)
    boxes = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        boxes[info['img_id']] = [b['bbox'] for b in info['instances']]
    assert boxes == {1: [[10, 10, 30, 20], [50, 30, 60, 40]],
                     2: [[5, 5, 10, 10]]}
    (message, ) = messages
    assert ann_file in message
    assert ('skipped 2 boxes with a width or height below 1 pixel '
            '(annotation ids 2, 3)') in message
    assert 'skipped 1 boxes with no part inside the image (annotation ids 4)'\
        in message
    assert 'clipped 1 boxes reaching outside the image (annotation ids 5)'\
        in message


def test_missing_images_fail_when_the_dataset_is_built(tmp_path):
    ann_file = _coco(
        tmp_path, [_ann(1, [1, 1, 5, 5])],
        images=[
            dict(id=1, file_name='1.png', width=60, height=40),
            dict(id=2, file_name='gone.png', width=60, height=40)
        ])
    with pytest.raises(FileNotFoundError) as info:
        _dataset(ann_file, tmp_path)
    message = str(info.value)
    assert '1 of the 2 images listed in' in message and 'gone.png' in message
    assert 'data_prefix.img' in message


def _load(path, **kwargs):
    return CheckedLoadImageFromFile(**kwargs)(
        dict(img_path=str(path), img_id=4, height=40, width=60))


def test_unreadable_truncated_and_missing_images(tmp_path):
    jpeg = _image(tmp_path / 'a.jpg', ext='.jpg')
    png = _image(tmp_path / 'a.png')
    assert truncation_problem(jpeg) is None
    assert truncation_problem(png) is None
    (tmp_path / 'cut.jpg').write_bytes(jpeg[:len(jpeg) // 2])
    (tmp_path / 'cut.png').write_bytes(png[:len(png) // 2])
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'text.png').write_bytes(b'not an image at all')
    # Only the end-of-image marker is missing.
    (tmp_path / 'no_eoi.jpg').write_bytes(jpeg[:-2])

    for name, match in [('cut.jpg', 'truncated JPEG'),
                        ('no_eoi.jpg', 'truncated JPEG'),
                        ('cut.png', 'truncated PNG'),
                        ('empty.png', 'is empty'),
                        ('text.png', 'cannot be decoded')]:
        with pytest.raises(ValueError, match=match) as info:
            _load(tmp_path / name)
        assert f"{tmp_path / name}' (img_id 4)" in str(info.value)
    with pytest.raises(FileNotFoundError, match='does not exist') as info:
        _load(tmp_path / 'missing.jpg')
    assert 'missing.jpg' in str(info.value)

    before = CheckedLoadImageFromFile.num_skipped
    assert _load(tmp_path / 'cut.jpg', ignore_empty=True) is None
    assert CheckedLoadImageFromFile.num_skipped == before + 1
    assert _load(tmp_path / 'a.jpg')['img'].shape == (40, 60, 3)


def test_image_size_must_match_the_annotation(tmp_path):
    _image(tmp_path / 'big.png', shape=(41, 60, 3))
    with pytest.raises(ValueError, match=r'is 41x60 .* says 40x60'):
        _load(tmp_path / 'big.png')


@pytest.mark.parametrize('shape', [(40, 60), (40, 60, 4)])
def test_grayscale_and_rgba_give_three_channels(tmp_path, shape):
    _image(tmp_path / 'x.png', shape=shape)
    assert cv2.imread(str(tmp_path / 'x.png'),
                      cv2.IMREAD_UNCHANGED).shape == shape
    out = _load(tmp_path / 'x.png')
    assert out['img'].shape == (40, 60, 3) and out['img'].dtype == np.uint8
    assert out['ori_shape'] == (40, 60)


def test_images_without_boxes_train(tmp_path):
    # Image 2 has no annotation, image 1 is grayscale: both go through the
    # base config's pipeline and give a finite loss with gradients.
    (tmp_path / 'img').mkdir()
    _image(tmp_path / 'img' / '1.png', shape=(40, 60))
    ann_file = _coco(tmp_path, [_ann(1, [10, 10, 20, 10])])
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_deformable_detr.py'))
    pipeline = [dict(t, type='CheckedLoadImageFromFile')
                if t['type'] == 'LoadImageFromFile' else t
                for t in cfg.train_pipeline]
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        dataset = DATASETS.build(
            dict(
                type='CheckedCocoDataset',
                ann_file=ann_file,
                data_prefix=dict(img=str(tmp_path / 'img') + '/'),
                metainfo=dict(classes=CLASSES),
                filter_cfg=dict(filter_empty_gt=False),
                pipeline=pipeline))
        cfg.model.bbox_head.num_classes = len(CLASSES)
        model = MODELS.build(cfg.model)
    assert len(dataset) == 2
    batch = [dataset[0], dataset[1]]
    assert [len(b['data_samples'].gt_instances) for b in batch] == [1, 0]
    data = model.data_preprocessor(
        dict(
            inputs=[b['inputs'] for b in batch],
            data_samples=[b['data_samples'] for b in batch]), True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert all(
        torch.isfinite(p.grad).all() for p in model.parameters()
        if p.grad is not None)
