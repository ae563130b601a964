"""Pooling (subsampling) of images and feature maps: ``convtool.pool``.

This is the API layer: it validates the arguments, decides the padding, the
output size and the kernel once, and calls the Numba kernels in
:mod:`convtool.core.pool` (imported only when a computation runs, so importing
this module stays cheap).

Max, min, average and Lp pooling also have a plain numpy path (the padded
image gathered through the same index maps, then one strided view per window
position): while Numba is not loaded, a job cheaper than loading it runs
there (:mod:`convtool.rentbuy`), so a single ``convtool pool`` of a photo
never pays Numba's start-up or a first compile.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, NamedTuple

import numpy as np

from . import parallel, rentbuy
from .core import pool_codes as codes
from .core.indexing import index_map
from .errors import UsageError
from .modes import PAD_CODE, check_positive_int, normalize_pad, pool_output_size

__all__ = ["MODES", "fractional_boundaries", "pool", "warmup"]

#: Canonical pooling modes, in the order the docs list them.
MODES: tuple[str, ...] = ("max", "avg", "min", "lp", "topleft", "stochastic", "fractional")

_MODE_ALIASES: dict[str, str] = {
    "max": "max",
    "avg": "avg",
    "average": "avg",
    "mean": "avg",
    "min": "min",
    "lp": "lp",
    "topleft": "topleft",
    "stochastic": "stochastic",
    "fractional": "fractional",
}

#: Options each mode takes through ``**mode_options`` (besides the padding ones).
_MODE_OPTIONS: dict[str, tuple[str, ...]] = {
    "max": (),
    "avg": (),
    "min": (),
    "lp": ("p",),
    "topleft": (),
    "stochastic": ("eval",),
    "fractional": ("ratio", "output_size", "sequence", "overlapping"),
}
_PAD_OPTIONS = ("padding", "pad_value")

#: Fractional pooling sequences (Graham 2014, section 3).
SEQUENCES = ("pseudorandom", "random")


#: Below this many input samples a kernel runs on the calling thread: waking
#: the thread pool costs more than the work (and much more on a busy machine).
SERIAL_BELOW = 1 << 19

#: numpy path, estimated ns per output value per window sample, and per
#: gathered (padded) input sample.
NUMPY_TAP_NS = 1.0
NUMPY_GATHER_NS = 2.0


def _threads(x: np.ndarray) -> int:
    """Compute threads for one plane of ``x``: one below SERIAL_BELOW samples."""
    return 1 if x.size < SERIAL_BELOW else parallel.get_threads()


def _rows(kernel: Any, n: int, nthreads: int, *args: Any) -> None:
    """``kernel(*args, i0, i1)`` over output rows ``[0, n)`` on ``nthreads`` threads."""
    parallel.run_blocks(lambda i0, i1: kernel(*args, i0, i1), n, work=n, nthreads=nthreads)


def normalize_mode(mode: str) -> str:
    key = str(mode).strip().lower().replace("-", "").replace("_", "")
    try:
        return _MODE_ALIASES[key]
    except KeyError:
        pass
    names = list(_MODE_ALIASES)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UsageError(
        f"unknown pooling mode {mode!r}: use one of {', '.join(MODES)} (avg alias: average, mean)"
        + hint
    )


def _check_options(mode: str, options: dict[str, Any]) -> None:
    allowed = _MODE_OPTIONS[mode] + (() if mode == "fractional" else _PAD_OPTIONS)
    for name in options:
        if name in allowed:
            continue
        users = [m for m, opts in _MODE_OPTIONS.items() if name in opts]
        if name in _PAD_OPTIONS:
            raise UsageError(
                f"option {name!r} does not apply to fractional pooling, which never pads"
            )
        if users:
            raise UsageError(
                f"option {name!r} is used only by {' and '.join(users)} pooling, not {mode}"
            )
        takes = ", ".join(allowed) if allowed else "no options"
        raise UsageError(f"unknown option {name!r} for {mode} pooling (it takes {takes})")


def _as_float_image(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise UsageError(f"pool needs a real-valued image array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise UsageError(
            f"pool needs an (H, W) or (H, W, C) image, got an array of shape {arr.shape}"
        )
    if arr.size == 0:
        raise UsageError(f"pool needs a non-empty image, got shape {arr.shape}")
    return np.asarray(arr, dtype=np.float32)


def _planes(x: np.ndarray) -> list[np.ndarray]:
    """C-contiguous 2-D planes: the image itself for gray, one copy per channel for colour."""
    if x.ndim == 2:
        return [np.ascontiguousarray(x)]
    return [np.ascontiguousarray(x[:, :, c]) for c in range(x.shape[2])]


def _stack(outs: list[np.ndarray], ndim: int) -> np.ndarray:
    if ndim == 2:
        return outs[0]
    return np.stack(outs, axis=-1)


def _check_padding(padding: Any, size: int, pad: str) -> int:
    if padding is None:
        return 0 if pad == "valid" else size // 2
    try:
        value = int(padding)
    except (TypeError, ValueError):
        raise UsageError(f"padding must be a whole number >= 0, got {padding!r}") from None
    if value != padding or value < 0:
        raise UsageError(f"padding must be a whole number >= 0, got {padding!r}")
    if pad == "valid" and value > 0:
        raise UsageError(
            f"padding={value} needs a pad mode: pad='valid' means no padding "
            "(use pad='constant', 'replicate', 'reflect', 'symmetric' or 'wrap')"
        )
    if value > size // 2:
        raise UsageError(
            f"padding {value} is more than half the window (size {size} allows at most "
            f"{size // 2}, as in PyTorch); use a smaller padding or a larger size"
        )
    return value


def _geometry(
    h: int, w: int, size: Any, stride: Any, pad: str, ceil: bool, mode_options: dict[str, Any]
) -> tuple[int, int, int, Any, int, int]:
    """Window, stride, padding, the given pad_value and the output size, checked once.

    Shared by the in-memory and the dask (:mod:`convtool.chunked`) pooling.
    """
    f = check_positive_int("size", size)
    s = f if stride is None else check_positive_int("stride", stride)
    padding = _check_padding(mode_options.get("padding"), f, pad)
    pad_value = mode_options.get("pad_value")
    if pad_value is not None and pad != "constant":
        raise UsageError(f"pad_value applies only to pad='constant', not {pad!r}")
    oh = pool_output_size(h, f, s, padding=padding, ceil=bool(ceil), axis="height")
    ow = pool_output_size(w, f, s, padding=padding, ceil=bool(ceil), axis="width")
    return f, s, padding, pad_value, oh, ow


def _fill(mode: str, pad_value: Any) -> float:
    """The value outside the image: ``pad_value`` checked, else the mode's neutral one."""
    if pad_value is None:
        return {"max": -np.inf, "min": np.inf}.get(mode, 0.0)
    try:
        fill = float(pad_value)
    except (TypeError, ValueError):
        raise UsageError(f"pad_value must be a number, got {pad_value!r}") from None
    if mode == "stochastic" and fill < 0:
        raise UsageError("stochastic pooling needs a pad_value >= 0")
    return fill


def _check_p(p: Any) -> float:
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise UsageError(f"p must be a number > 0, got {p!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"p must be a finite number > 0 for lp pooling, got {p!r}")
    return value


def fractional_boundaries(
    n_in: int, n_out: int, rng: np.random.Generator, sequence: str = "pseudorandom"
) -> np.ndarray:
    """Region boundaries ``a_0 = 0 < a_1 < ... < a_{n_out} = n_in`` (Graham 2014).

    Parameters
    ----------
    n_in, n_out : int
        Input and output lengths, ``1 <= n_out < n_in``.
    rng : numpy.random.Generator
        Source of randomness (one draw per call).
    sequence : {"pseudorandom", "random"}
        ``pseudorandom``: ``a_i = ceil(alpha (i + u)) - ceil(alpha u)`` with
        ``alpha = n_in / n_out`` and one ``u ~ U(0, 1)``.
        ``random``: the increments ``floor(alpha)`` and ``ceil(alpha)`` (1s and
        2s when ``1 < alpha < 2``), in the counts that sum to ``n_in``,
        randomly shuffled.

    Returns
    -------
    numpy.ndarray
        int64 array of ``n_out + 1`` increasing boundaries; every increment is
        ``floor(alpha)`` or ``ceil(alpha)``.

    Examples
    --------
    >>> b = fractional_boundaries(10, 7, np.random.default_rng(0))
    >>> int(b[0]), int(b[-1]), sorted(set(np.diff(b).tolist()))
    (0, 10, [1, 2])
    """
    q, r = divmod(n_in, n_out)
    if sequence == "random":
        steps = np.full(n_out, q, dtype=np.int64)
        steps[:r] += 1
        rng.shuffle(steps)
        return np.concatenate(([0], np.cumsum(steps))).astype(np.int64)
    # a_i = ceil((n_in*i + v) / n_out) with v = n_in*u = m + frac, in exact integers
    v = n_in * rng.random()
    m = math.floor(v)
    frac = v - m
    t = n_in * np.arange(n_out + 1, dtype=np.int64) + m
    q, rem = np.divmod(t, n_out)
    a = q + ((rem > 0) | (frac > 0))
    return (a - a[0]).astype(np.int64)


def _rng(seed: Any) -> np.random.Generator:
    """numpy's Generator for ``seed``; a bad seed is a UsageError."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise UsageError(f"seed must be a whole number >= 0, got {seed!r}") from None


def _fractional_size(n: int, ratio: Any, out: Any, axis: str) -> int:
    if out is not None:
        value = check_positive_int(f"output_size ({axis})", out)
        if value >= n:
            raise UsageError(
                f"fractional output {axis} {value} must be smaller than the input {axis} {n}"
            )
        return value
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise UsageError(f"ratio must be a number > 1, got {ratio!r}") from None
    if not math.isfinite(r) or r <= 1:
        raise UsageError(f"ratio must be a number > 1 (input size / output size), got {ratio!r}")
    value = int(math.floor(n / r))
    if value < 1:
        raise UsageError(
            f"ratio {r:g} leaves no output for the image {axis} {n}; use a smaller one"
        )
    return value


def _pair(value: Any, name: str) -> tuple[Any, Any]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise UsageError(f"{name} must be one value or a (height, width) pair, got {value!r}")
        return value[0], value[1]
    return value, value


def _check_fractional_window(size: int, stride: Any, pad: str, ceil: bool) -> None:
    """Fractional pooling draws its own regions: no size, stride, padding or ceil mode."""
    if size != 2:
        raise UsageError(
            "fractional pooling draws its own regions: size does not apply "
            "(use ratio= or output_size=)"
        )
    if stride is not None:
        raise UsageError("fractional pooling draws its own regions: stride does not apply")
    if pad != "valid":
        raise UsageError("fractional pooling never pads: use pad='valid'")
    if ceil:
        raise UsageError("fractional pooling has no ceil mode")


def _fractional_regions(
    shape: tuple[int, ...],
    seed: Any,
    options: dict[str, Any],
    size: int,
    stride: Any,
    pad: str,
    ceil: bool,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Check fractional pooling's options and draw its regions for an image of ``shape``.

    Returns the row boundaries, the column boundaries and ``overlapping``;
    shared by the in-memory and the dask (:mod:`convtool.chunked`) pooling.
    """
    _check_fractional_window(size, stride, pad, ceil)
    ratio = options.get("ratio")
    out_size = options.get("output_size")
    if ratio is not None and out_size is not None:
        raise UsageError("give fractional pooling ratio or output_size, not both")
    if ratio is None and out_size is None:
        ratio = math.sqrt(2.0)
    sequence = str(options.get("sequence", "pseudorandom")).lower()
    if sequence not in SEQUENCES:
        raise UsageError(f"unknown fractional sequence {sequence!r}: use pseudorandom or random")
    overlapping = bool(options.get("overlapping", False))
    h, w = shape[:2]
    if out_size is not None:
        oh_req, ow_req = _pair(out_size, "output_size")
        oh = _fractional_size(h, None, oh_req, "height")
        ow = _fractional_size(w, None, ow_req, "width")
    else:
        rh, rw = _pair(ratio, "ratio")
        oh = _fractional_size(h, rh, None, "height")
        ow = _fractional_size(w, rw, None, "width")
    rng = _rng(seed)
    rows = fractional_boundaries(h, oh, rng, sequence)
    cols = fractional_boundaries(w, ow, rng, sequence)
    return rows, cols, overlapping


def _fractional(
    x: np.ndarray, seed: Any, options: dict[str, Any], size: int, stride: Any, pad: str, ceil: bool
) -> np.ndarray:
    from .core import pool as core

    rows, cols, overlapping = _fractional_regions(x.shape, seed, options, size, stride, pad, ceil)
    oh, ow = len(rows) - 1, len(cols) - 1
    outs = []
    nthreads = _threads(x)
    for plane in _planes(x):
        out = np.empty((oh, ow), dtype=np.float32)
        _rows(core.fractional_max, oh, nthreads, plane, out, rows, cols, overlapping)
        outs.append(out)
    return _stack(outs, x.ndim)


def pool(
    image: Any,
    mode: str = "max",
    size: int = 2,
    stride: int | None = None,
    pad: str = "valid",
    ceil: bool = False,
    seed: int | np.random.Generator | None = None,
    **mode_options: Any,
) -> np.ndarray:
    """Pool an image with an F x F window and stride S, channel by channel.

    Parameters
    ----------
    image : array_like
        ``(H, W)`` or ``(H, W, C)``, any real dtype; computed in float32 on the
        image's own scale. Colour channels are pooled independently.
    mode : str
        ``max``, ``avg`` (aliases ``average``, ``mean``), ``min``, ``lp``,
        ``topleft``, ``stochastic`` or ``fractional``.
    size : int
        Window side F (default 2). Not used by ``fractional``.
    stride : int, optional
        Step S between windows; default ``size`` (non-overlapping windows).
    pad : str
        Pad mode (see :mod:`convtool.modes`): ``valid`` (default, no padding),
        ``constant``/``zero``, ``replicate``, ``reflect``, ``symmetric``, ``wrap``.
    ceil : bool
        PyTorch's ``ceil_mode``: round the output size up, so the last window
        may hang over the bottom/right edge; a window that would start inside
        the right/bottom padding is dropped.
    seed : int or numpy.random.Generator, optional
        Makes ``stochastic`` and ``fractional`` reproducible (same seed, same
        output). An error for the other modes.
    **mode_options
        ``padding`` (int P): padding on every side, PyTorch's ``padding``;
        default 0 for ``pad='valid'`` (where only 0 is allowed) and ``F // 2``
        for the other pad modes; at most ``F // 2`` as PyTorch requires.
        ``pad_value`` (float): the fill for ``pad='constant'``; default
        ``-inf`` for max, ``+inf`` for min and 0 otherwise.
        ``p`` (lp, default 2); ``eval`` (stochastic, default False);
        ``ratio`` (default sqrt 2), ``output_size``, ``sequence``
        (``"pseudorandom"`` or ``"random"``) and ``overlapping`` (default
        False) for fractional. Each a number or a (height, width) pair where
        it is a size or ratio.

    Returns
    -------
    numpy.ndarray
        float32, ``(H', W')`` or ``(H', W', C)`` with
        ``H' = floor((H + 2P - F) / S) + 1`` (ceil mode: rounded up, minus a
        window that would start in the padding).

    Raises
    ------
    UsageError
        size or stride < 1, a window larger than the (padded) image, an unknown
        mode or option, an option the mode does not use, ``padding > F // 2``,
        ``p <= 0``, ``ratio <= 1``, ``output_size >= input``, negative input to
        stochastic pooling.

    Notes
    -----
    Windows and padding follow PyTorch's ``max_pool2d``/``avg_pool2d``: the
    image is padded by P on every side, window ``(i, j)`` covers padded rows
    ``i*S .. i*S+F-1`` and columns ``j*S .. j*S+F-1``, clipped to the padded
    extent ``[-P, H+P)`` (this clipping only happens in ceil mode).

    - ``max``/``min``: the extreme over the window. With ``pad='constant'``
      the padding is ``-inf`` (max) / ``+inf`` (min), so it never wins, as in
      PyTorch.
    - ``avg``: the window's sum divided by the number of samples in the
      clipped window, padding included: PyTorch's ``count_include_pad=True``,
      with zeros as the constant padding. Without ceil mode that is always
      F*F; in ceil mode an overhanging window divides by its part inside
      ``[-P, H+P)``.
    - ``lp``: ``(sum |x|**p) ** (1/p)`` over the window, PyTorch's
      ``lp_pool2d`` (a *sum*, not a mean: for p=1 it is F*F times avg). Like
      PyTorch, a clipped window in ceil mode has its sum scaled by F*F over
      its clipped area. PyTorch uses ``x**p`` where we use ``|x|**p``; they
      agree on non-negative inputs (all images) and for even p. p other
      than 1 and 2 is computed on ``x / max|x|`` (float64 for p > 8), so a
      large p neither overflows nor underflows; it tends to max pooling.
    - ``topleft``: the window's top-left sample, plain subsampling
      ``x[::S, ::S]`` (of the padded image).
    - ``stochastic`` (Zeiler & Fergus 2013): in each window the sample
      ``a_k`` is chosen with probability ``a_k / sum(a)``; an all-zero window
      gives 0. Inputs must be non-negative (a ReLU output); negative values
      are an error, not silently clipped. The draw is reproducible: with
      ``u = numpy.random.default_rng(seed).random((C, H', W'))`` (C = 1 for a
      gray image), window (i, j) of channel c takes the first sample, in
      row-major order, whose running sum exceeds ``u[c, i, j] * sum(a)``.
      ``eval=True`` gives the test-time rule instead, the probability-weighted
      average ``sum(a**2) / sum(a)`` (deterministic; ``seed`` is refused).
    - ``fractional`` (Graham 2014, fractional max pooling): output size
      ``floor(H / ratio)`` (or ``output_size``); rows are cut at
      ``0 = a_0 < a_1 < ... < a_H' = H`` with increments
      ``floor(alpha)``/``ceil(alpha)``, ``alpha = H / H'``, drawn by
      :func:`fractional_boundaries` (rows first, then columns, from
      ``default_rng(seed)``), the same regions for every channel. Disjoint
      regions ``[a_i, a_{i+1})`` by default (the paper's disjoint version);
      ``overlapping=True`` takes ``[a_i, a_{i+1}]``, the last one clipped to
      the image. Never pads; size, stride, pad and ceil do not apply.

    Other pad modes extend the image (``replicate``, ``reflect``,
    ``symmetric``, ``wrap``, as in :mod:`convtool.modes`) and the window reads
    those values like image samples (an average divides by F*F, or in ceil
    mode by the clipped area, as above). A padded ``pad`` defaults to
    ``P = F // 2`` so that naming a pad mode is enough to use it; PyTorch's
    own default, no padding, is ``pad='valid'``.

    Speed: 2x2/s2 max and average and 3x3/s2 max have their own loops; when
    windows overlap a lot (``S + 1 < F``) max/min/avg/lp run as a row pass
    then a column pass; borders are handled by index, never by a padded copy
    of the image. Images below about a million samples run on one thread.

    References
    ----------
    M. D. Zeiler, R. Fergus, "Stochastic Pooling for Regularization of Deep
    Convolutional Neural Networks", ICLR 2013.
    B. Graham, "Fractional Max-Pooling", arXiv:1412.6071, 2014.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.float32).reshape(4, 4)
    >>> pool(x)
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> pool(x, "avg", size=3, stride=1).shape
    (2, 2)
    >>> pool(x, "max", size=3, stride=2, pad="constant").tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    >>> pool(x, "stochastic", seed=0).shape
    (2, 2)
    """
    if type(image).__module__.startswith("dask"):  # lazy, chunk by chunk: convtool.chunked
        from . import chunked

        return chunked.pool(image, mode, size, stride, pad, ceil, seed, **mode_options)
    mode = normalize_mode(mode)
    _check_options(mode, mode_options)
    x = _as_float_image(image)
    pad = normalize_pad(pad)
    if seed is not None and mode not in ("stochastic", "fractional"):
        raise UsageError(f"seed is used only by stochastic and fractional pooling, not {mode}")
    if mode == "fractional":
        return _fractional(x, seed, mode_options, size, stride, pad, bool(ceil))

    h, w = x.shape[:2]
    f, s, padding, pad_value, oh, ow = _geometry(h, w, size, stride, pad, ceil, mode_options)

    p = 2.0
    if mode == "lp":
        p = _check_p(mode_options.get("p", 2.0))
    evaluate = False
    if mode == "stochastic":
        evaluate = bool(mode_options.get("eval", False))
        if evaluate and seed is not None:
            raise UsageError(
                "seed has no effect with eval=True (the test-time rule is deterministic)"
            )
        lowest = float(x.min())
        if lowest < 0:
            raise UsageError(
                f"stochastic pooling needs non-negative activations, the image has {lowest:g}; "
                "apply a ReLU (clip at 0) first"
            )
    pad_value = _fill(mode, pad_value)

    rows = _axis(codes, h, oh, f, s, padding, pad)
    cols = _axis(codes, w, ow, f, s, padding, pad)
    nplanes = 1 if x.ndim == 2 else x.shape[2]
    if mode in ("max", "min", "avg", "lp") and _prefer_numpy(x, rows, cols, f, s, mode, nplanes):
        core = None
    else:
        from .core import pool as core

    u = np.zeros((1, 1, 1))  # placeholder for the deterministic eval rule
    if mode == "stochastic" and not evaluate:
        u = _rng(seed).random((nplanes, oh, ow))

    outs = []
    for c, plane in enumerate(_planes(x)):
        out = np.empty((oh, ow), dtype=np.float32)
        if mode == "topleft":
            r = rows.map[: (oh - 1) * s + 1 : s]
            k = cols.map[: (ow - 1) * s + 1 : s]
            out[...] = plane[np.ix_(np.maximum(r, 0), np.maximum(k, 0))]
            out[r == codes.FILL] = pad_value
            out[:, k == codes.FILL] = pad_value
        elif mode == "stochastic":
            uc = u[0] if evaluate else u[c]
            args = (plane, out, uc, rows.map, cols.map, pad_value, f, s, evaluate)
            _rows(core.stochastic, oh, _threads(plane), *args)
        elif mode == "lp":
            out[...] = _lp(core, plane, p, f, s, padding, rows, cols, pad_value)
        else:
            op = {"max": codes.OP_MAX, "min": codes.OP_MIN, "avg": codes.OP_SUM}[mode]
            _reduce(core, plane, out, op, f, s, padding, rows, cols, pad_value)
        outs.append(out)
    return _stack(outs, x.ndim)


def _prefer_numpy(x, rows, cols, f, s, mode, nplanes) -> bool:
    """Rent or buy (:mod:`convtool.rentbuy`): the numpy path for this job?"""
    oh, ow = len(rows.count), len(cols.count)
    cost = nplanes * (
        NUMPY_TAP_NS * oh * ow * f * f + NUMPY_GATHER_NS * len(rows.map) * len(cols.map)
    )
    return rentbuy.prefer_numpy(cost, _kernels(f, s, mode))


def _kernels(f: int, s: int, mode: str) -> list[str]:
    """The compiled kernels a max/min/avg/lp job would run (see :func:`_reduce`)."""
    special = {
        (2, 2, "max"): "max_2x2_s2",
        (2, 2, "avg"): "avg_2x2_s2",
        (3, 2, "max"): "max_3x3_s2",
    }
    name = special.get((f, s, mode))
    if name is not None:
        return ["pool." + name, "pool.reduce_table"]
    if s + 1 < f:
        return ["pool.reduce_table_separable"]
    return ["pool.reduce_table"]


class _Axis(NamedTuple):
    """One axis of the window geometry, shared by every channel."""

    map: np.ndarray  # int64 per padded coordinate: image index, FILL or SKIP
    lo: int  # first output index whose window lies inside the image
    hi: int  # one past the last such index (hi >= lo)
    count: np.ndarray  # float64 per output index: samples in the clipped window


def _axis(core: Any, n: int, o: int, f: int, s: int, padding: int, pad: str) -> _Axis:
    """Index map of one axis: the pad mode as indices, no padded copy of the image.

    ``core``: anything with the FILL and SKIP codes (the kernel module or
    :mod:`convtool.core.pool_codes`)."""
    q = np.arange((o - 1) * s + f, dtype=np.int64) - padding
    # the pad mode as indices, shared with convolution (constant padding -> -1 == FILL)
    m = index_map(n, -padding, 1, len(q), 1, 1, PAD_CODE[pad])[:, 0]
    m[q >= n + padding] = core.SKIP  # only a ceil-mode window reaches past the padding
    starts = np.arange(o, dtype=np.int64) * s
    count = (np.minimum(starts + f, n + 2 * padding) - starts).astype(np.float64)
    lo = min(-(-padding // s), o)
    hi = max(min((n + padding - f) // s + 1, o), lo)
    return _Axis(np.ascontiguousarray(m, dtype=np.int64), lo, hi, count)


def _lp(
    core: Any,
    x: np.ndarray,
    p: float,
    f: int,
    s: int,
    padding: int,
    rows: _Axis,
    cols: _Axis,
    pad_value: float,
) -> np.ndarray:
    """(sum |x|**p * F*F / clipped area) ** (1/p).

    p = 1, 2: float32 as is. Other p up to 8: float32 on ``x / max|x|`` (no
    overflow, and no underflow that matters). p > 8: float64 in numpy, so that
    a dark window's terms do not underflow next to a bright image maximum.
    """
    oh, ow = len(rows.count), len(cols.count)
    if p in (1.0, 2.0):
        xq = np.abs(x) if p == 1.0 else x * x
        out = np.empty((oh, ow), dtype=np.float32)
        _reduce(core, xq, out, codes.OP_SUM, f, s, padding, rows, cols, abs(pad_value) ** p)
        out *= np.float32(f * f)
        return out if p == 1.0 else np.sqrt(out, out=out)
    scale = max(float(np.abs(x).max()), abs(pad_value)) or 1.0
    fill = (abs(pad_value) / scale) ** p
    if p <= 8:
        xq = (np.abs(x) / np.float32(scale)) ** np.float32(p)
        out = np.empty((oh, ow), dtype=np.float32)
        _reduce(core, xq, out, codes.OP_SUM, f, s, padding, rows, cols, fill)
        return (out * np.float32(f * f)) ** np.float32(1.0 / p) * np.float32(scale)
    # the padded image through the index maps; SKIP (ceil overhang) contributes 0
    rmap, cmap = rows.map, cols.map
    q = (
        np.abs(x[np.ix_(np.maximum(rmap, 0), np.maximum(cmap, 0))]).astype(np.float64) / scale
    ) ** p
    q[rmap == codes.FILL, :] = fill
    q[:, cmap == codes.FILL] = fill
    q[rmap == codes.SKIP, :] = 0.0
    q[:, cmap == codes.SKIP] = 0.0
    sums = np.lib.stride_tricks.sliding_window_view(q, (f, f))[::s, ::s].sum(axis=(-1, -2))
    area = np.outer(rows.count, cols.count)
    return (sums * (f * f / area)) ** (1.0 / p) * scale


def _reduce(
    core: Any,
    x: np.ndarray,
    out: np.ndarray,
    op: int,
    f: int,
    s: int,
    padding: int,
    rows: _Axis,
    cols: _Axis,
    fill: float,
) -> None:
    """Pick the kernel once: a specialised loop for 2x2/s2 and 3x3/s2 over the
    interior box (its border strips by the table kernel), the separable kernel
    when windows overlap a lot, else the direct table kernel. ``core`` None:
    the numpy path."""
    if core is None:
        _numpy_reduce(x, out, op, f, s, rows, cols, fill)
        return
    oh, ow = out.shape
    nthreads = _threads(x)
    maps = (rows.map, cols.map, float(fill), cols.count, f, s, padding)
    special = {
        (2, 2, core.OP_MAX): core.max_2x2_s2,
        (2, 2, core.OP_SUM): core.avg_2x2_s2,
        (3, 2, core.OP_MAX): core.max_3x3_s2,
    }.get((f, s, op))
    if special is not None and x.dtype == np.float32 and rows.hi > rows.lo and cols.hi > cols.lo:
        box = (x, out)
        parallel.run_blocks(
            lambda i0, i1: special(*box, rows.lo + i0, rows.lo + i1, cols.lo, cols.hi, padding),
            rows.hi - rows.lo,
            work=(rows.hi - rows.lo) * ow * f * f,
            nthreads=nthreads,
        )
        strips = (
            (0, rows.lo, 0, ow),
            (rows.hi, oh, 0, ow),
            (rows.lo, rows.hi, 0, cols.lo),
            (rows.lo, rows.hi, cols.hi, ow),
        )
        for i0, i1, j0, j1 in strips:  # thin strips: not worth waking the threads
            if i1 > i0 and j1 > j0:
                core.reduce_table(x, out, op, *maps, i0, i1, j0, j1, cols.lo, cols.hi)
    elif s + 1 < f:
        # bands of output rows whose row-pass buffer stays in L2 (~256 KiB), at
        # least 8 bands so that every thread has work
        per_band = max(1, (65536 // max(ow, 1) - f) // s + 1)
        band = max(1, min(per_band, -(-oh // 8)))
        nbands = -(-oh // band)
        args = (x, out, op, *maps, cols.lo, cols.hi, band)
        parallel.run_blocks(
            lambda b0, b1: core.reduce_table_separable(*args, b0, b1),
            nbands,
            work=oh * ow,
            nthreads=nthreads,
        )
    else:
        parallel.run_blocks(
            lambda i0, i1: core.reduce_table(x, out, op, *maps, i0, i1, 0, ow, cols.lo, cols.hi),
            oh,
            work=oh * ow,
            nthreads=nthreads,
        )


def _numpy_reduce(x, out, op, f, s, rows: _Axis, cols: _Axis, fill: float) -> None:
    """:func:`_reduce` in plain numpy: the padded image gathered through the
    index maps (FILL -> the fill value, SKIP -> the reduction's identity), then
    one strided view per window position, in the compiled table's order."""
    rmap, cmap = rows.map, cols.map
    padded = x.astype(np.float32, copy=False)[np.ix_(np.maximum(rmap, 0), np.maximum(cmap, 0))]
    padded[rmap == codes.FILL, :] = fill
    padded[:, cmap == codes.FILL] = fill
    identity = {codes.OP_MAX: -np.inf, codes.OP_MIN: np.inf}.get(op, 0.0)
    padded[rmap == codes.SKIP, :] = identity
    padded[:, cmap == codes.SKIP] = identity
    oh, ow = out.shape
    rspan, cspan = (oh - 1) * s + 1, (ow - 1) * s + 1
    combine = {codes.OP_MAX: np.maximum, codes.OP_MIN: np.minimum}.get(op, np.add)
    out[...] = identity
    for k in range(f):
        for kk in range(f):
            combine(out, padded[k : k + rspan : s, kk : kk + cspan : s], out=out)
    if op == codes.OP_SUM:
        out[...] = out / np.outer(rows.count, cols.count)


def warmup() -> None:
    """Compile (or load from the cache) every Numba kernel :func:`pool` uses.

    Examples
    --------
    >>> warmup()
    """
    import convtool.core.pool  # noqa: F401  (loads Numba: the jobs below take the compiled paths)

    x = np.zeros((8, 8), dtype=np.float32)
    for mode in ("max", "avg", "min"):
        for f, s in ((2, 2), (3, 2), (3, 3), (5, 1)):
            pool(x, mode, size=f, stride=s)
    pool(x, "lp", p=3)
    pool(x, "lp", p=3, size=3, stride=1)
    pool(x, "stochastic", seed=0)
    pool(x, "stochastic", eval=True)
    pool(x, "fractional", seed=0)
    from .network.ops import max_3x3_s2_planes  # networks' 3x3/2 max pool of planes

    max_3x3_s2_planes(x[None], (1, 1, 1, 1), False)
