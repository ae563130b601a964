"""Feature-map grids: layout, normalisation, colour maps, labels and colour bars.

:func:`grid` turns a stack of 2-D maps (and optionally the input image, shown
first) into one RGB picture; :func:`overview` makes one sheet with a row per
layer. Text is drawn with Pillow's default font; no matplotlib.

Normalisation
-------------
``map``     each tile spans its own min..max (shows every map's structure)
``global``  every tile shares one range (shows which maps respond most)

Colour maps (``cmap``)
----------------------
``auto`` (default) draws signed data with ``diverging`` and the rest with
``gray``; data is *signed* when its minimum is below zero by more than 0.1 %
of its largest magnitude (float round-off in a blur is not a sign). With
``map`` normalisation each tile decides for itself, with ``global`` the whole
grid decides once. ``diverging`` always uses a range symmetric about zero,
so zero is white, negative blue and positive red.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import colormaps
from .errors import UsageError

NORMALIZE = ("map", "global")
BACKGROUND = (38, 38, 38)
TEXT = (235, 235, 235)
FONT_SIZE = 13
SIGN_TOLERANCE = 1e-3


LINE = FONT_SIZE + 5  # height of a text line
BAR = 10  # height of a colour bar


@dataclass(frozen=True)
class Layout:
    """Where a grid's tiles go: sheet size and each tile's top-left (y, x)."""

    height: int
    width: int
    rows: int
    cols: int
    tiles: tuple[tuple[int, int], ...]


def layout(
    n: int,
    th: int,
    tw: int,
    *,
    cols: int | None = None,
    gutter: int = 6,
    title: bool | int = False,
    colorbar: bool = False,
    show_range: bool = False,
) -> Layout:
    """Place ``n`` tiles of ``th`` x ``tw`` pixels, row by row.

    Each cell is a label line, the tile, then (if asked) a colour bar and a
    line for its values; cells are ``gutter`` pixels apart and from the edge,
    below an optional title of ``title`` lines (True: one).

    Examples
    --------
    >>> lay = layout(5, 100, 100, cols=3, gutter=4)
    >>> (lay.rows, lay.cols, lay.width), lay.tiles[:2]
    ((2, 3, 316), ((22, 4), (22, 108)))
    """
    if n < 1:
        raise UsageError("nothing to lay out: no maps")
    if cols is None:
        cols = max(1, math.ceil(math.sqrt(n * th / tw)))
    elif int(cols) < 1:
        raise UsageError(f"cols must be >= 1, got {cols}")
    cols = min(int(cols), n)
    rows = math.ceil(n / cols)
    below = (BAR + 2 if colorbar else 0) + (LINE if (colorbar or show_range) else 0)
    cell_h = LINE + th + below
    title_h = int(title) * LINE + 4 if title else 0
    width = cols * tw + (cols + 1) * gutter
    height = title_h + rows * cell_h + (rows + 1) * gutter
    tiles = tuple(
        (title_h + gutter + r * (cell_h + gutter) + LINE, gutter + c * (tw + gutter))
        for r, c in (divmod(pos, cols) for pos in range(n))
    )
    return Layout(height, width, rows, cols, tiles)


@dataclass(frozen=True)
class TileStyle:
    """How one tile is drawn: colour map and the value range it spans."""

    cmap: str
    lo: float
    hi: float


def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


def is_signed(values: np.ndarray | Sequence[float]) -> bool:
    """True when ``values`` go below zero by more than round-off.

    Examples
    --------
    >>> import numpy as np
    >>> is_signed(np.array([-1.0, 2.0])), is_signed(np.array([-1e-9, 2.0]))
    (True, False)
    """
    extent = _extent(np.asarray(values))
    return extent is not None and _signed(*extent)


def _extent(m: np.ndarray) -> tuple[float, float] | None:
    """True (min, max) of ``m``, NaN ignored; None when it is empty."""
    if m.size == 0:
        return None
    return float(np.nanmin(m)), float(np.nanmax(m))


def _signed(lo: float, hi: float) -> bool:
    return lo < -SIGN_TOLERANCE * max(abs(lo), abs(hi)) and lo < 0


_SAMPLE = 1 << 13


def _robust_range(
    m: np.ndarray, clip: float, extent: tuple[float, float] | None
) -> tuple[float, float, float]:
    """(lo, hi, largest magnitude) of ``m``, ignoring ``clip`` percent at each end.

    ``extent`` is ``_extent(m)``, passed in because the caller needs it too.
    Percentiles come from an even subsample of at most ``_SAMPLE`` values, so
    the cost does not grow with the map.
    """
    if extent is None:
        return 0.0, 0.0, 0.0
    if clip <= 0:
        lo, hi = extent
        return lo, hi, max(abs(lo), abs(hi))
    flat = m.reshape(-1)
    sample = flat[:: max(1, -(-flat.size // _SAMPLE))]
    if not np.isfinite(sample).all():
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return 0.0, 0.0, 0.0
    n = sample.size
    klo = int(clip / 100 * (n - 1))
    khi = n - 1 - klo
    part = np.partition(sample, (klo, khi))
    lo, hi = float(part[klo]), float(part[khi])
    return lo, hi, max(abs(lo), abs(hi))


def styles(
    maps: Sequence[np.ndarray], *, normalize: str = "map", cmap: str = "auto", clip: float = 0.0
) -> list[TileStyle]:
    """Decide each tile's colour map and value range.

    ``clip`` (percent, 0 to <50) ignores that share of the most extreme values
    at each end when the range is chosen, so a few strong pixels do not turn
    the rest of a map black; values beyond the range draw as its end colours.
    Whether a map is signed is always decided from its true minimum.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.array([[0.0, 2.0]]), np.array([[-1.0, 3.0]])
    >>> [(s.cmap, s.lo, s.hi) for s in styles([a, b])]
    [('gray', 0.0, 2.0), ('diverging', -3.0, 3.0)]
    >>> [(s.cmap, s.lo, s.hi) for s in styles([a, b], normalize="global")]
    [('diverging', -3.0, 3.0), ('diverging', -3.0, 3.0)]
    """
    normalize = str(normalize).lower()
    if normalize not in NORMALIZE:
        raise UsageError(f"unknown normalisation {normalize!r}: use map or global")
    cmap = str(cmap).lower()
    if cmap != "auto":
        cmap = colormaps.check_cmap(cmap)
    if not 0 <= clip < 50:
        raise UsageError(f"clip must be a percentage in [0, 50), got {clip}")
    extents = [_extent(m) for m in maps]  # one pass per map for the sign and the range
    signs = [e is not None and _signed(*e) for e in extents]
    ranges = [_robust_range(m, clip, e) for m, e in zip(maps, extents, strict=True)]
    if normalize == "global" and maps:
        if clip > 0:
            sizes = [max(1, m.size // max(1, _SAMPLE // len(maps))) for m in maps]
            joined = np.concatenate([m.reshape(-1)[::s] for m, s in zip(maps, sizes, strict=True)])
            shared = _robust_range(joined, clip, _extent(joined))
        else:
            shared = (
                min(r[0] for r in ranges),
                max(r[1] for r in ranges),
                max(r[2] for r in ranges),
            )
        ranges = [shared] * len(ranges)
        signs = [any(signs)] * len(signs)
    out = []
    for (lo, hi, mag), signed in zip(ranges, signs, strict=True):
        name = cmap
        if name == "auto":
            name = "diverging" if signed else "gray"
        if name in colormaps.SIGNED_CMAPS:
            a = mag or 1.0
            lo, hi = -a, a
        out.append(TileStyle(name, lo, hi))
    return out


def activity(maps: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """How strongly each map responds: its mean absolute value (float64, one per map).

    For maps after a ReLU this is the mean activation; for signed maps (a
    convolution before its non-linearity) strong responses of either sign
    count, and a map that is zero everywhere scores 0.

    Examples
    --------
    >>> import numpy as np
    >>> activity(np.array([[[1.0, -3.0]], [[0.5, 0.5]]])).tolist()
    [2.0, 0.5]
    """
    return np.array([float(np.mean(np.abs(m), dtype=np.float64)) for m in maps])


def most_active(maps: np.ndarray | Sequence[np.ndarray], n: int) -> np.ndarray:
    """Indices of the ``n`` maps with the highest :func:`activity`, most active first.

    Ties keep channel order.

    Examples
    --------
    >>> import numpy as np
    >>> most_active(np.array([[[0.0]], [[-5.0]], [[2.0]], [[2.0]]]), 3).tolist()
    [1, 2, 3]
    """
    if n < 1:
        raise UsageError(f"n must be >= 1, got {n}")
    return np.argsort(-activity(maps), kind="stable")[:n]


def vector_block(values: np.ndarray) -> tuple[np.ndarray, int]:
    """A flat vector laid out row by row in a near-square block, and its blank cells.

    ``N`` values fill ``ceil(sqrt(N))`` columns; the cells after the last value
    are NaN (drawn as background) and their count is returned.

    Examples
    --------
    >>> block, blank = vector_block(np.arange(10.0))
    >>> block.shape, blank, block[2].tolist()
    ((3, 4), 2, [8.0, 9.0, nan, nan])
    """
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    cols = max(1, math.ceil(math.sqrt(v.size)))
    rows = max(1, math.ceil(v.size / cols))
    block = np.full(rows * cols, np.nan, dtype=np.float32)
    block[: v.size] = v
    return block.reshape(rows, cols), rows * cols - v.size


def _as_maps(maps: np.ndarray | Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """The maps as 2-D float32 arrays, and each one's blank cells (vectors only).

    A 1-D array is one flat vector (an fc or softmax output), drawn as a
    :func:`vector_block`.
    """
    if isinstance(maps, np.ndarray):
        if maps.ndim in (1, 2):
            maps = [maps]
        elif maps.ndim == 3:
            maps = list(maps)
        else:
            raise UsageError(
                f"maps must be (M, H, W), one vector or a list of 2-D arrays, got {maps.shape}"
            )
    out, blanks = [], []
    for m in maps:
        arr = np.asarray(m, dtype=np.float32)
        blank = 0
        if arr.ndim == 1 and arr.size:
            arr, blank = vector_block(arr)
        if arr.ndim != 2 or arr.size == 0:
            raise UsageError(
                f"each map must be a non-empty 2-D array or vector, got shape {arr.shape}"
            )
        out.append(arr)
        blanks.append(blank)
    return out, blanks


def _resize(values: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize a float 2-D array: integer upscale by repetition, else area/bilinear."""
    sh, sw = values.shape
    if (sh, sw) == (h, w):
        return values
    if h % sh == 0 and w % sw == 0 and h // sh == w // sw:
        f = h // sh
        return np.repeat(np.repeat(values, f, axis=0), f, axis=1)
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    method = Image.Resampling.BOX if h < sh else Image.Resampling.NEAREST
    return np.asarray(img.resize((w, h), method), dtype=np.float32)


def _fit_size(h: int, w: int, max_side: int | None, min_side: int) -> tuple[int, int]:
    """Display size: integer upscale to reach min_side, downscale to max_side."""
    side = max(h, w)
    if side < min_side:
        f = math.ceil(min_side / side)
        return h * f, w * f
    if max_side is not None and side > max_side:
        s = max_side / side
        return max(1, round(h * s)), max(1, round(w * s))
    return h, w


def _fit_tile(h: int, w: int, tile: int) -> tuple[int, int]:
    """Display size in a ``tile`` square: the largest integer upscale that fits, else reduced."""
    s = tile / max(h, w)
    if s >= 1:
        f = int(s)
        return h * f, w * f
    return max(1, min(tile, round(h * s))), max(1, min(tile, round(w * s)))


def _guess_range(f: np.ndarray) -> tuple[float, float]:
    """The scale an image of unknown depth was probably stored on.

    0..1, 0..255 or 0..65535 when its values fit one, else its own min..max.
    Only a guess: a dark 16-bit image looks 8-bit; callers who read the image
    know its depth and pass the range instead.
    """
    lo, hi = float(f.min()), float(f.max())
    if lo < 0:
        return lo, hi
    if hi <= 1.0:
        return 0.0, 1.0
    if hi <= 255.0:
        return 0.0, 255.0
    if hi <= 65535.0:
        return 0.0, 65535.0
    return lo, hi


def _input_rgb(
    image: np.ndarray, h: int, w: int, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """The input image as uint8 RGB fitted (aspect kept, centred) in an h x w cell.

    ``value_range`` (black, white) is the image's scale, as
    :attr:`convtool.io.Image.value_range` gives it; without it the scale is
    guessed from the values (uint8 arrays are drawn as they are).
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] not in (3, 4):
        arr = arr.mean(axis=2)
    if arr.ndim == 3:
        arr = arr[..., :3]
    if arr.dtype != np.uint8 or value_range is not None:
        f = arr.astype(np.float32)
        lo, hi = _guess_range(f) if value_range is None else map(float, value_range)
        span = hi - lo or 1.0
        arr = np.clip((f - lo) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)
    from PIL import Image

    img = Image.fromarray(arr)
    ih, iw = arr.shape[:2]
    s = min(h / ih, w / iw)
    size = (max(1, round(iw * s)), max(1, round(ih * s)))
    img = img.convert("RGB").resize(
        size, Image.Resampling.BOX if s < 1 else Image.Resampling.NEAREST
    )
    cell = np.zeros((h, w, 3), dtype=np.uint8)
    cell[:] = BACKGROUND
    top, left = (h - size[1]) // 2, (w - size[0]) // 2
    cell[top : top + size[1], left : left + size[0]] = np.asarray(img)
    return cell


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.2e}"
    return f"{v:.3g}"


def _ellipsize(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _wrap(text: str, width: int, max_lines: int = 2) -> list[str]:
    """``text`` broken at spaces into at most ``max_lines`` lines of ``width`` pixels.

    The last line is ellipsized when the rest still does not fit.
    """
    font = _font()
    lines: list[str] = []
    words = text.split(" ")
    while words and len(lines) < max_lines - 1:
        k = len(words)
        while k > 1 and font.getlength(" ".join(words[:k])) > width:
            k -= 1
        lines.append(" ".join(words[:k]))
        words = words[k:]
    if words:
        lines.append(" ".join(words))
    return lines


_BACKGROUND_WORD = np.array([*BACKGROUND, 0], dtype=np.uint8).view(np.uint32)[0]


def _canvas(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A background-filled RGBX sheet and the same memory seen as one uint32 word per pixel.

    Tiles land in the words with contiguous copies (see :func:`_paint`).
    """
    canvas4 = np.zeros((height, width, 4), dtype=np.uint8)
    canvas4[..., :3] = BACKGROUND
    return canvas4, canvas4.view(np.uint32)[..., 0]


def _paint(
    words: np.ndarray, top: int, left: int, cell: tuple[int, int], a: np.ndarray,
    style: TileStyle, size: tuple[int, int], blank: int = 0,
) -> None:  # fmt: skip
    """Draw map ``a`` resized to ``size``, coloured by ``style``, centred in a cell.

    The last ``blank`` cells of ``a``'s last row (a vector block's padding)
    are left as background.
    """
    ah, aw = size
    oy, ox = top + (cell[0] - ah) // 2, left + (cell[1] - aw) // 2
    words[oy : oy + ah, ox : ox + aw] = colormaps.apply_packed(
        _resize(a, ah, aw), style.cmap, style.lo, style.hi
    )
    if blank:
        rows, cols = a.shape
        y0 = oy + round((rows - 1) * ah / rows)
        x0 = ox + round((cols - blank) * aw / cols)
        words[y0 : oy + ah, x0 : ox + aw] = _BACKGROUND_WORD


def _finish(canvas4: np.ndarray, texts: Sequence[tuple[int, int, str, int, str]]) -> np.ndarray:
    """The sheet as uint8 RGB with its texts (x, y, text, max width, anchor) drawn."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(canvas4[..., :3]))
    draw = ImageDraw.Draw(img)
    font = _font()
    for x, y, text, maxw, anchor in texts:
        draw.text((x, y), _ellipsize(draw, text, font, maxw), fill=TEXT, font=font, anchor=anchor)
    return np.asarray(img)


def grid(
    maps: np.ndarray | Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    *,
    cols: int | None = None,
    normalize: str = "map",
    cmap: str = "auto",
    gutter: int = 6,
    colorbar: bool = False,
    show_range: bool = False,
    input_image: np.ndarray | None = None,
    input_range: tuple[float, float] | None = None,
    input_label: str = "input",
    title: str | None = None,
    max_tile: int | None = None,
    min_tile: int = 96,
    clip: float = 0.0,
) -> np.ndarray:
    """Draw feature maps as a labelled grid of tiles.

    Parameters
    ----------
    maps : (M, H, W) array or sequence of 2-D arrays
    labels : one label per map (default ``0``, ``1``, ...)
    cols : tiles per row (default: a near-square layout)
    normalize : ``map`` or ``global`` (see the module notes)
    cmap : ``auto``, ``gray``, ``viridis``, ``magma`` or ``diverging``
    gutter : pixels between tiles and around the sheet
    colorbar : draw a colour bar under each tile, with its end values
    show_range : print each tile's value range under it
    input_image : (H, W) or (H, W, C) image drawn first, on its own scale
    input_range : (black, white) of ``input_image``'s scale, e.g. (0, 65535) for
        a 16-bit image (:attr:`convtool.io.Image.value_range`); default: guessed
        from its values (0..1, 0..255 or 0..65535 when they fit, else min..max)
    title : a line of text across the top
    max_tile, min_tile : display size limits for a tile's longer side; small
        maps are enlarged by an integer factor (pixels stay square), large
        ones reduced by area averaging
    clip : percent of the most extreme values ignored at each end when the
        range is chosen (see :func:`styles`)

    Returns
    -------
    numpy.ndarray
        uint8 RGB image (H, W, 3).

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.stack([np.eye(100, dtype=np.float32), -np.eye(100, dtype=np.float32)])
    >>> grid(maps, ["eye", "minus eye"], cols=2).shape[2]
    3
    """
    arrays, blanks = _as_maps(maps)
    labels = [str(i) for i in range(len(arrays))] if labels is None else [str(s) for s in labels]
    if len(labels) != len(arrays):
        raise UsageError(f"{len(labels)} labels for {len(arrays)} maps")
    if gutter < 0:
        raise UsageError(f"gutter must be >= 0, got {gutter}")
    tile_styles = styles(arrays, normalize=normalize, cmap=cmap, clip=clip)
    mh = max(a.shape[0] for a in arrays)
    mw = max(a.shape[1] for a in arrays)
    th, tw = _fit_size(mh, mw, max_tile, min_tile)
    n = len(arrays) + (input_image is not None)
    place = dict(cols=cols, gutter=gutter, colorbar=colorbar, show_range=show_range)
    lay = layout(n, th, tw, title=bool(title), **place)
    title_lines = _wrap(title, lay.width - 2 * gutter) if title else []
    if len(title_lines) > 1:
        lay = layout(n, th, tw, title=len(title_lines), **place)
    line, bar_h, width = LINE, BAR, lay.width
    canvas4, words = _canvas(lay.height, lay.width)

    texts: list[tuple[int, int, str, int, str]] = []  # x, y, text, max width, anchor
    for k, text in enumerate(title_lines):
        texts.append((gutter, gutter + k * line, text, width - 2 * gutter, "la"))
    cells = []
    if input_image is not None:
        cells.append(("input", None, input_label))
    cells += [("map", i, labels[i]) for i in range(len(arrays))]
    for (kind, i, label), (ty, x0) in zip(cells, lay.tiles, strict=True):
        texts.append((x0, ty - line + 2, label, tw, "la"))
        if kind == "input":
            canvas4[ty : ty + th, x0 : x0 + tw, :3] = _input_rgb(input_image, th, tw, input_range)
            continue
        st = tile_styles[i]
        a = arrays[i]
        ah, aw = _fit_size(a.shape[0], a.shape[1], max_tile, min_tile)
        _paint(words, ty, x0, (th, tw), a, st, (min(ah, th), min(aw, tw)), blanks[i])
        yb = ty + th + 2
        if colorbar:
            ramp = np.linspace(st.lo, st.hi, tw, dtype=np.float32)[None].repeat(bar_h, 0)
            words[yb : yb + bar_h, x0 : x0 + tw] = colormaps.apply_packed(
                ramp, st.cmap, st.lo, st.hi
            )
            yb += bar_h + 1
        if colorbar or show_range:
            lo_t, hi_t = _fmt(st.lo), _fmt(st.hi)
            if show_range and not colorbar:
                lo_t = _fmt(float(np.nanmin(a)))
                hi_t = _fmt(float(np.nanmax(a)))
            texts.append((x0, yb, lo_t, tw // 2, "la"))
            texts.append((x0 + tw, yb, hi_t, tw // 2, "ra"))

    return _finish(canvas4, texts)


def overview(
    rows: Sequence[tuple[str, np.ndarray | Sequence[np.ndarray]]],
    *,
    input_image: np.ndarray | None = None,
    input_range: tuple[float, float] | None = None,
    max_maps: int = 8,
    tile: int = 112,
    cmap: str = "auto",
    gutter: int = 6,
    title: str | None = None,
    clip: float = 0.0,
) -> np.ndarray:
    """One sheet, one row per layer: its title, then its first ``max_maps`` maps.

    Parameters
    ----------
    rows : sequence of (title, maps)
        ``maps`` as for :func:`grid`; each map is normalised on its own.
    input_image : drawn as the first row when given
    input_range : its (black, white), as for :func:`grid`
    max_maps : maps shown per row (the title says how many there are)
    tile : display size of each tile's longer side

    Returns
    -------
    numpy.ndarray
        uint8 RGB image.

    Examples
    --------
    >>> import numpy as np
    >>> sheet = overview([("a", np.ones((3, 8, 8))), ("b", np.zeros((2, 4, 4)))])
    >>> sheet.ndim, sheet.dtype.name
    (3, 'uint8')
    """
    if max_maps < 1 or tile < 8:
        raise UsageError("overview needs max_maps >= 1 and tile >= 8")
    line = LINE
    entries: list[tuple[str, tuple[list[np.ndarray], list[int]] | None]] = []
    if input_image is not None:
        entries.append(("input", None))
    for name, maps in rows:
        entries.append((str(name), _as_maps(maps)))
    ncols = max([1] + [min(len(m[0]), max_maps) for _, m in entries if m is not None])
    width = ncols * tile + (ncols + 1) * gutter
    row_h = line + tile
    height = (line + 4 if title else 0) + len(entries) * (row_h + gutter) + gutter
    canvas4, words = _canvas(height, width)
    texts: list[tuple[int, int, str, int, str]] = []
    y = gutter
    if title:
        texts.append((gutter, y + 2, title, width - 2 * gutter, "la"))
        y += line + 4
    for name, maps in entries:
        x = gutter
        if maps is None:
            texts.append((x, y + 2, name, width - 2 * gutter, "la"))
            canvas4[y + line : y + line + tile, x : x + tile, :3] = _input_rgb(
                input_image, tile, tile, input_range
            )
        else:
            shown, blanks = maps[0][:max_maps], maps[1][:max_maps]
            total = len(maps[0])
            more = f"  (first {len(shown)} of {total})" if total > len(shown) else ""
            texts.append((x, y + 2, name + more, width - 2 * gutter, "la"))
            tile_styles = styles(shown, cmap=cmap, clip=clip)
            for st, a, blank in zip(tile_styles, shown, blanks, strict=True):
                size = _fit_tile(*a.shape, tile)
                _paint(words, y + line, x, (tile, tile), a, st, size, blank)
                x += tile + gutter
        y += row_h + gutter
    return _finish(canvas4, texts)
