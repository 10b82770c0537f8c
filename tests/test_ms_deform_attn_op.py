"""The CPU kernel of multi-scale deformable attention against the reference.

The reference ``ms_deform_attn_pytorch`` is itself checked against a naive
loop over points and corners; the kernel ``mmdet_detr.ops._C`` must match the
reference in value and gradient, also at map borders and far outside, and be
deterministic. Symbols: B batch, S tokens, Q queries, M heads, D channels per
head, L levels, P points.
"""
import math

import pytest
import torch

from mmdet_detr.ops import (cpu_kernel_available, ms_deform_attn_func,
                            ms_deform_attn_pytorch,
                            multi_scale_deformable_attn)

needs_kernel = pytest.mark.skipif(
    not cpu_kernel_available(),
    reason='mmdet_detr.ops._C is not built; build it with '
    '`pip install --no-build-isolation -e .` to test the CPU kernel')

# Levels of different sizes, square and not, down to a single pixel.
SHAPES = ((12, 16), (6, 7), (3, 4), (1, 2))
# Powers of two: the border coordinates below are exact in both paths.
POW2_SHAPES = ((8, 16), (4, 8), (2, 2))


def make_inputs(shapes, B=2, Q=9, M=3, D=5, P=3, dtype=torch.float32,
                seed=0):
    """Random inputs; locations spread over [-0.3, 1.3], some value rows 0."""
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.long)  # L, 2
    sizes = spatial_shapes.prod(1)  # L
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    S, L = int(sizes.sum()), len(shapes)
    value = torch.randn(B, S, M, D, generator=gen, dtype=dtype)
    value[:, ::5] = 0  # padded tokens
    locations = torch.rand(B, Q, M, L, P, 2, generator=gen, dtype=dtype)
    locations = locations * 1.6 - 0.3
    weights = torch.rand(B, Q, M, L * P, generator=gen, dtype=dtype)
    weights = weights.softmax(-1).view(B, Q, M, L, P)
    return value, spatial_shapes, level_start_index, locations, weights


def put_border_points(locations, shapes):
    """Overwrite points with coordinates on or beyond map borders: pixel
    centres at 0 and 1, the outer corner lines -1 and W, pixel centres
    inside, and far outside."""
    for level, (h, w) in enumerate(shapes):
        # x on every 2nd query, y on every 3rd: both, one, or none special.
        for axis, size, step in ((0, w, 2), (1, h, 3)):
            special = torch.tensor(
                [0.0, 1.0, -0.5 / size, 1 + 0.5 / size, 1.5 / size,
                 (size - 0.5) / size, -3.0, 4.0, 0.5],
                dtype=locations.dtype)
            coords = locations[:, ::step, :, level, :, axis]  # B, Q', M, P
            picks = torch.arange(coords.numel()) % len(special)
            coords.copy_(special[picks].view(coords.shape))
    return locations


def naive_deform_attn(value, spatial_shapes, level_start_index, locations,
                      weights):
    """Loop over every point and its four corners with scalar tensor ops,
    differentiable by autograd; corners outside a map contribute nothing."""
    B, _, M, D = value.shape
    _, Q, _, L, P, _ = locations.shape
    rows = []
    for b in range(B):
        for q in range(Q):
            for m in range(M):
                acc = value.new_zeros(D)
                for level in range(L):
                    h, w = spatial_shapes[level].tolist()
                    start = int(level_start_index[level])
                    for p in range(P):
                        x = locations[b, q, m, level, p, 0] * w - 0.5
                        y = locations[b, q, m, level, p, 1] * h - 0.5
                        x0, y0 = math.floor(x.item()), math.floor(y.item())
                        for dy in (0, 1):
                            for dx in (0, 1):
                                xi, yi = x0 + dx, y0 + dy
                                if not (0 <= xi < w and 0 <= yi < h):
                                    continue
                                wx = x - x0 if dx else 1 - (x - x0)
                                wy = y - y0 if dy else 1 - (y - y0)
                                row = value[b, start + yi * w + xi, m]
                                acc = acc + (weights[b, q, m, level, p] *
                                             wx * wy * row)
                rows.append(acc)
    return torch.stack(rows).view(B, Q, M * D)


def grads(fn, inputs, grad_output):
    """Gradients of <fn(inputs), grad_output> w.r.t. value, locations and
    weights."""
    value, spatial_shapes, level_start_index, locations, weights = [
        t.detach().clone() for t in inputs
    ]
    leaves = [t.requires_grad_() for t in (value, locations, weights)]
    out = fn(value, spatial_shapes, level_start_index, locations, weights)
    return torch.autograd.grad(out, leaves, grad_output)


def reference(value, spatial_shapes, level_start_index, locations, weights):
    return ms_deform_attn_pytorch(value, spatial_shapes, locations, weights)


def assert_close_to_scale(actual, expected, tol):
    """Max error at most ``tol`` times the larger of 1 and the largest
    magnitude: location gradients grow with the map size."""
    scale = max(1.0, expected.abs().max().item())
    error = (actual - expected).abs().max().item()
    assert error <= tol * scale, (
        f'max error {error:.3g} > {tol:g} * {scale:.3g}')


def test_reference_matches_naive_loop():
    inputs = make_inputs(((3, 4), (2, 3)), B=1, Q=3, M=2, D=3, P=2,
                         dtype=torch.float64)
    out = reference(*inputs)
    torch.testing.assert_close(out, naive_deform_attn(*inputs))
    grad_output = torch.randn_like(out)
    for g_ref, g_naive in zip(grads(reference, inputs, grad_output),
                              grads(naive_deform_attn, inputs, grad_output)):
        torch.testing.assert_close(g_ref, g_naive)


def differentiable_locations(shapes, B, Q, M, P, seed):
    """Locations whose pixel coordinates sit 0.1..0.9 past an integer, in
    cells -1..W-1 (so border cells with corners outside occur): bilinear
    interpolation is smooth there, as gradcheck's finite differences need."""
    gen = torch.Generator().manual_seed(seed)
    per_level = []
    for h, w in shapes:
        size = torch.tensor([w, h], dtype=torch.float64)
        cell = torch.rand(B, Q, M, P, 2, generator=gen, dtype=torch.float64)
        cell = (cell * (size + 1)).floor() - 1  # in -1 .. W-1
        frac = 0.1 + 0.8 * torch.rand(B, Q, M, P, 2, generator=gen,
                                      dtype=torch.float64)
        per_level.append((cell + frac + 0.5) / size)
    return torch.stack(per_level, dim=3)  # B, Q, M, L, P, 2


def test_reference_gradcheck():
    shapes = ((3, 4), (2, 2))
    value, spatial_shapes, _, _, weights = make_inputs(
        shapes, B=1, Q=2, M=2, D=2, P=2, dtype=torch.float64)
    locations = differentiable_locations(shapes, 1, 2, 2, 2, seed=1)
    leaves = [t.requires_grad_() for t in (value, locations, weights)]
    assert torch.autograd.gradcheck(
        lambda v, loc, w: ms_deform_attn_pytorch(v, spatial_shapes, loc, w),
        leaves)


@needs_kernel
@pytest.mark.parametrize('shapes', [SHAPES, POW2_SHAPES])
def test_kernel_forward_matches_reference(shapes):
    inputs = list(make_inputs(shapes))
    inputs[3] = put_border_points(inputs[3], shapes)
    out = multi_scale_deformable_attn(*inputs)
    assert out.shape == (2, 9, 3 * 5) and out.dtype == torch.float32
    torch.testing.assert_close(out, reference(*inputs), atol=1e-5, rtol=0)


@needs_kernel
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5),
                                       (torch.float64, 1e-10)])
@pytest.mark.parametrize('shapes', [SHAPES, POW2_SHAPES])
def test_kernel_backward_matches_reference(shapes, dtype, tol):
    inputs = list(make_inputs(shapes, dtype=dtype, seed=2))
    if shapes == POW2_SHAPES:  # exact coordinates: the gradient is defined
        inputs[3] = put_border_points(inputs[3], shapes)
    grad_output = torch.randn(2, 9, 3 * 5, dtype=dtype)
    kernel_grads = grads(multi_scale_deformable_attn, inputs, grad_output)
    reference_grads = grads(reference, inputs, grad_output)
    for name, g_kernel, g_ref in zip(('value', 'locations', 'weights'),
                                     kernel_grads, reference_grads):
        assert g_kernel.shape == g_ref.shape, name
        assert_close_to_scale(g_kernel, g_ref, tol)


@needs_kernel
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5),
                                       (torch.float64, 1e-10)])
def test_kernel_padding_mask_is_zeroed_value(dtype, tol):
    """Padded tokens sample as zero and get no gradient: the same as the
    reference on a value zeroed there, in output and in every gradient."""
    inputs = list(make_inputs(SHAPES, dtype=dtype, seed=5))
    value = inputs[0]
    gen = torch.Generator().manual_seed(6)
    padded = torch.rand(value.shape[:2], generator=gen) < 0.3  # B, S
    value.add_(1.0)  # no zero rows: a skipped padded row must show
    grad_output = torch.randn(2, 9, 3 * 5, dtype=dtype)

    def kernel(v, *rest):
        return multi_scale_deformable_attn(v, *rest,
                                           value_padding_mask=padded)

    def zeroed(v, *rest):
        return reference(v.masked_fill(padded[..., None, None], 0.0), *rest)

    torch.testing.assert_close(kernel(*inputs), zeroed(*inputs), atol=tol,
                               rtol=0)
    kernel_grads = grads(kernel, inputs, grad_output)
    for name, g_kernel, g_ref in zip(('value', 'locations', 'weights'),
                                     kernel_grads,
                                     grads(zeroed, inputs, grad_output)):
        assert_close_to_scale(g_kernel, g_ref, tol)
    assert kernel_grads[0][padded].abs().max() == 0
    assert kernel_grads[0][~padded].abs().max() > 0


def test_padding_mask_without_kernel_zeroes_value(monkeypatch):
    monkeypatch.setattr(ms_deform_attn_func, '_C', None)
    monkeypatch.setattr(ms_deform_attn_func, '_warned_missing_kernel', True)
    value, *rest = make_inputs(SHAPES)
    padded = torch.zeros(value.shape[:2], dtype=torch.bool)
    padded[:, 3:40] = True
    torch.testing.assert_close(
        multi_scale_deformable_attn(value, *rest, value_padding_mask=padded),
        reference(value.masked_fill(padded[..., None, None], 0.0), *rest))


@needs_kernel
def test_kernel_gradcheck():
    shapes = ((3, 4), (2, 3), (1, 1))
    value, spatial_shapes, level_start_index, _, weights = make_inputs(
        shapes, B=1, Q=3, M=2, D=2, P=2, dtype=torch.float64)
    locations = differentiable_locations(shapes, 1, 3, 2, 2, seed=3)
    leaves = [t.requires_grad_() for t in (value, locations, weights)]
    assert torch.autograd.gradcheck(
        lambda v, loc, w: multi_scale_deformable_attn(
            v, spatial_shapes, level_start_index, loc, w), leaves)


@needs_kernel
def test_kernel_is_deterministic_across_runs_and_threads():
    # B * M = 2 tasks: one thread takes them whole, four threads split
    # them by level; both must add the same terms in the same order.
    inputs = make_inputs(SHAPES, B=1, Q=64, M=2, D=8, P=4, seed=4)
    grad_output = torch.randn(1, 64, 2 * 8)
    threads = torch.get_num_threads()
    runs = []
    try:
        for num_threads in (1, 4, 4):
            torch.set_num_threads(num_threads)
            runs.append(grads(multi_scale_deformable_attn, inputs,
                              grad_output))
    finally:
        torch.set_num_threads(threads)
    for name, *results in zip(('value', 'locations', 'weights'), *runs):
        assert all(torch.equal(results[0], r) for r in results[1:]), name


@needs_kernel
def test_dispatcher_uses_kernel_on_cpu():
    value, spatial_shapes, level_start_index, locations, weights = (
        make_inputs(SHAPES))
    value.requires_grad_()
    # A non-contiguous view, as a layer's reshapes may hand over.
    locations_t = locations.transpose(1, 2).contiguous().transpose(1, 2)
    out = multi_scale_deformable_attn(value, spatial_shapes,
                                      level_start_index, locations_t, weights)
    assert type(out.grad_fn).__name__ == (
        'MultiScaleDeformableAttnCPUFunctionBackward')
    torch.testing.assert_close(
        out, ms_deform_attn_pytorch(value, spatial_shapes, locations,
                                    weights), atol=1e-5, rtol=0)


@needs_kernel
def test_dispatcher_computes_bfloat16_in_float32():
    inputs = list(make_inputs(SHAPES))
    expected = multi_scale_deformable_attn(*inputs)
    inputs[0] = inputs[0].bfloat16()
    out = multi_scale_deformable_attn(*inputs)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=3e-2, rtol=3e-2)


@needs_kernel
@pytest.mark.parametrize('shift,message', [(1, 'does not fit'),
                                           (-1, 'overlap')])
def test_kernel_rejects_levels_not_tiling_value(shift, message):
    value, spatial_shapes, level_start_index, locations, weights = (
        make_inputs(SHAPES))
    level_start_index[-1] += shift  # past the end, or into level L-2
    with pytest.raises(RuntimeError, match=message):
        multi_scale_deformable_attn(value, spatial_shapes, level_start_index,
                                    locations, weights)


def test_dispatcher_falls_back_to_reference_once_warned(monkeypatch):
    messages = []
    monkeypatch.setattr(ms_deform_attn_func, '_C', None)
    monkeypatch.setattr(ms_deform_attn_func, '_warned_missing_kernel', False)
    monkeypatch.setattr(ms_deform_attn_func, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    inputs = make_inputs(SHAPES)
    out = multi_scale_deformable_attn(*inputs)
    multi_scale_deformable_attn(*inputs)
    assert torch.equal(out, reference(*inputs))
    assert len(messages) == 1 and 'pip install' in messages[0]
