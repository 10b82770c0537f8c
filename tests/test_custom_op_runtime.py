"""The custom attention node ``mmdet_detr::MultiScaleDeformableAttention`` in
the deployment runtimes against the torch op.

Each runtime runs a one-node ONNX model (``attention_model``) on random
inputs, with points inside, on the border of and outside the maps, several
levels and batch 2, and must match ``multi_scale_deformable_attn`` to 1e-5;
a model file with the node, opened without the op registered, must fail with
an error that names the node and the way to register it. Symbols: B batch,
S tokens, Q queries, M heads, D channels per head, L levels, P points.
"""
import pytest
import torch

from mmdet_detr.ops import cpu_kernel_available, multi_scale_deformable_attn

onnx = pytest.importorskip('onnx', reason='the deploy extra is not installed')

from mmdet_detr.deploy.custom_op import node  # noqa: E402

needs_kernel = pytest.mark.skipif(
    not cpu_kernel_available(),
    reason='mmdet_detr.ops._C is not built; build it with '
    '`pip install --no-build-isolation -e .`')

# Non-square levels down to one pixel.
SHAPES = ((6, 9), (3, 5), (2, 2), (1, 1))


def make_inputs(B=2, Q=7, M=3, D=4, P=3, seed=0):
    """Random inputs as float32 / int64 numpy arrays keyed by input name;
    locations spread over [-0.3, 1.3], so some corners and some whole points
    fall outside the maps."""
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(SHAPES, dtype=torch.long)  # L, 2
    sizes = spatial_shapes.prod(1)  # L
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    S, L = int(sizes.sum()), len(SHAPES)
    value = torch.randn(B, S, M, D, generator=gen)
    locations = torch.rand(B, Q, M, L, P, 2, generator=gen) * 1.6 - 0.3
    locations[0, 0, 0, :, 0] = torch.tensor([-2.0, 0.5])  # far outside
    weights = torch.rand(B, Q, M, L * P, generator=gen)
    weights = weights.softmax(-1).view(B, Q, M, L, P)
    tensors = (value, spatial_shapes, level_start_index, locations, weights)
    return {
        name: tensor.numpy()
        for name, tensor in zip(node.INPUT_NAMES, tensors)
    }


def torch_output(feed):
    """(B, Q, M * D) of the torch op on the same inputs."""
    tensors = [torch.from_numpy(feed[name]) for name in node.INPUT_NAMES]
    return multi_scale_deformable_attn(*tensors).numpy()


def save_attention_model(tmp_path):
    path = str(tmp_path / 'attention.onnx')
    onnx.save(node.attention_model(num_levels=len(SHAPES)), path)
    return path


def test_attention_model_is_valid_onnx():
    model = node.attention_model(num_levels=len(SHAPES))
    onnx.checker.check_model(model)
    assert [(n.domain, n.op_type) for n in node.attention_nodes(model)] == [
        ('mmdet_detr', 'MultiScaleDeformableAttention')]


def test_onnxruntime_model_copy_moves_nodes_to_extensions_domain():
    pytest.importorskip('onnxruntime_extensions')
    from mmdet_detr.deploy.custom_op import ort_model_for_custom_op
    model = node.attention_model(num_levels=len(SHAPES))
    moved = ort_model_for_custom_op(model)
    assert [n.domain for n in moved.graph.node] == ['ai.onnx.contrib']
    assert ('ai.onnx.contrib', 1) in [(o.domain, o.version)
                                      for o in moved.opset_import]
    assert len(node.attention_nodes(model)) == 1  # the input is untouched


@needs_kernel
def test_onnxruntime_op_matches_torch(tmp_path):
    pytest.importorskip('onnxruntime_extensions')
    from mmdet_detr.deploy.custom_op import ort_session_with_custom_op
    session = ort_session_with_custom_op(save_attention_model(tmp_path))
    for seed, Q in ((0, 7), (1, 1)):
        feed = make_inputs(Q=Q, seed=seed)
        output, = session.run(None, feed)
        expected = torch_output(feed)
        assert output.shape == expected.shape == (2, Q, 3 * 4)
        assert abs(output - expected).max() <= 1e-5


def test_onnxruntime_without_op_names_the_node(tmp_path):
    pytest.importorskip('onnxruntime')
    from mmdet_detr.deploy.custom_op import ort_session_with_custom_op
    path = save_attention_model(tmp_path)
    with pytest.raises(RuntimeError) as info:
        ort_session_with_custom_op(path, register_custom_op=False)
    message = str(info.value)
    assert 'mmdet_detr::MultiScaleDeformableAttention' in message
    assert path in message
    assert 'ort_session_with_custom_op' in message


@pytest.fixture(scope='module')
def openvino_extension():
    """The extension library, built into the cache on first use (about 25 s
    on 2 cores, once per source version)."""
    pytest.importorskip('openvino')
    from mmdet_detr.deploy.custom_op import openvino_extension_path
    return openvino_extension_path()


def test_openvino_op_matches_torch(tmp_path, openvino_extension):
    from mmdet_detr.deploy.custom_op import \
        openvino_compiled_model_with_custom_op
    compiled = openvino_compiled_model_with_custom_op(
        save_attention_model(tmp_path))
    request = compiled.create_infer_request()
    # One compiled model serves other B and Q: the node's shapes are
    # dynamic.
    for seed, B, Q in ((0, 2, 7), (1, 1, 1)):
        feed = make_inputs(B=B, Q=Q, seed=seed)
        output = request.infer(feed)[0]
        expected = torch_output(feed)
        assert output.shape == expected.shape == (B, Q, 3 * 4)
        assert abs(output - expected).max() <= 1e-5


def test_openvino_op_rejects_levels_outside_value(tmp_path,
                                                  openvino_extension):
    from mmdet_detr.deploy.custom_op import \
        openvino_compiled_model_with_custom_op
    compiled = openvino_compiled_model_with_custom_op(
        save_attention_model(tmp_path))
    feed = make_inputs()
    feed['level_start_index'][-1] += 1  # the last level reads past value
    with pytest.raises(RuntimeError, match='does not fit'):
        compiled.create_infer_request().infer(feed)


def test_openvino_without_op_names_the_node(tmp_path):
    pytest.importorskip('openvino')
    from mmdet_detr.deploy.custom_op import \
        openvino_compiled_model_with_custom_op
    path = save_attention_model(tmp_path)
    with pytest.raises(RuntimeError) as info:
        openvino_compiled_model_with_custom_op(path, register_custom_op=False)
    message = str(info.value)
    assert 'mmdet_detr::MultiScaleDeformableAttention' in message
    assert path in message
    assert 'openvino_core_with_custom_op' in message


def test_openvino_build_names_missing_tools(tmp_path, monkeypatch):
    pytest.importorskip('openvino')
    from mmdet_detr.deploy.custom_op import openvino_extension
    monkeypatch.setenv('PATH', str(tmp_path))  # no cmake, no compiler
    monkeypatch.delenv('CXX', raising=False)
    with pytest.raises(RuntimeError, match='needs cmake and c.. on PATH'):
        openvino_extension.build_openvino_extension(str(tmp_path / 'out'))
