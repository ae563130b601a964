"""Speed paths of convtool.network, each against a reference.

``ops.pool_planes`` (every plane of a stack in one pooling call) against a
float64 numpy loop over windows and against pooling plane by plane; the plan
a Net keeps per image shape against a fresh run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convtool.network.ops import pool_planes
from convtool.pooling import pool


def reference(x, mode, f, s, pads, ceil, pad_value):
    """Window by window in float64: padding holds pad_value, a ceil-mode window
    past the padded edge reads only what lies inside it (avg divides by that)."""
    top, bottom, left, right = pads
    c, h, w = x.shape
    hp, wp = h + top + bottom, w + left + right

    def n_out(n, before, size):
        span = size - f
        if not ceil:
            return span // s + 1
        out = -(-span // s) + 1
        return out - 1 if (out - 1) * s >= n + before else out

    oh, ow = n_out(h, top, hp), n_out(w, left, wp)
    default = {"max": -np.inf, "min": np.inf, "avg": 0.0}[mode]
    padded = np.full((c, hp, wp), default if pad_value is None else pad_value, np.float64)
    padded[:, top : top + h, left : left + w] = x
    out = np.empty((c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = padded[:, i * s : min(i * s + f, hp), j * s : min(j * s + f, wp)]
            flat = win.reshape(c, -1)
            out[:, i, j] = {"max": flat.max, "min": flat.min, "avg": flat.mean}[mode](axis=1)
    return out


@settings(max_examples=60, deadline=None)
@given(
    c=st.integers(1, 4),
    h=st.integers(1, 13),
    w=st.integers(1, 13),
    f=st.integers(1, 4),
    s=st.integers(1, 3),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    ceil=st.booleans(),
    mode=st.sampled_from(["max", "min", "avg"]),
    pad_value=st.sampled_from([None, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_pool_planes_matches_window_loop(c, h, w, f, s, pads, ceil, mode, pad_value, seed):
    if max(pads) > f // 2 or h + pads[0] + pads[1] < f or w + pads[2] + pads[3] < f:
        return
    x = np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)
    got = pool_planes(x, mode, f, s, pads, ceil, pad_value)
    want = reference(x.astype(np.float64), mode, f, s, pads, ceil, pad_value)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pool_planes_is_pool_per_plane_on_a_photo(astronaut):
    x = np.ascontiguousarray(np.moveaxis(astronaut[:57, :62], -1, 0), dtype=np.float32)
    for mode, f, s, p, ceil in [("max", 2, 2, 0, False), ("max", 3, 2, 1, True),
                                ("avg", 3, 2, 1, True), ("min", 2, 1, 0, False)]:  # fmt: skip
        kw = {"padding": p, "pad": "constant"} if p else {}
        want = np.stack([pool(plane, mode, size=f, stride=s, ceil=ceil, **kw) for plane in x])
        got = pool_planes(x, mode, f, s, (p,) * 4, ceil)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    assert pool_planes(x, "lp", 2, 2) is None


def test_a_net_plans_once_per_image_shape_and_forgets_with_the_net():
    import gc
    import sys

    from convtool.network import feature_maps, load_net

    walk = sys.modules["convtool.network.walk"]
    net = load_net("conv(random:4,size=3) relu pool(max,2)")
    img = np.random.default_rng(0).random((20, 22)).astype(np.float32)
    first, again = feature_maps(img, net), feature_maps(img, net)
    assert [layer for layer, _ in first] == [layer for layer, _ in again]
    assert first[0][0] is again[0][0]  # the plan and its drawn weights are kept
    for (_, a), (_, b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = feature_maps(img[:18], net)  # another shape: planned for it
    assert other[0][1].shape == (4, 16, 20) and other[0][0] is not first[0][0]
    key = id(net)
    assert set(walk._PLANS[key]) == {(1, 20, 22), (1, 18, 22)}
    feature_maps(img[:, :19], net)  # a third shape: the oldest plan goes
    assert set(walk._PLANS[key]) == {(1, 18, 22), (1, 20, 19)}
    del net, first, again, other
    gc.collect()
    assert key not in walk._PLANS


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(0, 5),
    k=st.integers(1, 40),
    n=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_small_matmul_is_the_matrix_product(m, k, n, seed):
    """m or n of 0: that operand is a vector, as numpy's matmul takes it."""
    from convtool.network.ops import matmul

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k) if m else (k,)).astype(np.float32)
    b = rng.standard_normal((k, n) if n else (k,)).astype(np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    got = np.asarray(matmul(a, b))
    assert got.shape == np.shape(want) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))


def test_matmul_above_the_small_size_and_transposed_views():
    from convtool.network.ops import SMALL_PRODUCT, matmul

    rng = np.random.default_rng(3)
    w = rng.standard_normal((1000, 512)).astype(np.float32)
    x = rng.standard_normal((1, 512)).astype(np.float32)
    np.testing.assert_allclose(matmul(x, w.T), x.astype(np.float64) @ w.T, rtol=1e-4, atol=1e-4)
    big = rng.standard_normal((SMALL_PRODUCT // 4096 + 1, 64)).astype(np.float32)  # > SMALL
    want = big.astype(np.float64) @ big[:64].T.astype(np.float64)
    np.testing.assert_allclose(matmul(big, big[:64].T), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 5), (64, 100, 101), (2, 600, 601)])
def test_elementwise_split_over_threads_equals_numpy(shape):
    """ReLU and residual sums of large maps run in parts on the compute threads."""
    import numba  # noqa: F401  (loaded: the parts go to the team)

    from convtool.network.ops import ELEMENTWISE_SPLIT, elementwise
    from convtool.parallel import threads

    rng = np.random.default_rng(len(shape))
    a = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape).astype(np.float32)
    with threads(2):
        for got, want in [
            (elementwise(np.maximum, a, 0.0), np.maximum(a, 0)),
            (elementwise(np.add, a, b), a + b),
            (elementwise(np.add, a[..., ::-1], b), a[..., ::-1] + b),  # a strided view
            (elementwise(np.add, a, b[..., :1]), a + b[..., :1]),  # broadcast: numpy's own
        ]:
            assert got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
    assert (a.size >= ELEMENTWISE_SPLIT) == (len(shape) == 3)  # the maps are split, not (3, 5)


@settings(max_examples=60, deadline=None)
@given(
    c=st.integers(1, 4),
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    pads=st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 1), st.integers(0, 1)),
    ceil=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_max_3x3_s2_planes_equals_pool_planes(c, h, w, pads, ceil, seed):
    """The stem's 3x3/2 max pool read in place equals the padded-copy path."""
    import numba  # noqa: F401  (loaded: the compiled path is taken)

    from convtool.network.ops import max_3x3_s2_planes, pool_planes

    x = np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)
    want = pool_planes(x, "max", 3, 2, pads, ceil)
    got = max_3x3_s2_planes(x, pads, ceil)
    if want is None:
        assert got is None or min(h + pads[0] + pads[1], w + pads[2] + pads[3]) < 3
        return
    np.testing.assert_array_equal(got, want)
