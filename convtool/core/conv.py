"""Numba kernels for 2-D correlation over plain arrays (direct and separable).

Everything here computes a *correlation* of an image with a kernel that the
API layer has already oriented (flipped for true convolution), anchored and
padded by index maps. Nothing here validates: :mod:`convtool.filtering` does.

Layout
------
An image is passed as a C-contiguous 2-D array ``(H, W*C)``: a grey image has
``C == 1`` and a colour image ``(H, W, C)`` is the same memory reshaped, so
channel ``c`` of pixel ``x`` sits at column ``x*C + c``. Inputs may be
float32, uint8 or uint16 (values are converted to float32 as they are read);
outputs are float32 and arithmetic is float32 throughout.

Borders are never materialised as a padded copy of the image:

* ``rmap[i, a]`` is the source row of kernel row ``a`` for output row ``i``
  (``-1`` means "outside the image, use ``cval``", only in constant mode);
* ``cmap[j, b]`` is the source column of kernel column ``b`` for output
  column ``j`` (same convention);
* the interior output columns ``[lo, hi)`` read source column
  ``j + dil*b - left`` directly in a tight loop that the compiler vectorises.

The direct and separable kernels are built by small factories, one per kernel
width ``KW`` in 1..9 (the width is a compile-time constant there, so the tap
loop is fully unrolled) plus one generic version for wider kernels. Each is an
``@njit(cache=True, parallel=True)`` closure; Numba keys its on-disk cache on
the closure's constants, so every specialisation caches separately.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Kernel widths with a compile-time specialisation (others use the generic one).
SPECIALISED_WIDTHS: tuple[int, ...] = tuple(range(1, 10))

#: Pad-mode codes (same order as convtool.modes.PAD_MODES).
CONSTANT, REPLICATE, REFLECT, SYMMETRIC, WRAP, VALID = range(6)

_FASTMATH = {"contract", "arcp", "nsz"}


def index_map(n: int, start: int, step: int, count: int, taps: int, dil: int, mode: int):
    """Source indices ``(count, taps)`` for positions ``start + i*step + dil*t``.

    Positions outside ``[0, n)`` are folded back by the pad mode, or set to
    ``-1`` in constant mode. Works for any amount of padding (repeated
    reflection / wrapping), as scipy.ndimage does.

    Examples
    --------
    >>> index_map(4, -2, 1, 1, 5, 1, REFLECT).tolist()
    [[2, 1, 0, 1, 2]]
    """
    pos = start + step * np.arange(count, dtype=np.int64)[:, None]
    pos = pos + dil * np.arange(taps, dtype=np.int64)[None, :]
    if mode == CONSTANT:
        return np.where((pos >= 0) & (pos < n), pos, -1)
    if mode == REPLICATE:
        return np.clip(pos, 0, n - 1)
    if mode == WRAP:
        return np.mod(pos, n)
    if mode == REFLECT:
        if n == 1:
            return np.zeros_like(pos)
        period = 2 * n - 2
        m = np.mod(pos, period)
        return np.where(m >= n, period - m, m)
    if mode == SYMMETRIC:
        period = 2 * n
        m = np.mod(pos, period)
        return np.where(m >= n, period - 1 - m, m)
    # VALID: every position is inside by construction
    return pos


def _make_direct(kw_const: int):
    """Direct correlation, column stride 1, kernel width ``kw_const`` (0: any)."""

    @njit(cache=True, parallel=True, fastmath=_FASTMATH)
    def direct(img, nch, w, rmap, cmap, cval, lo, hi, dil, left, out):
        oh = out.shape[0]
        ow = cmap.shape[0]
        kh = w.shape[0]
        kw = kw_const if kw_const > 0 else w.shape[1]
        step = dil * nch
        off = left * nch
        for i in prange(oh):
            orow = out[i]
            for jj in range(orow.shape[0]):
                orow[jj] = np.float32(0.0)
            for a in range(kh):
                r = rmap[i, a]
                if r < 0:
                    t = np.float32(0.0)
                    for b in range(kw):
                        t += w[a, b]
                    t *= cval
                    for jj in range(orow.shape[0]):
                        orow[jj] += t
                    continue
                src = img[r]
                wr = w[a]
                # border columns through the column map
                nb = lo + (ow - hi)
                for jb in range(nb):
                    j = jb if jb < lo else hi + (jb - lo)
                    for c in range(nch):
                        s = np.float32(0.0)
                        for b in range(kw):
                            x = cmap[j, b]
                            if x < 0:
                                s += wr[b] * cval
                            else:
                                s += wr[b] * np.float32(src[x * nch + c])
                        orow[j * nch + c] += s
                # interior: a tight, unrolled, vectorisable loop
                for jj in range(lo * nch, hi * nch):
                    s = np.float32(0.0)
                    base = jj - off
                    for b in range(kw):
                        s += wr[b] * np.float32(src[base + b * step])
                    orow[jj] += s

    return direct


def _make_strided():
    """Direct correlation for any column stride: every column via the map."""

    @njit(cache=True, parallel=True, fastmath=_FASTMATH)
    def strided(img, nch, w, rmap, cmap, cval, out):
        oh = out.shape[0]
        ow = cmap.shape[0]
        kh, kw = w.shape
        for i in prange(oh):
            orow = out[i]
            for jj in range(orow.shape[0]):
                orow[jj] = np.float32(0.0)
            for a in range(kh):
                r = rmap[i, a]
                for j in range(ow):
                    for c in range(nch):
                        s = np.float32(0.0)
                        for b in range(kw):
                            x = cmap[j, b]
                            if r < 0 or x < 0:
                                s += w[a, b] * cval
                            else:
                                s += w[a, b] * np.float32(img[r, x * nch + c])
                        orow[j * nch + c] += s

    return strided


def _make_separable(kw_const: int):
    """Separable correlation: vertical taps ``u`` then horizontal taps ``v``.

    Per output row, the vertical pass fills a horizontally padded row buffer
    (``ext`` holds the source column of each padded position, ``-1`` for
    ``cval``), and the horizontal pass runs over it with no border logic.
    """

    @njit(cache=True, parallel=True, fastmath=_FASTMATH)
    def separable(img, nch, u, v, rmap, ext, cval, left, stride, dil, out, nblocks):
        oh = out.shape[0]
        ow = out.shape[1] // nch
        kh = u.shape[0]
        kw = kw_const if kw_const > 0 else v.shape[0]
        width = img.shape[1]
        next_ = ext.shape[0]
        step = dil * nch
        per = (oh + nblocks - 1) // nblocks
        for blk in prange(nblocks):
            tmp = np.empty(next_ * nch, dtype=np.float32)
            i0 = blk * per
            i1 = min(oh, i0 + per)
            off = left * nch
            for i in range(i0, i1):
                for x in range(width):
                    tmp[off + x] = np.float32(0.0)
                cacc = np.float32(0.0)
                for a in range(kh):
                    r = rmap[i, a]
                    ua = u[a]
                    if r < 0:
                        cacc += ua * cval
                        continue
                    src = img[r]
                    for x in range(width):
                        tmp[off + x] += ua * np.float32(src[x])
                if cacc != 0.0:
                    for x in range(width):
                        tmp[off + x] += cacc
                # padded positions: copy from the mapped interior column
                usum = np.float32(0.0)
                for a in range(kh):
                    usum += u[a]
                vcol = usum * cval
                for k in range(next_):
                    if left <= k < left + width // nch:
                        continue
                    s = ext[k]
                    for c in range(nch):
                        if s < 0:
                            tmp[k * nch + c] = vcol
                        else:
                            tmp[k * nch + c] = tmp[off + s * nch + c]
                orow = out[i]
                if stride == 1:
                    for jj in range(ow * nch):
                        s2 = np.float32(0.0)
                        for b in range(kw):
                            s2 += v[b] * tmp[jj + b * step]
                        orow[jj] = s2
                else:
                    for j in range(ow):
                        for c in range(nch):
                            base = j * stride * nch + c
                            s2 = np.float32(0.0)
                            for b in range(kw):
                                s2 += v[b] * tmp[base + b * step]
                            orow[j * nch + c] = s2

    return separable


_DIRECT = {k: _make_direct(k) for k in SPECIALISED_WIDTHS}
_DIRECT_ANY = _make_direct(0)
_STRIDED = _make_strided()
_SEPARABLE = {k: _make_separable(k) for k in SPECIALISED_WIDTHS}
_SEPARABLE_ANY = _make_separable(0)


def direct_kernel(kw: int):
    """The direct (column stride 1) kernel for width ``kw``."""
    return _DIRECT.get(kw, _DIRECT_ANY)


def strided_kernel():
    """The direct kernel for column strides above 1."""
    return _STRIDED


def separable_kernel(kw: int):
    """The separable kernel for horizontal width ``kw``."""
    return _SEPARABLE.get(kw, _SEPARABLE_ANY)
