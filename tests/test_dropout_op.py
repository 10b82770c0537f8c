"""The compiled CPU dropout: the distribution of nn.Dropout, a gradient
masked alike, reproducible from torch's seed and independent of threads."""
import pytest
import torch

from mmdet_detr.ops import (Dropout, ReLUDropout, ResidualDropout,
                            cpu_kernel_available, dropout, dropout_add,
                            dropout_func, relu_dropout)

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
def test_relu_dropout_is_dropout_of_relu_with_one_mask():
    """Same seed, same mask: relu_dropout(x) == dropout(x) where x > 0 and
    0 elsewhere; its gradient flows only where both let it through; NaN
    passes the ReLU as through torch.relu."""
    torch.manual_seed(0)
    x = torch.randn(3, 4097, dtype=torch.float64)  # not a whole block
    x[0, :5] = float('nan')
    torch.manual_seed(7)
    plain = dropout(x, 0.25, training=True)
    torch.manual_seed(7)
    leaf = x.clone().requires_grad_()
    fused = relu_dropout(leaf, 0.25, training=True)
    expected = torch.where(x > 0, plain, torch.zeros_like(plain))
    nan = x.isnan()
    expected[nan] = plain[nan]
    torch.testing.assert_close(fused, expected, equal_nan=True)
    grad = torch.randn_like(x)
    fused.backward(grad)
    passes = (x > 0) & (plain != 0)
    torch.testing.assert_close(leaf.grad[~nan],
                               (grad * passes / 0.75)[~nan])


@needs_kernel
def test_dropout_add_is_residual_plus_dropout_with_one_mask():
    torch.manual_seed(0)
    x = torch.randn(2, 3000, 5, dtype=torch.float64)
    residual = torch.randn_like(x)
    torch.manual_seed(11)
    plain = dropout(x, 0.2, training=True)
    torch.manual_seed(11)
    leaves = [t.clone().requires_grad_() for t in (residual, x)]
    fused = dropout_add(*leaves, 0.2, training=True)
    torch.testing.assert_close(fused, residual + plain)
    grad = torch.randn_like(x)
    fused.backward(grad)
    torch.testing.assert_close(leaves[0].grad, grad)
    torch.testing.assert_close(leaves[1].grad, grad * (plain != 0) / 0.8)


def test_dropout_add_eval_and_mixed_dtypes():
    x = torch.randn(4, 6)
    residual = torch.randn(4, 6, dtype=torch.float64)
    module = ResidualDropout(0.5)
    torch.testing.assert_close(module.eval()(residual, x), residual + x)
    y = module.train()(residual, x)  # dtypes differ: residual + dropout(x)
    assert y.dtype == torch.float64
    dropped = (y - residual).float()
    assert ((dropped.abs() < 1e-6) | ((dropped - 2 * x).abs() < 1e-5)).all()


@pytest.mark.parametrize('kernel', [True, False])
def test_relu_dropout_eval_and_fallback(kernel, monkeypatch):
    if not kernel:
        monkeypatch.setattr(dropout_func, '_C', None)
    elif not cpu_kernel_available():
        pytest.skip('mmdet_detr.ops._C is not built')
    x = torch.randn(1000)
    torch.testing.assert_close(ReLUDropout(0.5).eval()(x), x.relu())
    y = relu_dropout(x, 0.5, training=True)
    assert ((y == 0) | (y == 2 * x)).all() and (y[x < 0] == 0).all()
    assert 0.15 < (y > 0).float().mean().item() < 0.35


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
