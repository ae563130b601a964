"""Streamed TIFF / .npy / zarr through the CLI (convtool.streaming).

Each streamed output is compared with the in-memory API result on the same
array, and the seams are checked on purpose: the rows and columns on both
sides of every window boundary, and the image borders, where a wrong halo or
a wrong pad-mode border would show first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")

import convtool  # noqa: E402
from convtool import streaming  # noqa: E402
from convtool.cli import app  # noqa: E402

RNG = np.random.default_rng(11)


def run(*args, env=None):
    return CliRunner().invoke(app, [*map(str, args)], env=env)


def ok(*args, env=None):
    res = run(*args, env=env)
    assert res.exit_code == 0, res.stderr + res.stdout
    return res


def seams(n: int, chunk: int, reach: int) -> np.ndarray:
    """Indices within ``reach`` of a window boundary or of the image border."""
    edges = [0, n] + list(range(chunk, n, chunk))
    idx = {i for e in edges for i in range(e - reach, e + reach) if 0 <= i < n}
    return np.array(sorted(idx))


def check_seams(got: np.ndarray, want: np.ndarray, chunk: int, reach: int = 3) -> None:
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    rows, cols = seams(want.shape[0], chunk, reach), seams(want.shape[1], chunk, reach)
    # the seam rows and columns first (a halo bug shows there), then everything
    np.testing.assert_allclose(got[rows], want[rows], rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(got[:, cols], want[:, cols], rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


TIFF_CASES = [
    # dtype, tiled, compression, colour
    (np.uint8, True, None, False),
    (np.uint8, False, "zlib", False),
    (np.uint16, True, "zlib", False),
    (np.float32, False, None, False),
    (np.uint8, True, "zlib", True),
    (np.uint16, False, "zlib", True),
]


@pytest.mark.parametrize("dtype,tiled,compression,colour", TIFF_CASES)
def test_streamed_tiff_round_trip_matches_in_memory(tmp_path, dtype, tiled, compression, colour):
    shape = (301, 275, 3) if colour else (301, 275)
    top = 255 if dtype == np.uint8 else (65535 if dtype == np.uint16 else 1000)
    img = (RNG.random(shape) * top).astype(dtype)
    src = tmp_path / "in.tif"
    layout = {"tile": (64, 64)} if tiled else {"rowsperstrip": 37}
    tifffile.imwrite(src, img, bigtiff=True, compression=compression,
                     photometric="rgb" if colour else "minisblack", **layout)  # fmt: skip
    out = tmp_path / "out.tif"
    ok("convolve", src, "-k", "5 1 0 -1 -2; 1 2 0 -2 -1; 0 1 1 0 2", "--pad", "wrap",
       "--chunks", 70, "-o", out, "-q")  # fmt: skip
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled
        got = tif.asarray()
    want = convtool.convolve(img.astype(np.float32), "5 1 0 -1 -2; 1 2 0 -2 -1; 0 1 1 0 2",
                             pad="wrap", method="direct")  # fmt: skip
    check_seams(got, want, 70)


def test_streamed_pool_npy_and_zarr(tmp_path):
    img = RNG.random((250, 230)).astype(np.float32) * 100
    np.save(tmp_path / "in.npy", img)
    ok("pool", tmp_path / "in.npy", "--mode", "avg", "--size", 3, "--stride", 2, "--pad",
       "reflect", "--chunks", 64, "-o", tmp_path / "p.npy", "-q")  # fmt: skip
    ok("pool", tmp_path / "in.npy", "--mode", "max", "--size", 3, "--stride", 2,
       "--chunks", 50, "-o", tmp_path / "p.zarr", "-q")  # fmt: skip
    want = convtool.pool(img, "avg", size=3, stride=2, pad="reflect")
    check_seams(np.load(tmp_path / "p.npy"), want, 32)
    want = convtool.pool(img, "max", size=3, stride=2)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "p.zarr", mode="r")[:], want)
    # a zarr store is an input too (one image, not a folder of images)
    ok("convolve", tmp_path / "p.zarr", "-k", "box:3", "-o", tmp_path / "c.npy", "-q")
    check_seams(np.load(tmp_path / "c.npy"), convtool.convolve(want, "box:3"), 1024)


def test_streamed_bank_stack_and_png_output_equal_in_memory_bytes(tmp_path, samples_dir):
    from PIL import Image

    cam = np.asarray(Image.open(samples_dir / "camera.png"))
    tifffile.imwrite(tmp_path / "cam.tif", cam, tile=(128, 128))
    # a PNG result of a streamed input is encoded whole, by the same --scale rules
    ok("convolve", tmp_path / "cam.tif", "-k", "sobel", "--chunks", 100, "-o", tmp_path / "s.png",
       "-q")  # fmt: skip
    ok("convolve", samples_dir / "camera.png", "-k", "sobel", "-o", tmp_path / "r.png", "-q")
    assert (tmp_path / "s.png").read_bytes() == (tmp_path / "r.png").read_bytes()
    ok("convolve", tmp_path / "cam.tif", "-k", "sobel-x", "-k", "sobel-y", "--combine", "stack",
       "--chunks", 100, "-o", tmp_path / "st.npy", "-q")  # fmt: skip
    want = convtool.filter_bank(cam.astype(np.float32), ["sobel-x", "sobel-y"], method="direct")
    got = np.load(tmp_path / "st.npy")
    assert got.shape == (2, 512, 512)
    for m in range(2):
        check_seams(got[m], want[m], 100)


def test_automatic_switch_above_the_stated_size(tmp_path):
    img = RNG.random((90, 80)).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", img)
    ok("convolve", tmp_path / "a.tif", "-k", "box:3", "-o", tmp_path / "mem.tif", "-q")
    env = {"CONVTOOL_STREAM_PIXELS": "1000"}
    ok("convolve", tmp_path / "a.tif", "-k", "box:3", "-o", tmp_path / "str.tif", "-q", env=env)
    with tifffile.TiffFile(tmp_path / "str.tif") as t:
        assert t.is_bigtiff and t.pages[0].is_tiled  # the streamed writer
        streamed = t.asarray()
    with tifffile.TiffFile(tmp_path / "mem.tif") as t:
        assert not t.is_bigtiff  # the in-memory writer
        np.testing.assert_allclose(streamed, t.asarray(), rtol=1e-6)


def test_too_big_for_png_suggests_tiff(tmp_path, samples_dir):
    img = RNG.random((120, 100)).astype(np.float32)
    np.save(tmp_path / "a.npy", img)
    res = run("convolve", tmp_path / "a.npy", "-k", "box:3", "--chunks", 50, "-o",
              tmp_path / "a.png", env={"CONVTOOL_MAX_PIXELS": "5000"})  # fmt: skip
    assert res.exit_code == 2
    assert ".tif" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "a.png").exists()
    res = run("convolve", samples_dir / "camera.png", "-k", "box:3", "-o", tmp_path / "b.png",
              env={"CONVTOOL_MAX_PIXELS": "5000"})  # fmt: skip
    assert res.exit_code == 1 and "tif" in res.stderr.lower()


def test_interrupted_streamed_write_leaves_nothing(tmp_path, monkeypatch):
    img = RNG.random((200, 200)).astype(np.float32)
    np.save(tmp_path / "a.npy", img)
    calls = {"n": 0}
    real = streaming.Bands.parts

    def flaky(self, arr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, arr)

    monkeypatch.setattr(streaming.Bands, "parts", flaky)
    for name in ("o.tif", "o.npy", "o.zarr"):
        calls["n"] = 0
        res = run("convolve", tmp_path / "a.npy", "-k", "box:3", "--chunks", 40, "-o",
                  tmp_path / name, "-q")  # fmt: skip
        assert res.exit_code == 130, res.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_a_streamed_write_leaves_nothing(tmp_path):
    img = np.zeros((1500, 1500), np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", img, tile=(256, 256))
    proc = subprocess.Popen(
        [sys.executable, "-m", "convtool", "convolve", str(tmp_path / "big.tif"), "-k", "box:9",
         "--chunks", "16", "-o", str(tmp_path / "out.tif"), "-q"],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(n.endswith(".tmp") for n in os.listdir(tmp_path)):
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err.decode()
    assert sorted(os.listdir(tmp_path)) == ["big.tif"]


def test_reach_of_windows_and_bad_files(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    res = run("convolve", tmp_path / "bad.tif", "-k", "box:3", "--chunks", 8, "-o",
              tmp_path / "o.tif")  # fmt: skip
    assert res.exit_code == 1 and "bad.tif" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o.tif").exists()
    res = run("convolve", tmp_path / "x.npy", "-k", "box:3", "--chunks", 0)
    assert res.exit_code == 2


def test_streamed_stack_pages_and_zarr_and_gray(tmp_path, samples_dir):
    from PIL import Image

    rgb = np.asarray(Image.open(samples_dir / "astronaut.png"))[:200, :180]
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", tile=(64, 64))
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    bank = ["-k", "sobel-x", "-k", "laplacian", "--combine", "stack", "--chunks", 64, "-q"]
    ok("convolve", tmp_path / "rgb.tif", *bank, "-o", tmp_path / "st.tif")
    ok("convolve", tmp_path / "rgb.tif", *bank, "-o", tmp_path / "st.zarr")
    want = convtool.filter_bank(rgb.astype(np.float32), ["sobel-x", "laplacian"], method="direct")
    with tifffile.TiffFile(tmp_path / "st.tif") as tif:
        pages = [p.asarray() for p in tif.pages]
    assert len(pages) == 2 and pages[0].shape == (200, 180, 3)  # one page per map
    for m in range(2):
        check_seams(pages[m], want[m], 64)
    check_seams(zarr.open_array(tmp_path / "st.zarr", mode="r")[:][1], want[1], 64)
    # --gray: the same luminance as the in-memory reader (Pillow), then the same filter
    ok("convolve", tmp_path / "rgb.tif", "-k", "box:3", "--gray", "--chunks", 50, "-o",
       tmp_path / "g1.npy", "-q")  # fmt: skip
    ok("convolve", tmp_path / "rgb.png", "-k", "box:3", "--gray", "-o", tmp_path / "g2.npy", "-q")
    check_seams(np.load(tmp_path / "g1.npy"), np.load(tmp_path / "g2.npy"), 50)
