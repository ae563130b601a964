"""convtool.pool against plain numpy loops of the textbook definitions."""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from convtool.errors import UsageError
from convtool.pooling import pool

# numpy.pad names for convtool's pad modes, written out here (not imported) on purpose
NP_PAD = {
    "constant": "constant",
    "replicate": "edge",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "wrap": "wrap",
}
PAD_MODES = list(NP_PAD)


def torch_out_size(n: int, f: int, s: int, p: int, ceil: bool) -> int:
    """PyTorch's pooling_output_shape, transcribed."""
    if ceil:
        out = (n + 2 * p - f + s - 1) // s + 1
        if (out - 1) * s >= n + p:
            out -= 1
        return out
    return (n + 2 * p - f) // s + 1


@contextmanager
def pool_path(numpy: bool):
    """Force the numpy path (True) or the compiled kernels (False) of max/min/avg/lp."""
    from convtool import rentbuy

    saved = rentbuy.prefer_numpy
    rentbuy.prefer_numpy = lambda cost, kernels: numpy
    try:
        yield
    finally:
        rentbuy.prefer_numpy = saved


def ref_pool(x, mode, f, s=None, p=0, pad="valid", ceil=False, pad_value=None, lp=2.0):
    """Loop over windows of the padded 2-D image; windows clipped to [-P, n+P)."""
    s = f if s is None else s
    x = np.asarray(x, dtype=np.float64)
    h, w = x.shape
    if pad_value is None:
        pad_value = {"max": -np.inf, "min": np.inf}.get(mode, 0.0)
    if p:
        if pad == "constant":
            xp = np.pad(x, p, mode="constant", constant_values=pad_value)
        else:
            xp = np.pad(x, p, mode=NP_PAD[pad])
    else:
        xp = x
    oh, ow = torch_out_size(h, f, s, p, ceil), torch_out_size(w, f, s, p, ceil)
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[i * s : min(i * s + f, h + 2 * p), j * s : min(j * s + f, w + 2 * p)]
            if mode == "max":
                out[i, j] = win.max()
            elif mode == "min":
                out[i, j] = win.min()
            elif mode == "avg":
                out[i, j] = win.sum() / win.size
            elif mode == "lp":
                out[i, j] = (np.sum(np.abs(win) ** lp) * f * f / win.size) ** (1 / lp)
            elif mode == "topleft":
                out[i, j] = win[0, 0]
    return out


def torch_avg_rule(x, f, s, p, ceil):
    """avg_pool2d(count_include_pad=True), transcribed from PyTorch's C++ loop."""
    h, w = x.shape
    oh, ow = torch_out_size(h, f, s, p, ceil), torch_out_size(w, f, s, p, ceil)
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s - p, j * s - p
            he, we = min(hs + f, h + p), min(ws + f, w + p)
            pool_size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            out[i, j] = x[hs:he, ws:we].sum() / pool_size
    return out


def torch_max_rule(x, f, s, p, ceil):
    """max_pool2d: the padding is -inf, so only image samples count."""
    h, w = x.shape
    oh, ow = torch_out_size(h, f, s, p, ceil), torch_out_size(w, f, s, p, ceil)
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = max(i * s - p, 0), max(j * s - p, 0)
            he, we = min(i * s - p + f, h), min(j * s - p + f, w)
            out[i, j] = x[hs:he, ws:we].max()
    return out


def rand_image(rng, h, w, c=None):
    shape = (h, w) if c is None else (h, w, c)
    return rng.uniform(-100, 100, shape).astype(np.float32)


# ---------------------------------------------------------------- sizes and values


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 13),
    w=st.integers(1, 13),
    f=st.integers(1, 5),
    s=st.integers(1, 4),
    p_frac=st.floats(0, 1),
    ceil=st.booleans(),
    pad=st.sampled_from(PAD_MODES + ["valid"]),
    mode=st.sampled_from(["max", "avg", "min", "lp", "topleft"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sizes_and_values_match_reference(h, w, f, s, p_frac, ceil, pad, mode, seed):
    p = 0 if pad == "valid" else int(p_frac * (f // 2) + 0.5)
    rng = np.random.default_rng(seed)
    x = rand_image(rng, h, w)
    if mode == "lp":
        x = np.abs(x)
    if min(h, w) + 2 * p < f:
        with pytest.raises(UsageError, match="larger than the image"):
            pool(x, mode, size=f, stride=s, pad=pad, ceil=ceil, padding=p)
        return
    want = ref_pool(x, mode, f, s, p, pad, ceil)
    for numpy_path in (False, True):
        with pool_path(numpy_path):
            got = pool(x, mode, size=f, stride=s, pad=pad, ceil=ceil, padding=p)
        assert got.dtype == np.float32
        assert got.shape == (torch_out_size(h, f, s, p, ceil), torch_out_size(w, f, s, p, ceil))
        if not ceil:  # the formula W2 = floor((W1 + 2P - F) / S) + 1
            assert got.shape == ((h + 2 * p - f) // s + 1, (w + 2 * p - f) // s + 1)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-3)


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(2, 12),
    w=st.integers(2, 12),
    f=st.integers(1, 5),
    s=st.integers(1, 4),
    p_frac=st.floats(0, 1),
    ceil=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_constant_padding_is_pytorch_rule(h, w, f, s, p_frac, ceil, seed):
    """avg divides by the window clipped to the padded border; max ignores the padding."""
    p = int(p_frac * (f // 2) + 0.5)
    if min(h, w) + 2 * p < f:
        return
    x = rand_image(np.random.default_rng(seed), h, w)
    kw = dict(size=f, stride=s, pad="zero", ceil=ceil, padding=p)
    for numpy_path in (False, True):
        with pool_path(numpy_path):
            avg, mx = pool(x, "avg", **kw), pool(x, "max", **kw)
        np.testing.assert_allclose(avg, torch_avg_rule(x, f, s, p, ceil), atol=1e-3)
        np.testing.assert_array_equal(mx, torch_max_rule(x, f, s, p, ceil))


def test_ceil_mode_known_case():
    # 5 wide, window 2, stride 2: floor -> 2, ceil -> 3 with a last 1-wide window
    x = np.arange(25, dtype=np.float32).reshape(5, 5)
    got = pool(x, "avg", ceil=True)
    assert got.shape == (3, 3)
    assert got[2, 2] == 24.0  # only the corner sample, divided by 1
    assert got[0, 2] == (4 + 9) / 2
    # with padding 1 the window starting at the right padding is dropped
    assert pool(x, "max", size=2, stride=2, pad="constant", padding=1, ceil=True).shape == (3, 3)


def test_default_padding_is_half_window():
    x = np.ones((7, 9), np.float32)
    assert pool(x, "max", size=3, stride=2, pad="reflect").shape == (4, 5)  # P = 1
    assert pool(x, "max", size=3, stride=2).shape == (3, 4)  # valid: P = 0
    assert pool(x, "max", size=3, stride=2, pad="reflect", padding=0).shape == (3, 4)


# ---------------------------------------------------------------- real images


@pytest.mark.parametrize("mode", ["max", "avg", "min", "lp", "topleft"])
@pytest.mark.parametrize("f,s", [(2, 2), (3, 2), (3, 3), (5, 1), (4, 3)])
def test_camera_windowed_modes(camera, mode, f, s):
    got = pool(camera, mode, size=f, stride=s)
    win = sliding_window_view(camera.astype(np.float64), (f, f))[::s, ::s]
    want = {
        "max": lambda: win.max(axis=(-1, -2)),
        "min": lambda: win.min(axis=(-1, -2)),
        "avg": lambda: win.mean(axis=(-1, -2)),
        "lp": lambda: np.sqrt((win**2).sum(axis=(-1, -2))),
        "topleft": lambda: win[..., 0, 0],
    }[mode]()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("pad", PAD_MODES)
@pytest.mark.parametrize("mode", ["max", "avg", "min", "lp", "topleft"])
def test_every_pad_mode_on_a_real_crop(camera, pad, mode):
    crop = camera[100:141, 200:237]  # odd sizes, real texture
    for f, s in ((3, 2), (2, 2), (5, 3), (5, 1), (4, 2)):
        for ceil in (False, True):
            got = pool(crop, mode, size=f, stride=s, pad=pad, ceil=ceil)
            want = ref_pool(crop, mode, f, s, f // 2, pad, ceil)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_colour_channels_are_independent(astronaut):
    got = pool(astronaut, "max", size=3, stride=2, pad="symmetric")
    assert got.shape == (256, 256, 3)
    for c in range(3):
        np.testing.assert_array_equal(
            got[..., c], pool(astronaut[..., c], "max", size=3, stride=2, pad="symmetric")
        )
        want = ref_pool(astronaut[:64, :64, c], "avg", 2, 2)
        np.testing.assert_allclose(pool(astronaut[:64, :64], "avg")[..., c], want, rtol=1e-6)


def test_matches_opencv(camera):
    cv2 = pytest.importorskip("cv2")
    # 3x3/s2 max = dilate with a 3x3 box (anchored at its centre), then every 2nd sample
    dil = cv2.dilate(camera, np.ones((3, 3), np.uint8))
    np.testing.assert_array_equal(pool(camera, "max", size=3, stride=2), dil[1:-1:2, 1:-1:2])
    area = cv2.resize(camera, (256, 256), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(pool(camera, "avg"), area, rtol=1e-6)


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535)])
def test_integer_dtypes_keep_their_scale(dtype, top):
    rng = np.random.default_rng(5)
    x = rng.integers(0, top + 1, (33, 34, 3)).astype(dtype)
    x[0, 0] = top
    for mode in ("max", "avg", "min", "topleft"):
        got = pool(x, mode, size=3, stride=2)
        assert got.dtype == np.float32
        want = np.stack([ref_pool(x[..., c], mode, 3, 2) for c in range(3)], axis=-1)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert pool(x, "max")[0, 0, 0] == top


def test_lp_is_a_sum_not_a_mean(camera):
    crop = camera[:40, :40]
    np.testing.assert_allclose(pool(crop, "lp", p=1), 4 * pool(crop, "avg"), rtol=1e-5)
    p3 = pool(crop, "lp", p=3, size=3, stride=1)
    np.testing.assert_allclose(p3, ref_pool(crop, "lp", 3, 1, lp=3.0), rtol=1e-4)
    for q in (0.5, 12.0):  # float32 scaled path and the float64 path for p > 8
        for pad, ceil in (("valid", True), ("constant", False), ("reflect", True)):
            got = pool(crop[:, :37], "lp", p=q, size=3, stride=2, pad=pad, ceil=ceil)
            want = ref_pool(crop[:, :37], "lp", 3, 2, 0 if pad == "valid" else 1, pad, ceil, lp=q)
            np.testing.assert_allclose(got, want, rtol=1e-4)
    dark = crop.copy()
    dark[:2, :2] = [[1, 2], [3, 0]]  # a dark window beside bright ones: no underflow to 0
    assert pool(dark, "lp", p=60)[0, 0] == pytest.approx(3 * (1 + (2 / 3) ** 60) ** (1 / 60))
    big = pool(crop, "lp", p=60)  # large p tends to max
    np.testing.assert_allclose(big, pool(crop, "max"), rtol=0.03)


def test_aliases_and_integer_like_arguments():
    x = np.arange(36, dtype=np.float64).reshape(6, 6)
    for name in ("average", "mean", "AVG"):
        np.testing.assert_array_equal(pool(x, name), pool(x, "avg"))
    np.testing.assert_array_equal(pool(x, size=np.int64(3)), pool(x, size=3))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(size=0), "size must be"),
        (dict(size=2.5), "size must be"),
        (dict(stride=0), "stride must be"),
        (dict(size=9), "larger than the image"),
        (dict(mode="maxx"), "did you mean 'max'"),
        (dict(mode="stochastik"), "did you mean 'stochastic'"),
        (dict(mode="lp", p=0), "p must be"),
        (dict(mode="lp", p=-1), "p must be"),
        (dict(mode="lp", p="x"), "p must be"),
        (dict(mode="max", p=2), "only by lp"),
        (dict(mode="avg", eval=True), "only by stochastic"),
        (dict(mode="max", ratio=1.5), "only by fractional"),
        (dict(mode="max", bogus=1), "unknown option 'bogus'"),
        (dict(mode="fractional", ratio=1.0), "ratio must be"),
        (dict(mode="fractional", ratio=0.5), "ratio must be"),
        (dict(mode="fractional", output_size=8), "smaller than the input"),
        (dict(mode="fractional", output_size=(3, 9)), "smaller than the input"),
        (dict(mode="fractional", ratio=2, output_size=3), "not both"),
        (dict(mode="fractional", size=3), "size does not apply"),
        (dict(mode="fractional", stride=1), "stride does not apply"),
        (dict(mode="fractional", pad="reflect"), "never pads"),
        (dict(mode="fractional", padding=1), "never pads"),
        (dict(mode="fractional", sequence="chaos"), "unknown fractional sequence"),
        (dict(pad="reflect", size=3, padding=2), "more than half the window"),
        (dict(padding=1), "needs a pad mode"),
        (dict(pad="reflect", pad_value=3), "pad_value applies only"),
        (dict(pad="nowhere"), "unknown pad mode"),
        (dict(seed=1), "seed is used only"),
        (dict(mode="stochastic", seed=-1), "seed must be"),
        (dict(mode="fractional", seed="x"), "seed must be"),
        (dict(mode="stochastic", eval=True, seed=1), "seed has no effect"),
    ],
)
def test_usage_errors(kwargs, match):
    x = np.ones((8, 8), np.float32)
    with pytest.raises(UsageError, match=match) as info:
        pool(x, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_images():
    with pytest.raises(UsageError, match="image"):
        pool(np.ones((2, 2, 2, 2)))
    with pytest.raises(UsageError, match="dtype"):
        pool(np.ones((4, 4), complex))
    with pytest.raises(UsageError, match="non-empty"):
        pool(np.ones((0, 4)))
    with pytest.raises(UsageError, match="non-negative"):
        pool(-np.ones((4, 4)), "stochastic", seed=0)


def test_window_bigger_than_input_each_axis():
    with pytest.raises(UsageError, match="height"):
        pool(np.ones((2, 9)), size=3)
    with pytest.raises(UsageError, match="width"):
        pool(np.ones((9, 2)), size=3)
    # padding can make it fit, as in PyTorch
    assert pool(np.ones((2, 2)), size=3, pad="zero").shape == (1, 1)


def test_lp_p_default_is_two():
    x = np.full((2, 2), 3.0)
    assert pool(x, "lp")[0, 0] == pytest.approx(6.0)
    assert math.isclose(pool(x, "lp", p=1)[0, 0], 12.0)


# ---------------------------------------------------------------- every kernel path agrees


@pytest.mark.parametrize("pad", PAD_MODES + ["valid"])
@pytest.mark.parametrize("mode,f", [("max", 2), ("avg", 2), ("max", 3), ("min", 3), ("avg", 5)])
def test_specialised_direct_and_separable_paths_agree(camera, pad, mode, f):
    """Force each kernel (specialised box + strips, direct table, separable) on the same input."""
    import convtool.core.pool as core
    from convtool.pooling import _axis

    x = np.ascontiguousarray(camera[:77, :83])
    s, p = 2, (0 if pad == "valid" else f // 2)
    for ceil in (False, True):
        with pool_path(False):
            got = pool(x, mode, size=f, stride=s, pad=pad, ceil=ceil)
        with pool_path(True):
            via_numpy = pool(x, mode, size=f, stride=s, pad=pad, ceil=ceil)
        oh, ow = got.shape
        rows = _axis(core, 77, oh, f, s, p, pad)
        cols = _axis(core, 83, ow, f, s, p, pad)
        fill = {"max": -np.inf, "min": np.inf}.get(mode, 0.0)
        op = {"max": core.OP_MAX, "min": core.OP_MIN, "avg": core.OP_SUM}[mode]
        maps = (rows.map, cols.map, fill, cols.count, f, s, p)
        direct = np.full_like(got, np.nan)
        core.reduce_table(x, direct, op, *maps, 0, oh, 0, ow, cols.lo, cols.hi)
        for band in (1, 3, oh):
            separable = np.full_like(got, np.nan)
            nbands = -(-oh // band)
            core.reduce_table_separable(x, separable, op, *maps, cols.lo, cols.hi, band, 0, nbands)
            np.testing.assert_allclose(separable, direct, rtol=1e-6)
        np.testing.assert_allclose(got, direct, rtol=1e-6)
        np.testing.assert_allclose(via_numpy, direct, rtol=1e-6)
        np.testing.assert_allclose(got, ref_pool(x, mode, f, s, p, pad, ceil), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(mode="max"),
        dict(mode="avg", pad="zero", ceil=True, size=3, stride=2),
        dict(mode="max", size=3, stride=2, pad="reflect"),
        dict(mode="min", size=5, stride=1, pad="wrap"),
        dict(mode="lp", p=3, size=4, stride=3),
        dict(mode="stochastic", seed=4),
        dict(mode="fractional", seed=4, overlapping=True),
    ],
)
def test_thread_pool_gives_the_serial_result(astronaut, monkeypatch, kwargs):
    """Small images run on one thread; force the parallel kernels and compare."""
    import convtool.pooling as pooling

    with pool_path(False):
        serial = pool(astronaut, **kwargs)
        monkeypatch.setattr(pooling, "SERIAL_BELOW", 0)
        np.testing.assert_array_equal(pool(astronaut, **kwargs), serial)
