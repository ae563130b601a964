"""Dask arrays through convolve, filter_bank, pool and match (convtool.chunked).

Every lazy result is compared with the in-memory result on the same array:
random shapes, chunkings (uneven included), pad modes, strides, dilations,
even and non-square kernels, colour. The in-memory border columns run a
scalar loop whose float32 rounding order differs from the vectorised loop
every chunk uses, so results agree to float32 rounding at the true border
and to the bit inside (checked with pad 'valid').
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import convtool  # noqa: E402
from convtool import chunked  # noqa: E402
from convtool.errors import UsageError  # noqa: E402

PADS = ["constant", "replicate", "reflect", "symmetric", "wrap", "valid"]


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="sync"):
        yield


def _chunks(draw, n: int) -> tuple[int, ...]:
    """An uneven chunking of an axis of length n."""
    sizes = []
    left = n
    while left > 0:
        s = draw(st.integers(1, max(1, min(left, 9))))
        sizes.append(s)
        left -= s
    return tuple(sizes)


@st.composite
def images(draw, max_side: int = 24):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    colour = draw(st.booleans())
    shape = (h, w, draw(st.integers(2, 3))) if colour else (h, w)
    seed = draw(st.integers(0, 2**31))
    img = np.random.default_rng(seed).random(shape, dtype=np.float32) * 255
    chunks = (_chunks(draw, h), _chunks(draw, w))
    if colour:  # channels chunked apart, or together
        chunks += ((1,) * shape[2] if draw(st.booleans()) else (shape[2],),)
    return img, chunks


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    scale = max(1.0, float(np.abs(a).max()))
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-6 * scale)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    images(),
    st.sampled_from(PADS),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 3),
    st.integers(1, 3),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_convolve_matches_in_memory(data, pad, kh, kw, stride, dilation, correlate, seed):
    img, chunks = data
    w = np.random.default_rng(seed).normal(size=(kh, kw)).astype(np.float32)
    options = dict(pad=pad, stride=stride, dilation=dilation, correlate=correlate, pad_value=3.0)
    try:
        want = convtool.convolve(img, w, method="direct", **options)
    except UsageError:
        with pytest.raises(UsageError):
            convtool.convolve(da.from_array(img, chunks=chunks), w, **options)
        return
    lazy = convtool.convolve(da.from_array(img, chunks=chunks), w, **options)
    assert isinstance(lazy, da.Array) and lazy.shape == want.shape
    got = lazy.compute()
    _close(want, got)
    if pad == "valid":  # no border loop in memory: the same vectorised code, the same bits
        np.testing.assert_array_equal(got, want)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    images(),
    st.sampled_from(["max", "avg", "min", "lp", "topleft", "stochastic"]),
    st.sampled_from(PADS),
    st.integers(1, 5),
    st.integers(1, 4),
    st.booleans(),
    st.integers(0, 1000),
)
def test_pool_matches_in_memory(data, mode, pad, size, stride, ceil, seed):
    img, chunks = data
    opts = {"seed": seed} if mode == "stochastic" else {}
    if mode == "lp":
        opts["p"] = 3
    try:
        want = convtool.pool(img, mode, size=size, stride=stride, pad=pad, ceil=ceil, **opts)
    except UsageError:
        with pytest.raises(UsageError):
            convtool.pool(da.from_array(img, chunks=chunks), mode, size=size, stride=stride,
                          pad=pad, ceil=ceil, **opts)  # fmt: skip
        return
    x = da.from_array(img, chunks=chunks)
    got = convtool.pool(x, mode, size=size, stride=stride, pad=pad, ceil=ceil, **opts).compute()
    if mode in ("avg", "lp"):  # sums in another order at the border; lp scales per block
        np.testing.assert_allclose(got, want, rtol=1e-5)
    else:  # max, min, topleft, stochastic: the same samples, the same bits
        np.testing.assert_array_equal(got, want)


@settings(max_examples=20, deadline=None)
@given(
    images(max_side=30),
    st.integers(0, 1000),
    st.booleans(),
    st.sampled_from(["pseudorandom", "random"]),
)
def test_fractional_pool_same_seed_same_values(data, seed, overlapping, sequence):
    img, chunks = data
    if min(img.shape[:2]) < 2:
        return
    opts = dict(seed=seed, overlapping=overlapping, sequence=sequence)
    want = convtool.pool(img, "fractional", **opts)
    got = convtool.pool(da.from_array(img, chunks=chunks), "fractional", **opts).compute()
    np.testing.assert_array_equal(got, want)


def test_stochastic_pool_refuses_a_generator_seed():
    x = da.ones((8, 8), chunks=4)
    with pytest.raises(UsageError, match="integer seed"):
        convtool.pool(x, "stochastic", seed=np.random.default_rng(0))


def test_stochastic_negative_input_is_a_usage_error():
    x = da.from_array(-np.ones((8, 8), np.float32), chunks=4)
    with pytest.raises(UsageError, match="non-negative"):
        convtool.pool(x, "stochastic", seed=1).compute()


@pytest.mark.parametrize("method", ["zncc", "cosine", "sqdiff"])
def test_match_equals_in_memory(astronaut, method):
    img = astronaut[100:260, 150:330]
    tmpl = img[40:52, 60:70]
    want = convtool.match(img, tmpl, method)
    got = convtool.match(da.from_array(img, chunks=(45, 70, 1)), tmpl, method).compute()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_filter_bank_and_multi_kernel_specs(camera):
    img = camera[:100, :90]
    x = da.from_array(img, chunks=(33, 40))
    for spec in ("sobel", "kirsch", "prewitt"):
        _close(convtool.convolve(img, spec, method="direct"), convtool.convolve(x, spec).compute())
    for how in ("stack", "magnitude", "max", "sum"):
        want = convtool.filter_bank(img, ["sobel", "laplacian", "gaussian:1"], combine=how,
                                    method="direct")  # fmt: skip
        got = convtool.filter_bank(x, ["sobel", "laplacian", "gaussian:1"], combine=how)
        _close(want, got.compute())


def test_fft_sized_kernel_and_separable(camera):
    img = camera[:200, :180]
    x = da.from_array(img, chunks=64)
    w = np.random.default_rng(3).random((41, 37)).astype(np.float32)
    _close(convtool.convolve(img, w, method="fft"), convtool.convolve(x, w).compute())
    _close(convtool.convolve(img, "gaussian:3", pad="wrap"),
           convtool.convolve(x, "gaussian:3", pad="wrap").compute())  # fmt: skip


def test_uint8_image_and_chunked_channels(astronaut):
    img = astronaut[:70, :50].astype(np.uint8)
    x = da.from_array(img, chunks=(30, 20, 1))  # channels chunked apart: rechunked, not refused
    got = convtool.convolve(x, "sharpen", pad="constant", pad_value=0.5)
    _close(convtool.convolve(img, "sharpen", pad="constant", pad_value=0.5, method="direct"),
           got.compute())  # fmt: skip


def test_output_chunks_follow_input_and_stride():
    x = da.zeros((100, 90), chunks=(30, 45))
    y = convtool.convolve(x, np.ones((3, 3)), stride=3)
    assert y.chunks == ((10, 10, 10, 4), (15, 15))
    assert convtool.pool(x, "max", size=2).chunks == ((15, 15, 15, 5), (23, 22))


def test_errors_are_raised_before_any_compute():
    x = da.zeros((5, 5), chunks=2)
    with pytest.raises(UsageError, match="output height"):
        convtool.convolve(x, np.ones((7, 7)), pad="valid")
    with pytest.raises(UsageError, match="2-D"):
        convtool.convolve(da.zeros((2, 2, 2, 2)), "box:3")
    with pytest.raises(UsageError, match="stride"):
        convtool.pool(x, "max", stride=0)


def test_threaded_scheduler_and_nogil_drivers(camera):
    from convtool.core import conv, match, pool

    # the drivers release the GIL: Dask's threads run them side by side
    assert conv.direct.targetoptions["nogil"] and conv.separable.targetoptions["nogil"]
    assert pool.reduce_table.targetoptions["nogil"]
    assert match.normalize_block.targetoptions["nogil"]
    assert match.correlate_direct.targetoptions["nogil"]
    x = da.from_array(camera, chunks=128)
    with dask.config.set(scheduler="threads", num_workers=2):
        got = convtool.convolve(x, "laplacian").compute()
    _close(convtool.convolve(camera, "laplacian", method="direct"), got)
    assert chunked.task_threads(16) == 1


def test_reach_halo_and_wrap_plan():
    from convtool.modes import PAD_CODE

    r = chunked.Reach(10, 4, 1, 2, 4, PAD_CODE["wrap"], 10)
    assert r.halo == (4, 2)
    src = r.source(0, 3)  # positions -4 .. 4: wrap reads the end of the axis
    assert src.tolist() == [6, 7, 8, 9, 0, 1, 2, 3, 4]
    plan = chunked.plan_axis(src, [5, 5])
    assert plan.chunks == (1, 0)  # the last chunk first, as wrap reads it
    assert plan.runs == ((0, 0, 1, 4, 1), (4, 1, 0, 5, 1))
    # constant padding and a reflection: fill runs and a falling run
    plan = chunked.plan_axis(np.array([-1, -1, 3, 4, 5, 6]), [4, 4])
    assert plan.runs == ((0, -1, 0, 2, 1), (2, 0, 3, 1, 1), (3, 1, 0, 3, 1))
    assert plan.fills
