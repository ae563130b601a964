"""Numba pooling kernels over plain 2-D float32 arrays.

Every kernel reads an input ``x`` that already carries its padding (the API
pads it once) and writes a preallocated ``out``. Window ``(i, j)`` covers rows
``i*s .. i*s+f-1`` and columns ``j*s .. j*s+f-1`` of ``x``, *clipped to the
array*: in ceil mode the last window may hang over the bottom/right edge, and
then only the part inside ``x`` counts (averages divide by that part's area,
which is PyTorch's ``count_include_pad=True`` rule).

Kernels, chosen by :mod:`convtool.pooling`:

* ``max_2x2_s2``, ``avg_2x2_s2``, ``max_3x3_s2``: window and stride known to
  the compiler, every window inside ``x`` (the API checks); one pass over the
  input rows, vectorised along the row.
* ``reduce_direct``: any window and stride, max/min/sum, F*F reads per output.
* ``reduce_separable``: max/min/sum as a row pass then a column pass, 2F reads
  per output instead of F*F; the API uses it when windows overlap a lot
  (``stride + 1 < size``).
* ``stochastic``: Zeiler & Fergus sampling from pre-drawn uniforms, or the
  probability-weighted average (test-time rule).
* ``fractional_max``: max over given region boundaries.

This module holds kernels only; validation lives in :mod:`convtool.pooling`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Reduction codes for the generic kernels.
OP_MAX = 0
OP_MIN = 1
OP_SUM = 2  # sum divided by the clipped window area (avg); lp uses it on |x|**p


@njit(cache=True, parallel=True)
def max_2x2_s2(x, out):  # pragma: no cover - compiled
    oh, ow = out.shape
    for i in prange(oh):
        r0 = x[2 * i]
        r1 = x[2 * i + 1]
        o = out[i]
        for j in range(ow):
            a = max(r0[2 * j], r0[2 * j + 1])
            b = max(r1[2 * j], r1[2 * j + 1])
            o[j] = max(a, b)


@njit(cache=True, parallel=True)
def avg_2x2_s2(x, out):  # pragma: no cover - compiled
    oh, ow = out.shape
    for i in prange(oh):
        r0 = x[2 * i]
        r1 = x[2 * i + 1]
        o = out[i]
        for j in range(ow):
            o[j] = ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])) * np.float32(0.25)


@njit(cache=True, parallel=True)
def max_3x3_s2(x, out):  # pragma: no cover - compiled
    oh, ow = out.shape
    for i in prange(oh):
        r0 = x[2 * i]
        r1 = x[2 * i + 1]
        r2 = x[2 * i + 2]
        o = out[i]
        for j in range(ow):
            c = 2 * j
            a = max(max(r0[c], r0[c + 1]), r0[c + 2])
            b = max(max(r1[c], r1[c + 1]), r1[c + 2])
            d = max(max(r2[c], r2[c + 1]), r2[c + 2])
            o[j] = max(max(a, b), d)


@njit(cache=True)
def _extent(start, f, n):  # pragma: no cover - compiled
    return min(start + f, n) - start


@njit(cache=True, parallel=True)
def reduce_direct(x, out, op, f, s):  # pragma: no cover - compiled
    """Max / min / average over clipped f x f windows with stride s."""
    h, w = x.shape
    oh, ow = out.shape
    # columns whose window lies fully inside x; the rest are clipped
    full = ow
    while full > 0 and (full - 1) * s + f > w:
        full -= 1
    for i in prange(oh):
        r0 = i * s
        nr = _extent(r0, f, h)
        o = out[i]
        if op == OP_MAX:
            for j in range(ow):
                o[j] = -np.inf
            for k in range(nr):
                row = x[r0 + k]
                for j in range(full):
                    c = j * s
                    acc = o[j]
                    for kk in range(f):
                        acc = max(acc, row[c + kk])
                    o[j] = acc
                for j in range(full, ow):
                    c = j * s
                    acc = o[j]
                    for kk in range(_extent(c, f, w)):
                        acc = max(acc, row[c + kk])
                    o[j] = acc
        elif op == OP_MIN:
            for j in range(ow):
                o[j] = np.inf
            for k in range(nr):
                row = x[r0 + k]
                for j in range(full):
                    c = j * s
                    acc = o[j]
                    for kk in range(f):
                        acc = min(acc, row[c + kk])
                    o[j] = acc
                for j in range(full, ow):
                    c = j * s
                    acc = o[j]
                    for kk in range(_extent(c, f, w)):
                        acc = min(acc, row[c + kk])
                    o[j] = acc
        else:
            for j in range(ow):
                o[j] = 0.0
            for k in range(nr):
                row = x[r0 + k]
                for j in range(full):
                    c = j * s
                    acc = o[j]
                    for kk in range(f):
                        acc += row[c + kk]
                    o[j] = acc
                for j in range(full, ow):
                    c = j * s
                    acc = o[j]
                    for kk in range(_extent(c, f, w)):
                        acc += row[c + kk]
                    o[j] = acc
            for j in range(ow):
                o[j] = o[j] / np.float32(nr * _extent(j * s, f, w))


@njit(cache=True, parallel=True)
def reduce_separable(x, out, op, f, s):  # pragma: no cover - compiled
    """Same result as :func:`reduce_direct`: a row pass, then a column pass."""
    h, w = x.shape
    oh, ow = out.shape
    nrows = min((oh - 1) * s + f, h)
    tmp = np.empty((nrows, ow), dtype=np.float32)
    for r in prange(nrows):
        row = x[r]
        t = tmp[r]
        for j in range(ow):
            c = j * s
            n = _extent(c, f, w)
            acc = row[c]
            if op == OP_MAX:
                for kk in range(1, n):
                    acc = max(acc, row[c + kk])
            elif op == OP_MIN:
                for kk in range(1, n):
                    acc = min(acc, row[c + kk])
            else:
                for kk in range(1, n):
                    acc += row[c + kk]
            t[j] = acc
    for i in prange(oh):
        r0 = i * s
        nr = _extent(r0, f, nrows)
        o = out[i]
        first = tmp[r0]
        for j in range(ow):
            o[j] = first[j]
        for k in range(1, nr):
            t = tmp[r0 + k]
            if op == OP_MAX:
                for j in range(ow):
                    o[j] = max(o[j], t[j])
            elif op == OP_MIN:
                for j in range(ow):
                    o[j] = min(o[j], t[j])
            else:
                for j in range(ow):
                    o[j] += t[j]
        if op == OP_SUM:
            for j in range(ow):
                o[j] = o[j] / np.float32(nr * _extent(j * s, f, w))


@njit(cache=True, parallel=True)
def stochastic(x, out, u, f, s, evaluate):  # pragma: no cover - compiled
    """Stochastic pooling over clipped windows of non-negative ``x``.

    Training rule: with ``t = u[i, j] * sum(window)``, pick the first sample in
    row-major order whose running sum exceeds ``t`` (all-zero window -> 0).
    ``evaluate``: the probability-weighted average sum(a*a) / sum(a).
    """
    h, w = x.shape
    oh, ow = out.shape
    for i in prange(oh):
        r0 = i * s
        nr = _extent(r0, f, h)
        for j in range(ow):
            c0 = j * s
            nc = _extent(c0, f, w)
            total = 0.0
            squares = 0.0
            for k in range(nr):
                for kk in range(nc):
                    v = np.float64(x[r0 + k, c0 + kk])
                    total += v
                    squares += v * v
            if total <= 0.0:
                out[i, j] = 0.0
                continue
            if evaluate:
                out[i, j] = squares / total
                continue
            threshold = u[i, j] * total
            running = 0.0
            pick = 0.0
            done = False
            for k in range(nr):
                for kk in range(nc):
                    v = np.float64(x[r0 + k, c0 + kk])
                    if v > 0.0:
                        pick = v  # rounding fallback: the last positive sample
                        running += v
                        if running > threshold:
                            done = True
                            break
                if done:
                    break
            out[i, j] = pick


@njit(cache=True, parallel=True)
def fractional_max(x, out, rows, cols, overlap):  # pragma: no cover - compiled
    """Max over regions ``[rows[i], rows[i+1])`` x ``[cols[j], cols[j+1])``.

    With ``overlap`` each region also takes the next boundary row/column
    (``[a_i, a_{i+1}]``), clipped to the array.
    """
    h, w = x.shape
    oh, ow = out.shape
    extra = 1 if overlap else 0
    for i in prange(oh):
        r0 = rows[i]
        r1 = min(rows[i + 1] + extra, h)
        o = out[i]
        for j in range(ow):
            o[j] = -np.inf
        for r in range(r0, r1):
            row = x[r]
            for j in range(ow):
                c1 = min(cols[j + 1] + extra, w)
                acc = o[j]
                for c in range(cols[j], c1):
                    acc = max(acc, row[c])
                o[j] = acc
