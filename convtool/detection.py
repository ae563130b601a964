"""Template matching: a neuron as a detector.

A neuron's response ``w . x = |w| |x| cos(theta)`` is highest where the input
patch ``x`` points the same way as the weights ``w``. :func:`match` computes that
similarity for every placement of a template on an image, and :func:`detect`
turns the score map into a list of :class:`Detection` boxes.

Methods (all equal to OpenCV's ``cv2.matchTemplate`` within 1e-4)::

    zncc    zero-mean normalised cross-correlation   TM_CCOEFF_NORMED   -1..1, 1 best
    cosine  cos(theta) of the raw vectors             TM_CCORR_NORMED    -1..1, 1 best
    sqdiff  |x - w|^2 / (|x| |w|), capped at 1        TM_SQDIFF_NORMED    0..1, 0 best

Colour images compare all channels at once, as OpenCV does: each channel is
centred on its own mean (zncc) and the sums run over the channels too.

Flat windows and flat templates get defined scores, never NaN or inf: a window
is flat when its sum of squared deviations (zncc) or of squares (cosine,
sqdiff) is at most ``min(0.5, 10 * FLT_EPSILON * sum of squares)``, OpenCV's
own rule; it scores 0 (zncc, cosine: no similarity) or 1 (sqdiff: the worst).
A flat template (zncc; all-zero for cosine and sqdiff) scores 0 (1 for sqdiff)
everywhere. OpenCV agrees except for a flat template with TM_CCOEFF_NORMED,
where it returns 1 everywhere (every window "matches"); convtool returns 0,
because a flat template has no pattern to be similar to.

Algorithm: the correlation of the image with the zero-mean template is an FFT
cross-correlation (``numpy.fft.rfft2``) computed tile by tile (overlap-save),
with the tile size chosen for the template so the FFTs stay in cache, and the
tiles spread over threads; tiny templates use a direct Numba loop instead. The
window sums and sums of squares come from running sums in float64 (what a
summed-area table gives, in O(W) memory), so the cost does not grow with the
template's area. See J. P. Lewis, "Fast Normalized Cross-Correlation",
Vision Interface 1995.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import parallel, rentbuy
from .errors import UsageError

#: Accepted method names -> canonical name.
METHOD_ALIASES: dict[str, str] = {
    "zncc": "zncc",
    "ccoeff": "zncc",
    "ncc": "zncc",
    "cosine": "cosine",
    "ccorr": "cosine",
    "cos": "cosine",
    "sqdiff": "sqdiff",
    "ssd": "sqdiff",
}

#: Canonical method names, in the order the docs list them.
METHODS: tuple[str, ...] = ("zncc", "cosine", "sqdiff")

#: Default detection threshold per method: a detection needs a score >= this
#: (zncc, cosine) or <= this (sqdiff, where lower is better). cosine is high on
#: any smooth natural-image patch, so its bar is high.
DEFAULT_THRESHOLD: dict[str, float] = {"zncc": 0.8, "cosine": 0.98, "sqdiff": 0.04}

#: Default IoU above which the weaker of two overlapping boxes is dropped.
DEFAULT_NMS_IOU = 0.3

#: Templates with at most this many pixels (per channel) use the direct loop.
DIRECT_MAX_AREA = 25


def normalize_method(method: str) -> str:
    """Return the canonical method name (``zncc``, ``cosine`` or ``sqdiff``).

    Examples
    --------
    >>> normalize_method("ccoeff")
    'zncc'
    """
    key = str(method).strip().lower().replace("-", "").replace("_", "")
    try:
        return METHOD_ALIASES[key]
    except KeyError:
        raise UsageError(
            f"unknown method {method!r}: use zncc (TM_CCOEFF_NORMED), cosine "
            "(TM_CCORR_NORMED) or sqdiff (TM_SQDIFF_NORMED)"
        ) from None


def higher_is_better(method: str) -> bool:
    """True for zncc and cosine (similarities), False for sqdiff (a distance)."""
    return normalize_method(method) != "sqdiff"


# ---------------------------------------------------------------------------
# validation


def _as_planes(array: np.ndarray, what: str) -> np.ndarray:
    """(H, W) or (H, W, C) real array -> float32 (C, H, W), checked finite."""
    a = np.asarray(array)
    if a.dtype == bool or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    ):
        raise UsageError(f"the {what} must be a real-valued array, got dtype {a.dtype}")
    if a.ndim == 2:
        planes = a[np.newaxis]
    elif a.ndim == 3:
        planes = np.moveaxis(a, -1, 0)
    else:
        raise UsageError(f"the {what} must be 2-D (H, W) or 3-D (H, W, C), got shape {a.shape}")
    if min(a.shape[:2]) < 1 or planes.shape[0] < 1:
        raise UsageError(f"the {what} is empty (shape {a.shape})")
    planes = np.ascontiguousarray(planes, dtype=np.float32)
    if not np.isfinite(planes).all():
        raise UsageError(f"the {what} contains NaN or infinite values; replace them first")
    return planes


def _check_pair(shape: tuple[int, ...], tmpl: np.ndarray) -> np.ndarray:
    """Check sizes and channels against the image's (C, H, W) ``shape``; a
    1-channel template is used for every channel."""
    nch, height, width = shape
    tc, h, w = tmpl.shape
    if h > height or w > width:
        raise UsageError(
            f"the template ({w}x{h}) is larger than the image ({width}x{height}); "
            "use a smaller template, a smaller --scales range, or a larger image"
        )
    if tc != nch:
        if tc == 1:
            tmpl = np.repeat(tmpl, nch, axis=0)
        else:
            raise UsageError(
                f"the template has {tc} channels but the image has {nch}; "
                "convert both to gray (--gray) or give a template with matching channels"
            )
    return tmpl


def _threads(threads: int | None) -> int:
    if threads is None:
        return parallel.get_threads()
    return parallel.check_threads(threads)


#: numpy path (:mod:`convtool.core.match_numpy`), estimated ns per score and
#: channel (window sums and scores), and per score per template pixel (direct).
NUMPY_SCORE_NS = 40.0
NUMPY_DIRECT_NS = 2.0
#: Python suppression loop, estimated ns per candidate.
NUMPY_SUPPRESS_NS = 5000.0


def _kernels(planes: np.ndarray, sizes: Sequence[tuple[int, int]]) -> Any:
    """The kernel module for a job: Numba's, or the numpy twin while Numba is not
    loaded and this job costs less than loading it (:mod:`convtool.rentbuy`)."""
    n_ch, height, width = planes.shape
    cost = 0.0
    names = ["match.value_stats", "match.normalize_block", "match.find_peaks"]
    for h, w in sizes:
        outputs = (height - h + 1) * (width - w + 1)
        cost += NUMPY_SCORE_NS * n_ch * outputs
        if h * w <= DIRECT_MAX_AREA:
            cost += NUMPY_DIRECT_NS * n_ch * h * w * outputs
            names.append("match.correlate_direct")
    if rentbuy.prefer_numpy(cost, names):
        from .core import match_numpy

        return match_numpy
    from .core import match

    return match


# ---------------------------------------------------------------------------
# FFT cross-correlation


def _fast_lengths(limit: int) -> list[int]:
    """All 2^a 3^b 5^c <= limit (pocketfft is fastest on these)."""
    out = []
    p2 = 1
    while p2 <= limit:
        p3 = p2
        while p3 <= limit:
            p5 = p3
            while p5 <= limit:
                out.append(p5)
                p5 *= 5
            p3 *= 3
        p2 *= 2
    return sorted(out)


def next_fast_length(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n.

    Examples
    --------
    >>> next_fast_length(1000), next_fast_length(1025)
    (1000, 1080)
    """
    m = max(1, int(n))
    return next(v for v in _fast_lengths(2 * m) if v >= m)  # a power of 2 lies in [m, 2m)


def _tile_shape(h: int, w: int, ho: int, wo: int) -> tuple[int, int]:
    """FFT tile shape ``(ny, nx)`` for an ``h x w`` template and ``ho x wo`` outputs.

    Overlap-save: a tile of ``ny x nx`` image pixels gives ``(ny-h+1) x (nx-w+1)``
    valid outputs. Cost model per tile: ``ny*nx*log2(ny*nx)*penalty + overhead``,
    where the penalty (2.5 for tiles above 512x512) stands for the FFT falling
    out of the cache (measured: 256- and 512-long tiles beat one 2048x2048 FFT
    by 2-4x per pixel) and the overhead for the Python work per tile.
    """

    def candidates(k: int, n_out: int) -> list[int]:
        whole = next_fast_length(n_out + k - 1)
        return [n for n in _fast_lengths(whole) if n >= max(2 * k, 32)] or [whole]

    best, best_cost = (0, 0), math.inf
    for ny in candidates(h, ho):
        tiles_y = -(-ho // (ny - h + 1))
        for nx in candidates(w, wo):
            tiles_x = -(-wo // (nx - w + 1))
            size = ny * nx
            penalty = 2.5 if size > 512 * 512 else 1.0
            cost = tiles_y * tiles_x * (size * math.log2(size) * penalty + 20_000)
            if cost < best_cost:
                best, best_cost = (ny, nx), cost
    return best


def _correlate_fft(
    planes: np.ndarray,
    tmpl0: np.ndarray,
    out: np.ndarray,
    threads: int,
    finish: Callable[[int, int, int, int], None] | None = None,
    double: bool = False,
) -> None:
    """``out = sum_c correlate_valid(planes[c], tmpl0[c])`` via tiled FFT (zero-mean tmpl0).

    Overlap-save: each ``ny x nx`` image tile is transformed (all channels at
    once), multiplied by the conjugate spectrum of the zero-mean template
    (computed once), summed over channels and transformed back; its first
    ``(ny-h+1) x (nx-w+1)`` values are valid correlations. Tiles run on
    ``threads`` worker threads (numpy's FFT releases the GIL), and ``finish``
    (the Numba normalisation, which releases it too) is called on each tile's
    block of outputs while it is still in cache.
    """
    n_ch = planes.shape[0]
    _, h, w = tmpl0.shape
    ho, wo = out.shape
    ny, nx = _tile_shape(h, w, ho, wo)
    sy, sx = ny - h + 1, nx - w + 1
    dtype = np.float64 if double else np.float32
    ft = np.conj(np.fft.rfft2(tmpl0, s=(ny, nx))).astype(np.result_type(dtype, np.complex64))
    if n_ch == 1:
        ft = ft[0]
    tiles = [(y, x) for y in range(0, ho, sy) for x in range(0, wo, sx)]

    def one(tile: tuple[int, int]) -> None:
        y, x = tile
        block = planes[:, y : y + ny, x : x + nx]
        # centre each tile on its own mean: the FFT's rounding error scales with
        # the tile's energy, and the zero-mean template makes the result exact anyway
        centre = block.reshape(n_ch, -1).mean(axis=1, dtype=np.float64)
        block = block - centre.astype(dtype)[:, None, None]
        if n_ch == 1:
            spec = np.fft.rfft2(block[0], s=(ny, nx))
            spec *= ft
        else:
            spec = np.fft.rfft2(block, s=(ny, nx))
            spec *= ft
            spec = spec.sum(axis=0)
        corr = np.fft.irfft2(spec, s=(ny, nx))
        hh, ww = min(sy, ho - y), min(sx, wo - x)
        out[y : y + hh, x : x + ww] = corr[:hh, :ww]
        if finish is not None:
            finish(y, y + hh, x, x + ww)

    if threads > 1 and len(tiles) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(tiles))) as pool:
            for _ in pool.map(one, tiles):
                pass
    else:
        for tile in tiles:
            one(tile)


def _prepared_template(tmpl: np.ndarray, method: str) -> tuple:
    """Template statistics: (zero-mean template, means, var sum, square sum, flat).

    The template is flat by the rule :mod:`convtool.core.match` applies to windows.
    """
    from .core.match_numpy import FLT_EPSILON  # the kernels' value, without importing Numba

    t64 = tmpl.astype(np.float64)
    t_mean = t64.reshape(t64.shape[0], -1).mean(axis=1)
    t0 = t64 - t_mean[:, None, None]
    t_var = float((t0 * t0).sum())
    t_sq = float((t64 * t64).sum())
    if method == "zncc":
        flat = t_var <= min(0.5, 10.0 * FLT_EPSILON * t_sq)
    else:
        flat = t_sq <= 0.0
    return t0, t_mean, t_var, t_sq, flat


def _sums_noise(stats: tuple, offsets: np.ndarray, n: int, height: int, width: int) -> float:
    """Worst rounding error of the window sums of squares (0 if exact).

    Integer-valued data centred on integers sums exactly in float64. Otherwise
    each of the ~H+W add/subtract steps can lose one ulp of a sum of up to
    ``n * max|v - offset|^2``; windows below that level count as flat.
    """
    lo, hi, integral, _mean = stats
    lo = lo - offsets
    hi = hi - offsets
    big = n * float(np.maximum(lo * lo, hi * hi).sum())
    if big < 2.0**52 and np.all(offsets == np.round(offsets)) and integral:
        return 0.0
    return 2.3e-16 * (height + width + 64) * big


def _match_planes(
    planes: np.ndarray,
    tmpl: np.ndarray,
    method: str,
    threads: int,
    algorithm: str = "auto",
    stats: tuple | None = None,
    core: Any = None,
) -> np.ndarray:
    """Scores of a (C, h, w) template on (C, H, W) planes; ``stats`` from value_stats.

    ``core``: the kernel module (:func:`_kernels` decides when None)."""
    if core is None:
        core = _kernels(planes, [tmpl.shape[1:]])
    n_ch, height, width = planes.shape
    _, h, w = tmpl.shape
    out = np.empty((height - h + 1, width - w + 1), dtype=np.float32)
    t0, t_mean, t_var, t_sq, flat = _prepared_template(tmpl, method)
    if stats is None:
        stats = core.value_stats(planes)
    mean = stats[3]
    if method == "zncc":
        # integer-valued data stays exact in the window sums when centred on an integer
        sums_mean = np.round(mean)
    else:
        sums_mean = np.zeros(n_ch)
    noise = _sums_noise(stats, sums_mean, h * w, height, width)
    code = {"zncc": core.ZNCC, "cosine": core.COSINE, "sqdiff": core.SQDIFF}[method]
    args = (planes, sums_mean, h, w, code, t_mean, t_var, t_sq, flat, noise)
    if algorithm == "auto":
        algorithm = "direct" if h * w <= DIRECT_MAX_AREA else "fft"
    if algorithm not in ("direct", "fft", "fft32"):
        raise UsageError(f"unknown algorithm {algorithm!r}: use auto, fft, fft32 or direct")
    ho, wo = out.shape
    # a flat template needs no correlation: normalize_block writes its score
    # (0; sqdiff 1) without reading ``out``
    if flat:
        pass
    elif algorithm in ("fft", "fft32"):

        def finish(y0: int, y1: int, x0: int, x1: int) -> None:
            core.normalize_block(out, *args, y0, y1, x0, x1)

        _correlate_fft(planes, t0, out, threads, finish, algorithm == "fft")
        return out
    else:
        parallel.run_blocks(
            lambda y0, y1: core.correlate_direct(planes, mean, t0, out, y0, y1),
            ho,
            work=out.size * h * w * n_ch,
            nthreads=threads,
        )
    parallel.run_blocks(
        lambda y0, y1: core.normalize_block(out, *args, y0, y1, 0, wo),
        ho,
        work=out.size * n_ch * 8,
        nthreads=threads,
    )
    return out


def match(
    image: np.ndarray,
    template: np.ndarray,
    method: str = "zncc",
    *,
    threads: int | None = None,
    algorithm: str = "auto",
) -> np.ndarray:
    """Similarity of ``template`` to every window of ``image``.

    Parameters
    ----------
    image : array_like, (H, W) or (H, W, C)
        Any real dtype; values are used as they are (no rescaling).
    template : array_like, (h, w) or (h, w, C)
        ``h <= H`` and ``w <= W``. A 2-D template on a colour image is used
        for every channel; otherwise the channel counts must agree.
    method : {"zncc", "cosine", "sqdiff"}
        zncc = ``TM_CCOEFF_NORMED``, cosine = ``TM_CCORR_NORMED``, sqdiff =
        ``TM_SQDIFF_NORMED`` (lower is better).
    threads : int, optional
        Worker threads (default: Numba's thread count).
    algorithm : {"auto", "fft", "fft32", "direct"}
        ``auto`` uses the direct loop for templates of at most 25 pixels and
        ``fft`` (float64 FFT: rounding near 1e-7 even in nearly flat windows)
        otherwise. ``fft32`` uses a float32 FFT: 20-40% faster, with rounding
        errors like OpenCV's (up to ~1e-4 in nearly flat or very dark windows).

    Returns
    -------
    numpy.ndarray
        float32 ``(H - h + 1, W - w + 1)``; element ``[y, x]`` scores the window
        whose top-left corner is ``(x, y)``, as in ``cv2.matchTemplate``.
        Always finite: zncc and cosine in [-1, 1], sqdiff in [0, 1].

    Raises
    ------
    UsageError
        Template larger than the image, mismatched channels, NaN/inf values,
        unknown method.

    Notes
    -----
    zncc at ``(x, y)`` is ``sum((P - mean P) * (T - mean T)) /
    sqrt(sum((P - mean P)^2) * sum((T - mean T)^2))`` over the window ``P``;
    cosine drops the means; sqdiff is ``sum((P - T)^2) / sqrt(sum(P^2) *
    sum(T^2))`` capped at 1 as OpenCV caps it. Flat windows and templates: see
    the module documentation.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.random((40, 50)).astype(np.float32)
    >>> scores = match(img, img[10:18, 20:26])
    >>> y, x = np.unravel_index(scores.argmax(), scores.shape)
    >>> scores.shape, (int(y), int(x))
    ((33, 45), (10, 20))
    >>> round(float(scores.max()), 4)
    1.0
    """
    if type(image).__module__.startswith("dask"):  # lazy, chunk by chunk: convtool.chunked
        from . import chunked

        return chunked.match(image, template, method, threads=threads, algorithm=algorithm)
    method = normalize_method(method)
    planes = _as_planes(image, "image")
    tmpl = _check_pair(planes.shape, _as_planes(template, "template"))
    return _match_planes(planes, tmpl, method, _threads(threads), algorithm)


# ---------------------------------------------------------------------------
# template resizing (numpy only: separable resampling matrices)


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: area averaging when shrinking, bilinear when growing.

    Pixel centres are at ``i + 0.5`` (OpenCV's INTER_AREA / INTER_LINEAR
    conventions).
    """
    m = np.zeros((n_out, n_in))
    if n_out <= n_in:
        r = n_in / n_out
        for i in range(n_out):
            a, b = i * r, (i + 1) * r
            for j in range(int(math.floor(a)), min(n_in, int(math.ceil(b)))):
                m[i, j] = (min(b, j + 1) - max(a, j)) / r
    else:
        for i in range(n_out):
            src = (i + 0.5) * n_in / n_out - 0.5
            src = min(max(src, 0.0), n_in - 1.0)
            j = int(math.floor(src))
            f = src - j
            m[i, j] += 1.0 - f
            if f > 0:
                m[i, j + 1] += f
    return m


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (h, w) or (h, w, C) to ``(height, width)``: area down, bilinear up.

    Examples
    --------
    >>> import numpy as np
    >>> resize(np.arange(16.0).reshape(4, 4), 2, 2).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    a = np.asarray(array, dtype=np.float64)
    ry = _resample_matrix(a.shape[0], int(height))
    rx = _resample_matrix(a.shape[1], int(width))
    if a.ndim == 2:
        return (ry @ a @ rx.T).astype(np.float32)
    return np.einsum("ij,jkc,lk->ilc", ry, a, rx).astype(np.float32)


def parse_scales(spec: str | float | Sequence[float] | None) -> tuple[float, ...]:
    """Template scales from ``a:b:n`` (n geometric steps from a to b), ``s1,s2,...`` or one number.

    Examples
    --------
    >>> parse_scales("0.5:2:3")
    (0.5, 1.0, 2.0)
    >>> parse_scales("1")
    (1.0,)
    """
    if spec is None:
        return (1.0,)
    if isinstance(spec, (int, float)):
        values: list[float] = [float(spec)]
    elif isinstance(spec, str):
        text = spec.strip()
        try:
            if ":" in text:
                parts = text.split(":")
                if len(parts) != 3:
                    raise ValueError
                a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
                if n < 1 or a <= 0 or b <= 0:
                    raise ValueError
                if n == 1:
                    values = [a]
                else:
                    values = [a * (b / a) ** (i / (n - 1)) for i in range(n)]
            else:
                values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise UsageError(
                f"bad --scales {spec!r}: use a:b:n (n geometric steps from a to b, "
                "e.g. 0.5:2:7), a list like 0.8,1,1.25, or one number"
            ) from None
    else:
        values = [float(v) for v in spec]
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise UsageError(f"scales must be positive numbers, got {spec!r}")
    return tuple(values)


# ---------------------------------------------------------------------------
# detection


@dataclass(frozen=True)
class Detection:
    """One found instance of the template.

    ``x, y`` is the top-left corner of the box in pixels (column, row),
    ``width x height`` its size (the template's size at ``scale``), ``score``
    the match score (for sqdiff lower is better) and ``scale`` the template
    scale that matched best. ``cx, cy`` is the box centre in continuous pixel
    coordinates (``x + width / 2``; the centre of pixel ``(0, 0)`` is ``0.5``).
    """

    x: int
    y: int
    width: int
    height: int
    score: float
    scale: float = 1.0

    @property
    def cx(self) -> float:
        return self.x + self.width / 2

    @property
    def cy(self) -> float:
        return self.y + self.height / 2

    def as_dict(self) -> dict:
        """A flat record: x, y, width, height, cx, cy, score, scale."""
        d = asdict(self)
        d["cx"], d["cy"] = self.cx, self.cy
        return {k: d[k] for k in ("x", "y", "width", "height", "cx", "cy", "score", "scale")}


@dataclass
class MatchResult:
    """What :func:`search` found: the detections and the score map of every scale."""

    detections: list[Detection]
    method: str
    image_shape: tuple[int, int]
    #: (scale, template height, template width, score map in OpenCV placement)
    maps: list[tuple[float, int, int, np.ndarray]] = field(default_factory=list)

    def heatmap(self) -> np.ndarray:
        """The score map the size of the image (see :func:`place_scores`); best over scales."""
        better = np.maximum if higher_is_better(self.method) else np.minimum
        full = None
        for _scale, h, w, scores in self.maps:
            placed = place_scores(scores, self.image_shape, (h, w), self.method)
            full = placed if full is None else better(full, placed)
        assert full is not None
        return full


def place_scores(
    scores: np.ndarray, image_shape: tuple[int, ...], template_shape: tuple[int, ...], method: str
) -> np.ndarray:
    """Put a score map on the image grid: each score at its window's centre.

    The score of the window with top-left ``(x, y)`` goes to pixel
    ``(x + w // 2, y + h // 2)`` (the template's anchor, as for a correlation
    kernel). The border where no whole window fits (``h // 2`` rows at the
    top, ``(h - 1) // 2`` at the bottom, likewise for columns) gets the worst
    score present: the minimum for zncc and cosine, the maximum for sqdiff.

    Examples
    --------
    >>> import numpy as np
    >>> place_scores(np.ones((2, 2), np.float32), (4, 4), (3, 3), "zncc").shape
    (4, 4)
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    h, w = int(template_shape[0]), int(template_shape[1])
    worst = scores.min() if higher_is_better(method) else scores.max()
    full = np.full((height, width), worst, dtype=np.float32)
    full[h // 2 : h // 2 + scores.shape[0], w // 2 : w // 2 + scores.shape[1]] = scores
    return full


def check_search_options(
    method: str,
    threshold: float | None = None,
    max_detections: int | None = None,
    nms_iou: float = DEFAULT_NMS_IOU,
    min_distance: float | None = None,
    scales: str | float | Sequence[float] | None = None,
) -> tuple[str, float, tuple[float, ...]]:
    """Check :func:`search`'s options without an image; return (method, threshold, scales).

    :func:`search` calls it, and so does ``convtool detect`` before it reads
    any file, so a bad option is one error, not one per image.

    Examples
    --------
    >>> check_search_options("sqdiff", scales="0.5:2:3")
    ('sqdiff', 0.04, (0.5, 1.0, 2.0))
    """
    method = normalize_method(method)
    if threshold is None:
        threshold = DEFAULT_THRESHOLD[method]
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise UsageError(f"threshold must be a finite number, got {threshold}")
    if max_detections is not None and (int(max_detections) != max_detections or max_detections < 1):
        raise UsageError(f"max must be a whole number >= 1, got {max_detections!r}")
    if not 0.0 <= float(nms_iou) <= 1.0:
        raise UsageError(f"nms-iou must be between 0 and 1, got {nms_iou}")
    if min_distance is not None and not float(min_distance) > 0:
        raise UsageError(f"min-distance must be > 0 pixels, got {min_distance}")
    return method, threshold, parse_scales(scales)


def search(
    image: np.ndarray,
    template: np.ndarray,
    method: str = "zncc",
    *,
    threshold: float | None = None,
    max_detections: int | None = None,
    nms_iou: float = DEFAULT_NMS_IOU,
    min_distance: float | None = None,
    scales: str | float | Sequence[float] | None = None,
    threads: int | None = None,
    keep_maps: bool = False,
) -> MatchResult:
    """Like :func:`detect`, returning a :class:`MatchResult` (with score maps if ``keep_maps``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> img = rng.random((60, 60)).astype(np.float32)
    >>> res = search(img, img[5:15, 30:40], keep_maps=True)
    >>> res.detections[0].x, res.detections[0].y, res.heatmap().shape
    (30, 5, (60, 60))
    """
    method, threshold, scale_values = check_search_options(
        method, threshold, max_detections, nms_iou, min_distance, scales
    )
    nthreads = _threads(threads)
    planes = _as_planes(image, "image")
    tmpl = _as_planes(template, "template")
    _, height, width = planes.shape
    sign = 1.0 if higher_is_better(method) else -1.0

    sizes: list[tuple[float, int, int]] = []
    seen = set()
    for s in scale_values:
        h = max(1, int(round(tmpl.shape[1] * s)))
        w = max(1, int(round(tmpl.shape[2] * s)))
        if h > height or w > width or (h, w) in seen:
            continue
        seen.add((h, w))
        sizes.append((s, h, w))
    if not sizes:
        _check_pair(planes.shape, tmpl)  # raises the clear "larger than the image" error
        raise UsageError(
            f"every scale makes the template ({tmpl.shape[2]}x{tmpl.shape[1]}) larger than "
            f"the image ({width}x{height}); use smaller --scales"
        )

    core = _kernels(planes, [(h, w) for _s, h, w in sizes])
    cand_x, cand_y, cand_w, cand_h, cand_s, cand_scale = [], [], [], [], [], []
    maps = []
    for s, h, w in sizes:
        if (h, w) == tmpl.shape[1:]:
            t = tmpl
        else:
            t = np.ascontiguousarray(np.moveaxis(resize(np.moveaxis(tmpl, 0, -1), h, w), -1, 0))
        t = _check_pair(planes.shape, t)
        scores = _match_planes(planes, t, method, nthreads, core=core)
        if keep_maps:
            maps.append((s, h, w, scores))
        ys, xs = core.find_peaks(scores, threshold, sign)
        cand_x.append(xs)
        cand_y.append(ys)
        cand_w.append(np.full(len(xs), w))
        cand_h.append(np.full(len(xs), h))
        cand_s.append(scores[ys, xs].astype(np.float64))
        cand_scale.append(np.full(len(xs), s))

    xs = np.concatenate(cand_x)
    ys = np.concatenate(cand_y)
    ws = np.concatenate(cand_w)
    hs = np.concatenate(cand_h)
    sc = np.concatenate(cand_s)
    scl = np.concatenate(cand_scale)
    order = np.lexsort((xs, ys, -sign * sc))  # best first; ties in raster order
    x0 = xs[order].astype(np.float64)
    y0 = ys[order].astype(np.float64)
    x1 = x0 + ws[order]
    y1 = y0 + hs[order]
    if min_distance is not None:
        mode, param, cell = 1, float(min_distance), float(min_distance)
    else:
        mode, param = 0, float(nms_iou)
        cell = float(max(ws.max(initial=1), hs.max(initial=1)))
    if core.__name__.endswith("match_numpy") and not rentbuy.prefer_numpy(
        NUMPY_SUPPRESS_NS * len(x0), ["match.greedy_suppress"]
    ):
        from .core import match as core  # too many candidates for the Python loop
    keep = core.greedy_suppress(x0, y0, x1, y1, mode, param, int(max_detections or 0), cell)
    dets = [
        Detection(
            x=int(xs[order[i]]),
            y=int(ys[order[i]]),
            width=int(ws[order[i]]),
            height=int(hs[order[i]]),
            score=float(sc[order[i]]),
            scale=float(scl[order[i]]),
        )
        for i in keep
    ]
    return MatchResult(dets, method, (height, width), maps)


def detect(
    image: np.ndarray,
    template: np.ndarray,
    method: str = "zncc",
    *,
    threshold: float | None = None,
    max_detections: int | None = None,
    nms_iou: float = DEFAULT_NMS_IOU,
    min_distance: float | None = None,
    scales: str | float | Sequence[float] | None = None,
    threads: int | None = None,
) -> list[Detection]:
    """Find where ``image`` looks like ``template``: peaks of :func:`match`.

    Parameters
    ----------
    image, template, method, threads
        As for :func:`match`.
    threshold : float, optional
        Keep peaks scoring ``>= threshold`` (``<=`` for sqdiff). Default per
        method: zncc 0.8, cosine 0.98, sqdiff 0.04.
    max_detections : int, optional
        Keep at most this many, best first.
    nms_iou : float
        Non-maximum suppression: a peak whose box overlaps a better kept box
        with intersection-over-union above this is dropped (default 0.3), so
        one object gives one detection.
    min_distance : float, optional
        Instead of box overlap, drop a peak whose centre is within this many
        pixels (in x and in y) of a better kept one.
    scales : str or sequence of float, optional
        Template scales: ``"a:b:n"`` (n geometric steps), ``"0.8,1,1.25"``, or
        numbers. The template is resized (area averaging down, bilinear up);
        scales that make it larger than the image are skipped. Peaks of all
        scales compete in the suppression, so each detection reports the scale
        that matched best.

    Returns
    -------
    list of Detection
        Best first (highest score; lowest for sqdiff).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.random((64, 64)).astype(np.float32)
    >>> [(d.x, d.y, d.width, round(d.score, 3)) for d in detect(img, img[20:30, 8:20])]
    [(8, 20, 12, 1.0)]
    """
    return search(
        image,
        template,
        method,
        threshold=threshold,
        max_detections=max_detections,
        nms_iou=nms_iou,
        min_distance=min_distance,
        scales=scales,
        threads=threads,
    ).detections


# ---------------------------------------------------------------------------
# pictures


def heatmap_rgb(values: np.ndarray, method: str, cmap: str = "viridis") -> np.ndarray:
    """Colour a placed score map: bright = similar for every method (sqdiff inverted).

    The colour range spans the map's own minimum..maximum.
    """
    v = np.asarray(values, dtype=np.float32)
    if not higher_is_better(method):
        v = -v
    from .colormaps import apply

    return apply(v, cmap, float(v.min()), float(v.max()))


def annotate(
    image: np.ndarray,
    detections: Sequence[Detection],
    *,
    value_max: float = 255.0,
    color: tuple = (255, 40, 40),
) -> np.ndarray:
    """Draw the boxes and scores on a copy of ``image``; returns uint8 RGB (H, W, 3).

    ``image`` is on a ``0..value_max`` scale (255 for 8-bit, 65535 for
    16-bit); gray images become RGB. Each box is labelled with its score (and
    its scale when it is not 1).

    Examples
    --------
    >>> import numpy as np
    >>> annotate(np.zeros((20, 30), np.float32), [Detection(2, 3, 8, 8, 0.9)]).shape
    (20, 30, 3)
    """
    from PIL import Image, ImageDraw, ImageFont

    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if value_max != 255.0:
        a = a * np.float32(255.0 / value_max)
    a = np.clip(a + 0.5, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    else:
        a = np.ascontiguousarray(a[..., :3]) if a.shape[2] >= 3 else np.repeat(a[..., :1], 3, -1)
    im = Image.fromarray(a, "RGB")
    draw = ImageDraw.Draw(im)
    line = max(1, round(min(im.size) / 250))
    try:  # a scalable font (Pillow >= 10.1 with FreeType), sized to the image
        font = ImageFont.load_default(size=max(11, round(min(im.size) / 30)))
    except (TypeError, OSError, ImportError):  # pragma: no cover - older Pillow
        font = ImageFont.load_default()
    for d in detections:
        draw.rectangle([d.x, d.y, d.x + d.width - 1, d.y + d.height - 1], outline=color, width=line)
        label = f"{d.score:.2f}" + (f" x{d.scale:.2g}" if d.scale != 1.0 else "")
        box = draw.textbbox((0, 0), label, font=font)
        tw, th = box[2] - box[0], box[3] - box[1]
        ty = d.y - th - 4 if d.y - th - 4 >= 0 else d.y + 1
        draw.rectangle([d.x, ty, d.x + tw + 3, ty + th + 3], fill=color)
        draw.text((d.x + 2 - box[0], ty + 1 - box[1]), label, fill=(255, 255, 255), font=font)
    return np.asarray(im)


def warmup() -> None:
    """Compile (or load from the cache) every Numba kernel this module uses.

    Examples
    --------
    >>> warmup()
    """
    import convtool.core.match  # noqa: F401  (loads Numba: the jobs below take the compiled paths)

    rng = np.random.default_rng(0)
    img = rng.random((24, 24)).astype(np.float32)
    for method in METHODS:
        match(img, img[2:5, 3:6], method, algorithm="direct")
        match(np.stack([img] * 3, -1), np.stack([img[4:14, 4:14]] * 3, -1), method)
    detect(img, img[4:14, 4:14])
    detect(img, img[4:14, 4:14], min_distance=3)
