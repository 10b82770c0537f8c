"""Helpers of the tests that run the tools and the inference API on a tiny
run (``conftest``): the tools' command lines run in this process, the
pictures' sizes, and the comparison of the API with tools/test.py."""
import os.path as osp
import pickle
import runpy
import sys
from typing import List

import numpy as np
from PIL import Image
from tiny_checkpoint import NUM_VAL, REPO_ROOT, TinyRun

from mmdet_detr.apis import Detector
from mmdet_detr.engine import cli

# The validation images of a tiny run, relative to its folder.
VAL_IMAGES = [f'data/shapes/val/{i:06d}.jpg' for i in range(1, NUM_VAL + 1)]


def run_tool(argv: List[str]) -> None:
    """Run a tool's command line (``argv[0]`` relative to the repository)
    in this process."""
    saved = sys.argv
    sys.argv = list(argv)
    try:
        runpy.run_path(osp.join(REPO_ROOT, argv[0]), run_name='__main__')
    finally:
        sys.argv = saved


def png_size(path: str):
    """(width, height) of a PNG that is not blank."""
    with Image.open(path) as picture:
        assert np.asarray(picture).std() > 5  # not blank
        return picture.size


def assert_detector_returns_the_boxes_of_the_test_tool(
        config: str, run: TinyRun, detector: Detector) -> None:
    """What tools/test.py does, with --out, gives the detector's boxes."""
    out = osp.join(run.root, 'test_preds.pkl')
    cfg = cli.load_config(config, None, osp.join(run.root, 'test'))
    cli.set_test_checkpoint(cfg, run.checkpoint)
    runner = cli.build_runner(cfg)
    cli.add_dump_metric(runner, out)
    runner.test()
    with open(out, 'rb') as f:
        expected = pickle.load(f)
    found = detector(VAL_IMAGES)
    assert len(found) == len(expected) == NUM_VAL
    for dets, ref, path in zip(found, expected, VAL_IMAGES):
        assert osp.basename(ref['img_path']) == osp.basename(path)
        pred = ref['pred_instances']
        order = np.argsort(-pred['scores'].numpy(), kind='stable')
        assert len(dets) == len(order) > 0
        np.testing.assert_allclose(dets.boxes, pred['bboxes'].numpy()[order],
                                   atol=1e-4)
        np.testing.assert_allclose(dets.scores,
                                   pred['scores'].numpy()[order], atol=1e-6)
        np.testing.assert_array_equal(dets.labels,
                                      pred['labels'].numpy()[order])
        assert dets.names == [detector.class_names[i] for i in dets.labels]
    assert detector.class_names == ('circle', 'square', 'triangle', 'cross')
