"""Numba kernels for 2-D correlation over plain arrays (direct and separable).

Everything here computes a *correlation* of an image with a kernel that the
API layer has already oriented (flipped for true convolution), anchored and
padded by index maps. Nothing here validates: :mod:`convtool.filtering` does.

Layout
------
An image is passed as a C-contiguous 2-D array ``(H, W*C)``: a grey image has
``C == 1`` and a colour image ``(H, W, C)`` is the same memory reshaped, so
channel ``c`` of pixel ``x`` sits at column ``x*C + c``. Inputs may be
float32 or uint8 (read as float32; the API converts other dtypes first);
outputs are float32 and arithmetic is float32 throughout.

Borders are never materialised as a padded copy of the image:

* ``rmap[i, a]`` is the source row of kernel row ``a`` for output row ``i``
  (``-1`` means "outside the image, use ``cval``", only in constant mode);
* ``cmap[j, b]`` is the source column of kernel column ``b`` for output
  column ``j`` (same convention);
* the interior output columns ``[lo, hi)`` read source column
  ``j + dil*b - left`` directly in a tight loop that the compiler vectorises.

The inner loops are the generated tap loops of :mod:`convtool.core.conv_taps`
(one function per tap count 1-9, wider rows in chunks of 9): each is a dot
product of shifted views of one source row (or of three rows at once, so the
output row is read and written once per three kernel rows) with scalar
weights, which LLVM vectorises. There is one driver per algorithm (``direct``,
``separable``), compiled per input dtype and cached on disk. Each computes the
output rows ``[i0, i1)`` on the calling thread and releases the GIL: the API
runs blocks of rows on Python threads (:mod:`convtool.parallel`), which costs
far less to compile than a Numba ``prange`` loop and lets Dask's threads run
the kernels side by side.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .conv_taps import acc1, taps3_acc, taps3_set, taps_acc, taps_set, taps_sym_set
from .indexing import CONSTANT, REFLECT, REPLICATE, SYMMETRIC, VALID, WRAP, index_map

__all__ = ["CONSTANT", "REFLECT", "REPLICATE", "SYMMETRIC", "VALID", "WRAP", "index_map"]

_FASTMATH = {"contract", "arcp", "nsz"}


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def direct(img, nch, w, rmap, cmap, cval, lo, hi, dil, out, i0, i1):
    """Direct correlation with column stride 1 (any kernel size), output rows ``[i0, i1)``.

    Interior columns ``[lo, hi)`` run :func:`taps3_acc` / :func:`taps_acc` on
    views of the source rows (vectorised); the border columns go through
    ``cmap`` one value at a time. Rows come from ``rmap``.
    """
    ow = cmap.shape[0]
    kh, kw = w.shape
    step = dil * nch
    n = (hi - lo) * nch
    fuse = kw == 3 or kw == 5  # three rows per pass: the two common narrow widths
    rowsum = np.zeros(kh, dtype=np.float32)
    for a in range(kh):
        for b in range(kw):
            rowsum[a] += w[a, b]
    for i in range(i0, i1):
        orow = out[i]
        if n > 0:
            inner = orow[lo * nch : hi * nch]
            first = True
            outside = False
            extra = np.float32(0.0)
            a = 0
            while a < kh:
                r = rmap[i, a]
                if r < 0:
                    outside = True
                    extra += rowsum[a] * cval
                    a += 1
                    continue
                if fuse and a + 2 < kh and rmap[i, a + 1] >= 0 and rmap[i, a + 2] >= 0:
                    r1 = rmap[i, a + 1]
                    r2 = rmap[i, a + 2]
                    if first:  # the first pass stores: no zeroing pass over the row
                        taps3_set(img[r], img[r1], img[r2], step, w[a : a + 3], inner, n)
                    else:
                        taps3_acc(img[r], img[r1], img[r2], step, w[a : a + 3], inner, n)
                    first = False
                    a += 3
                    continue
                if first:
                    taps_set(img[r], step, w[a], inner, n)
                    first = False
                else:
                    taps_acc(img[r], step, w[a], inner, n)
                a += 1
            if first:  # every kernel row outside (constant padding)
                for k in range(n):
                    inner[k] = 0.0
            if outside:
                for k in range(n):
                    inner[k] += extra
        nb = lo + (ow - hi)
        for jb in range(nb):
            j = jb if jb < lo else hi + (jb - lo)
            for c in range(nch):
                s = np.float32(0.0)
                for a in range(kh):
                    r = rmap[i, a]
                    for b in range(kw):
                        x = cmap[j, b]
                        if r < 0 or x < 0:
                            s += w[a, b] * cval
                        else:
                            s += w[a, b] * np.float32(img[r, x * nch + c])
                orow[j * nch + c] = s


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def separable(img, nch, u, v, symu, symv, rmap, ilo, ihi, ext, cval, left, dil, out, i0, i1):
    """Separable correlation, output rows ``[i0, i1)``: vertical taps ``u``, then horizontal ``v``.

    Per output row, the vertical pass fills a horizontally padded row buffer
    (``ext[k]`` is the source column of padded position ``k``, ``-1`` for
    ``cval``); rows ``[ilo, ihi)`` have all their source rows inside the image
    at spacing ``dil``, so their vertical pass is one fused tap loop over the
    flattened image. The horizontal pass then runs with no border logic.
    ``symu`` / ``symv``: the taps are symmetric (paired multiplies).
    """
    ow = out.shape[1] // nch
    kh = u.shape[0]
    rowlen = img.shape[1]
    width = rowlen // nch
    next_ = ext.shape[0]
    step = dil * nch
    flat = img.reshape(img.shape[0] * rowlen)
    usum = np.float32(0.0)
    for a in range(kh):
        usum += u[a]
    off = left * nch
    tmp = np.empty(next_ * nch, dtype=np.float32)
    mid = tmp[off : off + rowlen]
    for i in range(i0, i1):
        if ilo <= i < ihi:
            if symu:
                taps_sym_set(flat[rmap[i, 0] * rowlen :], dil * rowlen, u, mid, rowlen)
            else:
                taps_set(flat[rmap[i, 0] * rowlen :], dil * rowlen, u, mid, rowlen)
        else:
            outside = False
            extra = np.float32(0.0)
            for x in range(rowlen):
                mid[x] = 0.0
            for a in range(kh):
                r = rmap[i, a]
                if r < 0:
                    outside = True
                    extra += u[a] * cval
                else:
                    acc1(img[r], rowlen, u[a : a + 1], mid, rowlen)
            if outside:
                for x in range(rowlen):
                    mid[x] += extra
        # padded positions: copy from the mapped column (cval columns: usum*cval)
        for kb in range(next_ - width):
            k = kb if kb < left else kb + width
            sc = ext[k]
            for c in range(nch):
                if sc < 0:
                    tmp[k * nch + c] = usum * cval
                else:
                    tmp[k * nch + c] = tmp[off + sc * nch + c]
        if symv:
            taps_sym_set(tmp, step, v, out[i], ow * nch)
        else:
            taps_set(tmp, step, v, out[i], ow * nch)
