"""`convtool convolve` end to end: modes, depths, alpha, stacks, batches, pipes, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from convtool.cli import app

ndimage = pytest.importorskip("scipy.ndimage")
pytest.importorskip("convtool.filtering")

RNG = np.random.default_rng(7)
BOX3 = np.full((3, 3), 1 / 9, dtype=np.float32)


def run(*args, input=None):
    return CliRunner().invoke(app, ["convolve", *map(str, args)], input=input)


def ok(*args, input=None):
    res = run(*args, input=input)
    assert res.exit_code == 0, res.stderr + res.stdout
    return res


def load(path):
    with PILImage.open(path) as im:
        return np.asarray(im)


def box3_reference(x):
    """8-bit box blur as convtool computes it: float, reflect (scipy mirror), rounded."""
    out = ndimage.correlate(x.astype(np.float32), BOX3, mode="mirror")
    return np.clip(np.rint(out), 0, 255)


def test_sobel_on_sample_matches_scipy(tmp_path, samples_dir):
    out = tmp_path / "edges.png"
    ok(samples_dir / "camera.png", "-k", "sobel", "-o", out, "-q")
    cam = load(samples_dir / "camera.png").astype(np.float64)
    gx = ndimage.convolve(cam, [[1, 0, -1], [2, 0, -2], [1, 0, -1]], mode="mirror")
    gy = ndimage.convolve(cam, [[1, 2, 1], [0, 0, 0], [-1, -2, -1]], mode="mirror")
    mag = np.hypot(gx, gy)
    # sobel's auto: robust-normalize, the 0.5th..99.5th percentiles to 0..255
    lo, hi = np.quantile(mag, [0.005, 0.995])
    expected = np.clip(np.rint((mag - lo) * 255 / (hi - lo)), 0, 255)
    got = load(out)
    assert got.dtype == np.uint8 and got.shape == (512, 512)
    assert np.abs(got.astype(int) - expected).max() <= 1
    # an explicit --scale normalize keeps its exact min-max meaning
    ok(samples_dir / "camera.png", "-k", "sobel", "--scale", "normalize", "-o", out, "-q")
    expected = np.rint((mag - mag.min()) * 255 / (mag.max() - mag.min()))
    assert np.abs(load(out).astype(int) - expected).max() <= 1


def test_rgba_alpha_preserved_and_channels_filtered(tmp_path):
    rgba = RNG.integers(0, 256, size=(20, 17, 4), dtype=np.uint8)
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    ok(tmp_path / "in.png", "-k", "box:3", "-o", tmp_path / "out.png")
    got = load(tmp_path / "out.png")
    assert got.shape == (20, 17, 4)
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3])
    for c in range(3):
        assert np.abs(got[..., c] - box3_reference(rgba[..., c])).max() <= 1


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1", "RGB"])
def test_identity_round_trips_8bit_modes(tmp_path, mode):
    base = RNG.integers(0, 256, size=(9, 12, 3), dtype=np.uint8)
    im = PILImage.fromarray(base, "RGB")
    if mode == "P":
        im = im.quantize(16)
    elif mode == "LA":
        im = im.convert("LA")
    else:
        im = im.convert(mode)
    im.save(tmp_path / "in.png")
    ok(tmp_path / "in.png", "-k", "identity", "-o", tmp_path / "out.png")
    expected = {"P": "RGB", "1": "L"}.get(mode, mode)
    with PILImage.open(tmp_path / "in.png") as src:
        ref = np.asarray(src.convert(expected))
    with PILImage.open(tmp_path / "out.png") as got:
        assert got.mode == expected
        np.testing.assert_array_equal(np.asarray(got), ref)


def test_16bit_round_trip_and_depth_option(tmp_path):
    g = RNG.integers(0, 65536, size=(10, 11), dtype=np.uint16)
    PILImage.fromarray(g).save(tmp_path / "g16.png")
    ok(tmp_path / "g16.png", "-k", "identity", "-o", tmp_path / "same.png")
    with PILImage.open(tmp_path / "same.png") as im:
        assert im.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(im), g)
    ok(tmp_path / "g16.png", "-k", "identity", "--depth", "8", "-o", tmp_path / "eight.png")
    np.testing.assert_array_equal(load(tmp_path / "eight.png"), np.rint(g / 257.0))
    u8 = RNG.integers(0, 256, size=(4, 5), dtype=np.uint8)
    PILImage.fromarray(u8).save(tmp_path / "g8.png")
    ok(tmp_path / "g8.png", "-k", "identity", "--depth", "16", "-o", tmp_path / "up.png")
    np.testing.assert_array_equal(load(tmp_path / "up.png"), u8.astype(np.uint16) * 257)


def test_stride_and_valid_sample_alpha(tmp_path):
    rgba = RNG.integers(0, 256, size=(15, 13, 4), dtype=np.uint8)
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    ok(tmp_path / "in.png", "-k", "box:3", "--stride", "2", "-o", tmp_path / "s.png")
    got = load(tmp_path / "s.png")
    assert got.shape == (8, 7, 4)
    np.testing.assert_array_equal(got[..., 3], rgba[::2, ::2, 3])
    ok(tmp_path / "in.png", "-k", "box:3", "--pad", "valid", "-o", tmp_path / "v.png")
    got = load(tmp_path / "v.png")
    assert got.shape == (13, 11, 4)
    np.testing.assert_array_equal(got[..., 3], rgba[1:-1, 1:-1, 3])


def test_stack_to_multipage_tiff_and_npy(tmp_path, samples_dir):
    args = [samples_dir / "coins.png", "-k", "sobel-x", "-k", "sobel-y", "-k", "laplacian"]
    ok(*args, "--combine", "stack", "-o", tmp_path / "maps.tif")
    ok(*args, "--combine", "stack", "-o", tmp_path / "maps.npy")
    stack = np.load(tmp_path / "maps.npy")
    assert stack.shape == (3, 303, 384) and stack.dtype == np.float32
    with PILImage.open(tmp_path / "maps.tif") as im:
        assert im.n_frames == 3
        pages = []
        for i in range(3):
            im.seek(i)
            pages.append(np.asarray(im).copy())
    np.testing.assert_array_equal(np.stack(pages), stack)
    coins = load(samples_dir / "coins.png").astype(np.float64)
    lap = ndimage.convolve(coins, [[0, 1, 0], [1, -4, 1], [0, 1, 0]], mode="mirror")
    np.testing.assert_allclose(stack[2], lap, atol=1e-3)
    res = run(*args, "--combine", "stack", "-o", tmp_path / "maps.png")
    assert res.exit_code == 2 and "tif" in res.stderr
    assert not (tmp_path / "maps.png").exists()


def test_raw_float_output_unscaled(tmp_path, samples_dir):
    ok(samples_dir / "text.png", "-k", "laplacian", "--scale", "raw", "-o", tmp_path / "l.npy")
    raw = np.load(tmp_path / "l.npy")
    text = load(samples_dir / "text.png").astype(np.float64)
    ref = ndimage.convolve(text, [[0, 1, 0], [1, -4, 1], [0, 1, 0]], mode="mirror")
    np.testing.assert_allclose(raw, ref, atol=1e-3)
    assert raw.min() < 0  # really unscaled


def test_scale_options_change_the_picture(tmp_path, samples_dir):
    outs = {}
    for scale in ["clip", "abs", "offset", "normalize"]:
        out = tmp_path / f"{scale}.png"
        ok(samples_dir / "camera.png", "-k", "sobel-x", "--scale", scale, "-o", out)
        outs[scale] = load(out).astype(int)
    assert outs["offset"].min() < 128 < outs["offset"].max()
    assert outs["normalize"].min() == 0 and outs["normalize"].max() == 255
    assert (outs["abs"] >= outs["clip"]).all()


def test_stdin_stdout_pipe_in_process(samples_dir):
    data = (samples_dir / "coins.png").read_bytes()
    res = CliRunner().invoke(app, ["convolve", "-", "-k", "box:3", "-o", "-"], input=data)
    assert res.exit_code == 0, res.stderr
    out = res.stdout_bytes
    assert out.startswith(b"\x89PNG")
    import io

    got = np.asarray(PILImage.open(io.BytesIO(out)))
    coins = load(samples_dir / "coins.png")
    assert np.abs(got - box3_reference(coins)).max() <= 1


def test_real_subprocess_pipe_and_json(tmp_path, samples_dir):
    exe = Path(sys.executable).with_name("convtool")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "convtool"]
    data = (samples_dir / "coins.png").read_bytes()
    proc = subprocess.run(
        cmd + ["convolve", "-", "-k", "gaussian:1", "-o", "-"],
        input=data,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b"\x89PNG") and b"error" not in proc.stderr
    assert b"\x1b[" not in proc.stderr  # no progress bar when stderr is not a terminal
    (tmp_path / "piped.png").write_bytes(proc.stdout)
    proc = subprocess.run(
        cmd
        + ["convolve", tmp_path / "piped.png", "-k", "sharpen", "--json", "-o", f"{tmp_path}/o/"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["output"] == os.path.join(str(tmp_path / "o"), "piped.png")
    assert record["shape"] == [303, 384]


def test_json_records_and_batch_naming(tmp_path, samples_dir):
    for name in ["camera", "coins", "text"]:
        (tmp_path / f"{name}.png").write_bytes((samples_dir / f"{name}.png").read_bytes())
    res = ok(str(tmp_path / "c*.png"), "-k", "box:3", "--json", "-o", tmp_path / "out/{stem}_b.png")
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [Path(r["input"]).name for r in records] == ["camera.png", "coins.png"]
    assert [Path(r["output"]).name for r in records] == ["camera_b.png", "coins_b.png"]
    for r in records:
        assert set(r) >= {"input", "output", "shape", "dtype", "min", "max", "seconds"}
        got = load(r["output"])
        assert list(got.shape) == r["shape"] and r["dtype"] == "float32"
        assert 0 <= r["min"] <= r["max"] <= 255 and r["seconds"] > 0
    # default naming: <stem>_convolve.png next to the input; a directory input expands
    ok(tmp_path, "-k", "identity", "-q", "--jobs", "2")
    for name in ["camera", "coins", "text"]:
        np.testing.assert_array_equal(
            load(tmp_path / f"{name}_convolve.png"), load(samples_dir / f"{name}.png")
        )
    # DIR/ and {index}
    ok(tmp_path / "camera.png", tmp_path / "text.png", "-k", "identity", "-o", f"{tmp_path}/d/")
    assert sorted(os.listdir(tmp_path / "d")) == ["camera.png", "text.png"]
    ok(
        tmp_path / "camera.png",
        tmp_path / "text.png",
        "-k",
        "box",
        "-o",
        tmp_path / "{index:02d}.jpg",
    )
    assert (tmp_path / "01.jpg").exists() and (tmp_path / "02.jpg").exists()


def test_format_option_and_compress(tmp_path, samples_dir):
    ok(samples_dir / "camera.png", "-k", "identity", "--format", "bmp", "-o", tmp_path / "x.img")
    assert (tmp_path / "x.img").read_bytes()[:2] == b"BM"
    ok(samples_dir / "camera.png", "-k", "identity", "--compress", "9", "-o", tmp_path / "9.png")
    ok(samples_dir / "camera.png", "-k", "identity", "--compress", "0", "-o", tmp_path / "0.png")
    assert (tmp_path / "0.png").stat().st_size > (tmp_path / "9.png").stat().st_size
    np.testing.assert_array_equal(load(tmp_path / "9.png"), load(samples_dir / "camera.png"))


def test_gray_option(tmp_path, samples_dir):
    ok(samples_dir / "astronaut.png", "-k", "identity", "--gray", "-o", tmp_path / "g.png")
    got = load(tmp_path / "g.png")
    with PILImage.open(samples_dir / "astronaut.png") as im:
        ref = np.asarray(im.convert("L")).astype(int)
    assert got.shape == (512, 512) and np.abs(got.astype(int) - ref).max() <= 1


@pytest.mark.parametrize("command", ["convolve", "pool"])
def test_help_teaches_and_does_not_import_numba(command):
    code = (
        "import sys\n"
        "from convtool.cli import app\n"
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(app, [{command!r}, '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'Examples' in r.output and 'symmetric' in r.output, r.output\n"
        "print('numba' in sys.modules, 'numpy' in sys.modules, 'PIL' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "False"]


def test_npy_output_feeds_the_next_command(tmp_path, samples_dir):
    ok(samples_dir / "camera.png", "-k", "sobel-x", "--scale", "raw", "-o", tmp_path / "gx.npy")
    ok(tmp_path / "gx.npy", "-k", "identity", "--scale", "raw", "-o", tmp_path / "again.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), np.load(tmp_path / "gx.npy"))
