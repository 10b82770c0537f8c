"""DINO through the inference API, the test tool, tools/infer.py,
tools/visualize_sampling.py and tools/get_flops.py, on a tiny DINO trained
for two iterations; the query picture refuses it (its queries are chosen
per image)."""
import json
import os.path as osp

import pytest
from tiny_checkpoint import NUM_VAL, TINY_DINO_CONFIG
from tool_helpers import (VAL_IMAGES,
                          assert_detector_returns_the_boxes_of_the_test_tool,
                          png_size, run_tool)

from mmdet_detr.apis import Detector


@pytest.fixture(scope='module')
def run(dino_run):
    return dino_run


def test_detector_returns_the_boxes_of_the_test_tool(run):
    detector = Detector(TINY_DINO_CONFIG, run.checkpoint, device='cpu')
    assert_detector_returns_the_boxes_of_the_test_tool(TINY_DINO_CONFIG, run,
                                                       detector)


def test_infer_sampling_and_flops_tools(run, tmp_path, capsys):
    out_dir = str(tmp_path / 'infer')
    run_tool(['tools/infer.py', TINY_DINO_CONFIG, run.checkpoint,
              *VAL_IMAGES, '--out-dir', out_dir, '--score-thr', '0',
              '--device', 'cpu'])
    with open(osp.join(out_dir, 'predictions.json')) as f:
        predictions = json.load(f)
    assert {p['image_id'] for p in predictions} == set(range(1, NUM_VAL + 1))

    out = str(tmp_path / 'sampling.png')
    run_tool(['tools/visualize_sampling.py', TINY_DINO_CONFIG,
              run.checkpoint, VAL_IMAGES[0], '--top-k', '2', '--out', out,
              '--device', 'cpu'])
    # The layout of Deformable DETR's picture (test_visualization).
    assert png_size(out) == (1070, 490)

    capsys.readouterr()
    run_tool(['tools/get_flops.py', TINY_DINO_CONFIG, '--size', '64', '96'])
    report = capsys.readouterr().out
    assert 'decoder' in report and 'bbox_head' in report


def test_query_picture_refuses_per_image_queries(run, tmp_path, capsys):
    out = tmp_path / 'queries.png'
    with pytest.raises(SystemExit):
        run_tool(['tools/visualize_queries.py', TINY_DINO_CONFIG,
                  run.checkpoint, '--num-queries', '10', '--out', str(out),
                  '--device', 'cpu'])
    assert 'DINO chooses its queries for every image' in \
        capsys.readouterr().err
    assert not out.exists()
