"""Map a float32 filter result onto the integer range of an output file.

A filter's result lives on the input's own scale (0..255 for 8-bit, 0..65535
for 16-bit) but may be signed (Sobel, Laplacian) or exceed the range (sharpen).
``--scale`` chooses how it becomes an 8- or 16-bit picture:

=========  ==============================================================
clip       round and clip to ``0..max`` (exact for blurs and identity)
abs        ``|v|``, then clip (edge strength of a signed response)
normalize  min-max stretch to ``0..max`` (a constant image becomes 0)
offset     zero becomes mid-grey, symmetric: ``mid + v * mid / max|v|``
raw        no scaling: only for float outputs (.npy, .tif), an error here
=========  ==============================================================

``max`` is 255 for depth 8 and 65535 for depth 16. ``normalize`` and
``offset`` use one range for all channels (colour balance is kept). NaN
becomes 0 and infinities are clipped; they never take part in a min or max.
This module is numpy only.
"""

from __future__ import annotations

import numpy as np

from .errors import UsageError

#: Accepted ``scale`` names (``auto`` is resolved by the caller, per kernel).
SCALES: tuple[str, ...] = ("clip", "abs", "normalize", "offset", "raw")

_DTYPES = {8: np.uint8, 16: np.uint16}


def _finite_range(values: np.ndarray) -> tuple[float, float] | None:
    """Min and max over the finite values, or None if there are none."""
    finite = values[np.isfinite(values)] if not np.isfinite(values).all() else values
    if finite.size == 0:
        return None
    return float(finite.min()), float(finite.max())


def to_depth(array: np.ndarray, scale: str = "clip", depth: int = 8) -> np.ndarray:
    """Scale a float result to an unsigned integer image of ``depth`` bits.

    Parameters
    ----------
    array : numpy.ndarray
        Any real array (usually float32 on the input's own scale).
    scale : {"clip", "abs", "normalize", "offset", "raw"}
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
    values = np.asarray(array, dtype=np.float64 if depth == 16 else np.float32)
    if scale == "clip":
        out = values
    elif scale == "abs":
        out = np.abs(values)
    elif scale == "normalize":
        bounds = _finite_range(values)
        if bounds is None or bounds[1] <= bounds[0]:
            out = np.zeros_like(values)
        else:
            lo, hi = bounds
            out = (values - lo) * (top / (hi - lo))
    else:  # offset
        mid = top / 2.0
        bounds = _finite_range(values)
        reach = 0.0 if bounds is None else max(abs(bounds[0]), abs(bounds[1]))
        out = np.full_like(values, mid) if reach == 0.0 else mid + values * (mid / reach)
    with np.errstate(invalid="ignore"):
        out = np.clip(np.rint(out), 0.0, top)
    out = np.nan_to_num(out, nan=0.0, posinf=top, neginf=0.0)
    return out.astype(_DTYPES[depth])
