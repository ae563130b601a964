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


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "c, m, k, s, d, size, pads, groups",
    [
        (3, 1, (3, 3), (1, 1), (1, 1), (9, 10), (1, 1, 1, 1), 1),  # one channel: a tile of one row
        (5, "mr-1", (3, 3), (1, 1), (1, 1), (17, 23), (1, 2, 0, 3), 1),  # asymmetric pads
        (4, "mr+1", (7, 7), (2, 2), (1, 1), (40, 37), (3, 3, 3, 3), 1),  # a stem: 4 phases
        (60, "2mr+3", (5, 5), (1, 1), (1, 1), (9, 8), (2, 2, 2, 2), 1),  # 1500 taps: 6 runs of KC
        (6, "mr", (3, 5), (3, 2), (2, 1), (31, 29), (0, 1, 2, 0), 2),  # phases of a dilated tap
        (8, "2mr", (1, 1), (1, 1), (1, 1), (7, 9), (0, 0, 0, 0), 1),  # the input read as it is
        (16, "2mr", (1, 1), (2, 2), (1, 1), (28, 28), (0, 0, 0, 0), 1),  # 1x1 stride 2
    ],
)
def test_gemm_tiles_edges_and_phases(c, m, k, s, d, size, pads, groups, threads):
    """Channel counts off the MR-row tiles, pixel counts off the NR-wide tiles, taps over
    KC, every stride phase: against the float64 reference, on one and two threads."""
    from convtool.core.conv_gemm import KC, MR
    from convtool.parallel import threads as use_threads

    m = {"mr-1": MR - 1, "mr+1": MR + 1, "2mr+3": 2 * MR + 3, "mr": MR, "2mr": 2 * MR}.get(m, m)
    rng = np.random.default_rng(c * 31 + m)
    x = rng.standard_normal((c * groups, *size)).astype(np.float32)
    w = rng.standard_normal((m * groups, c, *k)).astype(np.float32)
    b = rng.standard_normal(m * groups).astype(np.float32)
    want = ref_conv2d(x, w, b, s, d, groups, pads)
    assert c != 60 or c * k[0] * k[1] > 5 * KC  # the case meant to take several runs of taps
    with use_threads(threads):
        got = conv2d(x, w, b, stride=s, dilation=d, groups=groups, padding=pads, method="gemm")
    check(got, want)
    # a constant other than zero fills the border (the phases start from it)
    want = ref_conv2d(x, w, b, s, d, groups, pads, pad_value=1.5)
    got = conv2d(x, w, b, stride=s, dilation=d, groups=groups, padding=pads, pad_value=1.5,
                 method="gemm")  # fmt: skip
    check(got, want)


def test_gemm_whole_tiles_are_written_straight_into_the_result():
    """MR-multiple channels, no padding, NR-multiple pixels: no scratch product, no crop."""
    from convtool.core.conv_gemm import MR, NR

    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 2, NR)).astype(np.float32)
    w = rng.standard_normal((2 * MR, 5, 1, 1)).astype(np.float32)
    got = conv2d(x, w, method="gemm")
    assert got.flags.c_contiguous and got.flags.owndata
    check(got, ref_conv2d(x, w))


def test_gemm_blocks_give_every_thread_work():
    import convtool.conv2d as mod

    for panels, n_panels in [(64, 2), (32, 7), (8, 102), (1, 1), (3, 1), (200, 400)]:
        for threads in (1, 2, 4):
            for weights, inputs in [(10**7, 10**5), (10**5, 10**7)]:
                mb, nb = mod._gemm_blocks(panels, n_panels, threads, weights, inputs)
                assert 1 <= mb <= min(panels, 32) and 1 <= nb <= min(n_panels, 8)
                items = -(-panels // mb) * -(-n_panels // nb)
                assert items >= min(2 * threads, panels * n_panels)
    # ResNet-18's 7x7 layers: big weights, small input: split the channels, not the pixels
    assert mod._gemm_blocks(64, 2, 2, 9_437_184, 165_888) == (16, 2)


def test_packed_weights_are_kept_for_frozen_arrays_and_checked_for_writeable_ones():
    """A read-only weight array is packed once; a writeable one is repacked when its
    values change in place; a read-only view of a writeable array is not trusted."""
    import convtool.conv2d as mod

    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 12, 12)).astype(np.float32)
    frozen = rng.standard_normal((9, 4, 3, 3)).astype(np.float32)
    frozen.setflags(write=False)
    first = mod._packed_weights(frozen, 1)
    assert mod._packed_weights(frozen, 1) is first
    assert mod._PACKED_CACHE[id(frozen)][1] is None  # no copy kept for a frozen array
    writeable = frozen.copy()
    conv2d(x, writeable, padding=1, method="gemm")
    writeable[2, 1, 0, 0] += 3.0
    check(
        conv2d(x, writeable, padding=1, method="gemm"), ref_conv2d(x, writeable, padding=(1,) * 4)
    )
    view = writeable[:]
    view.setflags(write=False)
    assert not mod._frozen(view)
    conv2d(x, view, padding=1, method="gemm")
    writeable[5, 0, 1, 1] -= 2.0
    check(conv2d(x, view, padding=1, method="gemm"), ref_conv2d(x, writeable, padding=(1,) * 4))


def test_auto_picks_the_fast_paths():
    """Large 3x3 maps go to Winograd, small, strided and 1x1 layers to the tiled product."""
    import convtool.conv2d as mod

    assert mod._winograd_pays(64, 64, 224, 224) and mod._winograd_pays(128, 128, 112, 112)
    assert not mod._winograd_pays(3, 64, 224, 224)  # first layer: three channels
    assert not mod._winograd_pays(16, 16, 128, 128)  # few channels
    assert not mod._winograd_pays(64, 64, 56, 56) and mod._winograd_pays(256, 256, 56, 56)
    assert not mod._winograd_pays(128, 128, 28, 28)  # small maps: the tiled product
    assert not mod._winograd_pays(512, 512, 7, 7)
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


@pytest.mark.parametrize(
    "method, shape, kw",
    [
        ("gemm", (20, 8, 3, 3), {"padding": 1}),  # cropped: the ReLU written per work item
        ("gemm", (16, 8, 1, 1), {}),  # whole tiles: the product is the result
        ("gemm", (12, 4, 3, 3), {"padding": 1, "groups": 2, "stride": 2}),
        ("winograd", (16, 8, 3, 3), {"padding": 1}),
        ("bank", (4, 8, 5, 5), {"padding": 2}),
    ],
)
def test_conv2d_relu_gives_the_map_and_its_relu(method, shape, kw):
    from convtool.conv2d import conv2d_relu

    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 12, 32)).astype(np.float32)
    x[0, 3, 4] = np.nan  # NaN stays NaN in the ReLU, as np.maximum keeps it
    w = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape[0]).astype(np.float32)
    y, r = conv2d_relu(x, w, b, method=method, **kw)
    np.testing.assert_array_equal(y, conv2d(x, w, b, method=method, **kw))
    np.testing.assert_array_equal(r, np.maximum(y, 0))
    assert np.isnan(r).any() == np.isnan(y).any()
