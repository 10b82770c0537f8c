"""The compiled CPU dropout: the distribution of nn.Dropout, a gradient
masked alike, reproducible from torch's seed and independent of threads."""
import pytest
import torch

from mmdet_detr.ops import Dropout, cpu_kernel_available, dropout
from mmdet_detr.ops import dropout_func

needs_kernel = pytest.mark.skipif(
    not cpu_kernel_available(),
    reason='mmdet_detr.ops._C is not built; build it with '
    '`pip install --no-build-isolation -e .`')


@needs_kernel
@pytest.mark.parametrize('p', [0.1, 0.5])
def test_mask_is_bernoulli_and_kept_values_are_scaled(p):
    torch.manual_seed(0)
    n = 1 << 20
    x = torch.randn(n)
    y = dropout(x, p, training=True)
    kept = y != 0
    # Within 5 standard errors of the keep probability.
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * (
        p * (1 - p) / n)**0.5
    # Neighbours are independent (they share a Philox block).
    both = (kept[0::2] & kept[1::2]).float().mean().item()
    assert abs(both - (1 - p)**2) < 5 * ((1 - p)**2 / (n / 2))**0.5
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))


@needs_kernel
def test_gradient_is_masked_and_scaled():
    x = torch.randn(3, 50, 7, dtype=torch.float64, requires_grad=True)
    y = dropout(x, 0.3, training=True)
    grad = torch.randn_like(y)
    y.backward(grad)
    kept = (y != 0).double()
    torch.testing.assert_close(x.grad, grad * kept / 0.7)


@needs_kernel
def test_seeded_and_thread_independent():
    x = torch.ones(100_000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(3)
        one = dropout(x, 0.2, training=True)
        torch.set_num_threads(2)
        torch.manual_seed(3)
        two = dropout(x, 0.2, training=True)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert not torch.equal(one, dropout(x, 0.2, training=True))


@needs_kernel
def test_bfloat16_and_strided_input():
    x = torch.ones(64, 32, dtype=torch.bfloat16).t()  # not contiguous
    y = dropout(x, 0.5, training=True)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    assert set(y.unique().tolist()) <= {0.0, 2.0}


def test_eval_and_zero_p_are_identity_and_fallback_is_torch(monkeypatch):
    x = torch.randn(10)
    module = Dropout(0.5).eval()
    assert module(x) is x
    assert dropout(x, 0.0, training=True) is x
    monkeypatch.setattr(dropout_func, '_C', None)
    torch.manual_seed(1)
    got = dropout(x, 0.5, training=True)
    torch.manual_seed(1)
    torch.testing.assert_close(got, torch.nn.functional.dropout(x, 0.5))
    with pytest.raises(ValueError, match='in \\[0, 1\\]'):
        Dropout(1.5)
