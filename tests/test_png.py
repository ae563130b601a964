"""Every PNG colour type and bit depth reads back exactly (issue 11, item 1).

PNGs are built here by a small writer that knows nothing of convtool's
decoder: each row gets a chosen filter (none, sub, up, average, Paeth, or a
random mix), sub-byte depths are packed, and Adam7 interlacing splits the
image into its seven passes. OpenCV (libpng with adaptive filters) is a
second, independent encoder for 16-bit colour. Pillow reads everything but
16-bit colour exactly; convtool's own decoder reads those.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from convtool.cli import app
from convtool.errors import InputError
from convtool.io import read_image
from convtool.png import ADAM7, PNGError, decode_png

RNG = np.random.default_rng(2026)
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
FILTERS = ("none", "sub", "up", "average", "paeth", "mixed")


# ------------------------------------------------------------------ a reference writer


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _pack_rows(samples: np.ndarray, depth: int) -> np.ndarray:
    """(H, W*C) integer samples -> (H, rowbytes) uint8 as PNG stores them."""
    h = samples.shape[0]
    if depth == 16:
        return samples.astype(">u2").view(np.uint8).reshape(h, -1)
    if depth == 8:
        return samples.astype(np.uint8)
    per_byte = 8 // depth
    n = samples.shape[1]
    padded = np.zeros((h, -(-n // per_byte) * per_byte), dtype=np.uint8)
    padded[:, :n] = samples
    groups = padded.reshape(h, -1, per_byte)
    out = np.zeros(groups.shape[:2], dtype=np.uint8)
    for k in range(per_byte):  # first sample in the high bits
        out |= (groups[:, :, k] << (8 - depth * (k + 1))).astype(np.uint8)
    return out


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_rows(raw: np.ndarray, bpp: int, kinds: list[int]) -> bytes:
    """Apply filter ``kinds[r]`` to each row of ``raw`` (plain loops, the spec's formulas)."""
    out = bytearray()
    prior = [0] * raw.shape[1]
    for r, row in enumerate(raw.tolist()):
        ft = kinds[r]
        line = []
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[ft]
            line.append((x - pred) % 256)
        out.append(ft)
        out.extend(line)
        prior = row
    return bytes(out)


def make_png(
    samples: np.ndarray,
    depth: int,
    ctype: int,
    *,
    filters: str = "mixed",
    interlace: bool = False,
    palette: np.ndarray | None = None,
    trns: bytes | None = None,
) -> bytes:
    """PNG bytes of (H, W, C) integer ``samples`` (palette indices for type 3)."""
    h, w, c = samples.shape
    bpp = max(1, c * depth // 8)
    passes = list(ADAM7) if interlace else [(0, 0, 1, 1)]
    stream = b""
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        raw = _pack_rows(sub.reshape(sub.shape[0], -1), depth)
        if filters == "mixed":
            kinds = RNG.integers(0, 5, size=raw.shape[0]).tolist()
        else:
            kinds = [FILTERS.index(filters)] * raw.shape[0]
        stream += _filter_rows(raw, bpp, kinds)
    parts = [
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace))),
    ]
    if palette is not None:
        parts.append(_chunk(b"PLTE", palette.astype(np.uint8).tobytes()))
    if trns is not None:
        parts.append(_chunk(b"tRNS", trns))
    z = zlib.compress(stream, 6)
    parts += [_chunk(b"IDAT", z[: len(z) // 2]), _chunk(b"IDAT", z[len(z) // 2 :])]
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


# ------------------------------------------------------------------ what convtool should read


def _expected(samples: np.ndarray, depth: int, ctype: int, palette=None, trns=None):
    """(data, alpha, depth) that read_image must return for these samples."""
    s = samples.astype(np.float64)
    if ctype == 3:
        rgb = palette[samples[..., 0]].astype(np.float32)
        alpha = None
        if trns is not None:
            table = np.full(len(palette), 255, dtype=np.float32)
            table[: len(trns)] = np.frombuffer(trns, dtype=np.uint8)
            alpha = table[samples[..., 0]]
        return rgb, alpha, 8
    if depth < 8:
        s = s * (255 // ((1 << depth) - 1))  # PNG's low depths are scaled to 8 bits
    out_depth = 16 if depth == 16 else 8
    channels = CHANNELS[ctype]
    colour = s[..., 0] if channels in (1, 2) else s[..., :3]
    alpha = s[..., -1].astype(np.float32) if channels in (2, 4) else None
    return colour.astype(np.float32), alpha, out_depth


def _samples(h: int, w: int, depth: int, ctype: int, palette_size: int = 0) -> np.ndarray:
    top = palette_size if ctype == 3 else 1 << depth
    s = RNG.integers(0, top, size=(h, w, CHANNELS[ctype]), dtype=np.int64)
    if depth == 16:  # make the low byte matter and exercise the extremes
        s.reshape(-1)[:4] = [0, 1, 65534, 65535][: s.size]
    return s


CASES = [(ct, d) for ct, ds in DEPTHS.items() for d in ds]


@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
@pytest.mark.parametrize("ctype, depth", CASES, ids=[f"type{c}-{d}bit" for c, d in CASES])
def test_every_colour_type_and_depth_reads_back_exactly(tmp_path, ctype, depth, interlace):
    palette = trns = None
    size = 0
    if ctype == 3:
        size = min(1 << depth, 200)
        palette = RNG.integers(0, 256, size=(size, 3))
        trns = bytes(RNG.integers(0, 256, size=max(1, size // 2)).astype(np.uint8))
    samples = _samples(11, 13, depth, ctype, size)
    path = tmp_path / "in.png"
    path.write_bytes(
        make_png(samples, depth, ctype, interlace=interlace, palette=palette, trns=trns)
    )
    img = read_image(path)
    data, alpha, out_depth = _expected(samples, depth, ctype, palette, trns)
    assert img.depth == out_depth
    np.testing.assert_array_equal(img.data, data)
    if alpha is None:
        assert img.alpha is None
    else:
        np.testing.assert_array_equal(img.alpha, alpha)


@pytest.fixture(params=["numpy", "numba"])
def unfilter_path(request, monkeypatch):
    """Average and Paeth rows: the numpy diagonals, or the Numba kernel."""
    import convtool.png

    monkeypatch.setattr(convtool.png, "_use_numba", lambda pixels: request.param == "numba")
    return request.param


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("ctype", [2, 4, 6])
def test_each_row_filter_16bit_colour(filters, ctype, unfilter_path):
    samples = _samples(9, 10, 16, ctype)
    pixels, _ = decode_png(make_png(samples, 16, ctype, filters=filters))
    np.testing.assert_array_equal(pixels, samples)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 3), (8, 8), (17, 5)])
def test_adam7_small_and_odd_sizes(shape, unfilter_path):
    """Passes that are empty for tiny images carry no bytes at all."""
    samples = _samples(*shape, 16, 6)
    pixels, _ = decode_png(make_png(samples, 16, 6, interlace=True))
    np.testing.assert_array_equal(pixels, samples)


def test_small_paeth_png_is_read_without_numba(tmp_path):
    """A single read of a small 16-bit Paeth PNG does not pay Numba's start-up."""
    path = tmp_path / "p.png"
    samples = _samples(40, 50, 16, 6)
    path.write_bytes(make_png(samples, 16, 6, filters="paeth"))
    np.save(tmp_path / "expected.npy", samples)
    code = (
        "import sys, numpy as np; from convtool.io import read_image; "
        f"img = read_image({str(path)!r}); e = np.load({str(tmp_path / 'expected.npy')!r}); "
        "assert (img.data == e[..., :3]).all() and (img.alpha == e[..., 3]).all(); "
        "print('numba' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("channels", [3, 4])
def test_opencv_16bit_png_reads_exactly(tmp_path, channels):
    """libpng's adaptive filters, through OpenCV: an encoder independent of the tests'."""
    y, x = np.mgrid[0:64, 0:80]
    smooth = (np.sin(x / 7.0) * np.cos(y / 5.0) * 20000 + 30000)[..., None]
    px = (smooth + RNG.integers(0, 300, size=(64, 80, channels))).astype(np.uint16)
    ok, buf = cv2.imencode(".png", px)  # OpenCV stores BGR(A)
    assert ok
    path = tmp_path / "cv.png"
    path.write_bytes(buf.tobytes())
    img = read_image(path)
    rgb = px[..., [2, 1, 0]]
    assert img.depth == 16 and img.mode.endswith(";16")
    np.testing.assert_array_equal(img.data, rgb)
    if channels == 4:
        np.testing.assert_array_equal(img.alpha, px[..., 3])


def _with_exif(png: bytes, orientation: int) -> bytes:
    from PIL import Image as PILImage

    tags = PILImage.Exif()
    tags[0x0112] = orientation
    payload = tags.tobytes()[6:]  # an eXIf chunk holds the TIFF block without "Exif\0\0"
    return png[:33] + _chunk(b"eXIf", payload) + png[33:]


@pytest.mark.parametrize("orientation", [1, 2, 3, 5, 6, 8])
def test_16bit_exif_orientation_turns_as_pillow_does(tmp_path, orientation):
    """The 16-bit picture turns exactly as Pillow turns the same picture at 8 bits."""
    samples = _samples(5, 8, 16, 2)
    high = samples >> 8
    p16, p8 = tmp_path / "a16.png", tmp_path / "a8.png"
    p16.write_bytes(_with_exif(make_png(samples, 16, 2), orientation))
    p8.write_bytes(_with_exif(make_png(high, 8, 2), orientation))
    got, ref = read_image(p16).data, read_image(p8).data  # ref: Pillow's exif_transpose
    assert got.shape == ref.shape == ((8, 5, 3) if orientation in (5, 6, 8) else (5, 8, 3))
    np.testing.assert_array_equal(np.floor(got / 256), ref)


def test_16bit_rgb_gray_option_uses_all_16_bits(tmp_path):
    samples = _samples(6, 7, 16, 2)
    path = tmp_path / "c.png"
    path.write_bytes(make_png(samples, 16, 2))
    got = read_image(path, gray=True).data
    ref = samples[..., 0] * 0.299 + samples[..., 1] * 0.587 + samples[..., 2] * 0.114
    np.testing.assert_allclose(got, ref, rtol=1e-6)


# ------------------------------------------------------------------ through the CLI


@pytest.mark.parametrize("ctype", [2, 4, 6])
def test_cli_identity_16bit_colour_is_lossless(tmp_path, ctype):
    samples = _samples(12, 15, 16, ctype)
    src = tmp_path / "in.png"
    src.write_bytes(make_png(samples, 16, ctype, filters="paeth"))
    runner = CliRunner()
    for out in ("out.png", "out.npy"):
        args = ["convolve", str(src), "-k", "identity", "--depth", "16", "-o", str(tmp_path / out)]
        result = runner.invoke(app, [*args, "-q"])
        assert result.exit_code == 0, result.output
    colour = samples[..., 0] if ctype == 4 else samples[..., :3]
    # read back with OpenCV, not with convtool's own decoder
    back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    if ctype == 2:
        np.testing.assert_array_equal(back[..., ::-1], samples)
    elif ctype == 6:
        np.testing.assert_array_equal(back[..., [2, 1, 0, 3]], samples)
    else:  # OpenCV turns grey+alpha into BGRA
        np.testing.assert_array_equal(back[..., 0], samples[..., 0])
        np.testing.assert_array_equal(back[..., 3], samples[..., 1])
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), colour.astype(np.float32))


# ------------------------------------------------------------------ 16-bit colour TIFF


@pytest.mark.parametrize(
    "options",
    [{}, {"compression": "zlib"}, {"compression": "zlib", "predictor": True}, {"byteorder": ">"}],
    ids=["raw", "deflate", "deflate-predictor", "big-endian"],
)
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_tiff_reads_exactly(tmp_path, channels, options):
    px = RNG.integers(0, 65536, size=(7, 9, channels), dtype=np.uint16)
    extra = {"extrasamples": ["unassalpha"]} if channels != 3 else {}
    photometric = "minisblack" if channels == 2 else "rgb"
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, px, photometric=photometric, rowsperstrip=3, **extra, **options)
    img = read_image(path)
    assert img.depth == 16
    np.testing.assert_array_equal(img.data, px[..., 0] if channels == 2 else px[..., :3])
    if channels != 3:
        np.testing.assert_array_equal(img.alpha, px[..., -1])


def test_16bit_tiled_tiff_without_tifffile_is_one_clear_error(tmp_path, monkeypatch):
    px = RNG.integers(0, 65536, size=(20, 20, 3), dtype=np.uint16)
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, px, photometric="rgb", tile=(16, 16))
    np.testing.assert_array_equal(read_image(path).data, px)  # tifffile installed: exact
    monkeypatch.setitem(sys.modules, "tifffile", None)  # as in a plain install
    with pytest.raises(InputError, match="needs tifffile to be read exactly"):
        read_image(path)


# ------------------------------------------------------------------ damaged files


def test_damaged_16bit_png_is_one_line(tmp_path):
    good = make_png(_samples(8, 8, 16, 2), 16, 2)
    cases = {
        "truncated": good[: len(good) - 30],
        "crc": good[:40] + bytes([good[40] ^ 0xFF]) + good[41:],
        "no-data": good[:33] + _chunk(b"IEND", b""),
    }
    for label, data in cases.items():
        path = tmp_path / f"{label}.png"
        path.write_bytes(data)
        with pytest.raises(InputError) as info:
            read_image(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message, message
    stream = b"\x07" + bytes(12)  # filter type 7 on a 1x2 RGB row
    ihdr = struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0)
    bad = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(stream))
        + _chunk(b"IEND", b"")
    )
    with pytest.raises(PNGError, match="filter type 7"):
        decode_png(bad)


def test_16bit_png_bomb_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(make_png(_samples(10, 10, 16, 2), 16, 2))
    monkeypatch.setenv("CONVTOOL_MAX_PIXELS", "50")
    with pytest.raises(InputError, match="decompression-bomb limit"):
        read_image(path)
