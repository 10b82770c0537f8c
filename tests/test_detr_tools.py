"""DETR through the inference API, tools/infer.py and the query picture,
on a tiny DETR trained for two iterations."""
import json
import os.path as osp

import pytest
from tiny_checkpoint import NUM_VAL, TINY_DETR_CONFIG
from tool_helpers import (VAL_IMAGES,
                          assert_detector_returns_the_boxes_of_the_test_tool,
                          png_size, run_tool)

from mmdet_detr.apis import Detector


@pytest.fixture(scope='module')
def run(detr_run):
    return detr_run


def test_detector_returns_the_boxes_of_the_test_tool(run):
    detector = Detector(TINY_DETR_CONFIG, run.checkpoint, device='cpu')
    assert_detector_returns_the_boxes_of_the_test_tool(TINY_DETR_CONFIG, run,
                                                       detector)


def test_infer_and_query_picture_tools(run, tmp_path):
    out_dir = str(tmp_path / 'infer')
    run_tool(['tools/infer.py', TINY_DETR_CONFIG, run.checkpoint,
              *VAL_IMAGES, '--out-dir', out_dir, '--score-thr', '0',
              '--device', 'cpu'])
    with open(osp.join(out_dir, 'predictions.json')) as f:
        predictions = json.load(f)
    assert {p['image_id'] for p in predictions} == set(range(1, NUM_VAL + 1))
    for path in VAL_IMAGES:
        name = osp.splitext(osp.basename(path))[0] + '.png'
        assert png_size(osp.join(out_dir, name))[0] > 0

    out = str(tmp_path / 'queries.png')
    run_tool(['tools/visualize_queries.py', TINY_DETR_CONFIG, run.checkpoint,
              '--num-queries', '10', '--out', out, '--device', 'cpu'])
    # The same layout as Deformable DETR's picture (test_visualization).
    assert png_size(out) == (1665, 290)
