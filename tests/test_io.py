"""convtool.io and convtool.scaling: modes, depths, raw outputs, atomic writes, errors."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image as PILImage

from convtool.errors import InputError, UsageError
from convtool.io import (
    check_not_input,
    encode_png,
    luminance,
    output_format,
    read_image,
    write_image,
)
from convtool.scaling import to_depth

RNG = np.random.default_rng(1234)


def _u8(shape):
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _save(path, im, **kw):
    im.save(path, **kw)
    return path


def _listing(d):
    return sorted(os.listdir(d))


# --------------------------------------------------------------------------- reading modes


def test_read_l_rgb_exact(tmp_path):
    g, c = _u8((7, 9)), _u8((5, 6, 3))
    _save(tmp_path / "g.png", PILImage.fromarray(g))
    _save(tmp_path / "c.png", PILImage.fromarray(c))
    ig, ic = read_image(tmp_path / "g.png"), read_image(tmp_path / "c.png")
    assert ig.data.dtype == np.float32 and ig.depth == 8 and ig.alpha is None and ig.mode == "L"
    np.testing.assert_array_equal(ig.data, g)
    np.testing.assert_array_equal(ic.data, c)
    assert ic.shape == (5, 6, 3) and ic.name == str(tmp_path / "c.png")


def test_read_rgba_and_la_separate_alpha(tmp_path):
    rgba, la = _u8((4, 5, 4)), _u8((6, 3, 2))
    _save(tmp_path / "a.png", PILImage.fromarray(rgba, "RGBA"))
    _save(tmp_path / "b.png", PILImage.fromarray(la, "LA"))
    a, b = read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png")
    np.testing.assert_array_equal(a.data, rgba[..., :3])
    np.testing.assert_array_equal(a.alpha, rgba[..., 3])
    assert b.data.shape == (6, 3) and b.mode == "LA"
    np.testing.assert_array_equal(b.data, la[..., 0])
    np.testing.assert_array_equal(b.alpha, la[..., 1])


def test_read_palette_with_and_without_transparency(tmp_path):
    idx = RNG.integers(0, 4, size=(5, 7), dtype=np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30] + [0] * (256 * 3 - 12)
    im = PILImage.fromarray(idx, "P")
    im.putpalette(palette)
    _save(tmp_path / "p.png", im)
    _save(tmp_path / "pt.png", im, transparency=2)
    lut = np.array(palette, dtype=np.float32).reshape(-1, 3)
    p, pt = read_image(tmp_path / "p.png"), read_image(tmp_path / "pt.png")
    assert p.mode == "P" and p.alpha is None
    np.testing.assert_array_equal(p.data, lut[idx])
    np.testing.assert_array_equal(pt.data, lut[idx])
    np.testing.assert_array_equal(pt.alpha, np.where(idx == 2, 0, 255))


def test_read_bilevel_gives_0_and_255(tmp_path):
    bits = RNG.integers(0, 2, size=(8, 13)).astype(bool)
    _save(tmp_path / "b.png", PILImage.fromarray(bits))
    img = read_image(tmp_path / "b.png")
    assert img.mode == "1" and img.depth == 8
    np.testing.assert_array_equal(img.data, np.where(bits, 255, 0))


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_read_16bit_gray_keeps_full_range(tmp_path, ext):
    g = RNG.integers(0, 65536, size=(9, 11), dtype=np.uint16)
    g[0, 0], g[0, 1] = 0, 65535
    _save(tmp_path / f"g.{ext}", PILImage.fromarray(g))
    img = read_image(tmp_path / f"g.{ext}")
    assert img.depth == 16 and img.mode.startswith("I")
    np.testing.assert_array_equal(img.data, g)


def test_read_big_endian_16bit(tmp_path):
    g = RNG.integers(0, 65536, size=(4, 6), dtype=np.uint16)
    im = PILImage.frombytes("I;16B", (6, 4), g.astype(">u2").tobytes())
    _save(tmp_path / "g.tif", im)
    img = read_image(tmp_path / "g.tif")
    assert img.depth == 16
    np.testing.assert_array_equal(img.data, g)


def test_read_float_tiff_depth_32(tmp_path):
    f = RNG.normal(size=(5, 4)).astype(np.float32)
    _save(tmp_path / "f.tif", PILImage.fromarray(f))
    img = read_image(tmp_path / "f.tif")
    assert img.depth == 32 and img.mode == "F"
    np.testing.assert_array_equal(img.data, f)


@pytest.mark.parametrize("fmt,kw", [("bmp", {}), ("webp", {"lossless": True}), ("jpg", {})])
def test_read_other_formats(tmp_path, fmt, kw):
    c = _u8((16, 16, 3))
    _save(tmp_path / f"c.{fmt}", PILImage.fromarray(c), **kw)
    img = read_image(tmp_path / f"c.{fmt}")
    assert img.data.shape == (16, 16, 3) and img.depth == 8
    if fmt != "jpg":
        np.testing.assert_array_equal(img.data, c)


def test_exif_orientation_is_applied(tmp_path):
    g = _u8((3, 5))
    im = PILImage.fromarray(g)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    im.save(tmp_path / "o.png", exif=exif)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").data, np.rot90(g, -1))


def test_gray_is_601_luminance_in_float(samples_dir):
    img = read_image(samples_dir / "astronaut.png", gray=True)
    rgb = read_image(samples_dir / "astronaut.png").data.astype(np.float64)
    expected = rgb @ np.array([0.299, 0.587, 0.114])
    assert img.data.shape == (512, 512) and img.data.dtype == np.float32
    np.testing.assert_allclose(img.data, expected, atol=1e-3)
    with PILImage.open(samples_dir / "astronaut.png") as im:
        pil_l = np.asarray(im.convert("L"), dtype=np.float32)
    assert np.abs(img.data - pil_l).max() <= 1.0  # Pillow rounds to integers
    assert float(luminance(np.full((1, 1, 3), 65535.0))[0, 0]) == pytest.approx(65535.0)


def test_gray_on_16bit_scale(tmp_path):
    g = RNG.integers(0, 65536, size=(3, 3), dtype=np.uint16)
    _save(tmp_path / "g.png", PILImage.fromarray(g))
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", gray=True).data, g)


def test_read_stdin(monkeypatch, samples_dir):
    data = (samples_dir / "coins.png").read_bytes()

    class FakeStdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr("sys.stdin", FakeStdin)
    img = read_image("-")
    assert img.name == "-" and img.data.shape == (303, 384)


# --------------------------------------------------------------------------- reading errors


def _input_error(path, match):
    with pytest.raises(InputError, match=match) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_empty_directory_not_image(tmp_path):
    _input_error(tmp_path / "nope.png", "no such file")
    (tmp_path / "empty.png").write_bytes(b"")
    _input_error(tmp_path / "empty.png", "empty file")
    _input_error(tmp_path, "directory")
    (tmp_path / "notes.png").write_text("hello, not an image\n")
    _input_error(tmp_path / "notes.png", "not an image")


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff"])
def test_truncated_files_fail_on_read(tmp_path, samples_dir, fmt):
    buf = io.BytesIO()
    with PILImage.open(samples_dir / "camera.png") as im:
        im.save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[: len(data) // 2])
    _input_error(path, "truncated|corrupt")


def test_decompression_bomb(tmp_path, monkeypatch, samples_dir):
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    message = _input_error(samples_dir / "camera.png", "decompression-bomb")
    assert "512x512" in message and "CONVTOOL_MAX_PIXELS" in message
    # more than twice the limit is Pillow's error rather than its warning: same line
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)
    _input_error(samples_dir / "camera.png", "decompression-bomb")
    monkeypatch.setenv("CONVTOOL_MAX_PIXELS", str(10**6))
    assert read_image(samples_dir / "camera.png").data.shape == (512, 512)
    assert PILImage.MAX_IMAGE_PIXELS == 100  # restored


def test_unsupported_mode(tmp_path):
    PILImage.new("LAB", (4, 4)).save(tmp_path / "lab.tif")
    _input_error(tmp_path / "lab.tif", "unsupported image mode 'LAB'")


# --------------------------------------------------------------------------- writing


def test_write_png_8bit_roundtrip_all_layouts(tmp_path):
    g, c, a = _u8((6, 7)), _u8((6, 7, 3)), _u8((6, 7))
    for name, data, alpha in [("g", g, None), ("c", c, None), ("ca", c, a), ("ga", g, a)]:
        path = tmp_path / f"{name}.png"
        write_image(path, data.astype(np.float32), alpha=None if alpha is None else alpha * 1.0)
        back = read_image(path)
        np.testing.assert_array_equal(back.data, data)
        if alpha is None:
            assert back.alpha is None
        else:
            np.testing.assert_array_equal(back.alpha, alpha)


def test_write_16bit_gray_and_colour(tmp_path):
    cv2 = pytest.importorskip("cv2")
    g = RNG.integers(0, 65536, size=(5, 8)).astype(np.float32)
    c = RNG.integers(0, 65536, size=(5, 8, 3)).astype(np.float32)
    a = RNG.integers(0, 65536, size=(5, 8)).astype(np.float32)
    write_image(tmp_path / "g.png", g, depth=16)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png").data, g)
    write_image(tmp_path / "c.png", c, alpha=a, depth=16)
    back = cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (5, 8, 4)
    np.testing.assert_array_equal(back[..., 2::-1], c)  # OpenCV is BGR(A)
    np.testing.assert_array_equal(back[..., 3], a)
    write_image(tmp_path / "ga.png", g, alpha=a, depth=16)
    back = cv2.imread(str(tmp_path / "ga.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16  # OpenCV expands gray+alpha to 4 channels
    np.testing.assert_array_equal(back[..., 0], g)
    np.testing.assert_array_equal(back[..., 3], a)


def test_encode_png_is_valid_png():
    px = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    im = PILImage.open(io.BytesIO(encode_png(px)))
    assert im.size == (4, 3) and im.mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(im), px)


@pytest.mark.parametrize("shape,dtype", [((60, 90, 4), np.uint8), ((75, 75), np.uint16)])
def test_encode_png_parallel_blocks_decode_exactly(monkeypatch, shape, dtype):
    # small deflate blocks: several blocks joined into one zlib stream
    monkeypatch.setattr("convtool.io._DEFLATE_BLOCK", 1000)
    top = np.iinfo(dtype).max
    ramp = np.linspace(0, top - 3, num=shape[0] * shape[1]).reshape(shape[:2])
    px = (ramp + RNG.integers(0, 3, size=shape[:2])).astype(dtype)
    if len(shape) == 3:
        px = np.dstack([px, px[::-1], px[:, ::-1], RNG.integers(0, 256, size=shape[:2])])
        px = px.astype(dtype)
    for level in (0, 1, 6):
        with PILImage.open(io.BytesIO(encode_png(px, level))) as im:
            assert im.size == (shape[1], shape[0])
            np.testing.assert_array_equal(np.asarray(im), px)


def test_source_depth_rescales_clip(tmp_path):
    write_image(tmp_path / "up.png", np.array([[0.0, 1.0, 255.0]]), depth=16, source_depth=8)
    np.testing.assert_array_equal(read_image(tmp_path / "up.png").data, [[0, 257, 65535]])
    write_image(tmp_path / "dn.png", np.array([[0.0, 257.0, 65535.0]]), source_depth=16)
    np.testing.assert_array_equal(read_image(tmp_path / "dn.png").data, [[0, 1, 255]])


def test_raw_outputs_keep_float_values(tmp_path):
    data = RNG.normal(scale=500, size=(6, 5)).astype(np.float32)
    write_image(tmp_path / "r.npy", data, scale="raw")
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), data)
    write_image(tmp_path / "r.tif", data, scale="normalize")  # tif is raw whatever the scale
    back = read_image(tmp_path / "r.tif")
    assert back.depth == 32
    np.testing.assert_array_equal(back.data, data)


def test_stack_to_multipage_tiff_and_npy(tmp_path):
    stack = RNG.normal(size=(3, 5, 4)).astype(np.float32)
    write_image(tmp_path / "s.tif", stack, stack=True)
    with PILImage.open(tmp_path / "s.tif") as im:
        assert im.n_frames == 3
        pages = []
        for i in range(3):
            im.seek(i)
            assert im.mode == "F"
            pages.append(np.asarray(im))
    np.testing.assert_array_equal(np.stack(pages), stack)
    write_image(tmp_path / "s.npy", stack, stack=True)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), stack)
    colour = RNG.normal(size=(2, 3, 4, 3)).astype(np.float32)
    write_image(tmp_path / "c.tif", colour, stack=True)
    with PILImage.open(tmp_path / "c.tif") as im:
        assert im.n_frames == 6
        im.seek(4)  # map 1, channel 1
        np.testing.assert_array_equal(np.asarray(im), colour[1, ..., 1])


def test_stack_to_png_is_refused_and_leaves_nothing(tmp_path):
    with pytest.raises(UsageError, match="tif"):
        write_image(tmp_path / "s.png", np.zeros((2, 3, 3)), stack=True)
    assert _listing(tmp_path) == []


def test_jpeg_drops_alpha_webp_lossless_bmp(tmp_path):
    c, a = _u8((8, 8, 3)).astype(np.float32), _u8((8, 8)).astype(np.float32)
    write_image(tmp_path / "x.jpg", c, alpha=a)
    assert read_image(tmp_path / "x.jpg").alpha is None
    write_image(tmp_path / "x.webp", c, alpha=a)
    back = read_image(tmp_path / "x.webp")
    np.testing.assert_array_equal(back.alpha, a)
    write_image(tmp_path / "x.bmp", c)
    np.testing.assert_array_equal(read_image(tmp_path / "x.bmp").data, c)
    with pytest.raises(UsageError, match="8 bits"):
        write_image(tmp_path / "y.jpg", c, depth=16)


def test_npy_input_and_bmp_drops_alpha(tmp_path):
    data = RNG.normal(size=(5, 6, 3)).astype(np.float32)
    np.save(tmp_path / "r.npy", data)
    img = read_image(tmp_path / "r.npy")
    assert img.depth == 32 and img.alpha is None
    np.testing.assert_array_equal(img.data, data)
    np.testing.assert_allclose(read_image(tmp_path / "r.npy", gray=True).data, luminance(data))
    np.save(tmp_path / "bad.npy", np.zeros(4))
    _input_error(tmp_path / "bad.npy", "not an image")
    g, a = _u8((4, 4)).astype(np.float32), _u8((4, 4)).astype(np.float32)
    write_image(tmp_path / "la.bmp", g, alpha=a)
    back = read_image(tmp_path / "la.bmp")
    assert back.alpha is None
    np.testing.assert_array_equal(back.data[..., 0] if back.data.ndim == 3 else back.data, g)


def test_png_compress_level(tmp_path):
    data = np.tile(np.arange(256, dtype=np.float32), (64, 1))
    write_image(tmp_path / "0.png", data, compress=0)
    write_image(tmp_path / "9.png", data, compress=9)
    assert (tmp_path / "0.png").stat().st_size > 4 * (tmp_path / "9.png").stat().st_size
    with pytest.raises(UsageError, match="0..9"):
        write_image(tmp_path / "x.png", data, compress=10)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(InputError, match="No space left"):
        write_image(tmp_path / "out.png", np.zeros((4, 4)))
    assert _listing(tmp_path) == []


def test_atomic_write_replaces_existing_file_whole(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    write_image(path, np.full((3, 3), 7.0))
    np.testing.assert_array_equal(read_image(path).data, 7)
    assert _listing(tmp_path) == ["out.png"]


def test_write_into_missing_or_bad_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot write|does not exist"):
        write_image(tmp_path / "file" / "out.png", np.zeros((2, 2)))
    with pytest.raises(InputError, match="does not exist"):
        write_image(tmp_path / "no" / "out.png", np.zeros((2, 2)))


def test_write_stdout(capsysbinary):
    write_image("-", np.full((2, 3), 9.0))
    out = capsysbinary.readouterr().out
    assert out.startswith(b"\x89PNG")
    assert np.asarray(PILImage.open(io.BytesIO(out))).tolist() == [[9, 9, 9], [9, 9, 9]]


def test_output_format():
    assert output_format("a.JPEG") == "jpeg" and output_format("-") == "png"
    assert output_format("-", "tif") == "tiff"
    with pytest.raises(UsageError, match="extension"):
        output_format("a.xyz")
    with pytest.raises(UsageError, match="--format"):
        output_format("a.png", "gif")


def test_check_not_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.png").write_bytes(b"x")
    os.symlink(tmp_path / "in.png", tmp_path / "link.png")
    check_not_input(["out.png", "-"], ["in.png", "-"])
    for out in ["in.png", str(tmp_path / "in.png"), "./sub/../in.png", "link.png"]:
        with pytest.raises(UsageError, match="also an input"):
            check_not_input([out], ["in.png"])


# --------------------------------------------------------------------------- scaling


def test_scaling_known_values():
    v = np.array([-300.0, -1.0, 0.0, 0.5, 1.5, 100.4, 400.0, np.nan, np.inf, -np.inf])
    assert to_depth(v, "clip").tolist() == [0, 0, 0, 0, 2, 100, 255, 0, 255, 0]
    assert to_depth(v, "abs").tolist() == [255, 1, 0, 0, 2, 100, 255, 0, 255, 255]
    # offset: zero is mid-grey, the largest finite |v| (400) reaches 0 or 255
    off = to_depth(v, "offset")
    assert off[2] == 128 and off[6] == 255 and off[0] == 32 and off[7] == 0
    norm = to_depth(np.array([-2.0, 0.0, 2.0, np.nan]), "normalize")
    assert norm.tolist() == [0, 128, 255, 0]
    assert to_depth(np.array([-2.0, 2.0]), "offset", 16).tolist() == [0, 65535]
    assert to_depth(np.array([70000.0, 3.0]), "clip", 16).tolist() == [65535, 3]
    assert to_depth(np.array([70000.0, 3.0]), "clip", 16).dtype == np.uint16


def test_scaling_constant_and_empty():
    assert to_depth(np.full((2, 2), 5.0), "normalize").tolist() == [[0, 0], [0, 0]]
    assert to_depth(np.zeros(3), "offset").tolist() == [128, 128, 128]
    assert to_depth(np.full(3, np.nan), "normalize").tolist() == [0, 0, 0]


def test_scaling_normalize_is_joint_over_channels():
    rgb = np.zeros((1, 2, 3))
    rgb[0, 1] = [10.0, 20.0, 30.0]
    out = to_depth(rgb, "normalize")
    assert out[0, 1].tolist() == [85, 170, 255]


def test_scaling_errors():
    with pytest.raises(UsageError, match="npy"):
        to_depth(np.zeros(2), "raw")
    with pytest.raises(UsageError, match="scale"):
        to_depth(np.zeros(2), "gamma")
    with pytest.raises(UsageError, match="depth"):
        to_depth(np.zeros(2), "clip", 12)
