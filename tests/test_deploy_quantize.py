"""int8 quantization of an exported file: calibration reads the configured
training images, the int8 file says so in its metadata and runs in
onnxruntime, OpenVINO and the Detector API, its detections stay close to
the float file's, the custom-node form quantizes to the same model, and
bad inputs are refused with a clear message.

A tiny Deformable DETR with box refinement and random, perturbed weights
(no training): quantization needs no trained model, and the perturbation
spreads the scores and sampling offsets between queries.
"""
import os
import os.path as osp
import subprocess
import sys
import warnings

import mmcv
import numpy as np
import onnx
import pytest
import torch
from mmengine.registry import DefaultScope
from tiny_checkpoint import REPO_ROOT, TINY_CONFIG

from mmdet_detr.apis import Detector
from mmdet_detr.datasets.shapes import make_shapes_dataset
from mmdet_detr.deploy import (ExportMetadata, export_onnx, open_backend,
                               read_metadata)
from mmdet_detr.deploy.calibration import (calibration_images,
                                           calibration_indices)
from mmdet_detr.deploy.quantize import (FLOAT_NODES_KEY, PRECISION_KEY,
                                        check_quantizable,
                                        quantize_with_config, read_precision)
from mmdet_detr.engine import cli
from mmdet_detr.registry import MODELS

# Every (query, class) pair is a detection (10 queries x 4 classes), so
# that each int8 detection has its float counterpart among the outputs.
OPTIONS = {'model.with_box_refine': True, 'model.test_cfg.max_per_img': 40}
NUM_TRAIN = 5
NUM_CALIBRATION = 3
IMAGE_SIZE = 64


def build_model():
    cfg = cli.load_config(TINY_CONFIG, OPTIONS)
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return model.eval()


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """The shapes data, the float file and its int8 version."""
    root = tmp_path_factory.mktemp('quantize')
    data_root = str(root / 'data' / 'shapes')
    make_shapes_dataset(data_root, num_train=NUM_TRAIN, num_val=1, seed=0,
                        image_size=IMAGE_SIZE, show_progress=False)
    options = {**OPTIONS, 'train_dataloader.dataset.data_root':
               data_root + '/'}
    model = build_model()
    float_file = str(root / 'float.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        export_onnx(model, float_file, ExportMetadata(
            'onnx', 'DeformableDETR', 'tiny.py',
            ('circle', 'square', 'triangle', 'cross'), 0.3, 17,
            'scores, labels, boxes', 'normalised images'), (2, 3, 64, 96))
    int8_file = str(root / 'int8.onnx')
    report = quantize_with_config(TINY_CONFIG, float_file, int8_file,
                                  NUM_CALIBRATION, options)
    cfg = cli.load_config(TINY_CONFIG, options)
    return dict(cfg=cfg, options=options, data_root=data_root,
                float_file=float_file, int8_file=int8_file, report=report,
                root=root)


def test_calibration_reads_the_training_images_normalised(run):
    assert calibration_indices(NUM_TRAIN, NUM_CALIBRATION) == [0, 2, 4]
    assert calibration_indices(2, 32) == [0, 1]
    images = calibration_images(run['cfg'], NUM_CALIBRATION)
    assert len(images) == NUM_CALIBRATION
    files = sorted(os.listdir(osp.join(run['data_root'], 'train')))
    # The first calibration image is the first training file, through the
    # test pipeline (64 px: no resize) and the data preprocessor (BGR to
    # RGB, mean, std of the config).
    pixels = mmcv.imread(osp.join(run['data_root'], 'train', files[0]))
    preprocessor = run['cfg'].model.data_preprocessor
    expected = ((pixels[..., ::-1] - np.array(preprocessor.mean)) /
                np.array(preprocessor.std)).transpose(2, 0, 1)[None]
    assert images[0].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert images[0].dtype == np.float32
    np.testing.assert_allclose(images[0], expected, atol=1e-4)
    with pytest.raises(ValueError, match='--num-images 0'):
        calibration_indices(NUM_TRAIN, 0)


def test_metadata_says_int8_and_what_stayed_float(run):
    float_meta = read_metadata(run['float_file'])
    assert read_metadata(run['int8_file']) == float_meta
    assert read_precision(run['float_file']) == 'float32'
    assert read_precision(run['int8_file']) == 'int8'
    props = {p.key: p.value
             for p in onnx.load(run['int8_file']).metadata_props}
    assert props[PRECISION_KEY] == 'int8'
    kept = run['report'].float_nodes
    assert props[FLOAT_NODES_KEY].count('/') >= len(kept) > 0
    # Every sampling-offset and attention-weight product, and the box
    # branches, stayed float; the backbone did not.
    graph = onnx.load(run['int8_file']).graph
    products = {n.name for n in graph.node if n.op_type == 'MatMul'}
    for name in products:
        if any(m in name for m in ('sampling_offsets', 'attention_weights',
                                   'reg_branches')):
            assert name in kept, name
    assert not any('backbone' in name for name in kept)
    quantized_convs = {n.input[0] for n in graph.node
                       if n.op_type == 'DequantizeLinear'}
    assert quantized_convs and run['report'].quantized_nodes > 20


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_int8_detections_close_to_float(run, backend):
    # The easy case: the calibration images, whose ranges the int8 file
    # was calibrated on. Random weights score many queries alike, so
    # ranks may swap between float and int8: scores are compared rank by
    # rank, and each int8 box against the nearest float box of its label
    # (all 40 pairs are output, so its own query's box is among them).
    # Tolerance: 0.01 in score and 1 px in box (1.5% of the 64 px image):
    # far above onnxruntime's float-vs-float 1e-4, far below what a wrong
    # scale or zero point gives (scores off by > 0.05, boxes by tens of
    # pixels).
    images = calibration_images(run['cfg'], NUM_CALIBRATION)
    batch = np.concatenate(images)
    scores, labels, boxes = open_backend(run['float_file'], backend)(batch)
    found = open_backend(run['int8_file'], backend)(batch)
    assert np.abs(found[0] - scores).max() <= 0.01
    for b in range(len(batch)):
        for score, label, box in zip(*(a[b] for a in found)):
            same = boxes[b][labels[b] == label]  # n, 4
            assert len(same), (b, label)
            assert np.abs(same - box).max(1).min() <= 1.0, (b, box, same)


def test_custom_node_file_quantizes_like_the_standard_one(run):
    """The custom-node form, calibrated in a session with the node
    registered on the same images, keeps the same products in float and
    gives the standard-operator int8 file's detections (1e-4 in scores,
    1e-2 px in boxes) in both runtimes."""
    model = build_model()
    files = {}
    for form in ('onnx', 'custom'):
        float_file = str(run['root'] / f'same_{form}.onnx')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            export_onnx(model, float_file, ExportMetadata(
                form, 'DeformableDETR', 'tiny.py',
                ('circle', 'square', 'triangle', 'cross'), 0.3, 17,
                'scores, labels, boxes', 'normalised images'),
                (2, 3, 64, 96))
        files[form] = str(run['root'] / f'same_{form}_int8.onnx')
        report = quantize_with_config(TINY_CONFIG, float_file, files[form],
                                      NUM_CALIBRATION, run['options'])
        assert report.float_nodes == run['report'].float_nodes
    assert read_metadata(files['custom']).attention == 'custom'
    assert read_precision(files['custom']) == 'int8'
    batch = np.concatenate(calibration_images(run['cfg'], 2))
    for backend in ('onnxruntime', 'openvino'):
        expected = open_backend(files['onnx'], backend)(batch)
        scores, labels, boxes = open_backend(files['custom'], backend)(batch)
        np.testing.assert_allclose(scores, expected[0], atol=1e-4)
        np.testing.assert_array_equal(labels, expected[1])
        np.testing.assert_allclose(boxes, expected[2], atol=1e-2)


def test_int8_file_runs_in_the_detector_api(run):
    val = osp.join(run['data_root'], 'val')
    image = osp.join(val, sorted(os.listdir(val))[0])
    for backend in ('onnxruntime', 'openvino'):
        found = Detector(TINY_CONFIG, run['int8_file'],
                         cfg_options=OPTIONS, backend=backend)(
                             image, score_thr=0.0)
        assert len(found) > 0
        assert found.boxes.shape == (len(found), 4)


def test_bad_inputs_are_refused_clearly(run, tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        check_quantizable(str(tmp_path / 'missing.onnx'))
    not_onnx = tmp_path / 'notes.onnx'
    not_onnx.write_text('not a model')
    with pytest.raises(ValueError, match='is not an ONNX file'):
        check_quantizable(str(not_onnx))
    foreign = tmp_path / 'foreign.onnx'
    model = onnx.load(run['float_file'])
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    with pytest.raises(ValueError, match='export_onnx.py'):
        check_quantizable(str(foreign))
    with pytest.raises(ValueError, match='already quantized'):
        check_quantizable(run['int8_file'])
    with pytest.raises(FileExistsError, match='--overwrite'):
        quantize_with_config(TINY_CONFIG, run['float_file'],
                             run['int8_file'], 1, run['options'])
    with pytest.raises(ValueError, match='builds a DETR'):
        quantize_with_config('tests/configs/tiny_detr.py',
                             run['float_file'], str(tmp_path / 'x.onnx'))


def test_tool_quantizes_and_refuses_a_missing_file(run, tmp_path):
    tool = osp.join(REPO_ROOT, 'tools', 'deploy', 'quantize_onnx.py')
    out = str(tmp_path / 'int8.onnx')
    options = [f'{k}={v}' for k, v in run['options'].items()]
    done = subprocess.run(
        [sys.executable, tool, TINY_CONFIG, run['float_file'], '--out', out,
         '--num-images', '2', '--cfg-options', *options],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 'calibrated on 2 images' in done.stdout
    assert read_precision(out) == 'int8'
    missing = subprocess.run(
        [sys.executable, tool, TINY_CONFIG, str(tmp_path / 'none.onnx'),
         '--out', str(tmp_path / 'x.onnx')], capture_output=True, text=True)
    assert missing.returncode == 2
    assert 'none.onnx' in missing.stderr and 'does not exist' in \
        missing.stderr
