"""convolve / filter_bank against scipy.ndimage and a plain numpy loop."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convtool.filtering as filtering
from convtool.errors import UsageError
from convtool.filtering import convolve, filter_bank
from convtool.modes import NUMPY_PAD_MODE, SCIPY_MODE

PADDED = tuple(SCIPY_MODE)  # constant replicate reflect symmetric wrap


def reference(img, w, *, pad="reflect", cval=0.0, stride=1, dilation=1, correlate=False):
    """Textbook loop on an np.pad-ed float64 array (one channel)."""
    img = np.asarray(img, np.float64)
    w = np.asarray(w, np.float64)
    kh, kw = w.shape
    if correlate:
        wc, top, left = w, kh // 2, kw // 2
    else:  # rotate 180 degrees about tap (K//2, L//2)
        wc, top, left = w[::-1, ::-1], kh - 1 - kh // 2, kw - 1 - kw // 2
    d = dilation
    if pad == "valid":
        p = img
    else:
        pads = ((d * top, d * (kh - 1 - top)), (d * left, d * (kw - 1 - left)))
        kwargs = {"constant_values": cval} if pad == "constant" else {}
        p = np.pad(img, pads, mode=NUMPY_PAD_MODE[pad], **kwargs)
    oh, ow = p.shape[0] - d * (kh - 1), p.shape[1] - d * (kw - 1)
    out = np.zeros((oh, ow))
    for a in range(kh):
        for b in range(kw):
            out += wc[a, b] * p[d * a : d * a + oh, d * b : d * b + ow]
    return out[::stride, ::stride]


def reference_nd(img, w, **kw):
    img = np.asarray(img)
    if img.ndim == 2:
        return reference(img, w, **kw)
    return np.stack([reference(img[..., c], w, **kw) for c in range(img.shape[2])], axis=-1)


def scipy_ref(img, w, pad, cval=0.0, correlate=False):
    f = ndi.correlate if correlate else ndi.convolve
    img = np.asarray(img, np.float64)
    w = np.asarray(w, np.float64)
    if img.ndim == 3:
        return np.stack(
            [f(img[..., c], w, mode=SCIPY_MODE[pad], cval=cval) for c in range(img.shape[2])],
            axis=-1,
        )
    return f(img, w, mode=SCIPY_MODE[pad], cval=cval)


def assert_close(got, ref, rtol=1e-4):
    assert got.dtype == np.float32
    assert got.shape == ref.shape
    scale = max(1.0, float(np.nanmax(np.abs(ref))))
    np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * scale)


KERNELS = {
    "3x3": np.array([[1, 2, -1], [0, 3, 1], [-2, 1, 0.5]], np.float32),
    "4x4": np.arange(16, dtype=np.float32).reshape(4, 4) - 7,
    "2x5": np.array([[1, -2, 3, 0, 1], [2, 1, 0, -1, 4]], np.float32),
    "6x3": np.arange(18, dtype=np.float32).reshape(6, 3) % 5 - 2,
    "1x1": np.array([[2.5]], np.float32),
}


@pytest.mark.parametrize("pad", PADDED)
@pytest.mark.parametrize("kname", list(KERNELS))
@pytest.mark.parametrize("correlate", [False, True])
def test_matches_scipy_on_camera(camera, pad, kname, correlate):
    w = KERNELS[kname]
    img = camera[100:260, 40:230]
    got = convolve(img, w, pad=pad, pad_value=17.0, correlate=correlate)
    assert_close(got, scipy_ref(img, w, pad, 17.0, correlate))


@pytest.mark.parametrize("pad", PADDED)
@pytest.mark.parametrize("correlate", [False, True])
def test_matches_scipy_colour(astronaut, pad, correlate):
    img = astronaut[::3, ::3]
    w = KERNELS["4x4"]
    got = convolve(img, w, pad=pad, pad_value=-3.0, correlate=correlate)
    assert got.shape == img.shape
    assert_close(got, scipy_ref(img, w, pad, -3.0, correlate))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int64, np.float64, bool])
def test_any_real_dtype_gives_float32(camera, dtype):
    img = camera[:64, :80]
    if dtype is bool:
        img = img > 100
    elif dtype == np.int16:
        img = img.astype(np.int16) - 128
    else:
        img = (img * (200 if dtype == np.uint16 else 1)).astype(dtype)
    got = convolve(img, KERNELS["3x3"], pad="symmetric")
    assert_close(got, scipy_ref(img.astype(np.float64), KERNELS["3x3"], "symmetric"))


def test_uint8_colour_matches_scipy(astronaut):
    img = astronaut[:70, :90].astype(np.uint8)
    got = convolve(img, KERNELS["3x3"], correlate=True)
    assert_close(got, scipy_ref(img, KERNELS["3x3"], "reflect", correlate=True))


def test_huge_padding_folds_like_scipy():
    rng = np.random.default_rng(1)
    img = rng.random((3, 4), dtype=np.float32)
    w = rng.standard_normal((9, 11)).astype(np.float32)
    for pad in PADDED:
        for correlate in (False, True):
            got = convolve(img, w, pad=pad, correlate=correlate, method="direct")
            assert_close(got, scipy_ref(img, w, pad, 0.0, correlate))


def test_single_pixel_image():
    img = np.array([[5.0]], np.float32)
    for pad in PADDED:
        got = convolve(img, np.ones((3, 3)), pad=pad)
        assert_close(got, scipy_ref(img, np.ones((3, 3)), pad))


def test_valid_is_the_interior_of_the_padded_result(camera):
    img = camera[:50, :61]
    for w in KERNELS.values():
        for correlate in (False, True):
            full = scipy_ref(img, w, "reflect", correlate=correlate)
            kh, kw = w.shape
            top = kh // 2 if correlate else kh - 1 - kh // 2
            left = kw // 2 if correlate else kw - 1 - kw // 2
            want = full[top : top + img.shape[0] - kh + 1, left : left + img.shape[1] - kw + 1]
            got = convolve(img, w, pad="valid", correlate=correlate)
            assert_close(got, want)


@pytest.mark.parametrize("pad", PADDED + ("valid",))
@pytest.mark.parametrize("stride", [2, 3])
def test_stride_samples_the_full_result(camera, pad, stride):
    img = camera[:41, :58]
    w = KERNELS["2x5"]
    full = convolve(img, w, pad=pad)
    got = convolve(img, w, pad=pad, stride=stride)
    np.testing.assert_allclose(got, full[::stride, ::stride], rtol=1e-5, atol=1e-3)
    assert_close(got, reference(img, w, pad=pad, stride=stride))


@pytest.mark.parametrize("correlate", [False, True])
@pytest.mark.parametrize("dilation", [2, 3])
@pytest.mark.parametrize("kname", ["3x3", "4x4", "2x5"])
def test_dilation_matches_scipy_zero_inserted(camera, correlate, dilation, kname):
    img = camera[200:260, 300:371]
    w = KERNELS[kname]
    kh, kw = w.shape
    wd = np.zeros((dilation * (kh - 1) + 1, dilation * (kw - 1) + 1))
    # the anchor tap of the correlation kernel, placed in the zero-inserted one
    if correlate:
        wd[::dilation, ::dilation] = w
        ay, ax = kh // 2, kw // 2
    else:
        wd[::dilation, ::dilation] = w[::-1, ::-1]
        ay, ax = kh - 1 - kh // 2, kw - 1 - kw // 2
    origin = (dilation * ay - wd.shape[0] // 2, dilation * ax - wd.shape[1] // 2)
    for pad in PADDED:
        ref = ndi.correlate(img.astype(np.float64), wd, mode=SCIPY_MODE[pad], origin=origin)
        got = convolve(img, w, pad=pad, dilation=dilation, correlate=correlate)
        assert_close(got, ref)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 19),
    w=st.integers(1, 19),
    kh=st.integers(1, 6),
    kw=st.integers(1, 6),
    channels=st.sampled_from([0, 1, 3]),
    pad=st.sampled_from(PADDED + ("valid",)),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 3),
    correlate=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_match_numpy_loop(
    h, w, kh, kw, channels, pad, stride, dilation, correlate, seed
):
    if pad == "valid":
        assume(h > dilation * (kh - 1) and w > dilation * (kw - 1))
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    img = rng.uniform(-50, 200, size=shape).astype(np.float32)
    weights = rng.standard_normal((kh, kw)).astype(np.float32)
    got = convolve(
        img, weights, pad=pad, pad_value=2.0, stride=stride, dilation=dilation, correlate=correlate
    )
    ref = reference_nd(
        img, weights, pad=pad, cval=2.0, stride=stride, dilation=dilation, correlate=correlate
    )
    assert_close(got, ref)


def test_nan_in_image_propagates_locally():
    img = np.ones((20, 20), np.float32)
    img[10, 10] = np.nan
    got = convolve(img, np.ones((3, 3)), pad="replicate")
    assert np.isnan(got[9:12, 9:12]).all()
    assert np.isnan(got).sum() == 9


# ------------------------------------------------------------------ multi-kernel specs


def test_sobel_spec_uses_its_magnitude():
    from convtool.kernels import resolve

    img = np.random.default_rng(3).random((30, 40)).astype(np.float32) * 255
    spec = resolve("sobel")
    gx, gy = (scipy_ref(img, w, "reflect") for w in spec.weights)
    assert_close(convolve(img, "sobel"), np.hypot(gx, gy))
    stacked = convolve(img, "sobel", combine="stack")
    assert stacked.shape == (2, 30, 40)
    assert_close(stacked[1], gy)


@pytest.mark.parametrize("combine", ["stack", "magnitude", "max", "sum"])
def test_filter_bank_combines(camera, combine):
    img = camera[:40, :50]
    ks = [KERNELS["3x3"], KERNELS["4x4"], KERNELS["2x5"]]
    refs = np.stack([scipy_ref(img, k, "wrap") for k in ks])
    want = {
        "stack": refs,
        "magnitude": np.sqrt((refs**2).sum(0)),
        "max": refs.max(0),
        "sum": refs.sum(0),
    }[combine]
    assert_close(filter_bank(img, ks, combine=combine, pad="wrap"), want)


def test_filter_bank_colour_stack(astronaut):
    img = astronaut[:20, :30]
    out = filter_bank(img, [KERNELS["3x3"], KERNELS["1x1"]])
    assert out.shape == (2, 20, 30, 3)
    assert_close(out[1], img.astype(np.float64) * 2.5)


def test_array_stack_is_a_bank():
    img = np.random.default_rng(4).random((12, 13)).astype(np.float32)
    stack = np.stack([KERNELS["3x3"], KERNELS["3x3"] * 2])
    out = convolve(img, stack)
    assert out.shape == (2, 12, 13)
    assert_close(out[1], 2 * scipy_ref(img, KERNELS["3x3"], "reflect"))


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"stride": 0}, "stride"),
        ({"stride": 1.5}, "stride"),
        ({"stride": -2}, "stride"),
        ({"dilation": 0}, "dilation"),
        ({"dilation": 2.5}, "dilation"),
        ({"pad": "bogus"}, "pad mode"),
        ({"method": "winograd"}, "method"),
        ({"combine": "median"}, "combine"),
        ({"pad_value": "x"}, "pad value"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_options_are_one_line_usage_errors(kwargs, needle):
    with pytest.raises(UsageError, match=needle) as info:
        convolve(np.ones((8, 8)), np.ones((3, 3)), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("image", "kernel", "needle"),
    [
        (np.ones((4, 4)), np.ones((5, 3)), "output height"),
        (np.ones((4, 4)), np.ones((3, 5)), "output width"),
        (np.ones((8, 8)), np.array([[1.0, np.nan]]), "NaN"),
        (np.ones((8, 8)), np.array([[1.0, np.inf]]), "infinite"),
        (np.ones((8, 8)), np.ones((0, 3)), "empty"),
        (np.ones((8, 8)), np.ones(3), "2-D"),
        (np.ones(8), np.ones((3, 3)), "2-D"),
        (np.ones((2, 8, 8, 3)), np.ones((3, 3)), "2-D"),
        (np.ones((0, 8)), np.ones((3, 3)), "empty"),
        (np.ones((8, 8)) * 1j, np.ones((3, 3)), "real"),
    ],
)
def test_bad_inputs_are_one_line_usage_errors(image, kernel, needle):
    with pytest.raises(UsageError, match=needle) as info:
        convolve(image, kernel, pad="valid")
    assert "\n" not in str(info.value)


def test_dilated_kernel_too_big_for_valid():
    with pytest.raises(UsageError, match="dilation 4"):
        convolve(np.ones((8, 8)), np.ones((3, 3)), pad="valid", dilation=4)


def test_empty_filter_bank():
    with pytest.raises(UsageError, match="empty"):
        filter_bank(np.ones((8, 8)), [])


def test_docstring_examples():
    result = doctest.testmod(filtering, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
