"""Every user error: one line on stderr, the right exit code, no output file left behind.

DESIGN.md, "Errors, files and exit codes": not an image, truncated, zero bytes,
decompression bomb, unknown kernel, valid with a kernel larger than the image,
stride 0, NaN weights, output == input, unwritable output directory; a batch
goes on past a bad file and its summary names the failures.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from convtool.cli import app

pytest.importorskip("convtool.filtering")


def convolve(*args, input=None):
    return CliRunner().invoke(app, ["convolve", *map(str, args)], input=input)


def files(d):
    """Every file under d (temporary files would show up here)."""
    return sorted(
        os.path.relpath(os.path.join(root, n), d) for root, _, names in os.walk(d) for n in names
    )


def one_line(res, code, *needles):
    assert res.exit_code == code, (res.exit_code, res.stderr, res.stdout)
    err = res.stderr
    assert err.startswith("convtool: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def work(tmp_path, samples_dir):
    (tmp_path / "good.png").write_bytes((samples_dir / "coins.png").read_bytes())
    small = np.arange(20, dtype=np.uint8).reshape(4, 5)
    PILImage.fromarray(small).save(tmp_path / "small.png")
    (tmp_path / "notes.png").write_text("not an image at all\n")
    (tmp_path / "empty.png").write_bytes(b"")
    data = (samples_dir / "camera.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    buf = io.BytesIO()
    PILImage.open(samples_dir / "camera.png").save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:3000])
    return tmp_path


@pytest.mark.parametrize(
    "name,needle",
    [
        ("notes.png", "not an image"),
        ("empty.png", "empty file (0 bytes)"),
        ("cut.png", "truncated"),
        ("cut.jpg", "truncated"),
        ("missing.png", "no such file"),
    ],
)
def test_bad_input_file(work, name, needle):
    before = files(work)
    res = convolve(work / name, "-k", "box", "-o", work / "out.png")
    one_line(res, 1, name, needle)
    assert files(work) == before


def test_decompression_bomb(work, monkeypatch):
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 5000)
    before = files(work)
    res = convolve(work / "good.png", "-k", "box", "-o", work / "out.png")
    one_line(res, 1, "good.png", "decompression-bomb", "384x303", "CONVTOOL_MAX_PIXELS")
    assert files(work) == before


def test_bomb_from_a_big_header(work):
    # a valid PNG header claiming 40000 x 40000 pixels (above Pillow's default limit)
    import struct
    import zlib

    def chunk(kind, payload):
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
    (work / "huge.png").write_bytes(png)
    res = convolve(work / "huge.png", "-k", "box", "-o", work / "out.png")
    one_line(res, 1, "huge.png", "40000x40000", "decompression-bomb")
    assert not (work / "out.png").exists()


@pytest.mark.parametrize(
    "args,needles",
    [
        (["-k", "sobbel"], ["sobel"]),
        (["-k", "nan 1; 1 1"], ["non-finite"]),
        (["-k", "box", "--stride", "0"], ["--stride", ">= 1"]),
        (["-k", "box", "--dilation", "-1"], ["--dilation"]),
        (["-k", "box", "--pad", "mirrorz"], ["pad mode"]),
        (["-k", "box", "--scale", "log"], ["--scale"]),
        (["-k", "box", "--combine", "mean"], ["--combine"]),
        (["-k", "box", "--depth", "12"], ["--depth"]),
        (["-k", "box", "--compress", "11"], ["--compress"]),
        (["-k", "box", "--scale", "raw"], ["npy"]),
        (["-k", "box", "--jobs", "0"], ["--jobs"]),
    ],
)
def test_usage_errors_before_any_work(work, args, needles):
    before = files(work)
    res = convolve(work / "good.png", *args, "-o", work / "out.png")
    one_line(res, 2, *needles)
    assert files(work) == before


def test_valid_with_kernel_larger_than_image(work):
    res = convolve(work / "small.png", "-k", "box:7", "--pad", "valid", "-o", work / "o.png")
    one_line(res, 2, "valid")
    assert not (work / "o.png").exists()


def test_output_equal_to_input_is_refused(work):
    before = files(work)
    data = (work / "good.png").read_bytes()
    for out in [work / "good.png", f"{work}/./good.png", "{stem}.png"]:
        if "{" in str(out):
            out = os.path.join(work, str(out))
        res = convolve(work / "good.png", "-k", "box", "-o", out)
        one_line(res, 2, "also an input")
    res = convolve(work / "good.png", "-k", "box", "-o", f"{work}/")  # DIR/ -> DIR/good.png
    one_line(res, 2, "also an input")
    assert files(work) == before and (work / "good.png").read_bytes() == data


def test_unwritable_output_directory(work):
    # root can write anywhere, so use a path whose parent is a regular file
    res = convolve(work / "good.png", "-k", "box", "-o", work / "notes.png" / "out.png")
    one_line(res, 2, "output directory")
    assert not (work / "notes.png").is_dir()


def test_failed_write_leaves_no_partial_file(work, monkeypatch):
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("out.png"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    before = files(work)
    res = convolve(work / "good.png", "-k", "box", "-o", work / "out.png")
    one_line(res, 1, "out.png", "No space left")
    assert files(work) == before


def test_batch_goes_on_past_bad_files(work):
    res = convolve(
        work / "notes.png",
        work / "good.png",
        work / "cut.png",
        work / "small.png",
        "-k",
        "box",
        "-o",
        f"{work}/out/",
        "--json",
    )
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert len(lines) == 3, res.stderr
    assert "notes.png" in lines[0] and "cut.png" in lines[1]
    assert lines[2].startswith("convtool: 2 of 4 inputs failed:")
    assert "notes.png" in lines[2] and "cut.png" in lines[2]
    assert files(work / "out") == ["good.png", "small.png"]
    assert len(res.stdout.splitlines()) == 2


def test_batch_with_a_too_small_image_exits_2_but_writes_the_rest(work):
    res = convolve(
        work / "good.png", work / "small.png", "-k", "box:7", "--pad", "valid", "-o", f"{work}/out/"
    )
    assert res.exit_code == 2
    assert files(work / "out") == ["good.png"]
    assert "small.png" in res.stderr and "1 of 2 inputs failed" in res.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["a.png", "b.png", "-o", "one.png"], "names one file"),
        (["a.png", "b.png", "-o", "-"], "takes one input"),
        (["a.png", "sub/a.png", "-o", "out/"], "would both be written"),
        (["-", "-", "-o", "x/"], "only once"),
        (["'*.nothing'"], "no file matches"),
        (["a.png", "-o", "out/{colour}.png"], "unknown field"),
        (["a.png", "-o", "out.gif"], "output format"),
        (["a.png", "--json", "-o", "-"], "stdout"),
    ],
)
def test_batch_planning_errors(work, monkeypatch, args, needle):
    monkeypatch.chdir(work)
    for name in ["a.png", "b.png", "sub/a.png"]:
        (work / name).parent.mkdir(exist_ok=True)
        (work / name).write_bytes((work / "good.png").read_bytes())
    args = [a.strip("'") for a in args]
    before = files(work)
    res = convolve(*args, "-k", "box")
    one_line(res, 1 if needle == "no file matches" else 2, needle)
    assert files(work) == before


def test_pool_bad_file_in_batch(work):
    res = CliRunner().invoke(
        app, ["pool", str(work / "empty.png"), str(work / "good.png"), "-o", f"{work}/p/"]
    )
    assert res.exit_code == 1
    assert "empty.png" in res.stderr and files(work / "p") == ["good.png"]


def test_sigterm_stops_a_batch_without_leftovers(tmp_path, samples_dir):
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    src.mkdir()
    data = (samples_dir / "camera.png").read_bytes()
    for i in range(150):
        (src / f"im{i:03d}.png").write_bytes(data)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "convtool", "convolve", str(src), "-k", "box", "-o", f"{out}/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (out.exists() and any(n.endswith(".png") for n in os.listdir(out))):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip().endswith("convtool: error: interrupted")
    names = os.listdir(out)
    assert all(n.endswith(".png") and not n.startswith(".") for n in names)
    assert 0 < len(names) < 150
    for n in names[:3]:  # every file there is whole
        with PILImage.open(out / n) as im:
            im.load()
