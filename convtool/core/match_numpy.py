"""The kernels of :mod:`convtool.core.match` in plain numpy (no Numba).

Same names, arguments and results, so :mod:`convtool.detection` can run a
small job on either (rent or buy, :mod:`convtool.rentbuy`): a single
``convtool detect`` on a photo then never pays Numba's start-up or a first
compile. The arithmetic is the kernels' own, in the same order where it
matters: on integer-valued images (every 8- and 16-bit file) all window sums
are exact in float64 and the scores are bit for bit the kernels'. They need
O(H*W) float64 memory where the kernels need O(W): for small jobs only.
"""

from __future__ import annotations

import numpy as np

#: The method codes and epsilon of :mod:`convtool.core.match` (which imports
#: Numba, so they are repeated here; a test checks they agree).
ZNCC = 0
COSINE = 1
SQDIFF = 2
FLT_EPSILON = 1.1920928955078125e-07

__all__ = [
    "COSINE",
    "FLT_EPSILON",
    "SQDIFF",
    "ZNCC",
    "correlate_direct",
    "find_peaks",
    "greedy_suppress",
    "normalize_block",
    "value_stats",
]


def _window_sums(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums of every ``h x w`` window of ``a`` (float64): column sums, then row sums."""
    c = np.zeros((a.shape[0] + 1, a.shape[1]))
    np.cumsum(a, axis=0, out=c[1:])
    cols = c[h:] - c[:-h]
    r = np.zeros((cols.shape[0], cols.shape[1] + 1))
    np.cumsum(cols, axis=1, out=r[:, 1:])
    return r[:, w:] - r[:, :-w]


def normalize_block(
    num, planes, img_mean, h, w, method, t_mean, t_var, t_sq, t_flat, noise, y0, y1, x0, x1
):
    """:func:`convtool.core.match.normalize_block` in numpy (same arguments)."""
    n = float(h * w)
    var = np.zeros((y1 - y0, x1 - x0))
    raw_q = np.zeros_like(var)
    cross = np.zeros_like(var)
    for c in range(planes.shape[0]):
        m = img_mean[c]
        d = planes[c, y0 : y1 + h - 1, x0 : x1 + w - 1] - m  # float32 - float64: float64
        s = _window_sums(d, h, w)
        q = _window_sums(d * d, h, w)
        var += q - s * s * (1.0 / n)
        raw_q += q + 2.0 * m * s + n * m * m
        cross += t_mean[c] * (s + n * m)
    row = num[y0:y1, x0:x1]
    if method == ZNCC:
        v = np.maximum(var, 0.0)
        flat = v <= np.maximum(noise, np.minimum(0.5, 10.0 * FLT_EPSILON * raw_q))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = np.minimum(1.0, np.maximum(-1.0, row / np.sqrt(v * t_var)))
        row[...] = np.where(flat | t_flat, 0.0, r)
    elif method == COSINE:
        flat = raw_q <= noise
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = np.minimum(1.0, np.maximum(-1.0, (row + cross) / np.sqrt(raw_q * t_sq)))
        row[...] = np.where(flat | t_flat, 0.0, r)
    else:
        flat = raw_q <= noise
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = (raw_q - 2.0 * (row + cross) + t_sq) / np.sqrt(raw_q * t_sq)
            r = np.minimum(1.0, np.maximum(0.0, r))
        row[...] = np.where(flat | t_flat, 1.0, r)


def value_stats(planes):
    """Per channel: minimum, maximum, mean (float64); and whether all are whole numbers."""
    flat = planes.reshape(planes.shape[0], -1)
    lo = flat.min(axis=1).astype(np.float64)
    hi = flat.max(axis=1).astype(np.float64)
    mean = flat.sum(axis=1, dtype=np.float64) / flat.shape[1]
    integral = bool(np.all(flat == np.floor(flat)))
    return lo, hi, integral, mean


def correlate_direct(planes, img_mean, tmpl, out, y0, y1):
    """:func:`convtool.core.match.correlate_direct` in numpy (float64 sums, same order)."""
    n_ch, h, w = tmpl.shape
    wo = out.shape[1]
    t = tmpl.astype(np.float64)
    acc = np.zeros((y1 - y0, wo))
    for c in range(n_ch):
        d = planes[c, y0 : y1 + h - 1] - img_mean[c]
        for u in range(h):
            for v in range(w):
                acc += d[u : u + y1 - y0, v : v + wo] * t[c, u, v]
    out[y0:y1] = acc


def find_peaks(score, threshold, sign):
    """:func:`convtool.core.match.find_peaks` in numpy: same peaks, raster order."""
    v = sign * score.astype(np.float64)
    ho, wo = v.shape
    padded = np.full((ho + 2, wo + 2), -np.inf)
    padded[1:-1, 1:-1] = np.where(np.isnan(v), -np.inf, v)
    peak = v >= sign * threshold
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            nv = padded[1 + dy : 1 + dy + ho, 1 + dx : 1 + dx + wo]
            peak &= ~(nv > v)
            if dy < 0 or (dy == 0 and dx < 0):
                peak &= ~(nv == v)
    ys, xs = np.nonzero(peak)
    return ys.astype(np.int64), xs.astype(np.int64)


def greedy_suppress(x0, y0, x1, y1, mode, param, max_keep, cell):
    """:func:`convtool.core.match.greedy_suppress` in plain Python (for a few candidates)."""
    n = x0.shape[0]
    if n == 0:
        return np.empty(0, np.int64)
    gx0, gy0 = float(x0.min()), float(y0.min())
    grid: dict[tuple[int, int], list[int]] = {}
    keep: list[int] = []
    bx0, by0, bx1, by1 = x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist()
    for i in range(n):
        cx, cy = 0.5 * (bx0[i] + bx1[i]), 0.5 * (by0[i] + by1[i])
        gx, gy = int((cx - gx0) // cell), int((cy - gy0) // cell)
        area_i = (bx1[i] - bx0[i]) * (by1[i] - by0[i])
        ok = True
        for yy in (gy - 1, gy, gy + 1):
            for xx in (gx - 1, gx, gx + 1):
                for j in grid.get((yy, xx), ()):
                    if mode == 0:
                        iw = min(bx1[i], bx1[j]) - max(bx0[i], bx0[j])
                        ih = min(by1[i], by1[j]) - max(by0[i], by0[j])
                        if iw > 0 and ih > 0:
                            inter = iw * ih
                            area_j = (bx1[j] - bx0[j]) * (by1[j] - by0[j])
                            if inter > param * (area_i + area_j - inter):
                                ok = False
                    else:
                        dx = abs(cx - 0.5 * (bx0[j] + bx1[j]))
                        dy = abs(cy - 0.5 * (by0[j] + by1[j]))
                        if dx < param and dy < param:
                            ok = False
                    if not ok:
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            keep.append(i)
            grid.setdefault((gy, gx), []).append(i)
            if max_keep > 0 and len(keep) >= max_keep:
                break
    return np.asarray(keep, dtype=np.int64)
