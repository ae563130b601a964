"""Reading and writing images: Pillow, stdin/stdout, 16-bit and float files.

Only this module (and the commands) import Pillow; the compute core never does.

Reading (:func:`read_image`) gives an :class:`Image`: the colour channels as
float32 on the file's own scale (0..255 for 8-bit files, 0..65535 for 16-bit,
the stored values for float TIFFs), the alpha channel apart, and the bit depth.

==============  ===========================================================
file mode       what read_image returns
==============  ===========================================================
1               (H,W), values 0 and 255, depth 8
L, LA           (H,W) [+ alpha], depth 8
P, PA           palette expanded to RGB; a transparency entry becomes alpha
RGB, RGBA       (H,W,3) [+ alpha], depth 8 (CMYK, YCbCr, RGBX become RGB)
I;16, I;16B     (H,W), values 0..65535, depth 16
RGB;16 ...      16-bit RGB, RGBA, grey+alpha PNG (convtool's own decoder,
                :mod:`convtool.png`) and 16-bit colour TIFF: (H,W,3) or
                (H,W) [+ alpha], values 0..65535, depth 16
I               depth 16 if every value is in 0..65535, else depth 32
F               (H,W) float32 as stored, depth 32
.npy file       (H,W) or (H,W,C) array as float32, depth 32 (raw outputs)
==============  ===========================================================

An EXIF orientation tag is applied, so the pixels are the picture as viewers
show it.

Writing (:func:`write_image`) scales the float result to 8 or 16 bits through
:func:`convtool.scaling.to_depth`, except for ``.npy`` and ``.tif``/``.tiff``,
which hold the raw float32 values (a float TIFF stores one channel per page:
a colour result is written channel by channel, a stack of M maps as M pages,
an (M,H,W,C) stack as M*C pages in that order). Raw outputs hold the filtered
channels only, no alpha. Every file is written to a temporary name in its
directory and renamed into place, so a failed or interrupted write leaves
nothing behind.

Every PNG is read exactly: Pillow reads 16-bit *colour* PNGs at 8 bits, so
those (colour types 2, 4, 6 at 16 bits, interlaced or not) go to
:func:`convtool.png.decode_png`; every other PNG to Pillow. 16-bit colour
TIFFs, which Pillow also reads at 8 bits, are read by :func:`_read_tiff16`.
JPEG, BMP and WebP are 8-bit formats (JPEG and BMP drop alpha). PNGs are
written by :func:`encode_png` (numpy "up" filter + zlib deflated in parallel
blocks): faster than Pillow's encoder and able to write 16-bit colour.
"""

from __future__ import annotations

import io as _io
import os
import secrets
import struct
import sys
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, UsageError
from .scaling import to_depth

#: Default PNG zlib level, from ``benchmarks/bench_png.py`` (2 cores shared
#: with other jobs, so absolute times are high): on a 4096x4096 gray blur
#: Pillow takes 1.3 s / 3.6 MiB at level 1, 3.5 s / 2.8 MiB at its default 6
#: and 37 s at 9; on a 2048x2048 RGB sharpen 1.1 s / 4.7 MiB against 5.4 s /
#: 4.0 MiB. Level 1 is 3-5x faster than 6 for files 15-30% larger; levels 2-3
#: save 3-6% for 1.1-1.5x the time. :func:`encode_png` (used for every PNG)
#: takes 0.7 s and 0.5 s at level 1 on the same images.
DEFAULT_PNG_LEVEL = 1

#: Extension (lower case, no dot) -> output format name.
FORMATS: dict[str, str] = {
    "png": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "tif": "tiff",
    "tiff": "tiff",
    "bmp": "bmp",
    "webp": "webp",
    "npy": "npy",
}

#: Formats that hold the raw float32 result, unscaled.
RAW_FORMATS = frozenset({"npy", "tiff"})

#: Formats that hold only 8 bits per sample.
EIGHT_BIT_FORMATS = frozenset({"jpeg", "bmp", "webp"})

#: Pillow's name for each integer output format.
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "webp": "WEBP"}

# ITU-R 601-2 luma weights, as Pillow's RGB -> L conversion uses them.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_MAX_PIXELS_ENV = "CONVTOOL_MAX_PIXELS"


@dataclass
class Image:
    """A decoded image on its own value scale.

    Attributes
    ----------
    data : numpy.ndarray
        float32 (H,W) or (H,W,C), colour channels only.
    alpha : numpy.ndarray or None
        float32 (H,W) on the same scale as ``data``, or None.
    depth : int
        8, 16 or 32 (float).
    mode : str
        The file's Pillow mode ("L", "RGBA", "I;16", ...).
    name : str
        The path it came from, or "-" for stdin.
    """

    data: np.ndarray
    alpha: np.ndarray | None
    depth: int
    mode: str
    name: str

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``."""
        return tuple(self.data.shape)

    @property
    def value_range(self) -> tuple[float, float]:
        """(black, white) of the image's scale: 0..255 for 8 bits, 0..65535 for 16.

        Float (depth 32) images have no fixed scale: their own min..max.

        Examples
        --------
        >>> import numpy as np
        >>> Image(np.zeros((2, 2), np.float32), None, 16, "I;16", "x").value_range
        (0.0, 65535.0)
        """
        if self.depth in (8, 16):
            return 0.0, float((1 << self.depth) - 1)
        if self.data.size == 0:
            return 0.0, 1.0
        return float(np.nanmin(self.data)), float(np.nanmax(self.data))


# --------------------------------------------------------------------------- reading


def _display_name(source: str | os.PathLike) -> str:
    return "-" if str(source) == "-" else os.fspath(source)


def _open_bytes(source: str | os.PathLike, name: str) -> _io.BytesIO | str:
    """Return what Pillow should open, after the checks that need no decoder."""
    if name == "-":
        data = sys.stdin.buffer.read()
        if not data:
            raise InputError("-: standard input is empty (0 bytes): pipe an image into it")
        return _io.BytesIO(data)
    path = Path(source)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    if path.is_dir():
        raise InputError(f"{name}: is a directory, not an image (pass the files or a glob)")
    if size == 0:
        raise InputError(f"{name}: empty file (0 bytes), not an image")
    return os.fspath(path)


def _max_pixels() -> int | None:
    from PIL import Image as PILImage

    value = os.environ.get(_MAX_PIXELS_ENV)
    if value:
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"{_MAX_PIXELS_ENV} must be a whole number, got {value!r}") from None
    return PILImage.MAX_IMAGE_PIXELS


def _bomb_message(name: str, size: tuple[int, int] | None, limit: int | None) -> str:
    dims = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "too many pixels"
    return (
        f"{name}: image is {dims}, above the decompression-bomb limit of {limit:,} pixels; "
        f"if you trust the file, raise the limit with {_MAX_PIXELS_ENV}=N, or convert it to "
        "a tiled TIFF (.tif), which convtool reads window by window"
    )


def _decode(source: _io.BytesIO | str, name: str):  # -> PIL.Image.Image
    """Open and fully load an image, turning every failure into InputError."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    limit = _max_pixels()
    old_limit = PILImage.MAX_IMAGE_PIXELS
    im = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            PILImage.MAX_IMAGE_PIXELS = limit
            im = PILImage.open(source)
            if limit and im.size[0] * im.size[1] > limit:
                # the warning filter above is process-wide, so check here too
                raise PILImage.DecompressionBombError(f"{im.size}")
            im.load()  # decode everything now, so a truncated file fails here
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
            size = getattr(im, "size", None)
            if size is None:
                size = _peek_size(source)
            raise InputError(_bomb_message(name, size, limit)) from None
        except UnidentifiedImageError:
            raise InputError(
                f"{name}: not an image Pillow can read (PNG, JPEG, TIFF, BMP, WebP expected)"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as exc:
            detail = str(exc).strip() or type(exc).__name__
            if "truncated" in detail.lower():
                raise InputError(f"{name}: truncated image file ({detail})") from None
            raise InputError(f"{name}: corrupt or unreadable image ({detail})") from None
        finally:
            PILImage.MAX_IMAGE_PIXELS = old_limit
    return im


def _peek_size(source: _io.BytesIO | str) -> tuple[int, int] | None:
    """Image size from the header alone (no bomb check), for the error message."""
    from PIL import Image as PILImage

    old = PILImage.MAX_IMAGE_PIXELS
    try:
        PILImage.MAX_IMAGE_PIXELS = None
        if isinstance(source, _io.BytesIO):
            source.seek(0)
        with PILImage.open(source) as im:
            return im.size
    except Exception:  # noqa: BLE001 - only for a nicer message
        return None
    finally:
        PILImage.MAX_IMAGE_PIXELS = old


def _exif_upright(im):  # -> PIL.Image.Image
    """Apply the EXIF orientation tag (as viewers and OpenCV do)."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is not worth failing for
        return im
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        from PIL import ImageOps

        return ImageOps.exif_transpose(im)
    return im


def _to_arrays(im, name: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Pillow image -> (float32 data, float32 alpha or None, depth)."""
    mode = im.mode
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in im.info or im.palette.mode == "RGBA"
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    elif mode in ("1",):
        im = im.convert("L")
        mode = "L"
    elif mode in ("RGBX", "CMYK", "YCbCr"):
        im = im.convert("RGB")
        mode = "RGB"
    elif mode in ("RGBa", "La"):
        im = im.convert(mode[:-1] + "A")
        mode = im.mode

    if mode in ("L", "RGB"):
        return np.asarray(im).astype(np.float32), None, 8
    if mode in ("LA", "RGBA"):
        arr = np.asarray(im)
        colour = arr[..., 0] if mode == "LA" else arr[..., :3]
        return colour.astype(np.float32), arr[..., -1].astype(np.float32), 8
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.float32), None, 16
    if mode == "I":
        arr = np.asarray(im)
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        return arr.astype(np.float32), None, 16 if lo >= 0 and hi <= 65535 else 32
    if mode == "F":
        return np.asarray(im).astype(np.float32), None, 32
    raise InputError(
        f"{name}: unsupported image mode {mode!r} "
        "(supported: 1, L, LA, P, RGB, RGBA, CMYK, YCbCr, I;16, I, F); convert it first"
    )


def read_image(source: str | os.PathLike, *, gray: bool = False) -> Image:
    """Read an image file (or stdin) into float32 arrays on its own scale.

    Parameters
    ----------
    source : str or os.PathLike
        A path, or ``"-"`` for the bytes on standard input.
    gray : bool
        Convert colour to luminance (ITU-R 601-2 weights 0.299, 0.587, 0.114,
        as Pillow's ``L`` conversion, computed in float on the file's scale).

    Returns
    -------
    Image
        ``data`` (H,W) or (H,W,3), ``alpha`` or None, ``depth`` 8, 16 or 32.

    Raises
    ------
    InputError
        One line naming the file: no such file, empty file, not an image,
        truncated, decompression bomb, unsupported mode.

    Examples
    --------
    >>> img = read_image("samples/camera.png")
    >>> img.data.shape, img.data.dtype, img.depth, img.alpha is None
    ((512, 512), dtype('float32'), 8, True)
    """
    name = _display_name(source)
    opened = _open_bytes(source, name)
    head = _head(opened, name)
    if head.startswith(b"\x93NUMPY"):
        return _read_npy(opened, name, gray)
    from .png import needs_own_decoder

    if needs_own_decoder(head):
        return _read_png16(opened, name, gray)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        image = _read_tiff16(opened, name, gray)
        if image is not None:
            return image
    im = _decode(opened, name)
    try:
        mode = im.mode
        im = _exif_upright(im)
        data, alpha, depth = _to_arrays(im, name)
    finally:
        im.close()
    data = np.ascontiguousarray(data, dtype=np.float32)
    if gray and data.ndim == 3:
        data = luminance(data)
    return Image(data=data, alpha=alpha, depth=depth, mode=mode, name=name)


def _head(opened: _io.BytesIO | str, name: str, size: int = 33) -> bytes:
    """The first ``size`` bytes: enough for a .npy magic or a PNG's IHDR chunk."""
    if isinstance(opened, _io.BytesIO):
        return opened.getbuffer()[:size].tobytes()
    try:
        with open(opened, "rb") as fh:
            return fh.read(size)
    except OSError as exc:  # e.g. no read permission: a user error, not a traceback
        raise InputError(f"{name}: cannot read it ({exc.strerror or exc})") from None


def _all_bytes(opened: _io.BytesIO | str, name: str) -> bytes:
    if isinstance(opened, _io.BytesIO):
        return opened.getvalue()
    try:
        with open(opened, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"{name}: cannot read it ({exc.strerror or exc})") from None


#: EXIF orientation -> the numpy transform that shows the picture upright
#: (the same as PIL.ImageOps.exif_transpose).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    try:
        from PIL import Image as PILImage

        tags = PILImage.Exif()
        tags.load(exif)
        return int(tags.get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is not worth failing for
        return 1


def _split16(pixels: np.ndarray, mode: str, name: str, gray: bool) -> Image:
    """(H,W,C) uint16 samples -> an Image of depth 16 (colour float32, alpha apart)."""
    c = pixels.shape[2]
    colour = pixels[..., 0] if c in (1, 2) else pixels[..., :3]
    alpha = pixels[..., -1].astype(np.float32) if c in (2, 4) else None
    data = np.ascontiguousarray(colour, dtype=np.float32)
    if gray and data.ndim == 3:
        data = luminance(data)
    return Image(data=data, alpha=alpha, depth=16, mode=mode, name=name)


def _tiff16_layout(opened: _io.BytesIO | str, name: str) -> dict | None:
    """The first page's tags if it is a 16-bit colour (or grey+alpha) TIFF, else None.

    Pillow reads such pages at 8 bits, so they are read here instead; every
    other TIFF (8-bit, 16-bit grey, float) stays with Pillow.
    """
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    # Pillow's directory parser, not Image.open: Pillow cannot open some of
    # these at all (16-bit grey+alpha), and only the tags are needed here
    fh = opened if isinstance(opened, _io.BytesIO) else None
    try:
        if fh is None:
            fh = open(opened, "rb")  # noqa: SIM115 - closed below
        fh.seek(0)
        prefix = fh.read(8)
        ifd = ImageFileDirectory_v2(ifh=prefix)
        fh.seek(struct.unpack(("<" if prefix[:2] == b"II" else ">") + "I", prefix[4:8])[0])
        ifd.load(fh)
        tags = dict(ifd)
    except Exception:  # noqa: BLE001 - Pillow reports a bad file properly later
        return None
    finally:
        if isinstance(opened, _io.BytesIO):
            opened.seek(0)
        elif fh is not None:
            fh.close()
    bits = tags.get(258, (1,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    samples = int(tags.get(277, 1))
    if samples < 2 or any(b != 16 for b in bits) or int(tags.get(339, 1)) != 1:
        return None  # not 16-bit unsigned colour
    if int(tags.get(262, 1)) not in (1, 2) or (samples == 2) != (int(tags.get(262, 1)) == 1):
        return None  # grey+alpha (photometric 1, 2 samples) or RGB[A] (2, 3+ samples)
    return tags


def _read_tiff16(opened: _io.BytesIO | str, name: str, gray: bool) -> Image | None:
    """A 16-bit RGB, RGBA or grey+alpha TIFF, exactly; None for any other TIFF.

    Uncompressed and Deflate (with or without the horizontal predictor)
    strips are read here; other compressions (LZW, JPEG, tiles) through
    tifffile when it is installed (the ``[dask]`` extra), else an error that
    says so (never an 8-bit read without a word).
    """
    tags = _tiff16_layout(opened, name)
    if tags is None:
        return None
    data = _all_bytes(opened, name)
    w, h, samples = int(tags[256]), int(tags[257]), int(tags[277])
    limit = _max_pixels()
    if limit and w * h > limit:
        raise InputError(_bomb_message(name, (w, h), limit))
    compression = int(tags.get(259, 1))
    simple = (
        compression in (1, 8, 32946)
        and int(tags.get(317, 1)) in (1, 2)
        and 273 in tags
        and 322 not in tags  # strips, not tiles
    )
    try:
        if simple:
            pixels = _tiff16_strips(data, tags, w, h, samples)
        else:
            try:
                import tifffile
            except ImportError:
                raise InputError(
                    f"{name}: a 16-bit colour TIFF with compression {compression} "
                    f"{'in tiles ' if 322 in tags else ''}needs tifffile to be read exactly "
                    "(pip install tifffile, or convtool[dask]); or save it uncompressed, "
                    "with Deflate, or as a 16-bit PNG"
                ) from None
            pixels = tifffile.imread(_io.BytesIO(data), key=0)
            if pixels.ndim == 3 and pixels.shape[0] == samples and pixels.shape[2] != samples:
                pixels = np.moveaxis(pixels, 0, -1)  # planar pages come channel-first
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damage in the file: one line
        detail = str(exc).strip() or type(exc).__name__
        raise InputError(f"{name}: corrupt or unreadable image ({detail})") from None
    if pixels.shape != (h, w, samples):
        raise InputError(f"{name}: corrupt or unreadable image (pixels of shape {pixels.shape})")
    turn = _ORIENT.get(int(tags.get(274, 1)))
    if turn is not None:
        pixels = turn(pixels)
    pixels = pixels[..., : 2 if samples == 2 else min(samples, 4)]
    mode = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[pixels.shape[2]]
    return _split16(pixels, mode, name, gray)


def _tiff16_strips(data: bytes, tags: dict, w: int, h: int, samples: int) -> np.ndarray:
    """Samples (H,W,S) of an uncompressed or Deflate 16-bit strip TIFF."""
    order = "<" if data[:2] == b"II" else ">"
    planar = int(tags.get(284, 1)) == 2
    per_strip = min(int(tags.get(278, h)), h)
    offsets = tags[273] if isinstance(tags[273], tuple) else (tags[273],)
    counts = tags.get(279, ())
    counts = counts if isinstance(counts, tuple) else (counts,)
    lanes = 1 if planar else samples
    row_values = w * lanes
    planes = samples if planar else 1
    strips_per_plane = -(-h // per_strip)
    if len(offsets) != strips_per_plane * planes or len(counts) != len(offsets):
        raise ValueError(f"{len(offsets)} strips for {h} rows in {planes} plane(s)")
    compression = int(tags.get(259, 1))
    out = np.empty((planes, h, row_values), dtype=np.uint16)
    for k, (off, count) in enumerate(zip(offsets, counts, strict=True)):
        plane, strip = divmod(k, strips_per_plane)
        y0 = strip * per_strip
        rows = min(per_strip, h - y0)
        chunk = data[off : off + count]
        if compression != 1:
            chunk = zlib.decompress(chunk)
        need = rows * row_values * 2
        if len(chunk) < need:
            raise ValueError(f"truncated strip {k}: {len(chunk)} of {need} bytes")
        values = np.frombuffer(chunk, dtype=order + "u2", count=rows * row_values)
        values = values.reshape(rows, w, lanes)
        if int(tags.get(317, 1)) == 2:  # horizontal differencing, per sample, modulo 2**16
            values = np.cumsum(values, axis=1, dtype=values.dtype)
        out[plane, y0 : y0 + rows] = values.reshape(rows, row_values)
    if planar:
        return np.moveaxis(out.reshape(planes, h, w), 0, -1)
    return out[0].reshape(h, w, samples)


def _read_png16(opened: _io.BytesIO | str, name: str, gray: bool) -> Image:
    """A 16-bit RGB, RGBA or grey+alpha PNG, exactly (Pillow would keep 8 bits)."""
    from .png import PNGError, decode_png

    data = _all_bytes(opened, name)
    limit = _max_pixels()
    try:
        pixels, exif = decode_png(data, max_pixels=limit)
    except PNGError as exc:
        detail = str(exc)
        if "above the limit" in detail:
            w, h = struct.unpack(">II", data[16:24])
            raise InputError(_bomb_message(name, (w, h), limit)) from None
        if "truncated" in detail:
            raise InputError(f"{name}: truncated image file ({detail})") from None
        raise InputError(f"{name}: corrupt or unreadable image ({detail})") from None
    turn = _ORIENT.get(_orientation(exif))
    if turn is not None:
        pixels = turn(pixels)
    mode = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[pixels.shape[2]]
    return _split16(pixels, mode, name, gray)


def _read_npy(opened: _io.BytesIO | str, name: str, gray: bool) -> Image:
    """A raw result written by convtool (or numpy): (H,W) or (H,W,C), depth 32."""
    try:
        arr = np.load(opened, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: unreadable .npy array ({exc})") from None
    if arr.ndim not in (2, 3) or arr.dtype.kind not in "uif" or 0 in arr.shape:
        raise InputError(
            f"{name}: .npy array of shape {arr.shape} and dtype {arr.dtype} is not an image "
            "(need a real (H,W) or (H,W,C) array)"
        )
    data = np.ascontiguousarray(arr, dtype=np.float32)
    if gray and data.ndim == 3 and data.shape[2] == 3:
        data = luminance(data)
    return Image(data=data, alpha=None, depth=32, mode="npy", name=name)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of an (H,W,3) array, in float32 on the same scale.

    Examples
    --------
    >>> import numpy as np
    >>> float(luminance(np.array([[[255, 255, 255]]], dtype=np.float32))[0, 0])
    255.0
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    out = rgb[..., 0] * _LUMA[0]
    out += rgb[..., 1] * _LUMA[1]
    out += rgb[..., 2] * _LUMA[2]
    return out


# --------------------------------------------------------------------------- writing


def output_format(dest: str | os.PathLike, fmt: str | None = None) -> str:
    """Output format name for a destination and an optional ``--format``.

    Examples
    --------
    >>> output_format("a/b.TIF"), output_format("-"), output_format("x.dat", "jpg")
    ('tiff', 'png', 'jpeg')
    """
    if fmt:
        key = fmt.lower().lstrip(".")
        if key not in FORMATS:
            raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
        return FORMATS[key]
    if str(dest) == "-":
        return "png"
    ext = Path(dest).suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise UsageError(
            f"cannot tell the output format of {os.fspath(dest)!r}: "
            f"use an extension ({', '.join('.' + e for e in FORMATS)}) or --format "
            "(end a directory with /)"
        )
    return FORMATS[ext]


def check_not_input(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]):
    """Refuse any output path that resolves to one of the input paths.

    Raises
    ------
    UsageError
        Naming the path, before any work is done.

    Examples
    --------
    >>> check_not_input(["out.png"], ["in.png"])
    >>> try:
    ...     check_not_input(["./in.png"], ["in.png"])
    ... except UsageError as exc:
    ...     print(exc)
    output in.png is also an input: refusing to overwrite it; choose another -o
    """

    def key(p: str | os.PathLike) -> str:
        return os.path.normcase(os.path.realpath(os.fspath(p)))

    seen = {key(p): p for p in inputs if str(p) != "-"}
    for out in outputs:
        if str(out) == "-":
            continue
        hit = seen.get(key(out))
        if hit is not None:
            raise UsageError(
                f"output {os.fspath(hit)} is also an input: refusing to overwrite it; "
                "choose another -o"
            )


def temp_path(dest: str | os.PathLike) -> Path:
    """The temporary name an output is written under before its rename: ``.NAME.HEX.tmp``.

    Examples
    --------
    >>> p = temp_path("out/a.png")
    >>> (p.parent.name, p.name.startswith(".a.png."), p.suffix)
    ('out', True, '.tmp')
    """
    dest = Path(dest)
    return dest.parent / f".{dest.name}.{secrets.token_hex(4)}.tmp"


def atomic_write(dest: str | os.PathLike, write) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``dest``, then rename it."""
    dest = Path(dest)
    parent = dest.parent
    tmp = temp_path(dest)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except FileNotFoundError:
        raise InputError(f"{dest}: output directory {parent} does not exist") from None
    except OSError as exc:
        raise InputError(f"{dest}: cannot write in {parent} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, InputError):
            raise InputError(f"{dest}: cannot write it ({exc.strerror or exc})") from None
        raise


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


#: Deflate blocks of this many bytes run on separate threads for big images.
_DEFLATE_BLOCK = 1 << 22


def _zlib_stream(data: memoryview, level: int) -> bytes:
    """A zlib stream of ``data``; big inputs are deflated in parallel blocks.

    Each block is raw deflate ended by a sync flush (the last by finish), so
    the concatenation is one valid stream; zlib releases the GIL while it
    works, so the blocks run on all cores (as pigz does).
    """
    n = len(data)
    workers = min(os.cpu_count() or 1, -(-n // _DEFLATE_BLOCK))
    if workers < 2 or level == 0:
        return zlib.compress(data, level)
    blocks = [data[i : i + _DEFLATE_BLOCK] for i in range(0, n, _DEFLATE_BLOCK)]
    last = len(blocks) - 1

    def deflate(i: int) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        return c.compress(blocks[i]) + c.flush(zlib.Z_FINISH if i == last else zlib.Z_SYNC_FLUSH)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(deflate, range(len(blocks))))
    return b"".join([b"\x78\x01", *parts, struct.pack(">I", zlib.adler32(data) & 0xFFFFFFFF)])


def encode_png(
    pixels: np.ndarray, level: int = DEFAULT_PNG_LEVEL, *, row_filter: str = "up"
) -> bytes:
    """Encode a uint8 or uint16 (H,W) or (H,W,C) array (C = 1..4) as a PNG.

    Every row uses PNG filter 2 ("up", the byte-wise difference from the row
    above; none at level 0 or with ``row_filter="none"``, which suits flat
    synthetic pictures such as the visualize sheets), computed in one numpy
    pass; the zlib stream is
    deflated in parallel blocks for big images. Measured against Pillow's
    encoder (adaptive per-row filters) at the same level this is faster and
    about as small; it also writes 16-bit colour, which Pillow cannot.

    Examples
    --------
    >>> import numpy as np, io
    >>> from PIL import Image as PILImage
    >>> px = np.arange(12, dtype=np.uint8).reshape(3, 4)
    >>> np.asarray(PILImage.open(io.BytesIO(encode_png(px)))).tolist()[2]
    [8, 9, 10, 11]
    """
    pixels = np.asarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"encode_png needs uint8 or uint16 pixels, got {pixels.dtype}")
    bits = 8 * pixels.dtype.itemsize
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = pixels.astype(">u2") if bits == 16 else pixels
    raw = np.ascontiguousarray(raw).reshape(h, -1).view(np.uint8)
    rows = np.empty((h, 1 + raw.shape[1]), dtype=np.uint8)
    if level == 0 or h == 1 or row_filter == "none":
        rows[:, 0] = 0
        rows[:, 1:] = raw
    else:
        rows[:, 0] = 2
        rows[0, 1:] = raw[0]
        np.subtract(raw[1:], raw[:-1], out=rows[1:, 1:])
    ihdr = struct.pack(">IIBBBBB", w, h, bits, color_type, 0, 0, 0)
    idat = _zlib_stream(memoryview(rows.reshape(-1)), level)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", ihdr),
            _png_chunk(b"IDAT", idat),
            _png_chunk(b"IEND", b""),
        )
    )


def _raw_pages(data: np.ndarray, stack: bool) -> list[np.ndarray]:
    """float32 2-D pages for a float TIFF, in (map, channel) order."""
    arr = np.asarray(data, dtype=np.float32)
    if stack:
        maps = list(arr)
    else:
        maps = [arr]
    pages: list[np.ndarray] = []
    for m in maps:
        if m.ndim == 2:
            pages.append(m)
        else:
            pages.extend(m[..., c] for c in range(m.shape[-1]))
    return [np.ascontiguousarray(p) for p in pages]


def _check_shape(data: np.ndarray, stack: bool) -> None:
    need = (3, 4) if stack else (2, 3)
    if data.ndim not in need:
        what = "(M,H,W) or (M,H,W,C)" if stack else "(H,W) or (H,W,C)"
        raise UsageError(f"cannot write an array of shape {data.shape}: expected {what}")


def encode_image(
    data: np.ndarray,
    *,
    fmt: str = "png",
    alpha: np.ndarray | None = None,
    depth: int = 8,
    scale: str = "clip",
    compress: int | None = None,
    stack: bool = False,
    source_depth: int | None = None,
) -> bytes:
    """Encode a result to the bytes of a file of format ``fmt``.

    See :func:`write_image` for the parameters; this does no file I/O.
    """
    data = np.asarray(data)
    _check_shape(data, stack)
    if fmt == "npy":
        buf = _io.BytesIO()
        np.save(buf, np.asarray(data, dtype=np.float32))
        return buf.getvalue()
    if fmt == "tiff":
        from PIL import Image as PILImage

        pages = [PILImage.fromarray(p, mode=None) for p in _raw_pages(data, stack)]
        buf = _io.BytesIO()
        pages[0].save(buf, format="TIFF", save_all=len(pages) > 1, append_images=pages[1:])
        return buf.getvalue()
    if stack:
        raise UsageError(
            "--combine stack gives one map per kernel: write it to a .tif/.tiff "
            "(one page per map) or .npy file, or combine with magnitude, max or sum"
        )
    if depth not in (8, 16):
        raise UsageError(f"--depth must be 8 or 16, got {depth!r}")
    if depth == 16 and fmt in EIGHT_BIT_FORMATS:
        raise UsageError(f"{fmt.upper()} holds 8 bits per sample: use .png for --depth 16")
    if compress is not None and not 0 <= int(compress) <= 9:
        raise UsageError(f"--compress must be a zlib level 0..9, got {compress!r}")

    values = data
    if source_depth in (8, 16) and source_depth != depth and scale in ("clip", "abs"):
        factor = ((1 << depth) - 1) / ((1 << source_depth) - 1)
        values = np.asarray(data, dtype=np.float32) * np.float32(factor)
        if alpha is not None:
            alpha = np.asarray(alpha, dtype=np.float32) * np.float32(factor)
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim == 3 and values.shape[-1] not in (3,):
        raise UsageError(
            f"cannot write {values.shape[-1]} channels to {fmt.upper()}: "
            "use .npy or .tif, or --gray"
        )
    pixels = to_depth(values, scale, depth)
    if alpha is not None and fmt not in ("jpeg", "bmp"):
        a = to_depth(alpha, "clip", depth)
        pixels = np.dstack([pixels, a])
    level = DEFAULT_PNG_LEVEL if compress is None else int(compress)

    if fmt == "png":
        return encode_png(pixels, level)

    from PIL import Image as PILImage

    im = PILImage.fromarray(pixels)
    buf = _io.BytesIO()
    try:
        if fmt == "jpeg":
            im.save(buf, format="JPEG", quality=95)
        elif fmt == "webp":
            im.save(buf, format="WEBP", lossless=True)
        else:
            im.save(buf, format=_PIL_FORMAT[fmt])
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot encode a {im.mode} image as {fmt.upper()} ({exc})") from None
    return buf.getvalue()


def write_image(
    dest: str | os.PathLike,
    data: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    depth: int = 8,
    scale: str = "clip",
    fmt: str | None = None,
    compress: int | None = None,
    stack: bool = False,
    source_depth: int | None = None,
) -> None:
    """Write a float result as an image file, atomically.

    Parameters
    ----------
    dest : str or os.PathLike
        Output path, or ``"-"`` for standard output (PNG unless ``fmt``).
    data : numpy.ndarray
        (H,W) or (H,W,C); with ``stack=True`` (M,H,W) or (M,H,W,C).
    alpha : numpy.ndarray, optional
        (H,W) alpha on the same scale as the input; not written to JPEG or
        to the raw formats.
    depth : {8, 16}
        Bits per sample for PNG (JPEG, BMP and WebP are 8-bit only).
    scale : str
        How values reach the integer range (:func:`convtool.scaling.to_depth`);
        ignored by ``.npy`` and ``.tif``, which keep raw float32.
    fmt : str, optional
        Format name or extension; default from ``dest``'s extension.
    compress : int, optional
        PNG zlib level 0..9 (default :data:`DEFAULT_PNG_LEVEL`).
    stack : bool
        ``data`` is a stack of maps (filter bank with ``--combine stack``).
    source_depth : {8, 16}, optional
        Depth of the input. With ``clip`` or ``abs``, values move to the
        output's scale (x257 from 8 to 16 bits, /257 the other way).

    Raises
    ------
    UsageError
        Unknown format, wrong depth for the format, a stack to an image format.
    InputError
        The file could not be written (no partial file is left).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> write_image(os.path.join(d, "r.png"), np.full((4, 6), 300.0))
    >>> read_image(os.path.join(d, "r.png")).data.max()
    np.float32(255.0)
    """
    kind = output_format(dest, fmt)
    payload = encode_image(
        data,
        fmt=kind,
        alpha=alpha,
        depth=depth,
        scale=scale,
        compress=compress,
        stack=stack,
        source_depth=source_depth,
    )
    if str(dest) == "-":
        out = sys.stdout.buffer
        out.write(payload)
        out.flush()
        return
    atomic_write(dest, lambda fh: fh.write(payload))
