"""Exported graphs equal PyTorch: Deformable DETR (plain, refine,
refine + two-stage) and DETR, each exported once, run by onnxruntime and
OpenVINO at the traced and at other batch sizes and image sizes; the
custom attention form's nodes, run with the runtimes' implementations of
the node; the metadata.

Tiny models with random weights (no training): parity does not need a
trained model, and the weights are perturbed so that sampling offsets,
boxes and scores differ between queries.
"""
import os.path as osp

import numpy as np
import onnx
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.registry import DefaultScope
from tiny_checkpoint import TINY_CONFIG, TINY_DETR_CONFIG, TINY_DINO_CONFIG

from mmdet_detr.deploy import (DetectorGraph, ExportMetadata,
                               check_against_pytorch, export_onnx,
                               open_backend, read_metadata)
from mmdet_detr.deploy.attention_forms import (CUSTOM_DOMAIN,
                                               CUSTOM_DOMAIN_VERSION,
                                               CUSTOM_OP_TYPE, attention_form)
from mmdet_detr.engine import cli
from mmdet_detr.registry import MODELS

VARIANTS = {
    'deformable': (TINY_CONFIG, {}),
    'refine': (TINY_CONFIG, {'model.with_box_refine': True}),
    'two_stage': (TINY_CONFIG, {
        'model.with_box_refine': True,
        'model.as_two_stage': True
    }),
    'detr': (TINY_DETR_CONFIG, {}),
    'dino': (TINY_DINO_CONFIG, {}),
}
TRACED = (2, 3, 64, 96)
# Another batch size and size than traced: the dims must be dynamic.
OTHER = (3, 3, 96, 64)
# onnxruntime runs both shapes, OpenVINO (slower to compile) the other.
SHAPES = {'onnxruntime': [TRACED, OTHER], 'openvino': [OTHER]}
CLASS_NAMES = ('circle', 'square', 'triangle', 'cross')


def build_model(config, options):
    cfg = cli.load_config(config, options or None)
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return model.eval()


def metadata(model, attention='onnx'):
    return ExportMetadata(attention, type(model).__name__, 'tiny.py',
                          CLASS_NAMES, 0.3, 17, 'scores, labels, boxes',
                          'normalised images')


@pytest.fixture(scope='module', params=sorted(VARIANTS))
def exported(request, tmp_path_factory):
    model = build_model(*VARIANTS[request.param])
    path = str(tmp_path_factory.mktemp('onnx') / f'{request.param}.onnx')
    export_onnx(model, path, metadata(model), TRACED)
    return model, path


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_backends_give_pytorch_detections(exported, backend):
    model, path = exported
    checks = check_against_pytorch(path, model, SHAPES[backend], backend)
    for check in checks:
        diff = check.difference
        assert diff.max_score <= 1e-4, check
        assert diff.max_box <= 1e-2, check
        assert diff.labels_equal, check
    scores, labels, boxes = open_backend(path, backend)(
        np.zeros(OTHER, np.float32))
    k = model.bbox_head.max_per_img
    assert scores.shape == labels.shape == (3, k)
    assert boxes.shape == (3, k, 4) and labels.dtype == np.int64
    assert (np.diff(scores, axis=1) <= 0).all()  # best first


def test_graph_equals_the_models_predict(exported):
    """The graph's detections are predict's (the test tool's) for unpadded
    images, boxes in input pixels."""
    model, _ = exported
    images = torch.randn(2, 3, 64, 96)
    samples = []
    for _ in range(2):
        sample = DetDataSample()
        sample.set_metainfo(
            dict(img_shape=(64, 96), batch_input_shape=(64, 96),
                 scale_factor=(1.0, 1.0)))
        samples.append(sample)
    with torch.no_grad():
        expected = model.predict(images, samples)
        scores, labels, boxes = DetectorGraph(model)(images)
    for i, sample in enumerate(expected):
        pred = sample.pred_instances
        torch.testing.assert_close(scores[i], pred.scores)
        torch.testing.assert_close(labels[i], pred.labels)
        torch.testing.assert_close(boxes[i], pred.bboxes)


def test_attention_form_is_restored_and_detr_has_none():
    model = build_model(TINY_CONFIG, {})
    with attention_form(model, 'onnx') as count:
        assert count == 3  # 1 encoder and 2 decoder layers
    assert all(m.sampling_function is None for m in model.modules()
               if hasattr(m, 'sampling_function'))
    with attention_form(build_model(TINY_DETR_CONFIG, {}), 'onnx') as count:
        assert count == 0
    with pytest.raises(ValueError, match='not one of'):
        with attention_form(model, 'fast'):
            pass


def test_custom_form_has_one_node_per_attention_call(tmp_path):
    model = build_model(TINY_CONFIG, {'model.with_box_refine': True})
    path = str(tmp_path / 'custom.onnx')
    export_onnx(model, path, metadata(model, 'custom'), TRACED)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert {(o.domain, o.version) for o in proto.opset_import} == {
        ('', 17), (CUSTOM_DOMAIN, 1)}
    nodes = [n for n in proto.graph.node if n.domain == CUSTOM_DOMAIN]
    assert len(nodes) == 3
    assert all(n.op_type == CUSTOM_OP_TYPE for n in nodes)
    assert not any(n.op_type == 'GridSample' for n in proto.graph.node)
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type
             for v in list(inferred.graph.value_info) +
             list(inferred.graph.input)}
    float32, int64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    expected = [(float32, 4), (int64, 2), (int64, 1), (float32, 6),
                (float32, 5)]  # value, shapes, starts, locations, weights
    for node in nodes:
        assert len(node.attribute) == 0 and len(node.output) == 1
        assert [(types[i].elem_type, len(types[i].shape.dim))
                for i in node.input] == expected
    assert read_metadata(path).attention == 'custom'
    # The runtimes' implementations of the node give PyTorch's detections.
    for backend in ('onnxruntime', 'openvino'):
        for check in check_against_pytorch(path, model, [OTHER], backend):
            assert check.difference.max_score <= 1e-4, (backend, check)
            assert check.difference.max_box <= 1e-2, (backend, check)
            assert check.difference.labels_equal, (backend, check)


def test_custom_node_names_are_the_runtimes():
    from mmdet_detr.deploy.custom_op import node
    assert (CUSTOM_DOMAIN, CUSTOM_OP_TYPE, CUSTOM_DOMAIN_VERSION) == (
        node.DOMAIN, node.OP_TYPE, node.OPSET_VERSION)


def test_metadata_round_trip_and_refusals(exported, tmp_path):
    model, path = exported
    found = read_metadata(path)
    assert found == metadata(model)
    assert onnx.load(path).metadata_props[0].key.startswith('mmdet_detr.')
    bare = onnx.load(path)
    del bare.metadata_props[:]
    bare_path = str(tmp_path / 'bare.onnx')
    onnx.save(bare, bare_path)
    with pytest.raises(ValueError, match='not exported by'):
        read_metadata(bare_path)
    with pytest.raises(ValueError, match='not one of'):
        open_backend(path, 'tensorrt')
    with pytest.raises(FileNotFoundError):
        open_backend(osp.join(str(tmp_path), 'missing.onnx'))
