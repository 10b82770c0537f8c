"""The inference API: the same boxes as tools/test.py, every input kind,
batching, mmdet's DetInferencer, clear errors, and tools/infer.py's
pictures and COCO results file."""
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from tiny_checkpoint import IMAGE_SIZE, NUM_VAL, TINY_CONFIG
from tool_helpers import (VAL_IMAGES,
                          assert_detector_returns_the_boxes_of_the_test_tool,
                          run_tool)

from mmdet_detr.apis import (Detector, build_det_inferencer,
                             collect_image_files, image_ids_for, infer_files,
                             picture_names)


@pytest.fixture(scope='module')
def run(deformable_detr_run):
    return deformable_detr_run


@pytest.fixture(scope='module')
def detector(run):
    return Detector(TINY_CONFIG, run.checkpoint, device='cpu')


def test_detector_returns_the_boxes_of_the_test_tool(run, detector):
    assert_detector_returns_the_boxes_of_the_test_tool(TINY_CONFIG, run,
                                                       detector)


def test_inputs_batches_and_threshold(detector):
    path = VAL_IMAGES[0]
    single = detector(path)
    bgr = mmcv.imread(path)
    pil = Image.open(path)
    batched = detector([path, bgr, pil, VAL_IMAGES[1]], batch_size=3)
    assert len(batched) == 4
    for other in batched[:3]:
        np.testing.assert_allclose(other.boxes, single.boxes, atol=1e-4)
        np.testing.assert_allclose(other.scores, single.scores, atol=1e-6)
    np.testing.assert_allclose(batched[3].boxes,
                               detector(VAL_IMAGES[1]).boxes, atol=1e-4)
    # Boxes are in pixels of the image as given: a 2x larger image gives
    # boxes twice as large (the pipeline resizes it to the same input).
    big = mmcv.imrescale(bgr, 2.0, interpolation='nearest')
    np.testing.assert_allclose(detector(big).boxes, 2 * single.boxes,
                               atol=0.5)
    assert np.all(np.diff(single.scores) <= 0)  # best first
    thr = float(np.median(single.scores))
    kept = detector(path, score_thr=thr)
    assert len(kept) == int((single.scores >= thr).sum()) < len(single)
    assert kept.scores.min() >= thr
    grey = detector(bgr[..., 0])  # (H, W) arrays become 3 channels
    assert grey.boxes.shape[1] == 4


def test_bad_inputs_and_checkpoints_get_clear_errors(run, detector):
    with pytest.raises(FileNotFoundError, match='image 1:.*nope.jpg'):
        detector([VAL_IMAGES[0], 'nope.jpg'])
    with pytest.raises(ValueError, match=r'\(H, W, 3\) in BGR'):
        detector(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match='uint8'):
        detector(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(TypeError, match='got list'):
        detector([[1, 2]])
    with pytest.raises(ValueError, match='does not fit.*unexpected keys'):
        Detector(TINY_CONFIG, run.checkpoint, 'cpu',
                 {'model.decoder.num_layers': 1})
    with pytest.raises(ValueError, match='does not fit.*size mismatch'):
        Detector(TINY_CONFIG, run.checkpoint, 'cpu',
                 {'model.num_queries': 5})
    with pytest.raises(FileNotFoundError, match='CHECKPOINT'):
        Detector(TINY_CONFIG, 'missing.pth', 'cpu')
    with pytest.raises(ValueError, match="device 'gpu0'"):
        Detector(TINY_CONFIG, run.checkpoint, 'gpu0')


def test_det_inferencer_gives_the_same_boxes(run):
    # With the base configs' loader, a LoadImageFromFile subclass.
    checked = {
        'test_dataloader.dataset.pipeline.0.type': 'CheckedLoadImageFromFile'
    }
    inferencer = build_det_inferencer(TINY_CONFIG, run.checkpoint, 'cpu',
                                      checked)
    result = inferencer(VAL_IMAGES[0])['predictions'][0]
    ours = Detector(TINY_CONFIG, run.checkpoint, 'cpu', checked)(
        VAL_IMAGES[0])
    np.testing.assert_allclose(np.array(result['bboxes']), ours.boxes,
                               atol=1e-3)
    np.testing.assert_allclose(result['scores'], ours.scores, atol=1e-5)


def test_image_collection_and_names(run, tmp_path):
    files = collect_image_files(['data/shapes/val', VAL_IMAGES[0],
                                 'data/shapes/*/00000[12].jpg'])
    assert files[:NUM_VAL] == VAL_IMAGES
    assert len(files) == NUM_VAL + 2  # the val images once, 2 train
    with pytest.raises(FileNotFoundError, match='matches no image'):
        collect_image_files(['data/shapes/none_*.jpg'])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='holds no image'):
        collect_image_files([str(tmp_path / 'empty')])
    assert picture_names(['a/x.jpg', 'b/x.png', 'x_2.jpg']) == [
        'x.png', 'x_2.png', 'x_2_2.png'
    ]
    assert image_ids_for(['a/000012.jpg', 'b/7.png']) == [12, 7]
    assert image_ids_for(['a/1.jpg', 'b/cat.jpg']) == [1, 2]


def test_infer_tool_writes_pictures_and_coco_results(run, detector):
    out_dir = osp.join(run.root, 'infer')
    argv = [
        'tools/infer.py', TINY_CONFIG, run.checkpoint, 'data/shapes/val',
        '--out-dir', out_dir, '--score-thr', '0', '--device', 'cpu'
    ]
    run_tool(argv)
    names = sorted(os.listdir(out_dir))
    assert names == ['000001.png', '000002.png', 'predictions.json']
    for name in names[:2]:
        with Image.open(osp.join(out_dir, name)) as picture:
            # 64 px images are drawn 8x (at least 480 px), plus a title.
            assert picture.size == (8 * IMAGE_SIZE, 8 * IMAGE_SIZE + 45)
            assert np.asarray(picture).std() > 10
    gt = COCO('data/shapes/annotations/instances_val.json')
    results = gt.loadRes(osp.join(out_dir, 'predictions.json'))
    found = detector(VAL_IMAGES)
    assert len(results.getAnnIds()) == sum(len(d) for d in found)
    first = results.loadAnns(results.getAnnIds(imgIds=[1]))
    x, y, w, h = first[0]['bbox']
    np.testing.assert_allclose([x, y, x + w, y + h], found[0].boxes[0],
                               atol=0.02)
    assert first[0]['category_id'] == found[0].labels[0] + 1

    # A second run keeps what the first wrote unless --overwrite.
    before = os.path.getmtime(osp.join(out_dir, '000001.png'))
    with pytest.raises(SystemExit):
        run_tool(argv)
    assert os.path.getmtime(osp.join(out_dir, '000001.png')) == before
    summary = infer_files(detector, [VAL_IMAGES[0]], out_dir, 0.5,
                          overwrite=True, progress=False)
    assert summary['pictures'] == [osp.join(out_dir, '000001.png')]
