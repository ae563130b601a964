"""Map a float32 filter result onto the integer range of an output file.

A filter's result lives on the input's own scale (0..255 for 8-bit, 0..65535
for 16-bit) but may be signed (Sobel, Laplacian) or exceed the range (sharpen).
``--scale`` chooses how it becomes an 8- or 16-bit picture:

================  =======================================================
clip              round and clip to ``0..max`` (exact for blurs and identity)
abs               ``|v|``, then clip (edge strength of a signed response)
normalize         min-max stretch to ``0..max`` (a constant image becomes 0)
offset            zero becomes mid-grey, symmetric: ``mid + v * mid / max|v|``
robust-normalize  ``normalize`` between the 0.5th and 99.5th percentiles;
                  values beyond them saturate
robust-offset     ``offset`` with the 99.5th percentile of ``|v|`` in place
                  of ``max|v|``; values beyond it saturate
raw               no scaling: only for float outputs (.npy, .tif), an error here
================  =======================================================

``max`` is 255 for depth 8 and 65535 for depth 16. ``normalize`` and
``offset`` use one range for all channels (colour balance is kept). NaN
becomes 0 and infinities are clipped; they never take part in a min or max.

The robust variants are what ``--scale auto`` uses where a kernel's own
choice is ``normalize`` or ``offset`` (:data:`AUTO`): on a photo a few
very strong responses (a specular highlight, one sharp corner) set the
exact range, and everything else ends up in a few grey levels around the
middle. Ignoring the 0.5 % most extreme values (as ``visualize --clip 0.5``
does) lets the picture use the range. When the percentiles leave no range
(a response that is zero almost everywhere) the exact min and max are used.
Images above :data:`ROBUST_SAMPLE` values estimate the percentiles from an
evenly strided sample of that many values. This module is numpy only.
"""

from __future__ import annotations

import numpy as np

from .errors import UsageError

#: Accepted ``scale`` names (``auto`` is resolved by the caller, per kernel).
SCALES: tuple[str, ...] = (
    "clip",
    "abs",
    "normalize",
    "offset",
    "robust-normalize",
    "robust-offset",
    "raw",
)

#: What ``--scale auto`` uses for a kernel whose own scale is the key.
AUTO: dict[str, str] = {
    "clip": "clip",
    "abs": "abs",
    "normalize": "robust-normalize",
    "offset": "robust-offset",
    "raw": "raw",
}

#: Percent of the values ignored at each end by the robust scales.
ROBUST_PERCENT = 0.5

#: The robust scales estimate percentiles from at most this many values.
ROBUST_SAMPLE = 1 << 20

_DTYPES = {8: np.uint8, 16: np.uint16}


def _finite_range(values: np.ndarray) -> tuple[float, float] | None:
    """Min and max over the finite values, or None if there are none."""
    mask = np.isfinite(values)
    finite = values if mask.all() else values[mask]
    if finite.size == 0:
        return None
    return float(finite.min()), float(finite.max())


def _robust_range(values: np.ndarray, symmetric: bool) -> tuple[float, float] | None:
    """Percentile range of the finite values (``(-r, r)`` if ``symmetric``), or None.

    None when there are no finite values or the percentiles leave no range.
    """
    flat = values.reshape(-1)
    if flat.size > ROBUST_SAMPLE:
        flat = flat[:: flat.size // ROBUST_SAMPLE]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return None
    top = 1.0 - ROBUST_PERCENT / 100.0
    if symmetric:
        reach = float(np.quantile(np.abs(flat), top))
        return (-reach, reach) if reach > 0.0 else None
    lo, hi = (float(q) for q in np.quantile(flat, [1.0 - top, top]))
    return (lo, hi) if hi > lo else None


def to_depth(array: np.ndarray, scale: str = "clip", depth: int = 8) -> np.ndarray:
    """Scale a float result to an unsigned integer image of ``depth`` bits.

    Parameters
    ----------
    array : numpy.ndarray
        Any real array (usually float32 on the input's own scale).
    scale : {"clip", "abs", "normalize", "offset", "robust-normalize", "robust-offset", "raw"}
        How values reach the integer range; see the module docstring.
    depth : {8, 16}
        Bits per sample of the result.

    Returns
    -------
    numpy.ndarray
        ``uint8`` for depth 8, ``uint16`` for depth 16, same shape as ``array``.

    Raises
    ------
    UsageError
        For an unknown scale or depth, or ``raw`` with an integer depth.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([-300.0, -1.0, 0.0, 100.4, 400.0], dtype=np.float32)
    >>> to_depth(v, "clip").tolist()
    [0, 0, 0, 100, 255]
    >>> to_depth(v, "abs").tolist()
    [255, 1, 0, 100, 255]
    >>> to_depth(v, "offset").tolist()
    [32, 127, 128, 160, 255]
    >>> to_depth(np.array([2.0, 3.0, 4.0]), "normalize").tolist()
    [0, 128, 255]

    One extreme value sets ``offset``'s range; ``robust-offset`` lets it saturate:

    >>> w = np.array([-10.0, -5.0, 0.0, 5.0, 10.0] * 40 + [1000.0], dtype=np.float32)
    >>> to_depth(w, "offset")[[1, 3, -1]].tolist()
    [127, 128, 255]
    >>> to_depth(w, "robust-offset")[[1, 3, -1]].tolist()
    [64, 191, 255]
    """
    if scale not in SCALES:
        raise UsageError(f"unknown --scale {scale!r}: use auto, {', '.join(SCALES)}")
    if depth not in _DTYPES:
        raise UsageError(f"--depth must be 8 or 16, got {depth!r}")
    if scale == "raw":
        raise UsageError(
            "--scale raw keeps exact float values: write to a .npy or .tif/.tiff file, "
            "or choose clip, abs, normalize or offset for an 8/16-bit image"
        )
    top = float((1 << depth) - 1)
    values = np.asarray(array)
    if values.dtype != np.float32 and values.dtype != np.float64:
        values = values.astype(np.float32)
    out = np.empty(values.shape, dtype=values.dtype)  # one work buffer, ops in place
    if scale.startswith("robust-"):
        scale = scale[len("robust-") :]
        bounds = _robust_range(values, symmetric=scale == "offset") if values.size else None
    else:
        bounds = None
    if bounds is not None:
        lo, hi = bounds
    elif scale in ("normalize", "offset"):
        with np.errstate(invalid="ignore"):
            lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            bounds = _finite_range(values)
            lo, hi = bounds if bounds is not None else (0.0, 0.0)
    if scale == "clip":
        np.rint(values, out=out)
    elif scale == "abs":
        np.abs(values, out=out)
        np.rint(out, out=out)
    elif scale == "normalize":
        if hi <= lo:
            out.fill(0.0)
        else:
            np.subtract(values, lo, out=out)
            np.multiply(out, top / (hi - lo), out=out)
            np.rint(out, out=out)
    else:  # offset
        mid = top / 2.0
        reach = max(abs(lo), abs(hi))
        if reach == 0.0:
            out.fill(mid)
        else:
            np.multiply(values, mid / reach, out=out)
            np.add(out, mid, out=out)
        np.rint(out, out=out)
    np.clip(out, 0.0, top, out=out)  # infinities end at 0 or top; NaN stays NaN
    # one reduction finds a NaN (the clipped values cannot sum to inf): cheaper
    # than the min and max a range needs, and clip/abs need no range
    if not np.isfinite(out.sum()):
        np.nan_to_num(out, copy=False, nan=0.0)
    return out.astype(_DTYPES[depth])
