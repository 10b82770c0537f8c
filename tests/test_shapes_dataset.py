"""The synthetic shapes data set: determinism, valid COCO annotations, and
loading through mmdet's CocoDataset with the shapes dataset config."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmdet_detr.datasets.shapes import SHAPE_CLASSES, make_shapes_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATASET_CFG = osp.join(REPO, 'configs', '_base_', 'datasets',
                       'shapes_detection.py')
SMALL = dict(num_train=8, num_val=4, image_size=64, show_progress=False)


def _files(root):
    """{relative path: bytes} of every file under ``root``."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapes'))
    return make_shapes_dataset(root, **SMALL)


def test_same_seed_gives_identical_bytes(tmp_path, dataset):
    again = make_shapes_dataset(str(tmp_path / 'again'), **SMALL)
    first, second = _files(dataset['out_dir']), _files(again['out_dir'])
    assert sorted(first) == sorted(second)
    assert len(first) == SMALL['num_train'] + SMALL['num_val'] + 2
    assert all(first[k] == second[k] for k in first)


def test_other_seed_gives_other_data(tmp_path, dataset):
    other = make_shapes_dataset(str(tmp_path / 'other'), seed=1, **SMALL)
    first, second = _files(dataset['out_dir']), _files(other['out_dir'])
    assert first['annotations/instances_train.json'] != \
        second['annotations/instances_train.json']
    assert first[osp.join('train', '000001.jpg')] != \
        second[osp.join('train', '000001.jpg')]


@pytest.mark.parametrize('split', ['train', 'val'])
def test_annotations_are_valid_coco(dataset, split):
    from pycocotools.coco import COCO
    info = dataset['splits'][split]
    coco = COCO(info['ann_file'])
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
        list(SHAPE_CLASSES)
    assert coco.getCatIds() == list(range(1, len(SHAPE_CLASSES) + 1))
    img_ids = coco.getImgIds()
    assert len(img_ids) == info['num_images'] == SMALL['num_' + split]
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == info['num_annotations']
    assert len({a['id'] for a in anns}) == len(anns)
    size = SMALL['image_size']
    for img in coco.loadImgs(img_ids):
        assert (img['width'], img['height']) == (size, size)
        with Image.open(osp.join(info['image_dir'], img['file_name'])) as im:
            assert im.size == (size, size) and im.mode == 'RGB'
        img_anns = coco.imgToAnns[img['id']]
        assert len(img_anns) >= 1, f'image {img["id"]} has no object'
        boxes = np.array([a['bbox'] for a in img_anns], dtype=float)
        x0, y0, w, h = boxes.T
        assert (w > 0).all() and (h > 0).all()
        assert (x0 >= 0).all() and (y0 >= 0).all()
        assert (x0 + w <= size).all() and (y0 + h <= size).all()
        # Shapes never overlap: every pair of boxes is disjoint.
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                ix = min(x0[i] + w[i], x0[j] + w[j]) - max(x0[i], x0[j])
                iy = min(y0[i] + h[i], y0[j] + h[j]) - max(y0[i], y0[j])
                assert ix <= 0 or iy <= 0
        for a in img_anns:
            assert a['iscrowd'] == 0
            # A filled shape covers a good part of its box, never more.
            assert 0.3 * a['bbox'][2] * a['bbox'][3] < a['area'] <= \
                a['bbox'][2] * a['bbox'][3]


def test_every_class_appears(tmp_path):
    info = make_shapes_dataset(str(tmp_path / 'd'), num_train=40, num_val=1,
                               image_size=48, show_progress=False)
    with open(info['splits']['train']['ann_file']) as f:
        labels = {a['category_id'] for a in json.load(f)['annotations']}
    assert labels == set(range(1, len(SHAPE_CLASSES) + 1))


def test_coco_dataset_loads_with_config_metainfo(dataset):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile(DATASET_CFG)
    assert tuple(cfg.metainfo['classes']) == SHAPE_CLASSES
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert tuple(loader.dataset.metainfo['classes']) == SHAPE_CLASSES
    split_cfg = cfg.train_dataloader.dataset
    split_cfg.data_root = dataset['out_dir'] + '/'
    ds = DATASETS.build(split_cfg)
    assert len(ds) == SMALL['num_train']
    assert ds.metainfo['classes'] == SHAPE_CLASSES
    assert ds.cat_ids == list(range(1, len(SHAPE_CLASSES) + 1))
    sample = ds[0]
    assert tuple(sample['inputs'].shape) == (3, cfg.image_size,
                                             cfg.image_size)
    labels = sample['data_samples'].gt_instances.labels
    assert len(labels) >= 1
    assert 0 <= int(labels.min()) and int(labels.max()) < len(SHAPE_CLASSES)


def test_refuses_to_overwrite_silently(tmp_path):
    root = tmp_path / 'shapes'
    root.mkdir()
    (root / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='--overwrite') as err:
        make_shapes_dataset(str(root), **SMALL)
    assert str(root) in str(err.value)
    make_shapes_dataset(str(root), overwrite=True, **SMALL)
    make_shapes_dataset(str(root), overwrite=True, seed=3, **SMALL)
    assert (root / 'notes.txt').read_text() == 'keep me'
    assert len(os.listdir(root / 'train')) == SMALL['num_train']


@pytest.mark.parametrize('kwargs, error', [
    (dict(num_train=0), ValueError),
    (dict(num_val=-1), ValueError),
    (dict(image_size=16), ValueError),
    (dict(image_size='128'), TypeError),
    (dict(seed=1.5), TypeError),
    (dict(max_objects=True), TypeError),
])
def test_rejects_bad_arguments(tmp_path, kwargs, error):
    args = dict(SMALL, **kwargs)
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        make_shapes_dataset(str(tmp_path / 'd'), **args)
    assert not (tmp_path / 'd').exists()


def test_command_line_tool(tmp_path):
    tool = osp.join(REPO, 'tools', 'make_shapes_dataset.py')
    out = tmp_path / 'cli'
    cmd = [sys.executable, tool, str(out), '--num-train', '3', '--num-val',
           '2', '--image-size', '48', '--no-progress']
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert len(os.listdir(out / 'val')) == 2
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode != 0
    assert '--overwrite' in again.stderr and str(out) in again.stderr


def test_demo_config_matches_dataset_and_builds():
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmdet_detr.registry import MODELS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'demo', 'deformable_detr_shapes.py'))
    assert cfg.model.bbox_head.num_classes == len(SHAPE_CLASSES)
    assert tuple(cfg.train_dataloader.dataset.metainfo['classes']) == \
        SHAPE_CLASSES
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert model.bbox_head.cls_branches[0].out_features == len(SHAPE_CLASSES)
