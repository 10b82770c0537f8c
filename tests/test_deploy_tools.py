"""The deployment command lines as users run them, on a tiny trained
Deformable DETR: tools/deploy/export_onnx.py, tools/test.py and
tools/infer.py on the exported file (onnxruntime and OpenVINO), and the
Detector API, giving the PyTorch checkpoint's detections."""
import contextlib
import io
import json
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
from tiny_checkpoint import NUM_VAL, REPO_ROOT, TINY_CONFIG
from tool_helpers import VAL_IMAGES, run_tool

from mmdet_detr.apis import Detector
from mmdet_detr.deploy import use_exported_model
from mmdet_detr.engine import cli


@pytest.fixture(scope='module')
def run(deformable_detr_run):
    return deformable_detr_run


@pytest.fixture(scope='module')
def export_run(run):
    """The export tool's file and what it printed."""
    out = osp.join(run.root, 'deploy', 'tiny.onnx')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_tool([
            'tools/deploy/export_onnx.py', TINY_CONFIG, run.checkpoint,
            '--out', out, '--shape', '64', '96'
        ])
    return out, printed.getvalue()


@pytest.fixture(scope='module')
def exported(export_run):
    return export_run[0]


@pytest.fixture(scope='module')
def torch_predictions(run):
    """tools/test.py's predictions with the PyTorch checkpoint."""
    return _test_tool_predictions(run, run.checkpoint, 'torch')


def _test_tool_predictions(run, checkpoint, name, extra=()):
    out = osp.join(run.root, f'{name}.pkl')
    run_tool([
        'tools/test.py', TINY_CONFIG, checkpoint, '--work-dir',
        osp.join(run.root, name), '--out', out, *extra
    ])
    with open(out, 'rb') as f:
        return pickle.load(f)


def test_export_tool_prints_its_checks(run, export_run):
    exported, printed = export_run
    assert 'onnx.checker passed' in printed
    assert printed.count('labels equal') == 2
    with pytest.raises(SystemExit):  # exists, no --overwrite
        run_tool([
            'tools/deploy/export_onnx.py', TINY_CONFIG, run.checkpoint,
            '--out', exported
        ])


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_test_tool_evaluates_the_exported_file(run, exported, backend,
                                               torch_predictions):
    expected = torch_predictions
    found = _test_tool_predictions(run, exported, backend,
                                   ['--backend', backend])
    assert len(found) == len(expected) == NUM_VAL
    for dets, ref in zip(found, expected):
        assert dets['img_id'] == ref['img_id']
        pred, ref = dets['pred_instances'], ref['pred_instances']
        np.testing.assert_allclose(pred['scores'], ref['scores'], atol=1e-4)
        np.testing.assert_array_equal(pred['labels'], ref['labels'])
        np.testing.assert_allclose(pred['bboxes'], ref['bboxes'], atol=1e-2)


def test_detector_api_on_resized_images(run, exported):
    """Images the pipeline resizes: the boxes come back in pixels of the
    image as given, as from the checkpoint."""
    images = [
        cv2.resize(cv2.imread(path), (96, 80)) for path in VAL_IMAGES
    ]
    expected = Detector(TINY_CONFIG, run.checkpoint, device='cpu')(images)
    for backend in ('onnxruntime', 'openvino'):
        detector = Detector(TINY_CONFIG, exported, backend=backend)
        assert detector.class_names == ('circle', 'square', 'triangle',
                                        'cross')
        for dets, ref in zip(detector(images, batch_size=2), expected):
            np.testing.assert_allclose(dets.scores, ref.scores, atol=1e-4)
            np.testing.assert_array_equal(dets.labels, ref.labels)
            np.testing.assert_allclose(dets.boxes, ref.boxes, atol=1e-2)
    with pytest.raises(ValueError, match='not one'):
        Detector(TINY_CONFIG, run.checkpoint, backend='openvino')


def test_infer_tool_with_a_backend(run, exported):
    out_dir = osp.join(run.root, 'infer_onnx')
    run_tool([
        'tools/infer.py', TINY_CONFIG, exported, VAL_IMAGES[0], '--out-dir',
        out_dir, '--backend', 'openvino', '--score-thr', '0'
    ])
    with open(osp.join(out_dir, 'predictions.json')) as f:
        found = json.load(f)
    ref = Detector(TINY_CONFIG, run.checkpoint, device='cpu')(VAL_IMAGES[0])
    assert len(found) == len(ref) > 0
    np.testing.assert_allclose([d['score'] for d in found], ref.scores,
                               atol=1e-4)
    assert osp.isfile(osp.join(out_dir, '000001.png'))


def test_exported_file_of_another_model_is_refused(run, exported):
    cfg = cli.load_config(
        osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_detr.py'))
    with pytest.raises(ValueError, match='pass the config it was exported'):
        use_exported_model(cfg, exported)


def test_backend_option_needs_an_exported_file(run, capsys):
    with pytest.raises(SystemExit):
        run_tool([
            'tools/test.py', TINY_CONFIG, run.checkpoint, '--backend',
            'openvino'
        ])
    assert 'tools/deploy/export_onnx.py' in capsys.readouterr().err
