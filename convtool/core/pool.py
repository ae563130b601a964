"""Numba pooling kernels over plain 2-D float32 arrays.

The image is never padded as a whole. The API describes each axis by an
*index map* over padded coordinates: padded row ``q`` reads image row
``rowmap[q]`` (any pad mode becomes an index), ``FILL`` (constant padding:
the fill value) or ``SKIP`` (beyond the padded border, which only a ceil-mode
window reaches; it is left out, and an average divides by the samples left,
PyTorch's ``count_include_pad=True`` rule). Window ``(i, j)`` covers padded
rows ``i*s .. i*s+f-1`` and columns ``j*s .. j*s+f-1``.

Kernels, chosen by :mod:`convtool.pooling`:

* ``max_2x2_s2``, ``avg_2x2_s2``, ``max_3x3_s2``: window and stride known to
  the compiler, for the box of outputs whose windows lie inside the image;
  one pass over the input rows, vectorised along the row. The border strips
  around that box go to ``reduce_table``.
* ``reduce_table``: any window and stride, max/min/average, F*F reads per
  output; interior columns are read directly, border columns through the map.
* ``reduce_table_separable``: the same result as a row pass then a column
  pass per band of output rows (2F reads per output instead of F*F), for
  overlapping windows (``stride + 1 < size``).
* ``stochastic``: Zeiler & Fergus sampling from pre-drawn uniforms, or the
  probability-weighted average (test-time rule).
* ``fractional_max``: max over given region boundaries.

Every kernel computes a range of output rows ``[i0, i1)`` (bands
``[b0, b1)`` for the separable one) on the calling thread and releases the
GIL; :mod:`convtool.pooling` runs blocks of rows on Python threads
(:mod:`convtool.parallel`), which compiles much faster than ``prange``.

This module holds kernels only; validation lives in :mod:`convtool.pooling`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .pool_codes import FILL, OP_MAX, OP_MIN, OP_SUM, SKIP

__all__ = ["FILL", "OP_MAX", "OP_MIN", "OP_SUM", "SKIP"]


# The specialised loops index with unsigned integers: Numba then skips the
# negative-index wraparound test, and the loops vectorise (about 1.5x faster).
_ONE = np.uint64(1)
_TWO = np.uint64(2)


@njit(cache=True, nogil=True)
def max_2x2_s2(x, out, i0, i1, j0, j1, off):  # pragma: no cover - compiled
    """``out[i, j]`` for the box ``[i0, i1) x [j0, j1)``; window at ``x[2i-off, 2j-off]``."""
    for i in range(i0, i1):
        r0 = x[2 * i - off]
        r1 = x[2 * i - off + 1]
        o = out[i]
        for j in range(j0, j1):
            c = np.uint64(2 * j - off)
            o[np.uint64(j)] = max(max(r0[c], r0[c + _ONE]), max(r1[c], r1[c + _ONE]))


@njit(cache=True, nogil=True)
def avg_2x2_s2(x, out, i0, i1, j0, j1, off):  # pragma: no cover - compiled
    quarter = np.float32(0.25)
    for i in range(i0, i1):
        r0 = x[2 * i - off]
        r1 = x[2 * i - off + 1]
        o = out[i]
        for j in range(j0, j1):
            c = np.uint64(2 * j - off)
            o[np.uint64(j)] = ((r0[c] + r0[c + _ONE]) + (r1[c] + r1[c + _ONE])) * quarter


@njit(cache=True, nogil=True)
def max_3x3_s2(x, out, i0, i1, j0, j1, off):  # pragma: no cover - compiled
    for i in range(i0, i1):
        r0 = x[2 * i - off]
        r1 = x[2 * i - off + 1]
        r2 = x[2 * i - off + 2]
        o = out[i]
        for j in range(j0, j1):
            c = np.uint64(2 * j - off)
            a = max(max(r0[c], r0[c + _ONE]), r0[c + _TWO])
            b = max(max(r1[c], r1[c + _ONE]), r1[c + _TWO])
            d = max(max(r2[c], r2[c + _ONE]), r2[c + _TWO])
            o[np.uint64(j)] = max(max(a, b), d)


@njit(cache=True)
def _combine(op, a, b):  # pragma: no cover - compiled
    if op == OP_MAX:
        return max(a, b)
    if op == OP_MIN:
        return min(a, b)
    return a + b


@njit(cache=True)
def _initial(op):  # pragma: no cover - compiled
    if op == OP_MAX:
        return -np.inf
    if op == OP_MIN:
        return np.inf
    return 0.0


@njit(cache=True)
def _split(j0, j1, ja, jb):  # pragma: no cover - compiled
    """Cut ``[j0, j1)`` into border / interior ``[lo, hi)`` / border."""
    lo = min(max(j0, ja), j1)
    hi = max(min(j1, jb), lo)
    return lo, hi


@njit(cache=True)
def _row_reduce(op, row, colmap, fill, f, s, off, j):  # pragma: no cover - compiled
    """Reduce one image row over window column ``j`` through the column map."""
    acc = _initial(op)
    for kk in range(f):
        c = colmap[j * s + kk]
        if c == SKIP:
            continue
        v = fill if c == FILL else row[c]
        acc = _combine(op, acc, v)
    return acc


@njit(cache=True)
def _accumulate_strided(op, row, o, lo, hi, f, s, off):  # pragma: no cover - compiled
    # Window offset outermost, output column innermost, so that the compiler
    # vectorises along the row. Two details make that happen: unsigned indices
    # (no negative-index wraparound test per element) and ``+ 0`` after
    # max/min (else LLVM turns "store back the max" into a conditional store
    # and gives up on vectorising).
    zero = o.dtype.type(0)
    if op == OP_MAX:
        for kk in range(f):
            for j in range(lo, hi):
                ju = np.uint64(j)
                o[ju] = max(o[ju], row[np.uint64(j * s - off + kk)]) + zero
    elif op == OP_MIN:
        for kk in range(f):
            for j in range(lo, hi):
                ju = np.uint64(j)
                o[ju] = min(o[ju], row[np.uint64(j * s - off + kk)]) + zero
    else:
        for kk in range(f):
            for j in range(lo, hi):
                ju = np.uint64(j)
                o[ju] += row[np.uint64(j * s - off + kk)]


@njit(cache=True)
def _accumulate_interior(op, row, o, lo, hi, f, s, off):  # pragma: no cover - compiled
    """``o[j] = op(o[j], row[j*s-off .. j*s-off+f-1])`` for j in [lo, hi).

    Strides 1 and 2 get their own copies of the loop with the stride a
    constant, so they vectorise.
    """
    if s == 1:
        _accumulate_strided(op, row, o, lo, hi, f, 1, off)
    elif s == 2:
        _accumulate_strided(op, row, o, lo, hi, f, 2, off)
    else:
        _accumulate_strided(op, row, o, lo, hi, f, s, off)


@njit(cache=True)
def _accumulate_rows(op, o, t, n):  # pragma: no cover - compiled
    """``o[j] = op(o[j], t[j])`` for j < n, one vectorisable loop per op."""
    zero = o.dtype.type(0)
    if op == OP_MAX:
        for j in range(n):
            o[j] = max(o[j], t[j]) + zero
    elif op == OP_MIN:
        for j in range(n):
            o[j] = min(o[j], t[j]) + zero
    else:
        for j in range(n):
            o[j] += t[j]


@njit(cache=True)
def _table_row(
    x, o, op, rowmap, colmap, fill, ncols, f, s, off, i, j0, j1, lo, hi
):  # pragma: no cover - compiled
    """Output row ``i`` of :func:`reduce_table`, columns ``[j0, j1)``."""
    for j in range(j0, j1):
        o[j] = _initial(op)
    nrows = 0
    for k in range(f):
        r = rowmap[i * s + k]
        if r == SKIP:
            continue
        nrows += 1
        if r == FILL:
            for j in range(j0, j1):
                if op == OP_SUM:
                    o[j] += fill * ncols[j]
                else:
                    o[j] = _combine(op, o[j], fill)
            continue
        row = x[r]
        _accumulate_interior(op, row, o, lo, hi, f, s, off)
        for j in range(j0, lo):
            o[j] = _combine(op, o[j], _row_reduce(op, row, colmap, fill, f, s, off, j))
        for j in range(hi, j1):
            o[j] = _combine(op, o[j], _row_reduce(op, row, colmap, fill, f, s, off, j))
    if op == OP_SUM:
        for j in range(j0, j1):
            o[j] = o[j] / (nrows * ncols[j])


@njit(cache=True, nogil=True)
def reduce_table(
    x, out, op, rowmap, colmap, fill, ncols, f, s, off, i0, i1, j0, j1, ja, jb
):  # pragma: no cover - compiled
    """Max / min / average of the box ``[i0, i1) x [j0, j1)`` of ``out``, directly.

    Window ``(i, j)`` reads padded rows ``i*s .. i*s+f-1``; ``rowmap`` and
    ``colmap`` send a padded coordinate to an index of ``x``, to FILL
    (constant padding, value ``fill``) or to SKIP (beyond the padded border).
    Columns ``[ja, jb)`` are interior (``colmap[q] == q - off`` over the whole
    window) and are read without the map. ``ncols[j]``: non-SKIP columns of
    window ``j``, for the average's divisor.
    """
    lo, hi = _split(j0, j1, ja, jb)
    for i in range(i0, i1):
        _table_row(x, out[i], op, rowmap, colmap, fill, ncols, f, s, off, i, j0, j1, lo, hi)


@njit(cache=True)
def _separable_band(
    x, out, op, rowmap, colmap, fill, ncols, f, s, off, i0, i1, lo, hi
):  # pragma: no cover - compiled
    """Output rows ``[i0, i1)`` of :func:`reduce_table_separable`."""
    ow = out.shape[1]
    q0 = i0 * s
    nq = (i1 - 1) * s + f - q0
    tmp = np.empty((nq, ow), dtype=out.dtype)
    for q in range(nq):
        r = rowmap[q0 + q]
        t = tmp[q]
        if r == SKIP:
            continue
        if r == FILL:
            for j in range(ow):
                t[j] = fill * ncols[j] if op == OP_SUM else fill
            continue
        row = x[r]
        for j in range(lo, hi):
            t[j] = _initial(op)
        _accumulate_interior(op, row, t, lo, hi, f, s, off)
        for j in range(0, lo):
            t[j] = _row_reduce(op, row, colmap, fill, f, s, off, j)
        for j in range(hi, ow):
            t[j] = _row_reduce(op, row, colmap, fill, f, s, off, j)
    for i in range(i0, i1):
        o = out[i]
        for j in range(ow):
            o[j] = _initial(op)
        nrows = 0
        for k in range(f):
            if rowmap[i * s + k] == SKIP:
                continue
            nrows += 1
            _accumulate_rows(op, o, tmp[i * s + k - q0], ow)
        if op == OP_SUM:
            for j in range(ow):
                o[j] = o[j] / (nrows * ncols[j])


@njit(cache=True, nogil=True)
def reduce_table_separable(
    x, out, op, rowmap, colmap, fill, ncols, f, s, off, ja, jb, band, b0, b1
):  # pragma: no cover - compiled
    """Same result as :func:`reduce_table` over bands ``[b0, b1)`` of ``band``
    output rows each: per band, a row pass into a small buffer, then a column pass.

    2F reads per output instead of F*F, for overlapping windows.
    """
    oh, ow = out.shape
    lo, hi = _split(0, ow, ja, jb)
    for b in range(b0, b1):
        i0 = b * band
        _separable_band(
            x, out, op, rowmap, colmap, fill, ncols, f, s, off, i0, min(oh, i0 + band), lo, hi
        )


@njit(cache=True)
def _sample(x, rowmap, colmap, fill, r, c):  # pragma: no cover - compiled
    """Window sample at padded (r, c) as float64; -1.0 marks a SKIP position."""
    ri = rowmap[r]
    ci = colmap[c]
    if ri == SKIP or ci == SKIP:
        return -1.0
    if ri == FILL or ci == FILL:
        return fill
    return np.float64(x[ri, ci])


@njit(cache=True, nogil=True)
def stochastic(
    x, out, u, rowmap, colmap, fill, f, s, evaluate, i0, i1
):  # pragma: no cover - compiled
    """Stochastic pooling of non-negative ``x``, output rows ``[i0, i1)``.

    The maps are as in :func:`reduce_table`.
    Training rule: with ``t = u[i, j] * sum(window)``, pick the first sample in
    row-major order whose running sum exceeds ``t`` (all-zero window -> 0).
    ``evaluate``: the probability-weighted average sum(a*a) / sum(a).
    """
    ow = out.shape[1]
    for i in range(i0, i1):
        for j in range(ow):
            total = 0.0
            squares = 0.0
            for k in range(f):
                for kk in range(f):
                    v = _sample(x, rowmap, colmap, fill, i * s + k, j * s + kk)
                    if v > 0.0:
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
            for k in range(f):
                for kk in range(f):
                    v = _sample(x, rowmap, colmap, fill, i * s + k, j * s + kk)
                    if v > 0.0:
                        pick = v  # rounding fallback: the last positive sample
                        running += v
                        if running > threshold:
                            done = True
                            break
                if done:
                    break
            out[i, j] = pick


@njit(cache=True, nogil=True)
def fractional_max(x, out, rows, cols, overlap, i0, i1):  # pragma: no cover - compiled
    """Max over regions ``[rows[i], rows[i+1])`` x ``[cols[j], cols[j+1])``, rows ``[i0, i1)``.

    With ``overlap`` each region also takes the next boundary row/column
    (``[a_i, a_{i+1}]``), clipped to the array.
    """
    h, w = x.shape
    ow = out.shape[1]
    extra = 1 if overlap else 0
    for i in range(i0, i1):
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


@njit(cache=True)
def _edge_max(row, o, q0, q1, left, first):  # pragma: no cover - compiled
    """Outputs q0 <= q < q1 of a 3-wide stride-2 row max, taps outside ``row`` left out."""
    w = row.shape[0]
    for q in range(q0, q1):
        v = -np.inf
        for j in range(3):
            col = 2 * q - left + j
            if 0 <= col < w:
                v = max(v, row[col])
        o[q] = v if first else max(o[q], v)


@njit(cache=True, nogil=True)
def max_3x3_s2_planes(x, out, top, left, c0, c1):  # pragma: no cover - compiled
    """3x3 stride-2 max pooling of planes c0 <= c < c1 of a (C, H, W) stack, in place.

    Output (y, q) covers rows ``2y - top ..`` and columns ``2q - left ..`` of
    its plane; what lies outside the plane is left out (padding of -inf and
    ceil mode's overhang), so the planes are read where they are, with no
    padded copy. Columns whose three taps are all inside run in the
    vectorised loop of :func:`max_3x3_s2`.
    """
    h = x.shape[1]
    w = x.shape[2]
    oh = out.shape[1]
    ow = out.shape[2]
    q_lo = min(ow, max(0, (left + 1) // 2))  # first q with 2q - left >= 0
    q_hi = max(q_lo, min(ow, (w - 3 + left) // 2 + 1))  # past the last with 2q - left + 2 < w
    for c in range(c0, c1):
        plane = x[c]
        for y in range(oh):
            o = out[c, y]
            r0 = 2 * y - top
            if r0 >= 0 and r0 + 2 < h:  # all three rows inside: one pass, as max_3x3_s2
                ra = plane[r0]
                rb = plane[r0 + 1]
                rc = plane[r0 + 2]
                for q in range(q_lo, q_hi):
                    s = np.uint64(2 * q - left)
                    a = max(max(ra[s], ra[s + _ONE]), ra[s + _TWO])
                    b = max(max(rb[s], rb[s + _ONE]), rb[s + _TWO])
                    d = max(max(rc[s], rc[s + _ONE]), rc[s + _TWO])
                    o[np.uint64(q)] = max(max(a, b), d)
                for e in range(q_lo + ow - q_hi):  # the edge columns: taps outside left out
                    q = e if e < q_lo else q_hi + e - q_lo
                    v = -np.inf
                    for j in range(3):
                        col = 2 * q - left + j
                        if 0 <= col < w:
                            v = max(v, max(max(ra[col], rb[col]), rc[col]))
                    o[q] = v
                continue
            rows = 0
            for i in range(3):
                if 0 <= r0 + i < h:
                    row = plane[r0 + i]
                    if rows == 0:
                        for q in range(q_lo, q_hi):
                            s = np.uint64(2 * q - left)
                            o[np.uint64(q)] = max(max(row[s], row[s + _ONE]), row[s + _TWO])
                    else:
                        for q in range(q_lo, q_hi):
                            s = np.uint64(2 * q - left)
                            v = max(max(row[s], row[s + _ONE]), row[s + _TWO])
                            o[np.uint64(q)] = max(o[np.uint64(q)], v)
                    _edge_max(row, o, 0, q_lo, left, rows == 0)
                    _edge_max(row, o, q_hi, ow, left, rows == 0)
                    rows += 1
            if rows == 0:
                for q in range(ow):
                    o[q] = -np.inf
