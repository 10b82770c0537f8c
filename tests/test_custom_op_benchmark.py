"""The custom-op benchmark's parts on a tiny shape: every variant computes
the same attention, and a variant that does not is refused."""
import numpy as np
import pytest

from mmdet_detr.ops import cpu_kernel_available

pytest.importorskip('onnxruntime_extensions',
                    reason='the deploy extra is not installed')
pytest.importorskip('openvino', reason='the deploy extra is not installed')
if not cpu_kernel_available():
    pytest.skip('mmdet_detr.ops._C is not built', allow_module_level=True)

from mmdet_detr.deploy.custom_op import benchmark  # noqa: E402

TINY = benchmark.AttentionShape('tiny', ((6, 8), (3, 4)), queries=5, heads=2,
                                channels=4, points=2)


def test_inputs_have_the_node_shapes():
    encoder = benchmark.attention_inputs(TINY._replace(queries=None))
    assert encoder['value'].shape == (2, 60, 2, 4)
    assert encoder['sampling_locations'].shape == (2, 60, 2, 2, 2, 2)
    assert encoder['attention_weights'].shape == (2, 60, 2, 2, 2)
    assert encoder['level_start_index'].tolist() == [0, 48]
    np.testing.assert_allclose(encoder['attention_weights'].sum((3, 4)), 1,
                               rtol=1e-6)


def test_every_variant_is_timed_on_the_same_attention():
    feed = benchmark.attention_inputs(TINY)
    calls = benchmark.attention_calls(feed, ['onnxruntime', 'openvino'],
                                      threads=1)
    assert sorted(calls) == [
        'onnxruntime custom', 'onnxruntime gridsample', 'openvino custom',
        'openvino gridsample', 'torch kernel'
    ]
    seconds = benchmark.time_interleaved(calls, repeat=2)
    assert all(len(values) == 2 and min(values) > 0
               for values in seconds.values())


def test_a_variant_with_another_result_is_refused():
    calls = {'a': lambda: np.zeros(3), 'b': lambda: np.ones(3)}
    with pytest.raises(RuntimeError, match='b differs from a'):
        benchmark.time_interleaved(calls, repeat=1)
