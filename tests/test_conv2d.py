# ruff: noqa: E501  (reference loops and hypothesis signatures read best on one line)
"""conv2d (PyTorch conv2d semantics) against a plain numpy reference.

The reference pads with numpy.pad and sums shifted, strided slices of the
padded input tap by tap in float64: it shares nothing with convtool's im2col,
filtering or Winograd paths. Cases cover per-axis stride and dilation,
asymmetric padding in every pad mode, groups and depthwise, 1x1 and
non-square kernels, odd sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convtool.conv2d import conv2d
from convtool.errors import UsageError
from convtool.modes import NUMPY_PAD_MODE


def ref_conv2d(x, w, b=None, stride=(1, 1), dilation=(1, 1), groups=1, padding=(0, 0, 0, 0),
               pad_mode="constant", pad_value=0.0):  # fmt: skip
    """torch.nn.functional.conv2d on an input padded by numpy.pad, in float64."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    (sh, sw), (dh, dw) = stride, dilation
    top, bottom, left, right = padding
    widths = ((0, 0), (top, bottom), (left, right))
    if pad_mode == "constant":
        x = np.pad(x, widths, constant_values=pad_value)
    else:
        x = np.pad(x, widths, mode=NUMPY_PAD_MODE[pad_mode])
    c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (wd - dw * (kw - 1) - 1) // sw + 1
    mg = m // groups
    out = np.zeros((m, oh, ow))
    for o in range(m):
        g = o // mg
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    win = x[g * cg + ci, i * dh :, j * dw :][
                        : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw
                    ]
                    out[o] += w[o, ci, i, j] * win
        if b is not None:
            out[o] += b[o]
    return out


def check(got, want):
    """float32 agreement: within 1e-4 of the largest value (as the issue asks)."""
    assert got.shape == want.shape
    assert got.dtype == np.float32
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    assert err <= 1e-4 * scale, f"max error {err:.3g} vs scale {scale:.3g}"


@pytest.mark.parametrize("method", ["auto", "matmul", "bank", "gemm"])
@pytest.mark.parametrize(
    "stride,dilation,padding",
    [
        ((1, 2), (1, 1), (0, 0, 0, 0)),
        ((2, 1), (2, 1), (1, 0, 2, 1)),
        (3, (1, 3), (2, 2, 0, 3)),
        ((2, 3), 2, 1),
    ],
)
def test_per_axis_stride_and_dilation(method, stride, dilation, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 13, 17)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    pads = padding if isinstance(padding, tuple) else (padding,) * 4
    got = conv2d(
        x, w, b, stride=stride, dilation=dilation, groups=2, padding=padding, method=method
    )
    check(got, ref_conv2d(x, w, b, pair(stride), pair(dilation), 2, pads))


@settings(max_examples=40, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 3]),
    cg=st.integers(1, 4),
    mg=st.integers(1, 3),
    kh=st.sampled_from([1, 2, 3, 3, 4, 5]),
    kw=st.sampled_from([1, 2, 3, 3, 4, 5]),
    sh=st.sampled_from([1, 1, 2, 3]),
    sw=st.sampled_from([1, 1, 2, 3]),
    dh=st.sampled_from([1, 1, 2]),
    dw=st.sampled_from([1, 1, 2]),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    pad_mode=st.sampled_from(["constant", "replicate", "reflect", "symmetric", "wrap"]),
    h=st.integers(5, 15),
    w=st.integers(5, 15),
    seed=st.integers(0, 10_000),
)
def test_random_shapes_every_pad_mode(groups, cg, mg, kh, kw, sh, sw, dh, dw, pads, pad_mode, h, w, seed):  # fmt: skip
    top, bottom, left, right = pads
    if h + top + bottom < dh * (kh - 1) + 1 or w + left + right < dw * (kw - 1) + 1:
        return
    if pad_mode == "reflect" and max(pads) >= min(h, w):
        pad_mode = "symmetric"
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cg * groups, h, w)).astype(np.float32)
    wt = rng.standard_normal((mg * groups, cg, kh, kw)).astype(np.float32)
    b = rng.standard_normal(mg * groups).astype(np.float32)
    want = ref_conv2d(x, wt, b, (sh, sw), (dh, dw), groups, pads, pad_mode, 0.5)
    methods = ["auto", "matmul", "gemm"]
    if (kh, kw, sh, sw, dh, dw) == (3, 3, 1, 1, 1, 1):
        methods.append("winograd")
    for method in methods:
        got = conv2d(x, wt, b, stride=(sh, sw), dilation=(dh, dw), groups=groups, padding=pads,
                     pad_mode=pad_mode, pad_value=0.5, method=method)  # fmt: skip
        check(got, want)


def test_pad_mode_aliases_and_value():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    w = np.ones((1, 1, 3, 3), np.float32)
    got = conv2d(x, w, padding=1, pad_mode="edge")
    check(got, ref_conv2d(x, w, padding=(1,) * 4, pad_mode="replicate"))
    got = conv2d(x, w, padding=(1, 0, 0, 2), pad_value=-1.0)
    check(got, ref_conv2d(x, w, padding=(1, 0, 0, 2), pad_value=-1.0))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"stride": 0}, "stride"),
        ({"stride": (1, 2, 3)}, "stride"),
        ({"dilation": (1, 0)}, "dilation"),
        ({"padding": -1}, "padding"),
        ({"padding": (1, 1)}, "padding"),
        ({"groups": 2}, "groups"),
        ({"bias": np.zeros(3, np.float32)}, "bias"),
        ({"pad_mode": "bogus"}, "pad mode"),
        ({"pad_mode": "valid", "padding": 1}, "valid"),
        ({"dilation": 9}, "reach"),
        ({"method": "fast"}, "method"),
    ],
)
def test_bad_arguments_are_usage_errors(kwargs, match):
    x = np.zeros((3, 8, 8), np.float32)
    w = np.zeros((2, 3, 3, 3), np.float32)
    kwargs = dict(kwargs)
    b = kwargs.pop("bias", None)
    with pytest.raises(UsageError, match=match):
        conv2d(x, w, b, **kwargs)


# ------------------------------------------------------------------ fast paths


@settings(max_examples=30, deadline=None)
@given(
    c=st.integers(1, 40),
    m=st.integers(1, 21),
    h=st.integers(1, 37),
    w=st.integers(1, 37),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    pad_mode=st.sampled_from(["constant", "replicate", "reflect", "symmetric", "wrap"]),
    groups=st.sampled_from([1, 1, 2]),
    bias=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_winograd_matches_reference(c, m, h, w, pads, pad_mode, groups, bias, seed):
    """F(4x4, 3x3): any size (partial edge tiles), channel counts not multiples of 4."""
    top, bottom, left, right = pads
    if h + top + bottom < 3 or w + left + right < 3:
        return
    if pad_mode == "reflect" and max(pads) >= min(h, w):
        pad_mode = "symmetric"
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((c * groups, h, w)) * 50).astype(np.float32)
    wt = rng.standard_normal((m * groups, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(m * groups).astype(np.float32) if bias else None
    want = ref_conv2d(x, wt, b, groups=groups, padding=pads, pad_mode=pad_mode, pad_value=-2.0)
    got = conv2d(x, wt, b, groups=groups, padding=pads, pad_mode=pad_mode, pad_value=-2.0,
                 method="winograd")  # fmt: skip
    check(got, want)


@settings(max_examples=30, deadline=None)
@given(
    c=st.integers(1, 24),
    m=st.integers(1, 21),
    k=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    pad=st.integers(0, 3),
    groups=st.sampled_from([1, 1, 3]),
    seed=st.integers(0, 10_000),
)
def test_gemm_matches_reference(c, m, k, s, d, h, w, pad, groups, seed):
    """im2col + product on Numba's threads, for any kernel, stride and dilation."""
    if min(h, w) + 2 * pad < max(d[0] * (k[0] - 1), d[1] * (k[1] - 1)) + 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c * groups, h, w)).astype(np.float32)
    wt = rng.standard_normal((m * groups, c, *k)).astype(np.float32)
    b = rng.standard_normal(m * groups).astype(np.float32)
    want = ref_conv2d(x, wt, b, s, d, groups, (pad,) * 4)
    got = conv2d(x, wt, b, stride=s, dilation=d, groups=groups, padding=pad, method="gemm")
    check(got, want)


def test_gemm_in_row_blocks_and_1x1_without_copy(monkeypatch):
    """A patch matrix over budget is built in blocks of output rows; 1x1 reads the input."""
    import convtool.conv2d as mod

    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 23, 19)).astype(np.float32)
    w3 = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    w1 = rng.standard_normal((6, 5, 1, 1)).astype(np.float32)
    real = mod._conv_gemm
    monkeypatch.setattr(
        mod, "_conv_gemm", lambda *a, **kw: real(*a, **dict(kw, budget=12 * 25 * 4 * 19 * 4))
    )
    check(conv2d(x, w3, padding=1, method="gemm"), ref_conv2d(x, w3, padding=(1,) * 4))
    check(conv2d(x, w1, method="gemm"), ref_conv2d(x, w1))
    # 300 taps: the dot-product pair (im2row), in blocks of rows; 6 output channels
    # (one group of four and two left over), 19 pixels a row (four and three left over)
    x = rng.standard_normal((12, 23, 19)).astype(np.float32)
    w5 = rng.standard_normal((6, 12, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    want = ref_conv2d(x, w5, b, stride=(2, 1), padding=(2, 2, 2, 2))
    check(conv2d(x, w5, b, stride=(2, 1), padding=2, method="gemm"), want)


@pytest.mark.parametrize(
    "k, s, d, wd, pad",
    [
        ((7, 7), (2, 2), (1, 1), 133, 3),
        ((3, 5), (1, 3), (2, 1), 200, 1),
        ((1, 1), (1, 1), (1, 1), 70, 1),
        ((2, 3), (3, 1), (1, 2), 70, 0),
    ],
)
def test_gemm_long_rows_are_copied_as_slices(monkeypatch, k, s, d, wd, pad):
    """Output rows of 64+ pixels: im2col copies input rows as (strided) slices, in row blocks too."""
    import convtool.conv2d as mod

    rng = np.random.default_rng(sum(k) + wd)
    x = rng.standard_normal((3, 11, wd)).astype(np.float32)
    w = rng.standard_normal((5, 3, *k)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    want = ref_conv2d(x, w, b, s, d, 1, (pad,) * 4)
    assert want.shape[2] >= 64
    check(conv2d(x, w, b, stride=s, dilation=d, padding=pad, method="gemm"), want)
    real = mod._conv_gemm  # two output rows per block: blocks start mid-image
    monkeypatch.setattr(
        mod,
        "_conv_gemm",
        lambda *a, **kw: real(*a, **dict(kw, budget=2 * 4 * 3 * k[0] * k[1] * want.shape[2])),
    )
    check(conv2d(x, w, b, stride=s, dilation=d, padding=pad, method="gemm"), want)


def test_gemm_dot_sums_long_rows_in_chunks():
    """Patch rows over 1 MiB: the dot products run over chunks of taps, later ones added on."""
    from convtool.core.conv_gemm import DOT_CHUNK, DOT_L2_FLOATS

    rng = np.random.default_rng(5)
    for c, k in ((75, 3), (2 * DOT_CHUNK // 9 + 1, 3), (40, 5)):  # 2, 3 and 2 chunks
        assert c * k * k > DOT_CHUNK and 20 * 21 * c * k * k > DOT_L2_FLOATS
        x = rng.standard_normal((c, 20, 21)).astype(np.float32)
        w = rng.standard_normal((6, c, k, k)).astype(np.float32)  # four channels + two
        b = rng.standard_normal(6).astype(np.float32)
        pad = k // 2  # 20x21 outputs: 21 pixels a row, 4 x 5 + 1
        want = ref_conv2d(x, w, b, padding=(pad,) * 4)
        check(conv2d(x, w, b, padding=pad, method="gemm"), want)


def test_auto_picks_the_fast_paths():
    """VGG-like 3x3 layers go to Winograd, strided and 1x1 layers to the Numba product."""
    import convtool.conv2d as mod

    assert mod._winograd_pays(64, 64, 56, 56)
    assert not mod._winograd_pays(3, 64, 224, 224)  # first layer: three channels
    assert mod._winograd_pays(128, 128, 28, 28)  # one block, channels split over threads
    assert not mod._winograd_pays(256, 256, 14, 14)  # the weight transform costs too much
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 40, 40)).astype(np.float32)
    for shape, kw in [((16, 16, 3, 3), {"padding": 1}), ((24, 16, 1, 1), {"stride": 2})]:
        wt = rng.standard_normal(shape).astype(np.float32)
        want = ref_conv2d(
            x, wt, stride=(kw.get("stride", 1),) * 2, padding=(kw.get("padding", 0),) * 4
        )
        check(conv2d(x, wt, **kw), want)


def test_winograd_refuses_other_shapes():
    x = np.zeros((4, 8, 8), np.float32)
    with pytest.raises(UsageError, match="winograd"):
        conv2d(x, np.zeros((4, 4, 3, 3), np.float32), stride=2, method="winograd")
    with pytest.raises(UsageError, match="winograd"):
        conv2d(x, np.zeros((4, 4, 5, 5), np.float32), method="winograd")


def test_winograd_weight_transform_is_kept_per_array_and_redone_on_change():
    """The transform is reused for the same weight array, redone when its values
    change in place or for another array, and dropped with the array."""
    import gc

    import convtool.conv2d as mod

    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 13, 11)).astype(np.float32)
    wt = rng.standard_normal((10, 3, 3, 3)).astype(np.float32)
    for groups in (2, 2, 1):  # same array and groups: kept; other groups: redone
        w = wt if groups == 2 else wt.reshape(10, 3, 3, 3)[:, :, :, :].repeat(2, axis=1)
        got = conv2d(x, w, groups=groups, padding=1, method="winograd")
        check(got, ref_conv2d(x, w, groups=groups, padding=(1,) * 4))
    hits = [v for v in mod._WINOGRAD_CACHE.values() if v[0]() is wt]
    assert len(hits) == 1 and len(hits[0][3]) == 2
    wt[3, 1, 2, 0] += 5.0  # changed in place: must not reuse the old transform
    check(conv2d(x, wt, groups=2, padding=1, method="winograd"),
          ref_conv2d(x, wt, groups=2, padding=(1,) * 4))  # fmt: skip
    key = id(wt)
    del wt, w, hits
    gc.collect()
    assert key not in mod._WINOGRAD_CACHE
