"""Stochastic (Zeiler & Fergus 2013) and fractional max (Graham 2014) pooling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convtool.pooling import fractional_boundaries, pool

# ---------------------------------------------------------------- stochastic


def ref_stochastic(x, f, s, u):
    """The documented draw: first sample (row-major) whose running sum exceeds u * sum."""
    x = np.asarray(x, np.float64)
    oh, ow = u.shape
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = x[i * s : i * s + f, j * s : j * s + f].ravel()
            total = win.sum()
            if total == 0:
                continue
            k = int(np.argmax(np.cumsum(win) > u[i, j] * total))
            out[i, j] = win[k]
    return out


def test_stochastic_follows_the_documented_draw(camera):
    crop = camera[:60, :70]
    for f, s in ((2, 2), (3, 2), (3, 1)):
        got = pool(crop, "stochastic", size=f, stride=s, seed=7)
        oh, ow = got.shape
        u = np.random.default_rng(7).random((1, oh, ow))[0]
        np.testing.assert_array_equal(got, ref_stochastic(crop, f, s, u))


def test_stochastic_frequencies_are_proportional_to_activations():
    # 200x200 copies of the window [[1, 2], [3, 4]]: picks ~ 0.1, 0.2, 0.3, 0.4
    x = np.tile(np.array([[1, 2], [3, 4]], np.float32), (200, 200))
    got = pool(x, "stochastic", seed=123)
    freq = np.array([np.mean(got == v) for v in (1, 2, 3, 4)])
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)


def test_stochastic_picks_a_positive_window_sample(astronaut):
    got = pool(astronaut, "stochastic", size=3, stride=2, seed=1)
    assert got.shape == (255, 255, 3)
    win = np.lib.stride_tricks.sliding_window_view(astronaut, (3, 3), axis=(0, 1))[::2, ::2]
    member = (win == got[..., None, None]).any(axis=(-1, -2))
    assert member.all()
    assert (got >= win.min(axis=(-1, -2))).all() and (got <= win.max(axis=(-1, -2))).all()
    zero_windows = win.sum(axis=(-1, -2)) == 0
    assert (got[zero_windows] == 0).all()
    assert (got[~zero_windows] > 0).all()


def test_stochastic_all_zero_window_gives_zero():
    x = np.zeros((4, 4), np.float32)
    x[0, 0] = 5
    got = pool(x, "stochastic", seed=0)
    assert got[0, 0] == 5 and (got.ravel()[1:] == 0).all()


def test_stochastic_seed_reproducible_and_seeds_differ(camera):
    a = pool(camera, "stochastic", seed=42)
    b = pool(camera, "stochastic", seed=42)
    c = pool(camera, "stochastic", seed=43)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.2
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(
        pool(camera, "stochastic", seed=g1), pool(camera, "stochastic", seed=g2)
    )


def test_stochastic_eval_is_probability_weighted_average(camera):
    crop = camera[:31, :40].astype(np.float64)
    got = pool(crop, "stochastic", size=3, stride=2, eval=True)
    for i in range(got.shape[0]):
        for j in range(got.shape[1]):
            win = crop[2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            want = (win**2).sum() / win.sum() if win.sum() else 0.0
            assert got[i, j] == pytest.approx(want, rel=1e-5)


def test_stochastic_with_padding_never_picks_zero_padding():
    x = np.full((5, 5), 2.0, np.float32)
    got = pool(x, "stochastic", size=3, stride=2, pad="zero", seed=0, ceil=True)
    assert (got == 2.0).all()


# ---------------------------------------------------------------- fractional


@settings(max_examples=200, deadline=None)
@given(
    n_in=st.integers(2, 400),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
    sequence=st.sampled_from(["pseudorandom", "random"]),
)
def test_fractional_boundaries_properties(n_in, frac, seed, sequence):
    n_out = 1 + int(frac * (n_in - 2))  # 1 .. n_in - 1
    a = fractional_boundaries(n_in, n_out, np.random.default_rng(seed), sequence)
    alpha = n_in / n_out
    assert a.dtype == np.int64 and len(a) == n_out + 1
    assert a[0] == 0 and a[-1] == n_in
    steps = set(np.diff(a).tolist())
    assert steps <= {math.floor(alpha), math.ceil(alpha)}


@settings(max_examples=100, deadline=None)
@given(n_in=st.integers(2, 300), frac=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_fractional_pseudorandom_is_grahams_formula(n_in, frac, seed):
    n_out = 1 + int(frac * (n_in - 2))
    a = fractional_boundaries(n_in, n_out, np.random.default_rng(seed))
    u = np.random.default_rng(seed).random()
    alpha = n_in / n_out
    i = np.arange(n_out + 1)
    want = np.ceil(alpha * (i + u)) - np.ceil(alpha * u)
    # float rounding may move a near-integer alpha * (i + u) by one; nothing else may differ
    v = alpha * (i + u)
    near = np.abs(v - np.round(v)) < 1e-9
    near = near | near[0]
    assert np.array_equal(a[~near], want[~near])


def test_fractional_random_sequence_counts():
    a = fractional_boundaries(100, 70, np.random.default_rng(3), "random")
    steps = np.diff(a)
    assert (steps == 2).sum() == 30 and (steps == 1).sum() == 40
    b = fractional_boundaries(100, 70, np.random.default_rng(4), "random")
    assert not np.array_equal(a, b)


def ref_fractional(x, rows, cols, overlapping):
    h, w = x.shape
    out = np.zeros((len(rows) - 1, len(cols) - 1))
    e = 1 if overlapping else 0
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            r1, c1 = min(rows[i + 1] + e, h), min(cols[j + 1] + e, w)
            out[i, j] = x[rows[i] : r1, cols[j] : c1].max()
    return out


@pytest.mark.parametrize("sequence", ["pseudorandom", "random"])
@pytest.mark.parametrize("overlapping", [False, True])
def test_fractional_max_over_regions(camera, sequence, overlapping):
    crop = camera[:97, :123]
    got = pool(crop, "fractional", seed=5, sequence=sequence, overlapping=overlapping)
    assert got.shape == (int(97 / math.sqrt(2)), int(123 / math.sqrt(2)))
    rng = np.random.default_rng(5)
    rows = fractional_boundaries(97, got.shape[0], rng, sequence)
    cols = fractional_boundaries(123, got.shape[1], rng, sequence)
    np.testing.assert_array_equal(got, ref_fractional(crop, rows, cols, overlapping))


def test_fractional_sizes_colour_and_seeds(astronaut):
    got = pool(astronaut, "fractional", output_size=(300, 200), seed=1)
    assert got.shape == (300, 200, 3)
    assert pool(astronaut, "fractional", ratio=(1.5, 1.25), seed=1).shape == (341, 409, 3)
    a = pool(astronaut, "fractional", seed=11)
    np.testing.assert_array_equal(a, pool(astronaut, "fractional", seed=11))
    assert not np.array_equal(a, pool(astronaut, "fractional", seed=12))
    # same regions for every channel
    for c in range(3):
        np.testing.assert_array_equal(a[..., c], pool(astronaut[..., c], "fractional", seed=11))


def test_fractional_disjoint_regions_cover_the_image_once():
    # with distinct values, each input pixel is the max of at most one region
    x = np.random.default_rng(0).permutation(50 * 60).reshape(50, 60).astype(np.float32)
    got = pool(x, "fractional", ratio=1.6, seed=3)
    assert len(np.unique(got)) == got.size
    assert got.max() == x.max()


def test_fractional_ratio_two_is_2x2_max():
    x = np.random.default_rng(1).random((64, 48)).astype(np.float32)
    for seq in ("pseudorandom", "random"):
        np.testing.assert_array_equal(
            pool(x, "fractional", ratio=2, sequence=seq, seed=0), pool(x, "max")
        )
