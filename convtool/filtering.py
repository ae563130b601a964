"""2-D convolution and correlation: validation, anchoring and algorithm choice.

:func:`convolve` is the one door every command and API call goes through. It
checks its arguments, turns the pad mode, anchor, stride and dilation into
index maps, picks an algorithm once, and calls a Numba kernel in
:mod:`convtool.core.conv` (or the numpy FFT in :mod:`convtool.core.conv_fft`).

Semantics
---------
``convolve(image, w)`` equals ``scipy.ndimage.convolve(image, w, mode=...)``
and ``correlate=True`` equals ``scipy.ndimage.correlate``; the pad modes map
to scipy's as in :data:`convtool.modes.SCIPY_MODE`. The tap at index
``(K//2, L//2)`` of the kernel as given sits on the output pixel (for true
convolution the kernel is rotated 180 degrees about that tap), so even and
non-square kernels are anchored as scipy anchors them. Dilation ``D`` spreads
the taps ``D`` apart (about the same anchor tap); stride ``S`` keeps every
``S``-th output of the full-resolution result (``[::S, ::S]``), and the
output size is PyTorch's ``floor((W + P - D*(K-1) - 1)/S) + 1`` with
``P = D*(K-1)`` in the padded modes and ``0`` for ``valid``. All arithmetic is
float32; NaN in the image propagates to every output whose window covers it.

Algorithm choice (cost model)
-----------------------------
Four algorithms compute the same result (within float32 rounding):

``direct``
    For each output row and kernel row, a tap loop over views of the source
    row with scalar weights (generated per tap count 1-9, wider kernels in
    chunks of 9), which LLVM vectorises; borders are handled by index maps
    for the few border columns, never by padding the image. Cost about
    ``KH*KW`` fused multiply-adds per value, vectorised.
``separable``
    Used when the kernel has rank 1 (checked by SVD: second singular value
    below ``1e-5`` of the first, e.g. Gaussian, box, Sobel): per output row a
    fused vertical pass over the image into a padded row buffer, then a
    horizontal pass. Cost about ``KH + KW`` per value.
``fft``
    Overlap-save with numpy's real FFT on tiles of about 1024x1024 of the
    exactly padded image (padded by the same index maps as the direct path),
    tiles spread over the threads. Cost per padded pixel independent of the
    kernel size, but it always computes the full-resolution result.

``numpy``
    Plain numpy: the outputs' reach gathered through the same index maps,
    then one strided slice per tap (about 1.4 ns per value per tap, one
    thread); for a job the compiled paths would run separably, a vertical
    pass then a horizontal one with the same (symmetrised) factors. Importing
    Numba and loading its cached kernels costs about a second per process,
    and compiling a kernel the cache does not hold yet several more, far
    more than numpy needs for a whole photo. So while Numba is not loaded
    ``auto`` runs jobs on numpy (or numpy's FFT, whichever is cheaper) until
    their estimated total would exceed that price, then loads Numba and uses
    the compiled paths from there on (rent or buy, :mod:`convtool.rentbuy`:
    never worse than about twice the better choice in hindsight). A single
    ``convtool convolve`` of a photo never pays for Numba, cold cache or
    warm; a batch pays once, early. ``method="numpy"`` forces it.

Strides: rows are sampled through the row index map; columns are computed
at full resolution by the vectorised loops and then sampled.

``method="auto"`` estimates each cost in CPU nanoseconds from the constants
in :data:`COST` (measured on 4096x4096 float32, 2-core AVX2 machine) and
takes the cheapest::

    direct     computed * (2.0 + 0.058 * KH*KW)
    separable  computed * (2.3 + 0.055 * (KH + KW))     (rank-1 kernels only)
    fft        32 * (points of all FFT tiles)           (~1.1 * padded pixels)

where ``computed`` is the number of values computed (rows sampled by the
stride, columns at full resolution, times channels). All paths use the same
threads, so the thread count does not change the choice. In practice:
direct up to about 23x23, FFT above; separable for every rank-1 kernel of
5x5 and up (3x3 stays direct: the two passes cost more than nine taps);
strides make the full-resolution FFT ``S*S`` times less attractive. A
non-finite image never goes to the FFT (one NaN would spread to the whole
tile); it falls back to direct.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import parallel, rentbuy
from .core.indexing import index_map
from .errors import UsageError
from .modes import PAD_CODE, check_positive_int, conv_output_size, normalize_pad, pad_before_after

__all__ = ["COST", "METHODS", "COMBINES", "choose_method", "convolve", "filter_bank", "warmup"]

#: Accepted ``method=`` values.
METHODS: tuple[str, ...] = ("auto", "direct", "separable", "fft", "numpy")

#: Accepted ``combine=`` values for filter banks.
COMBINES: tuple[str, ...] = ("stack", "magnitude", "max", "sum")

#: Cost-model constants: CPU nanoseconds (summed over threads; every path
#: runs on the same threads, so the thread count does not change the choice),
#: measured on 4096x4096 float32 on a 2-core x86-64 machine (AVX2).
COST: dict[str, float] = {
    "direct_base": 2.0,  # per computed value (memory traffic, borders)
    "direct_tap": 0.058,  # per computed value per kernel tap
    "separable_base": 2.3,  # per computed value
    "separable_tap": 0.055,  # per computed value per (KH + KW) taps
    "fft_point": 32.0,  # per point of the FFT tiles (gather, forward, product, inverse)
    "numpy_tap": 1.4,  # numpy paths, per value per kernel tap (one thread)
}

#: Second/first singular value below this: the kernel is treated as rank 1.
RANK1_RTOL = 1e-5

_NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8))


# --------------------------------------------------------------------------- validation


def _check_image(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if (
        arr.dtype == object
        or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_)
        or np.iscomplexobj(arr)
    ):
        raise UsageError(f"image must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise UsageError(
            f"image must be 2-D (H, W) or 3-D (H, W, C), got shape {arr.shape}; "
            "convert or squeeze it first"
        )
    if arr.size == 0:
        raise UsageError(f"image is empty (shape {arr.shape})")
    if arr.dtype not in _NATIVE_DTYPES:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _check_weights(w: Any, label: str = "kernel") -> np.ndarray:
    arr = np.asarray(w)
    if (
        arr.dtype == object
        or np.iscomplexobj(arr)
        or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_)
    ):
        raise UsageError(f"{label} weights must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise UsageError(f"{label} must be 2-D, got shape {arr.shape}")
    if arr.size == 0:
        raise UsageError(f"{label} is empty (shape {arr.shape}); give at least one weight")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise UsageError(f"{label} has NaN or infinite weights; give finite numbers")
    return arr


def _resolve_kernel(kernel: Any) -> tuple[list[np.ndarray], str]:
    """Weights and default combine rule of any kernel spec."""
    if isinstance(kernel, np.ndarray) and kernel.ndim == 3:
        return [_check_weights(k, f"kernel {i}") for i, k in enumerate(kernel)], "stack"
    if isinstance(kernel, np.ndarray) or hasattr(kernel, "weights"):
        if hasattr(kernel, "weights"):
            weights = list(kernel.weights)
            return [_check_weights(w) for w in weights], getattr(kernel, "combine", "single")
        return [_check_weights(kernel)], "single"
    from .kernels import resolve

    spec = resolve(kernel)
    return [_check_weights(w) for w in spec.weights], spec.combine


def _check_method(method: str) -> str:
    m = str(method).strip().lower()
    if m not in METHODS:
        raise UsageError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    return m


# --------------------------------------------------------------------------- cost model


def _rank1(w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(u, v)`` with ``outer(u, v) ~= w`` if ``w`` has rank 1, else None."""
    if w.shape[0] == 1 or w.shape[1] == 1:
        return None
    u_, s, vt = np.linalg.svd(w.astype(np.float64))
    if s[0] == 0.0:  # all zero: float32 factors like any other (no new Numba signature)
        return np.zeros(w.shape[0], np.float32), np.zeros(w.shape[1], np.float32)
    if s[1] > RANK1_RTOL * s[0]:
        return None
    root = math.sqrt(s[0])
    return (u_[:, 0] * root).astype(np.float32), (vt[0] * root).astype(np.float32)


def _symmetric(taps: np.ndarray) -> bool:
    """Odd 3-9 taps equal to their mirror image within float32 rounding."""
    n = taps.shape[0]
    if n not in (3, 5, 7, 9):
        return False
    scale = float(np.abs(taps).max())
    return scale == 0.0 or float(np.abs(taps - taps[::-1]).max()) <= 1e-6 * scale


def _symmetrised(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each factor made exactly symmetric when it is within rounding (see _symmetric)."""
    if _symmetric(u):
        u = ((u + u[::-1]) / 2).astype(np.float32)
    if _symmetric(v):
        v = ((v + v[::-1]) / 2).astype(np.float32)
    return u, v


def _fft_points(h: int, w: int, kh: int, kw: int, dilation: int, padded: bool) -> int:
    """Total FFT frame points the tiled FFT path transforms for one plane."""
    from .core.conv_fft import _tile_frame

    kh, kw = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    ph, pw = (h + kh - 1, w + kw - 1) if padded else (h, w)
    fh, fw = _tile_frame(kh, kw, ph, pw)
    tiles = -(-(ph - kh + 1) // (fh - kh + 1)) * -(-(pw - kw + 1) // (fw - kw + 1))
    return tiles * fh * fw


def choose_method(
    shape: tuple[int, ...],
    kshape: tuple[int, int],
    *,
    stride: int = 1,
    dilation: int = 1,
    pad: str = "reflect",
    separable: bool = False,
) -> str:
    """The cheapest compiled algorithm for this job by the cost model (see module docstring).

    Examples
    --------
    >>> choose_method((4096, 4096), (3, 3))
    'direct'
    >>> choose_method((4096, 4096), (9, 9), separable=True)
    'separable'
    >>> choose_method((4096, 4096), (63, 63))
    'fft'
    """
    h, w = shape[0], shape[1]
    nch = shape[2] if len(shape) == 3 else 1
    kh, kw = kshape
    mode = normalize_pad(pad)
    oh = conv_output_size(h, kh, stride=stride, dilation=dilation, pad=mode, axis="height")
    fw = conv_output_size(w, kw, dilation=dilation, pad=mode, axis="width")
    computed = oh * fw * nch  # rows sampled by stride, columns at full resolution
    costs = {"direct": computed * (COST["direct_base"] + COST["direct_tap"] * kh * kw)}
    if separable:
        costs["separable"] = computed * (COST["separable_base"] + COST["separable_tap"] * (kh + kw))
    points = _fft_points(h, w, kh, kw, dilation, mode != "valid")
    costs["fft"] = COST["fft_point"] * points * nch
    return min(costs, key=costs.__getitem__)


def _numpy_reach(img, code, cval32, kh, kw, stride, dilation, top, left, oh, ow):
    """Every pixel the outputs read, as one float32 array, gathered through the
    index maps (so every pad mode is exactly the compiled paths')."""
    h, wd = img.shape[0], img.shape[1]
    src = img.astype(np.float32, copy=False)
    rows = index_map(h, -top, 1, (oh - 1) * stride + dilation * (kh - 1) + 1, 1, 1, code)[:, 0]
    cols = index_map(wd, -left, 1, (ow - 1) * stride + dilation * (kw - 1) + 1, 1, 1, code)[:, 0]
    if code == PAD_CODE["constant"]:
        # one extra row and column of cval stand for every position outside
        ext = np.full((h + 1, wd + 1) + src.shape[2:], cval32, np.float32)
        ext[:h, :wd] = src
        src = ext
        rows = np.where(rows < 0, h, rows)
        cols = np.where(cols < 0, wd, cols)
    return src[rows][:, cols]


def _taps_sum(out, term, views_weights):
    """``out = sum(w * view)``, one multiply and one add per tap (no temporaries)."""
    for k, (view, wt) in enumerate(views_weights):
        if k == 0:
            np.multiply(view, wt, out=out)
        else:
            np.multiply(view, wt, out=term)
            out += term
    return out


def _numpy_correlate(img, wc, code, cval32, stride, dilation, top, left, oh, ow):
    """Correlation in plain numpy: one strided slice of the reach per tap."""
    kh, kw = wc.shape
    reach = _numpy_reach(img, code, cval32, kh, kw, stride, dilation, top, left, oh, ow)
    out = np.empty((oh, ow) + reach.shape[2:], np.float32)
    rspan, cspan = (oh - 1) * stride + 1, (ow - 1) * stride + 1
    views = (
        (
            reach[
                a * dilation : a * dilation + rspan : stride,
                b * dilation : b * dilation + cspan : stride,
            ],
            wc[a, b],
        )
        for a in range(kh)
        for b in range(kw)
    )
    return _taps_sum(out, np.empty_like(out), views)


def _numpy_separable(img, u, v, code, cval32, stride, dilation, top, left, oh, ow):
    """Rank-1 correlation in plain numpy: a vertical pass of ``u``, then ``v`` across."""
    kh, kw = len(u), len(v)
    reach = _numpy_reach(img, code, cval32, kh, kw, stride, dilation, top, left, oh, ow)
    rspan, cspan = (oh - 1) * stride + 1, (ow - 1) * stride + 1
    mid = np.empty((oh,) + reach.shape[1:], np.float32)
    rows = ((reach[a * dilation : a * dilation + rspan : stride], u[a]) for a in range(kh))
    _taps_sum(mid, np.empty_like(mid), rows)
    out = np.empty((oh, ow) + reach.shape[2:], np.float32)
    cols = ((mid[:, b * dilation : b * dilation + cspan : stride], v[b]) for b in range(kw))
    return _taps_sum(out, np.empty_like(out), cols)


def _numpy_costs(oh, ow, nch, kh, kw, stride, dilation, width, separable):
    """Estimated ns of the numpy paths (see COST): direct, and separable if rank 1."""
    costs = {"numpy": COST["numpy_tap"] * oh * ow * nch * kh * kw}
    if separable:
        reach_w = (ow - 1) * stride + dilation * (kw - 1) + 1
        taps = oh * reach_w * kh + oh * ow * kw
        costs["numpy-separable"] = COST["numpy_tap"] * taps * nch
    return costs


# --------------------------------------------------------------------------- one kernel


def _correlate(
    img: np.ndarray,
    w: np.ndarray,
    *,
    mode: str,
    cval: float,
    stride: int,
    dilation: int,
    correlate: bool,
    method: str,
    threads: int | None,
) -> np.ndarray:
    """One kernel on one validated image; returns float32 (OH, OW[, C])."""
    h, wd = img.shape[0], img.shape[1]
    nch = img.shape[2] if img.ndim == 3 else 1
    kh, kw = w.shape
    oh = conv_output_size(h, kh, stride=stride, dilation=dilation, pad=mode, axis="height")
    ow = conv_output_size(wd, kw, stride=stride, dilation=dilation, pad=mode, axis="width")
    # orient as a correlation and anchor: the tap (K//2, L//2) of the given kernel
    # sits on the output pixel, for convolution after rotating by 180 degrees.
    # rpad, cpad: (before, after) reach of each axis; rotating swaps the sides.
    rpad, cpad = pad_before_after(kh, dilation), pad_before_after(kw, dilation)
    if correlate:
        wc = w
    else:
        wc = np.ascontiguousarray(w[::-1, ::-1])
        rpad, cpad = rpad[::-1], cpad[::-1]
    if mode == "valid":
        rpad = cpad = (0, 0)
    top, left = rpad[0], cpad[0]
    code = PAD_CODE[mode]
    cval32 = np.float32(cval)

    factors = None
    if method in ("auto", "separable", "numpy"):
        factors = _rank1(wc)
    if method == "separable" and factors is None:
        if wc.shape[0] == 1 or wc.shape[1] == 1:
            factors = (
                (np.ones(1, np.float32), wc[0].copy())
                if wc.shape[0] == 1
                else (wc[:, 0].copy(), np.ones(1, np.float32))
            )
        else:
            raise UsageError(
                f"method 'separable' needs a rank-1 kernel; this {kh}x{kw} kernel is not "
                "separable: use method 'auto', 'direct' or 'fft'"
            )
    if method in ("auto", "numpy"):
        method = _choose(img, (oh, ow, nch), (kh, kw), stride, dilation, mode, factors, method)
    if method == "numpy":
        return _numpy_correlate(img, wc, code, cval32, stride, dilation, top, left, oh, ow)
    if method == "numpy-separable":
        u, v = _symmetrised(*factors)
        return _numpy_separable(img, u, v, code, cval32, stride, dilation, top, left, oh, ow)
    if method == "fft" and img.dtype.kind == "f" and not np.isfinite(img).all():
        method = "direct"
    nthreads = threads or parallel.get_threads()
    if method == "fft":
        return _fft(img, wc, code, cval32, stride, dilation, rpad, cpad, oh, ow, nthreads)

    from .core import conv

    flat = img.reshape(h, wd * nch)
    # Rows are sampled by stride through the row map; columns are computed at
    # full resolution (vectorised) and sampled afterwards, which is several
    # times cheaper than a scalar strided loop for the strides people use.
    rmap = index_map(h, -top, stride, oh, kh, dilation, code)
    fw = conv_output_size(wd, kw, dilation=dilation, pad=mode)
    out = np.empty((oh, fw * nch), dtype=np.float32)
    if method == "separable":
        u, v = factors
        ext = index_map(wd, -left, 1, wd + left + cpad[1], 1, 1, code)[:, 0]
        # output rows whose source rows all lie inside the image (fused vertical pass)
        ilo = min(oh, -(-top // stride))
        last = h - 1 + top - dilation * (kh - 1)
        ihi = max(ilo, min(oh, last // stride + 1)) if last >= 0 else ilo
        symu, symv = _symmetric(u), _symmetric(v)
        u, v = _symmetrised(u, v)
        args = (flat, nch, u, v, symu, symv, rmap, ilo, ihi, ext, cval32, left, dilation, out)
        work = oh * fw * nch * (kh + kw)
        parallel.run_blocks(
            lambda i0, i1: conv.separable(*args, i0, i1), oh, work=work, nthreads=nthreads
        )
    else:
        cmap = index_map(wd, -left, 1, fw, kw, dilation, code)
        lo = min(left, fw)
        hi = min(max(wd - dilation * (kw - 1) + left, lo), fw)
        args = (flat, nch, wc, rmap, cmap, cval32, lo, hi, dilation, out)
        work = oh * fw * nch * kh * kw
        parallel.run_blocks(
            lambda i0, i1: conv.direct(*args, i0, i1), oh, work=work, nthreads=nthreads
        )
    if stride > 1:
        out = np.ascontiguousarray(out.reshape(oh, fw, nch)[:, ::stride])
    return out.reshape((oh, ow, nch) if img.ndim == 3 else (oh, ow))


def _choose(img, out_shape, kshape, stride, dilation, mode, factors, method):
    """``auto``: the compiled choice (direct, separable or fft) by the cost model,
    unless a numpy path is cheaper while Numba is not loaded (rent or buy, with
    the compile time of an uncached kernel counted: :mod:`convtool.rentbuy`).
    ``numpy``: the numpy twin of the compiled choice.

    The numpy twin of direct is direct and of separable is separable, so a job
    gives the same numbers (to float32 rounding; integer weights on integer
    images: exactly) whichever side of the rule it falls on."""
    oh, ow, nch = out_shape
    kh, kw = kshape
    width = img.shape[1]
    best = choose_method(
        img.shape, kshape, stride=stride, dilation=dilation, pad=mode, separable=factors is not None
    )
    rent = _numpy_costs(oh, ow, nch, kh, kw, stride, dilation, width, best == "separable")
    if best != "separable":
        rent.pop("numpy-separable", None)
    else:
        rent.pop("numpy")
    if method == "numpy":
        return next(iter(rent))
    if best == "fft":
        return best  # numpy's FFT: no Numba either way (a non-finite image: see _correlate)
    if rentbuy.numba_loaded() and rentbuy.pinned() != "numpy":  # a batch's pin wins
        return best
    if img.dtype.kind != "f" or bool(np.isfinite(img).all()):  # one pass, only here
        points = _fft_points(img.shape[0], width, kh, kw, dilation, mode != "valid")
        rent["fft"] = COST["fft_point"] * points * nch
    cheapest = min(rent, key=rent.__getitem__)
    kernel = "conv.separable" if best == "separable" else "conv.direct"
    return cheapest if rentbuy.prefer_numpy(rent[cheapest], [kernel]) else best


def _fft(img, wc, code, cval32, stride, dilation, rpad, cpad, oh, ow, nthreads):
    from .core.conv_fft import fft_correlate_plane

    h, wd = img.shape[0], img.shape[1]
    kh, kw = wc.shape
    if dilation > 1:
        wd_ = np.zeros((dilation * (kh - 1) + 1, dilation * (kw - 1) + 1), np.float32)
        wd_[::dilation, ::dilation] = wc
    else:
        wd_ = wc
    # the exactly padded frame (valid: the image itself, no padding)
    rows = index_map(h, -rpad[0], 1, h + sum(rpad), 1, 1, code)[:, 0]
    cols = index_map(wd, -cpad[0], 1, wd + sum(cpad), 1, 1, code)[:, 0]
    if img.ndim == 2:
        res = fft_correlate_plane(img, wd_, rows, cols, float(cval32), stride, nthreads)
        return res[:oh, :ow]
    out = np.empty((oh, ow, img.shape[2]), np.float32)
    for c in range(img.shape[2]):
        res = fft_correlate_plane(img[:, :, c], wd_, rows, cols, float(cval32), stride, nthreads)
        out[:, :, c] = res[:oh, :ow]
    return out


# --------------------------------------------------------------------------- public API


def _combine(responses: list[np.ndarray], combine: str) -> np.ndarray:
    if combine in ("single",) or len(responses) == 1 and combine != "stack":
        return responses[0]
    if combine == "stack":
        return np.stack(responses, axis=0)
    if combine == "magnitude":
        acc = np.square(responses[0])
        for r in responses[1:]:
            acc += np.square(r)
        return np.sqrt(acc, out=acc)
    if combine == "max":
        acc = responses[0].copy()
        for r in responses[1:]:
            np.maximum(acc, r, out=acc)
        return acc
    if combine == "sum":
        acc = responses[0].copy()
        for r in responses[1:]:
            acc += r
        return acc
    raise UsageError(f"unknown combine {combine!r}: use one of {', '.join(COMBINES)}")


def _check_combine(combine: str | None) -> str | None:
    if combine is None:
        return None
    c = str(combine).strip().lower()
    if c not in COMBINES:
        raise UsageError(f"unknown combine {combine!r}: use one of {', '.join(COMBINES)}")
    return c


def convolve(
    image: Any,
    kernel: Any,
    *,
    pad: str = "reflect",
    pad_value: float = 0.0,
    stride: int = 1,
    dilation: int = 1,
    correlate: bool = False,
    combine: str | None = None,
    method: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Convolve (or correlate) an image with a kernel, as scipy.ndimage does.

    Parameters
    ----------
    image : array_like, (H, W) or (H, W, C)
        Any real dtype; colour images are filtered channel by channel.
    kernel : str, array_like or KernelSpec
        A kernel spec (``"sobel"``, ``"gaussian:2"``, ``"1 0 -1; 2 0 -2; 1 0 -1"``),
        a 2-D array, a ``(M, K, L)`` stack of kernels, or a resolved KernelSpec.
    pad : str
        ``constant`` (alias ``zero``), ``replicate``, ``reflect``, ``symmetric``,
        ``wrap`` or ``valid`` (no padding, the output shrinks by ``D*(K-1)``).
    pad_value : float
        The value outside the image for ``pad="constant"``.
    stride, dilation : int
        PyTorch's conv2d stride and dilation (whole numbers >= 1).
    correlate : bool
        Correlate instead of convolve (no 180-degree rotation of the kernel).
    combine : {"stack", "magnitude", "max", "sum"}, optional
        How the responses of a multi-kernel spec are merged; default: the
        spec's own rule (``sobel`` -> magnitude, ``kirsch`` -> max, an array
        stack -> stack).
    method : {"auto", "direct", "separable", "fft", "numpy"}
        Algorithm; ``auto`` uses the cost model in the module docstring.
    threads : int, optional
        Compute threads for this call (default: :func:`convtool.parallel.get_threads`).

    Returns
    -------
    numpy.ndarray
        float32 ``(H', W')`` or ``(H', W', C)``; with ``combine="stack"`` a
        leading axis of length M is added.

    Raises
    ------
    UsageError
        Bad image shape or dtype, empty kernel, NaN/inf weights, stride or
        dilation below 1, an output size below 1, unknown names.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(25, dtype=np.float32).reshape(5, 5)
    >>> convolve(img, np.ones((3, 3)), pad="valid")  # window sums
    array([[ 54.,  63.,  72.],
           [ 99., 108., 117.],
           [144., 153., 162.]], dtype=float32)
    >>> convolve(img, [[1, 0, -1]], correlate=True, stride=2).shape
    (3, 3)
    """
    if type(image).__module__.startswith("dask"):  # lazy, chunk by chunk: convtool.chunked
        given = dict(locals())
        from . import chunked

        return chunked.convolve(**given)
    weights, default_combine = _resolve_kernel(kernel)
    how = _check_combine(combine) or default_combine
    return _run(image, weights, how, pad, pad_value, stride, dilation, correlate, method, threads)


def _check_args(pad, pad_value, stride, dilation, method):
    """Pad mode, stride, dilation, method and pad value, checked once (in memory and dask)."""
    mode = normalize_pad(pad)
    stride = check_positive_int("stride", stride)
    dilation = check_positive_int("dilation", dilation)
    method = _check_method(method)
    try:
        cval = float(pad_value)
    except (TypeError, ValueError):
        raise UsageError(f"pad value must be a number, got {pad_value!r}") from None
    return mode, stride, dilation, method, cval


def _bank_kernels(kernels: Any, combine: str) -> tuple[str, Any]:
    """A filter bank's combine rule and its list of kernels (one spec or array is a bank of one)."""
    how = _check_combine(combine)
    if how is None:
        raise UsageError("combine must be one of " + ", ".join(COMBINES))
    if isinstance(kernels, (str, np.ndarray)) and not (
        isinstance(kernels, np.ndarray) and kernels.ndim == 3
    ):
        kernels = [kernels]
    if len(kernels) == 0:
        raise UsageError("filter bank is empty: give at least one kernel")
    return how, kernels


def _run(image, weights, how, pad, pad_value, stride, dilation, correlate, method, threads):
    img = _check_image(image)
    mode, stride, dilation, method, cval = _check_args(pad, pad_value, stride, dilation, method)
    # sizes first, so no work is done before an error
    _check_sizes(img.shape, weights, stride, dilation, mode, same=how != "single")
    if threads is not None:
        threads = parallel.check_threads(threads)
    responses = [
        _correlate(
            img,
            w,
            mode=mode,
            cval=cval,
            stride=stride,
            dilation=dilation,
            correlate=correlate,
            method=method,
            threads=threads,
        )
        for w in weights
    ]
    return _combine(responses, how)


def _check_sizes(shape, weights, stride, dilation, mode, *, same: bool) -> None:
    """Every kernel's output size is at least 1x1 (else the axis's own error) and,
    with ``same``, all of them are equal (they are combined element by element)."""
    sizes = {
        (
            conv_output_size(
                shape[0], w.shape[0], stride=stride, dilation=dilation, pad=mode, axis="height"
            ),
            conv_output_size(
                shape[1], w.shape[1], stride=stride, dilation=dilation, pad=mode, axis="width"
            ),
        )
        for w in weights
    }
    if same and len(sizes) > 1:
        raise UsageError(
            "kernels of different sizes give outputs of different sizes with pad 'valid' "
            "or stride > 1; use kernels of one size or a padded mode"
        )


def filter_bank(
    image: Any,
    kernels: Sequence[Any],
    *,
    combine: str = "stack",
    pad: str = "reflect",
    pad_value: float = 0.0,
    stride: int = 1,
    dilation: int = 1,
    correlate: bool = False,
    method: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Apply several kernels and combine their responses.

    Each entry of ``kernels`` is any kernel :func:`convolve` accepts; a
    multi-kernel spec (``sobel``) first merges its own responses by its
    default rule, so it contributes one response.

    Parameters
    ----------
    image : array_like
        (H, W) or (H, W, C).
    kernels : sequence
        Kernel specs, arrays or KernelSpecs.
    combine : {"stack", "magnitude", "max", "sum"}
        ``stack`` -> ``(M, H', W'[, C])``; ``magnitude`` is the square root of
        the sum of squares; ``max`` and ``sum`` are element-wise.
    pad, pad_value, stride, dilation, correlate, method, threads
        As for :func:`convolve`.

    Returns
    -------
    numpy.ndarray
        float32.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((6, 6), np.float32); img[:, 3:] = 1
    >>> filter_bank(img, [[[1, 0, -1]], [[1], [0], [-1]]], correlate=True).shape
    (2, 6, 6)
    """
    if type(image).__module__.startswith("dask"):  # lazy, chunk by chunk: convtool.chunked
        given = dict(locals())
        from . import chunked

        return chunked.filter_bank(**given)
    how, kernels = _bank_kernels(kernels, combine)
    img = _check_image(image)  # once, not per kernel
    stride = check_positive_int("stride", stride)
    dilation = check_positive_int("dilation", dilation)
    resolved = [_resolve_kernel(k) for k in kernels]
    # every size before any work, once: each entry's response has its kernels' size
    all_weights = [w for weights, _ in resolved for w in weights]
    _check_sizes(img.shape, all_weights, stride, dilation, normalize_pad(pad), same=True)
    args = (pad, pad_value, stride, dilation, correlate, method, threads)
    responses = [_run(img, weights, rule, *args) for weights, rule in resolved]
    return _combine(responses, how)


def warmup() -> None:
    """Compile (or load from the cache) every Numba kernel this module uses.

    Two drivers (direct, separable) for float32 and uint8 images; every
    kernel size and stride goes through the same compiled code.

    Examples
    --------
    >>> warmup()
    """

    w = np.ones((3, 3), np.float32)
    for dtype in (np.float32, np.uint8):
        for method in ("direct", "separable"):
            convolve(np.zeros((12, 12), dtype), w, method=method)
