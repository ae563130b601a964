"""`convtool pool` end to end against plain numpy pooling, with alpha and seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from convtool.cli import app

RNG = np.random.default_rng(11)


def run(*args, input=None):
    return CliRunner().invoke(app, ["pool", *map(str, args)], input=input)


def ok(*args):
    res = run(*args)
    assert res.exit_code == 0, res.stderr + res.stdout
    return res


def load(path):
    with PILImage.open(path) as im:
        return np.asarray(im)


def blocks(x, f, s):
    """Windows of x (H, W[, C]) as (H', W', f*f[, C]): every f x f window at stride s."""
    win = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (f, f), axis=(0, 1))
    win = win[::s, ::s]  # (H', W'[, C], f, f)
    win = win.reshape(win.shape[: x.ndim] + (f * f,))
    return np.moveaxis(win, -1, 2)


@pytest.mark.parametrize("mode,f,s", [("max", 2, 2), ("avg", 3, 2), ("min", 3, 1)])
def test_pool_sample_matches_numpy_loop(tmp_path, samples_dir, mode, f, s):
    out = tmp_path / "p.png"
    ok(samples_dir / "coins.png", "--mode", mode, "--size", f, "--stride", s, "-o", out)
    coins = load(samples_dir / "coins.png").astype(np.float64)
    win = blocks(coins, f, s)
    ref = {"max": win.max(2), "min": win.min(2), "avg": win.mean(2)}[mode]
    got = load(out)
    assert got.shape == ((303 - f) // s + 1, (384 - f) // s + 1)
    assert np.abs(got - np.rint(ref)).max() <= (1 if mode == "avg" else 0)


def test_rgba_alpha_pooled_with_same_window(tmp_path):
    rgba = RNG.integers(0, 256, size=(10, 14, 4), dtype=np.uint8)
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    ok(tmp_path / "in.png", "-F", 2, "-o", tmp_path / "out.png")
    got = load(tmp_path / "out.png")
    assert got.shape == (5, 7, 4)
    np.testing.assert_array_equal(got, blocks(rgba, 2, 2).max(2))


def test_la_with_lp_pools_alpha_by_average(tmp_path):
    la = RNG.integers(0, 256, size=(8, 8, 2), dtype=np.uint8)
    PILImage.fromarray(la, "LA").save(tmp_path / "in.png")
    ok(tmp_path / "in.png", "--mode", "lp", "--p", 1, "--scale", "raw", "-o", tmp_path / "o.npy")
    got = np.load(tmp_path / "o.npy")  # raw: filtered channel only
    np.testing.assert_allclose(got, blocks(la[..., 0], 2, 2).sum(2), rtol=1e-6)
    ok(tmp_path / "in.png", "--mode", "lp", "--p", 1, "-o", tmp_path / "o.png")
    np.testing.assert_array_equal(
        load(tmp_path / "o.png")[..., 1], np.rint(blocks(la[..., 1], 2, 2).mean(2))
    )


@pytest.mark.parametrize("mode", ["stochastic", "fractional"])
def test_random_modes_reproducible_with_seed(tmp_path, samples_dir, mode):
    for name in ["a", "b"]:
        ok(samples_dir / "camera.png", "--mode", mode, "--seed", 5, "-o", tmp_path / f"{name}.png")
    ok(samples_dir / "camera.png", "--mode", mode, "--seed", 6, "-o", tmp_path / "c.png")
    a, b, c = (load(tmp_path / f"{n}.png") for n in "abc")
    np.testing.assert_array_equal(a, b)
    assert a.shape == c.shape and (a != c).any()
    if mode == "fractional":
        assert a.shape == (int(512 / 2**0.5), int(512 / 2**0.5))


def test_fractional_output_size_and_ratio(tmp_path, samples_dir):
    res = ok(
        samples_dir / "coins.png",
        "--mode",
        "fractional",
        "--output-size",
        "200x300",
        "--seed",
        1,
        "--json",
        "-o",
        tmp_path / "f.png",
    )
    assert json.loads(res.stdout)["shape"] == [200, 300]
    res = ok(
        samples_dir / "coins.png",
        "--mode",
        "fractional",
        "--ratio",
        1.5,
        "--json",
        "-o",
        tmp_path / "g.png",
    )
    assert json.loads(res.stdout)["shape"] == [202, 256]


def test_padded_ceil_and_16bit(tmp_path):
    g = RNG.integers(0, 65536, size=(7, 9), dtype=np.uint16)
    PILImage.fromarray(g).save(tmp_path / "g.png")
    ok(tmp_path / "g.png", "--ceil", "-o", tmp_path / "c.png")
    got = load(tmp_path / "c.png")
    assert got.shape == (4, 5) and got.dtype == np.uint16
    padded = np.pad(g.astype(np.int64), ((0, 1), (0, 1)), constant_values=-1)
    np.testing.assert_array_equal(got, blocks(padded, 2, 2).max(2))
    ok(tmp_path / "g.png", "--pad", "replicate", "-F", 3, "-S", 2, "-o", tmp_path / "r.png")
    rep = np.pad(g.astype(np.float64), 1, mode="edge")
    np.testing.assert_array_equal(load(tmp_path / "r.png"), blocks(rep, 3, 2).max(2))


@pytest.mark.parametrize(
    "args,match",
    [
        (["--p", "3"], "--mode lp"),
        (["--ratio", "1.5"], "fractional"),
        (["--seed", "1"], "stochastic and fractional"),
        (["--mode", "maxx"], "max"),
        (["--size", "0"], "--size"),
        (["-F", "1000"], "larger than the image"),
        (["--mode", "fractional", "--output-size", "ax3"], "output-size"),
    ],
)
def test_pool_usage_errors(tmp_path, samples_dir, args, match):
    res = run(samples_dir / "coins.png", *args, "-o", tmp_path / "x.png")
    assert res.exit_code == 2, res.stderr
    assert match in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
