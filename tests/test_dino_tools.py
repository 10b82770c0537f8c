"""DINO through the inference API, the test tool, tools/infer.py,
tools/visualize_sampling.py and tools/get_flops.py, on a tiny DINO trained
for two iterations; the query picture refuses it (its queries are chosen
per image)."""
import json
import os.path as osp

import pytest
from test_apis import (VAL_IMAGES,
                       assert_detector_returns_the_boxes_of_the_test_tool)
from test_visualization import _png_size, _run_tool
from tiny_checkpoint import NUM_VAL, TINY_DINO_CONFIG, tiny_run

from mmdet_detr.apis import Detector


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    run = tiny_run(tmp_path_factory, TINY_DINO_CONFIG)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(run.root)
        yield run


def test_detector_returns_the_boxes_of_the_test_tool(run):
    detector = Detector(TINY_DINO_CONFIG, run.checkpoint, device='cpu')
    assert_detector_returns_the_boxes_of_the_test_tool(TINY_DINO_CONFIG, run,
                                                       detector)


def test_infer_sampling_and_flops_tools(run, tmp_path, capsys):
    out_dir = str(tmp_path / 'infer')
    _run_tool(['tools/infer.py', TINY_DINO_CONFIG, run.checkpoint,
               *VAL_IMAGES, '--out-dir', out_dir, '--score-thr', '0',
               '--device', 'cpu'])
    with open(osp.join(out_dir, 'predictions.json')) as f:
        predictions = json.load(f)
    assert {p['image_id'] for p in predictions} == set(range(1, NUM_VAL + 1))

    out = str(tmp_path / 'sampling.png')
    _run_tool(['tools/visualize_sampling.py', TINY_DINO_CONFIG,
               run.checkpoint, VAL_IMAGES[0], '--top-k', '2', '--out', out,
               '--device', 'cpu'])
    # The layout of Deformable DETR's picture (test_visualization).
    assert _png_size(out) == (1070, 490)

    capsys.readouterr()
    _run_tool(['tools/get_flops.py', TINY_DINO_CONFIG, '--size', '64', '96'])
    report = capsys.readouterr().out
    assert 'decoder' in report and 'bbox_head' in report


def test_query_picture_refuses_per_image_queries(run, tmp_path, capsys):
    out = tmp_path / 'queries.png'
    with pytest.raises(SystemExit):
        _run_tool(['tools/visualize_queries.py', TINY_DINO_CONFIG,
                   run.checkpoint, '--num-queries', '10', '--out', str(out),
                   '--device', 'cpu'])
    assert 'DINO chooses its queries for every image' in \
        capsys.readouterr().err
    assert not out.exists()
