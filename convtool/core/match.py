"""Numba kernels for template matching: window statistics, scores, peaks, suppression.

The FFT cross-correlation lives in the API layer (``convtool.detection``, numpy
only); these kernels do everything whose cost must not grow with the template's
area:

* :func:`normalize_block` turns the zero-mean cross-correlation into a zncc,
  cosine or sqdiff score. The local sums and sums of squares of each
  ``h x w`` window come from running column sums in float64 (the same numbers
  a summed-area table gives, with O(W) memory instead of two image-sized
  float64 tables), so the cost is O(H*W*C) whatever the template size.
* :func:`correlate_direct` is the plain sliding-window correlation, used for
  tiny templates where it beats the FFT.
* :func:`find_peaks` finds local maxima above a threshold, and
  :func:`greedy_suppress` keeps the best of overlapping candidates (box IoU or
  centre distance) with a uniform grid so the cost stays near-linear.

All kernels take plain arrays and scalars; nothing here imports Pillow or the CLI.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Method codes shared with ``convtool.detection``.
ZNCC = 0
COSINE = 1
SQDIFF = 2

#: float32 machine epsilon: OpenCV's flat-window rule is
#: ``variance_sum <= min(0.5, 10 * FLT_EPSILON * sum_of_squares)``.
FLT_EPSILON = 1.1920928955078125e-07


@njit(cache=True, nogil=True)
def normalize_block(
    num, planes, img_mean, h, w, method, t_mean, t_var, t_sq, t_flat, noise, y0, y1, x0, x1
):
    """Turn the zero-mean correlation into scores, in place, for ``num[y0:y1, x0:x1]``.

    Parameters
    ----------
    num : float32 (Ho, Wo)
        On entry ``sum_c sum_{u,v} (I_c[y+u, x+v] - m_c) * (T_c[u, v] - mean(T_c))``
        (``m_c`` any constant: the template is zero-mean, so it cancels); on
        exit the score. Only the block is touched.
    planes : float32 (C, H, W)
        The image, one plane per channel.
    img_mean : float64 (C,)
        Constants subtracted from each plane before the window sums (they
        cancel in the result; a value near the channel mean keeps the
        variance free of cancellation, an integer keeps integer data exact).
    h, w : int
        Template height and width.
    method : int
        ``ZNCC``, ``COSINE`` or ``SQDIFF``.
    t_mean : float64 (C,)
        Template mean per channel.
    t_var, t_sq : float
        Template sum of squared deviations and sum of squares (all channels).
    t_flat : bool
        The template is flat (zncc) or zero (cosine, sqdiff).
    noise : float
        Rounding level of the window sums: a window whose variance (zncc) or
        sum of squares (cosine, sqdiff) is at most this is flat whatever the
        relative rule says (0 for integer-valued data, which sums exactly).
    y0, y1, x0, x1 : int
        The block of outputs.

    Notes
    -----
    Column sums over the ``h`` rows of the window slide down one row at a time
    (add the new row, subtract the old), and prefix sums of them along the row
    give every window's sum: O(1) per output and channel, float64, O(W) memory.
    Releases the GIL, so FFT tiles and bands of rows are normalised on
    worker threads (:mod:`convtool.parallel`).
    """
    n_ch = planes.shape[0]
    bw = x1 - x0
    cw = bw + w - 1  # image columns the block's windows cover
    n = float(h * w)
    inv_n = 1.0 / n
    rel = 10.0 * FLT_EPSILON
    col_s = np.zeros((n_ch, cw))
    col_q = np.zeros((n_ch, cw))
    ps = np.zeros(cw + 1)
    pq = np.zeros(cw + 1)
    var = np.empty(bw)
    raw_q = np.empty(bw)
    cross = np.empty(bw)
    for c in range(n_ch):
        m = img_mean[c]
        for u in range(y0, y0 + h - 1):
            for x in range(cw):
                d = planes[c, u, x0 + x] - m
                col_s[c, x] += d
                col_q[c, x] += d * d
    for y in range(y0, y1):
        var[:] = 0.0
        raw_q[:] = 0.0
        cross[:] = 0.0
        for c in range(n_ch):
            m = img_mean[c]
            tm = t_mean[c]
            nm2 = n * m * m
            nm = n * m
            new_row = planes[c, y + h - 1, x0 : x0 + cw]
            for x in range(cw):
                d = new_row[x] - m
                col_s[c, x] += d
                col_q[c, x] += d * d
            if y > y0:
                old_row = planes[c, y - 1, x0 : x0 + cw]
                for x in range(cw):
                    d = old_row[x] - m
                    col_s[c, x] -= d
                    col_q[c, x] -= d * d
            for x in range(cw):
                ps[x + 1] = ps[x] + col_s[c, x]
                pq[x + 1] = pq[x] + col_q[c, x]
            for x in range(bw):
                s = ps[x + w] - ps[x]
                q = pq[x + w] - pq[x]
                var[x] += q - s * s * inv_n
                raw_q[x] += q + 2.0 * m * s + nm2
                cross[x] += tm * (s + nm)
        row = num[y, x0:x1]
        if method == ZNCC:
            for x in range(bw):
                v = max(var[x], 0.0)
                if t_flat or v <= max(noise, min(0.5, rel * raw_q[x])):
                    row[x] = 0.0
                else:
                    row[x] = min(1.0, max(-1.0, row[x] / np.sqrt(v * t_var)))
        elif method == COSINE:
            for x in range(bw):
                q = raw_q[x]
                if t_flat or q <= noise:
                    row[x] = 0.0
                else:
                    r = (row[x] + cross[x]) / np.sqrt(q * t_sq)
                    row[x] = min(1.0, max(-1.0, r))
        else:
            for x in range(bw):
                q = raw_q[x]
                if t_flat or q <= noise:
                    row[x] = 1.0
                else:
                    r = (q - 2.0 * (row[x] + cross[x]) + t_sq) / np.sqrt(q * t_sq)
                    row[x] = min(1.0, max(0.0, r))


@njit(cache=True, nogil=True)
def value_stats(planes):
    """Per channel: minimum, maximum, mean (float64 sums); and whether all are whole numbers."""
    n_ch = planes.shape[0]
    lo = np.empty(n_ch)
    hi = np.empty(n_ch)
    mean = np.empty(n_ch)
    integral = True
    for c in range(n_ch):
        a = planes[c].ravel()
        mn = a[0]
        mx = a[0]
        total = 0.0
        for v in a:
            mn = min(mn, v)
            mx = max(mx, v)
            total += v
            if integral and v != np.floor(v):
                integral = False
        lo[c] = mn
        hi[c] = mx
        mean[c] = total / a.size
    return lo, hi, integral, mean


@njit(cache=True, nogil=True)
def correlate_direct(planes, img_mean, tmpl, out, y0, y1):
    """``out[y, x] = sum_c sum_{u,v} (planes[c, y+u, x+v] - img_mean[c]) * tmpl[c, u, v]``.

    The plain O(H*W*h*w) correlation, for tiny templates, output rows
    ``[y0, y1)``. ``out`` is float32 (H-h+1, W-w+1); sums are kept in float64.
    """
    n_ch, h, w = tmpl.shape
    wo = out.shape[1]
    t = tmpl.astype(np.float64)
    for y in range(y0, y1):
        acc = np.zeros(wo)
        for c in range(n_ch):
            m = img_mean[c]
            for u in range(h):
                row = planes[c, y + u]
                for v in range(w):
                    tv = t[c, u, v]
                    for x in range(wo):
                        acc[x] += (row[x + v] - m) * tv
        for x in range(wo):
            out[y, x] = acc[x]


@njit(cache=True)
def find_peaks(score, threshold, sign):
    """Local maxima of ``sign * score`` that are ``>= sign * threshold``.

    A pixel is a peak when it is ``>=`` its 8 neighbours and ``>`` the four that
    come before it in raster order, so a plateau gives few candidates instead
    of one per pixel. Returns ``(ys, xs)`` as int64 arrays in raster order.
    """
    ho, wo = score.shape
    thr = sign * threshold
    ys = np.empty(64, np.int64)
    xs = np.empty(64, np.int64)
    k = 0
    for y in range(ho):
        for x in range(wo):
            v = sign * score[y, x]
            if not v >= thr:
                continue
            peak = True
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= ho:
                    continue
                for dx in range(-1, 2):
                    xx = x + dx
                    if (dy == 0 and dx == 0) or xx < 0 or xx >= wo:
                        continue
                    nv = sign * score[yy, xx]
                    earlier = dy < 0 or (dy == 0 and dx < 0)
                    if nv > v or (earlier and nv == v):
                        peak = False
                        break
                if not peak:
                    break
            if peak:
                if k == ys.shape[0]:
                    ys2 = np.empty(2 * k, np.int64)
                    xs2 = np.empty(2 * k, np.int64)
                    for q in range(k):  # element by element: a slice assignment would
                        ys2[q] = ys[q]  # compile Numba's shape-mismatch message (unicode
                        xs2[q] = xs[q]  # formatting, ~2 s of first-run compile)
                    ys = ys2
                    xs = xs2
                ys[k] = y
                xs[k] = x
                k += 1
    return ys[:k].copy(), xs[:k].copy()


@njit(cache=True)
def greedy_suppress(x0, y0, x1, y1, mode, param, max_keep, cell):
    """Greedy suppression over candidates already sorted best first.

    ``mode`` 0: drop a box whose IoU with a kept box is above ``param``;
    mode 1: drop a box whose centre is closer than ``param`` to a kept one's
    (both ``|dx| < param`` and ``|dy| < param``, a square neighbourhood). Kept
    boxes are bucketed on a grid of ``cell`` pixels (>= the largest box side,
    or ``param`` for mode 1), so each candidate only looks at nearby ones.
    Returns the kept indices, best first; at most ``max_keep`` (<= 0: no cap).
    """
    n = x0.shape[0]
    keep = np.empty(n, np.int64)
    if n == 0:
        return keep[:0]
    gx0 = x0.min()
    gy0 = y0.min()
    ncx = int((x1.max() - gx0) // cell) + 1
    ncy = int((y1.max() - gy0) // cell) + 1
    head = np.full(ncy * ncx, -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    nk = 0
    for i in range(n):
        cx = 0.5 * (x0[i] + x1[i])
        cy = 0.5 * (y0[i] + y1[i])
        gx = int((cx - gx0) // cell)
        gy = int((cy - gy0) // cell)
        area_i = (x1[i] - x0[i]) * (y1[i] - y0[i])
        ok = True
        for yy in range(max(0, gy - 1), min(ncy, gy + 2)):
            for xx in range(max(0, gx - 1), min(ncx, gx + 2)):
                j = head[yy * ncx + xx]
                while j >= 0:
                    if mode == 0:
                        iw = min(x1[i], x1[j]) - max(x0[i], x0[j])
                        ih = min(y1[i], y1[j]) - max(y0[i], y0[j])
                        if iw > 0 and ih > 0:
                            inter = iw * ih
                            area_j = (x1[j] - x0[j]) * (y1[j] - y0[j])
                            if inter > param * (area_i + area_j - inter):
                                ok = False
                    else:
                        dx = abs(cx - 0.5 * (x0[j] + x1[j]))
                        dy = abs(cy - 0.5 * (y0[j] + y1[j]))
                        if dx < param and dy < param:
                            ok = False
                    if not ok:
                        break
                    j = nxt[j]
                if not ok:
                    break
            if not ok:
                break
        if ok:
            keep[nk] = i
            nk += 1
            c = gy * ncx + gx
            nxt[i] = head[c]
            head[c] = i
            if max_keep > 0 and nk >= max_keep:
                break
    return keep[:nk].copy()
