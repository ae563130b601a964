"""A lossless PNG decoder for the files Pillow reads at 8 bits.

Pillow decodes 16-bit grey PNGs exactly (mode ``I;16``) but 16-bit RGB, RGBA
and grey+alpha PNGs at 8 bits: the low byte of every sample is lost (errors
up to 255 levels on the 16-bit scale). :func:`needs_own_decoder` says from the
header whether a file is one of those; :func:`decode_png` then reads it here,
with zlib and numpy. Every other PNG (1/2/4/8-bit grey, palettes with tRNS,
8-bit colour, 16-bit grey) stays with Pillow, which reads them exactly.

The decoder handles colour types 0, 2, 4, 6 at 8 and 16 bits, interlaced
(Adam7) or not, and checks the CRC of every chunk it uses. Rows filtered with
none, sub or up are undone in numpy (sub by a running sum along the row, up
by adding the row above). Average and Paeth chain every byte to the one on
its left, so a row cannot be vectorised: an image with such rows goes through
one small Numba kernel (:mod:`convtool.core.png`), or, while Numba is not
loaded yet and the image is small (:data:`NUMPY_MAX_PIXELS`), through numpy
along the anti-diagonals (each pixel needs only its left, upper and
upper-left neighbours, which lie on the two previous diagonals): 0.12 s for
512x512 against about 1 s to start Numba and load its cache. A tRNS chunk
of a grey or RGB image is ignored, as convtool ignores it for the files
Pillow reads (only palette transparency becomes alpha).

This module is numpy and zlib only; it raises :class:`PNGError` (a
``ValueError``) for a damaged file, and :mod:`convtool.io` names the file.
"""

from __future__ import annotations

import struct
import sys
import zlib

import numpy as np
from numpy.lib.stride_tricks import as_strided

SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: PNG colour type -> samples per pixel (palette 3 is left to Pillow).
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}

#: Adam7 passes: (first column, first row, column step, row step).
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


#: Images with average or Paeth rows and at most this many pixels are undone
#: in numpy while Numba is not loaded (about 0.5 us a pixel, so at most about
#: half a second: less than Numba's start-up); bigger ones load the kernel.
NUMPY_MAX_PIXELS = 1 << 20


class PNGError(ValueError):
    """A PNG that cannot be decoded; the message says what is wrong."""


def header(head: bytes) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) from a file's first 33 bytes.

    None if ``head`` does not start with a PNG signature and an IHDR chunk.

    Examples
    --------
    >>> import numpy as np
    >>> from convtool.io import encode_png
    >>> header(encode_png(np.zeros((2, 3, 3), np.uint16)))
    (3, 2, 16, 2, 0)
    """
    if len(head) < 33 or head[:8] != SIGNATURE or head[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return w, h, depth, ctype, interlace


def needs_own_decoder(head: bytes) -> bool:
    """True for a 16-bit colour PNG (RGB, RGBA, grey+alpha), which Pillow reads at 8 bits.

    Examples
    --------
    >>> import numpy as np
    >>> from convtool.io import encode_png
    >>> needs_own_decoder(encode_png(np.zeros((2, 2, 3), np.uint16)))
    True
    >>> needs_own_decoder(encode_png(np.zeros((2, 2), np.uint16)))  # Pillow's I;16
    False
    """
    info = header(head)
    return info is not None and info[2] == 16 and info[3] in (2, 4, 6)


def _chunks(data: bytes):
    """Yield (type, payload) of each chunk after the signature, checking lengths and CRCs."""
    pos, n = 8, len(data)
    while True:
        if pos + 8 > n:
            raise PNGError("truncated PNG: the file ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > n:
            raise PNGError(f"truncated PNG: the {kind.decode('latin-1')} chunk is cut short")
        payload = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if kind[0] & 0x20 == 0 and zlib.crc32(kind + payload) & 0xFFFFFFFF != crc:
            raise PNGError(f"CRC error in the {kind.decode('latin-1')} chunk (the file is damaged)")
        yield kind, payload
        if kind == b"IEND":
            return
        pos = end + 4


def _undo_simple(filtered: np.ndarray, types: np.ndarray, bpp: int) -> np.ndarray:
    """Undo none (0), sub (1) and up (2) filters of (rows, bytes) ``filtered``, in numpy."""
    out = filtered
    sub = np.flatnonzero(types == 1)
    if sub.size:
        rows, n = sub.size, out.shape[1]
        lanes = out[sub].reshape(rows, n // bpp, bpp)
        out[sub] = np.cumsum(lanes, axis=1, dtype=np.uint8).reshape(rows, n)
    # up rows add the row above, in order (one contiguous add per row: numpy's
    # cumsum down the columns of a whole block is 100x slower)
    for r in np.flatnonzero(types[1:] == 2) + 1:
        np.add(out[r], out[r - 1], out=out[r])
    return out


def _undo_diagonals(lines: np.ndarray, bpp: int) -> np.ndarray:
    """Undo any filters of (rows, 1 + rowbytes) scanlines in numpy, one anti-diagonal at a time.

    Pixel ``(r, x)`` depends on ``(r, x-1)``, ``(r-1, x)`` and ``(r-1, x-1)``
    only, all on earlier diagonals ``r + x = const``, so every pixel of a
    diagonal is decoded at once. The output lives in a frame with one zero
    row above and one zero pixel to the left, so the diagonal and its three
    neighbours are strided views of one flat buffer.
    """
    rows, n = lines.shape[0], lines.shape[1] - 1
    pixels = n // bpp
    types = lines[:, :1].astype(np.int16)
    filtered = np.ascontiguousarray(lines[:, 1:]).reshape(-1)
    stride = (pixels + 1) * bpp  # frame row length in bytes
    frame = np.zeros((rows + 1) * stride, dtype=np.uint8)
    zero = np.zeros((min(rows, pixels), bpp), dtype=np.int16)
    step = (stride - bpp, 1)  # from (r, x) to (r+1, x-1): the next pixel on a diagonal
    for d in range(rows + pixels - 1):
        r0, r1 = max(0, d - pixels + 1), min(rows - 1, d)
        m = r1 - r0 + 1
        at = stride + (d + 1) * bpp + r0 * (stride - bpp)
        a = as_strided(frame[at - bpp :], (m, bpp), step).astype(np.int16)
        b = as_strided(frame[at - stride :], (m, bpp), step).astype(np.int16)
        c = as_strided(frame[at - stride - bpp :], (m, bpp), step).astype(np.int16)
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        kind = np.broadcast_to(types[r0 : r1 + 1], (m, bpp))
        pred = np.choose(kind, (zero[:m], a, b, (a + b) >> 1, paeth))
        f = as_strided(filtered[d * bpp + r0 * (n - bpp) :], (m, bpp), (n - bpp, 1))
        target = as_strided(frame[at:], (m, bpp), step, writeable=True)
        target[...] = (f + pred) & 0xFF
    return frame.reshape(rows + 1, stride)[1:, bpp:]


def _use_numba(pixels: int) -> bool:
    """Rent or buy: the Numba kernel once Numba is loaded or the image is big."""
    return "numba" in sys.modules or pixels > NUMPY_MAX_PIXELS


def _unfilter(stream: memoryview, rows: int, rowbytes: int, bpp: int) -> np.ndarray:
    """The raw bytes (rows, rowbytes) of one (sub-)image whose scanlines start ``stream``."""
    lines = np.frombuffer(stream, dtype=np.uint8, count=rows * (rowbytes + 1))
    lines = lines.reshape(rows, rowbytes + 1)
    types = lines[:, 0]
    if types.max(initial=0) > 4:
        bad = int(np.flatnonzero(types > 4)[0])
        raise PNGError(f"row {bad} has filter type {int(types[bad])} (PNG defines 0-4)")
    if types.max(initial=0) <= 2:
        return _undo_simple(lines[:, 1:].copy(), types, bpp)
    if not _use_numba(rows * rowbytes // bpp):
        return _undo_diagonals(lines, bpp)
    from .core.png import unfilter

    out = np.empty((rows, rowbytes), dtype=np.uint8)
    unfilter(np.ascontiguousarray(lines).reshape(-1), out, bpp)
    return out


def decode_png(data: bytes, max_pixels: int | None = None) -> tuple[np.ndarray, bytes | None]:
    """Decode a PNG of colour type 0, 2, 4 or 6 at 8 or 16 bits, exactly.

    Parameters
    ----------
    data : bytes
        The whole file.
    max_pixels : int, optional
        Refuse (PNGError) an image with more pixels, before decompressing it.

    Returns
    -------
    pixels : numpy.ndarray
        uint8 or uint16 (H, W, C) with C = 1 (grey), 2 (grey, alpha),
        3 (RGB) or 4 (RGBA), in the file's own values.
    exif : bytes or None
        The eXIf chunk's payload, if any (for the orientation tag).

    Raises
    ------
    PNGError
        Not a PNG, an unsupported colour type or depth, a truncated or
        damaged stream, or more than ``max_pixels`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from convtool.io import encode_png
    >>> px = np.array([[[65535, 1, 258], [0, 65534, 4096]]], dtype=np.uint16)
    >>> pixels, _ = decode_png(encode_png(px))
    >>> pixels.dtype, pixels.tolist()
    (dtype('uint16'), [[[65535, 1, 258], [0, 65534, 4096]]])
    """
    info = header(data[:33])
    if info is None:
        raise PNGError("not a PNG file (no PNG signature and IHDR chunk)")
    w, h, depth, ctype, interlace = info
    if ctype not in CHANNELS or depth not in (8, 16):
        raise PNGError(f"colour type {ctype} at {depth} bits is read by Pillow, not here")
    if w == 0 or h == 0:
        raise PNGError(f"image size {w}x{h} has no pixels")
    if max_pixels is not None and w * h > max_pixels:
        raise PNGError(f"{w}x{h} = {w * h:,} pixels is above the limit of {max_pixels:,}")
    if interlace not in (0, 1):
        raise PNGError(f"unknown interlace method {interlace}")
    channels = CHANNELS[ctype]
    bpp = channels * depth // 8

    idat: list[bytes] = []
    exif = None
    for kind, payload in _chunks(data):
        if kind == b"IDAT":
            idat.append(payload)
        elif kind == b"eXIf":
            exif = payload
    if not idat:
        raise PNGError("no image data (IDAT chunk)")

    passes = [(0, 0, 1, 1)] if interlace == 0 else list(ADAM7)
    sizes = []
    for x0, y0, dx, dy in passes:
        pw = (w - x0 + dx - 1) // dx if w > x0 else 0
        ph = (h - y0 + dy - 1) // dy if h > y0 else 0
        sizes.append((pw, ph))
    expected = sum(ph * (pw * bpp + 1) for pw, ph in sizes if pw and ph)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(idat), expected)
    except zlib.error as exc:
        raise PNGError(f"damaged image data ({exc})") from None
    if len(raw) < expected:
        raise PNGError(
            f"truncated image data: {len(raw):,} of {expected:,} bytes after decompression"
        )

    dtype = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    out = np.empty((h, w, channels), dtype=dtype.newbyteorder("="))
    stream = memoryview(raw)
    pos = 0
    for (x0, y0, dx, dy), (pw, ph) in zip(passes, sizes, strict=True):
        if not (pw and ph):
            continue
        rowbytes = pw * bpp
        rows = _unfilter(stream[pos:], ph, rowbytes, bpp)
        pos += ph * (rowbytes + 1)
        samples = rows.view(dtype).reshape(ph, pw, channels)
        out[y0::dy, x0::dx] = samples
    return out, exif


def warmup() -> None:
    """Compile (or load from the cache) the Numba kernel for average and Paeth rows.

    Examples
    --------
    >>> warmup()
    """
    from .core.png import unfilter

    rows = np.zeros((2, 7), dtype=np.uint8)
    rows[:, 0] = (3, 4)  # one average row, one Paeth row
    unfilter(rows.reshape(-1), np.empty((2, 6), dtype=np.uint8), 6)
