"""Numba kernels for template matching: window statistics, scores, peaks, suppression.

The FFT cross-correlation lives in the API layer (``convtool.detection``, numpy
only); these kernels do everything whose cost must not grow with the template's
area:

* :func:`normalize_scores` turns the zero-mean cross-correlation into a zncc,
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
from numba import njit, prange

#: Method codes shared with ``convtool.detection``.
ZNCC = 0
COSINE = 1
SQDIFF = 2

#: float32 machine epsilon: OpenCV's flat-window rule is
#: ``variance_sum <= min(0.5, 10 * FLT_EPSILON * sum_of_squares)``.
FLT_EPSILON = 1.1920928955078125e-07


@njit(cache=True, parallel=True)
def normalize_scores(
    num, planes, img_mean, h, w, method, t_mean, t_var, t_sq, t_flat, noise, nbands
):
    """Turn the zero-mean correlation ``num`` into scores, in place.

    Parameters
    ----------
    num : float32 (Ho, Wo)
        On entry ``sum_c sum_{u,v} (I_c[y+u, x+v] - m_c) * (T_c[u, v] - mean(T_c))``
        (``m_c`` any constant, the image mean gives the best rounding); on exit
        the score.
    planes : float32 (C, H, W)
        The image, one plane per channel.
    img_mean : float64 (C,)
        Constants subtracted from each plane before the running sums (they
        cancel in the result; a value near the channel mean keeps the
        variance free of cancellation, an integer keeps integer data exact).
        ``num`` does not depend on them: its template is zero-mean.
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
        Rounding level of the running sums: a window whose variance (zncc) or
        sum of squares (cosine, sqdiff) is at most this is flat whatever the
        relative rule says (0 for integer-valued data, which sums exactly).
    nbands : int
        Row bands processed in parallel (each restarts its running sums).
    """
    n_ch, height, width = planes.shape
    ho, wo = num.shape
    n = float(h * w)
    nbands = min(ho, max(1, nbands))
    band = (ho + nbands - 1) // nbands
    nbands = (ho + band - 1) // band
    for b in prange(nbands):
        y0 = b * band
        y1 = min(ho, y0 + band)
        col_s = np.zeros((n_ch, width))
        col_q = np.zeros((n_ch, width))
        win_s = np.zeros(n_ch)
        win_q = np.zeros(n_ch)
        for c in range(n_ch):
            m = img_mean[c]
            for u in range(y0, y0 + h - 1):
                for x in range(width):
                    d = planes[c, u, x] - m
                    col_s[c, x] += d
                    col_q[c, x] += d * d
        for y in range(y0, y1):
            # add the window's last row, drop the row above the window
            for c in range(n_ch):
                m = img_mean[c]
                for x in range(width):
                    d = planes[c, y + h - 1, x] - m
                    col_s[c, x] += d
                    col_q[c, x] += d * d
                if y > y0:
                    for x in range(width):
                        d = planes[c, y - 1, x] - m
                        col_s[c, x] -= d
                        col_q[c, x] -= d * d
                s = 0.0
                q = 0.0
                for x in range(w - 1):
                    s += col_s[c, x]
                    q += col_q[c, x]
                win_s[c] = s
                win_q[c] = q
            for x in range(wo):
                var = 0.0
                raw_q = 0.0
                cross = 0.0
                for c in range(n_ch):
                    m = img_mean[c]
                    win_s[c] += col_s[c, x + w - 1]
                    win_q[c] += col_q[c, x + w - 1]
                    s = win_s[c]
                    q = win_q[c]
                    var += q - s * s / n
                    raw_s = s + n * m
                    raw_q += q + 2.0 * m * s + n * m * m
                    cross += t_mean[c] * raw_s
                    win_s[c] -= col_s[c, x]
                    win_q[c] -= col_q[c, x]
                z = float(num[y, x])
                if method == ZNCC:
                    if var < 0.0:
                        var = 0.0
                    if t_flat or var <= max(noise, min(0.5, 10.0 * FLT_EPSILON * raw_q)):
                        r = 0.0
                    else:
                        r = z / np.sqrt(var * t_var)
                        r = min(1.0, max(-1.0, r))
                elif method == COSINE:
                    if raw_q < 0.0:
                        raw_q = 0.0
                    if t_flat or raw_q <= noise:
                        r = 0.0
                    else:
                        r = (z + cross) / np.sqrt(raw_q * t_sq)
                        r = min(1.0, max(-1.0, r))
                else:
                    if raw_q < 0.0:
                        raw_q = 0.0
                    if t_flat or raw_q <= noise:
                        r = 1.0
                    else:
                        r = (raw_q - 2.0 * (z + cross) + t_sq) / np.sqrt(raw_q * t_sq)
                        r = min(1.0, max(0.0, r))
                num[y, x] = r


@njit(cache=True)
def is_integral(planes):
    """True when every value is a whole number (so float64 sums of them are exact)."""
    for v in planes.ravel():
        if v != np.floor(v):
            return False
    return True


@njit(cache=True, parallel=True)
def correlate_direct(planes, img_mean, tmpl, out):
    """``out[y, x] = sum_c sum_{u,v} (planes[c, y+u, x+v] - img_mean[c]) * tmpl[c, u, v]``.

    The plain O(H*W*h*w) correlation, for tiny templates. ``out`` is float32
    (H-h+1, W-w+1); sums are kept in float64.
    """
    n_ch, h, w = tmpl.shape
    ho, wo = out.shape
    t = tmpl.astype(np.float64)
    for y in prange(ho):
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
                    ys2[:k] = ys
                    xs2[:k] = xs
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
