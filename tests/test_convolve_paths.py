"""The direct, separable and FFT paths agree; the cost model; warm-up and caching."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_convolve import assert_close, reference_nd

from convtool.core import conv_gen
from convtool.errors import UsageError
from convtool.filtering import choose_method, convolve
from convtool.modes import PAD_MODES

PADS = PAD_MODES  # includes valid


def gaussian(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return np.outer(g, g / g.sum()).astype(np.float32) / g.sum()


RANK1 = {
    "gauss9": gaussian(9, 2.0),
    "box5": np.full((5, 5), 1 / 25, np.float32),
    "sobelx": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32),
    "outer4x6": np.outer([1, -2, 0.5, 3], [2, 1, 0, -1, 4, 0.25]).astype(np.float32),
}


@pytest.mark.parametrize("pad", PADS)
@pytest.mark.parametrize("kname", list(RANK1))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
def test_all_paths_agree_on_rank1(camera, pad, kname, stride, dilation):
    img = camera[30:97, 50:141]
    w = RANK1[kname]
    ref = reference_nd(img, w, pad=pad, cval=9.0, stride=stride, dilation=dilation)
    for method in ("direct", "separable", "fft", "numpy"):
        got = convolve(
            img, w, pad=pad, pad_value=9.0, stride=stride, dilation=dilation, method=method
        )
        assert_close(got, ref)


@pytest.mark.parametrize("pad", PADS)
@pytest.mark.parametrize("correlate", [False, True])
def test_colour_uint8_paths_agree(astronaut, pad, correlate):
    img = astronaut[100:160, 200:275].astype(np.uint8)
    w = RANK1["outer4x6"]
    ref = reference_nd(img, w, pad=pad, cval=-4.0, correlate=correlate)
    for method in ("direct", "separable", "fft", "numpy"):
        got = convolve(img, w, pad=pad, pad_value=-4.0, correlate=correlate, method=method)
        assert got.shape == ref.shape
        assert_close(got, ref)


@pytest.mark.parametrize("pad", PADS)
def test_direct_and_fft_agree_on_large_kernels(camera, pad):
    img = camera[::4, ::4]
    w = np.random.default_rng(5).standard_normal((21, 17)).astype(np.float32)
    ref = reference_nd(img, w, pad=pad, cval=1.0)
    for method in ("direct", "fft", "numpy"):
        assert_close(convolve(img, w, pad=pad, pad_value=1.0, method=method), ref)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 16),
    w=st.integers(1, 16),
    kh=st.integers(1, 7),
    kw=st.integers(1, 12),
    channels=st.sampled_from([0, 2]),
    pad=st.sampled_from(PADS),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 3),
    correlate=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_rank1_all_paths(h, w, kh, kw, channels, pad, stride, dilation, correlate, seed):
    if pad == "valid":
        assume(h > dilation * (kh - 1) and w > dilation * (kw - 1))
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 255, size=(h, w) if channels == 0 else (h, w, channels))
    weights = np.outer(rng.standard_normal(kh), rng.standard_normal(kw)).astype(np.float32)
    kwargs = dict(pad=pad, pad_value=3.0, stride=stride, dilation=dilation, correlate=correlate)
    ref = reference_nd(
        img.astype(np.float32),
        weights,
        cval=3.0,
        **{k: v for k, v in kwargs.items() if k != "pad_value"},
    )
    for method in ("direct", "separable", "fft", "numpy"):
        assert_close(convolve(img, weights, method=method, **kwargs), ref)


def test_separable_refuses_a_rank2_kernel():
    with pytest.raises(UsageError, match="not separable"):
        convolve(np.ones((9, 9)), [[1, 2], [3, 4]], method="separable")


def test_all_zero_kernel_on_the_separable_path_keeps_float32_factors():
    from convtool.core import conv

    img = np.ones((20, 20), np.float32)
    convolve(img, np.ones((11, 11), np.float32), method="separable")
    before = len(conv.separable.signatures)
    out = convolve(img, np.zeros((11, 11), np.float32), method="separable")
    assert not out.any()
    assert len(conv.separable.signatures) == before  # no float64 specialisation


def test_auto_uses_numpy_until_numba_pays_for_itself():
    """Without Numba loaded, small jobs run on numpy (no import); once their
    estimated total passes Numba's start-up (and compile) cost, Numba is loaded and used."""
    code = (
        "import sys, numpy as np\n"
        "from convtool import filtering, rentbuy\n"
        "img = np.random.default_rng(0).random((64, 64), dtype=np.float32)\n"
        "ref = filtering.convolve(img, 'sobel-x', method='numpy')\n"
        "got = filtering.convolve(img, 'sobel-x')\n"
        "assert 'numba' not in sys.modules, 'small job loaded numba'\n"
        "assert np.allclose(got, ref)\n"
        "rentbuy._spent_ns = rentbuy.buy_ns(['conv.direct'])\n"
        "got = filtering.convolve(img, 'sobel-x')\n"
        "assert 'numba' in sys.modules, 'budget spent but numba not used'\n"
        "assert np.allclose(got, ref, atol=1e-3)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fft_keeps_nan_local():
    img = np.ones((40, 40), np.float32)
    img[20, 20] = np.nan
    got = convolve(img, np.ones((5, 5)), method="fft")
    assert np.isnan(got).sum() == 25


def test_cost_model_choices():
    big = (4096, 4096)
    assert choose_method(big, (3, 3)) == "direct"
    assert choose_method(big, (3, 3), separable=True) == "direct"
    assert choose_method(big, (9, 9), separable=True) == "separable"
    assert choose_method(big, (9, 9)) == "direct"
    assert choose_method(big, (63, 63)) == "fft"
    # stride makes the full-resolution FFT less attractive
    assert choose_method(big, (15, 15), stride=4) == "direct"


def test_auto_picks_separable_for_gaussian(camera):
    g = RANK1["gauss9"]
    ref = reference_nd(camera, g, pad="reflect")
    assert_close(convolve(camera, g), ref)


def test_generated_taps_are_up_to_date():
    with open(conv_gen.TARGET) as fh:
        on_disk = ast.dump(ast.parse(fh.read()))
    assert on_disk == ast.dump(ast.parse(conv_gen.source())), (
        "run: python -m convtool.core.conv_gen"
    )


def test_warmup_then_a_new_process_loads_from_cache():
    """After warmup(), a fresh process compiles nothing (every kernel is a cache hit)."""
    code = """
import json, numpy as np
from convtool import filtering
from convtool.core import conv
filtering.warmup()
print(json.dumps({name: [sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())]
                  for name, f in [("direct", conv.direct), ("separable", conv.separable),
]}))
"""
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    stats = json.loads(out.stdout.decode().strip().splitlines()[-1])
    for name, (hits, misses) in stats.items():
        assert misses == 0, name
        assert hits >= 2, name


@pytest.mark.parametrize("method", ["direct", "separable", "fft"])
def test_thread_count_does_not_change_the_result(camera, method):
    import numba

    before = numba.get_num_threads()
    try:
        one = convolve(camera, RANK1["gauss9"], method=method, threads=1)
        many = convolve(camera, RANK1["gauss9"], method=method, threads=2)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def test_filter_bank_refuses_mixed_sizes_before_any_work(monkeypatch):
    """Sizes are checked once for the whole bank, before the first convolution."""
    from convtool import filtering

    def boom(*args, **kwargs):
        raise AssertionError("a convolution ran before the size check")

    monkeypatch.setattr(filtering, "_correlate", boom)
    img = np.ones((20, 20), np.float32)
    with pytest.raises(UsageError, match="different sizes"):
        filtering.filter_bank(img, [np.ones((3, 3)), np.ones((5, 5))], pad="valid")
    with pytest.raises(UsageError, match="stride"):
        filtering.filter_bank(img, [np.ones((3, 3))], stride=0)
