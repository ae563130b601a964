"""Multi-channel convolution as one matrix product per layer, on Numba's threads.

``out[m, n] = bias[m] + sum_r w[m, r] * patches[r, n]`` where ``r`` runs over
(input channel, kernel row, kernel column) and ``n`` over output pixels: the
im2col formulation, for any kernel size, stride and dilation.

Two phases, each a serial kernel that releases the GIL and takes a range of
work items, so the caller spreads them over its threads (float32 only, one
signature each):

1. :func:`im2col` gathers ``patches`` (R x N) from the padded input, one row
   of it per item (a strided copy of input rows; contiguous when the stride
   is 1, so the copy is vectorised);
2. :func:`gemm_bias` runs the product in (output-channel block x pixel block)
   tiles, four output channels times four patch rows per pass, each
   accumulated straight into its output row (which starts as the bias).

A 1x1 stride-1 convolution needs no gather: the caller passes the input
itself as ``patches`` (:func:`gemm_bias`).

For long patch rows (many input channels) over few pixels there is the
transposed pair, :func:`im2row` and :func:`gemm_dot`: one row of taps per
pixel, and dot products whose sixteen running sums (four channels times four
pixels) stay in registers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FASTMATH = {"contract", "arcp", "nsz"}
#: The dot products may be summed in any order ("reassoc"), so they vectorise.
_FASTMATH_DOT = {"contract", "arcp", "nsz", "reassoc"}

#: Output pixels per product tile (long vector loops, an L1-sized row per channel).
N_BLOCK = 256
#: Output channels per product tile.
M_BLOCK = 64
#: Patch rows per pass over a tile's output channels (64 x N_BLOCK floats: 64 KiB).
R_CHUNK = 64
#: Most taps per pass of :func:`gemm_dot` (the rows are cut in equal chunks of whole vectors).
DOT_CHUNK = 640
#: Patch values (all pixel rows) above which :func:`gemm_dot` cuts the taps in chunks (1 MiB).
DOT_L2_FLOATS = 1 << 18


@njit(cache=True, fastmath=_FASTMATH)
def _tile(w, patches, bias, out, m0, m1, n0, n1, off):
    """out[m, off + n0 : off + n1] = bias[m] + w[m] @ patches[:, n0:n1] for m in [m0, m1).

    The patch rows go by in chunks of R_CHUNK, and each chunk serves every
    output channel of the tile while it is in cache.
    """
    nr = w.shape[1]
    n = n1 - n0
    lo = off + n0
    hi = off + n1
    for m in range(m0, m1):
        om = out[m, lo:hi]
        bm = bias[m]
        for k in range(n):
            om[k] = bm
    for r0 in range(0, nr, R_CHUNK):
        r1 = min(nr, r0 + R_CHUNK)
        m = m0
        while m < m1:
            if m + 4 <= m1:
                # views over exactly the tile's columns, loops from 0: LLVM vectorises these
                oa = out[m, lo:hi]
                ob = out[m + 1, lo:hi]
                oc = out[m + 2, lo:hi]
                od = out[m + 3, lo:hi]
                wa = w[m]
                wb = w[m + 1]
                wc = w[m + 2]
                wd = w[m + 3]
                r = r0
                while r + 4 <= r1:
                    a0, a1, a2, a3 = wa[r], wa[r + 1], wa[r + 2], wa[r + 3]
                    b0, b1, b2, b3 = wb[r], wb[r + 1], wb[r + 2], wb[r + 3]
                    c0, c1, c2, c3 = wc[r], wc[r + 1], wc[r + 2], wc[r + 3]
                    d0, d1, d2, d3 = wd[r], wd[r + 1], wd[r + 2], wd[r + 3]
                    p0 = patches[r, n0:n1]
                    p1 = patches[r + 1, n0:n1]
                    p2 = patches[r + 2, n0:n1]
                    p3 = patches[r + 3, n0:n1]
                    for k in range(n):
                        x0 = p0[k]
                        x1 = p1[k]
                        x2 = p2[k]
                        x3 = p3[k]
                        oa[k] = (((oa[k] + a0 * x0) + a1 * x1) + a2 * x2) + a3 * x3
                        ob[k] = (((ob[k] + b0 * x0) + b1 * x1) + b2 * x2) + b3 * x3
                        oc[k] = (((oc[k] + c0 * x0) + c1 * x1) + c2 * x2) + c3 * x3
                        od[k] = (((od[k] + d0 * x0) + d1 * x1) + d2 * x2) + d3 * x3
                    r += 4
                while r < r1:
                    a0, b0, c0, d0 = wa[r], wb[r], wc[r], wd[r]
                    p0 = patches[r, n0:n1]
                    for k in range(n):
                        x0 = p0[k]
                        oa[k] += a0 * x0
                        ob[k] += b0 * x0
                        oc[k] += c0 * x0
                        od[k] += d0 * x0
                    r += 1
                m += 4
            else:
                oa = out[m, lo:hi]
                wa = w[m]
                for r in range(r0, r1):
                    a0 = wa[r]
                    p0 = patches[r, n0:n1]
                    for k in range(n):
                        oa[k] += a0 * p0[k]
                m += 1


def gemm_tiles(m: int, n: int) -> int:
    """How many (output-channel block x pixel block) tiles :func:`gemm_bias` has."""
    return -(-m // M_BLOCK) * -(-n // N_BLOCK)


@njit(cache=True, nogil=True)
def gemm_bias(w, patches, bias, out, off, t0, t1):
    """out[:, off : off + N] = w (M, R) @ patches (R, N) + bias[:, None], tiles t0 <= t < t1."""
    nn = patches.shape[1]
    nm = w.shape[0]
    nblocks = (nn + N_BLOCK - 1) // N_BLOCK
    for t in range(t0, t1):
        mb = t // nblocks
        nb = t - mb * nblocks
        _tile(
            w, patches, bias, out,
            mb * M_BLOCK, min(nm, (mb + 1) * M_BLOCK),
            nb * N_BLOCK, min(nn, (nb + 1) * N_BLOCK), off,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def im2col(x, kh, kw, sh, sw, dh, dw, y0, y1, ow, patches, r0, r1):
    """patches[(c*kh + i)*kw + j, (y - y0)*ow + q] = x[c, y*sh + i*dh, q*sw + j*dw].

    For the output rows ``y0 <= y < y1`` and the patch rows ``r0 <= r < r1``.
    """
    if ow >= 64:
        # long rows: copies between 1-D views, loops from 0 (7x7/2 layer on 224x224x3, one
        # core: 0.52 vs 1.05 ms); short rows keep the loops below, where the views' setup
        # costs more than it saves. (A slice assignment was as fast but compiled 1.5 s longer.)
        span = sw * (ow - 1) + 1
        for r in range(r0, r1):
            c = r // (kh * kw)
            i = (r // kw) % kh
            s0 = (r % kw) * dw
            for y in range(y0, y1):
                base = (y - y0) * ow
                dst = patches[r, base : base + ow]
                src = x[c, y * sh + i * dh, s0 : s0 + span : sw]
                for q in range(ow):
                    dst[q] = src[q]
        return
    for r in range(r0, r1):
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        xc = x[c]
        pr = patches[r]
        for y in range(y0, y1):
            src = xc[y * sh + i * dh]
            base = (y - y0) * ow
            if sw == 1:
                for q in range(ow):
                    pr[base + q] = src[q + j * dw]
            else:
                for q in range(ow):
                    pr[base + q] = src[q * sw + j * dw]


@njit(cache=True, nogil=True)
def im2row(x, kh, kw, sh, sw, dh, dw, y0, ow, rows, n0, n1):
    """rows[n, (c*kh + i)*kw + j] = x[c, y*sh + i*dh, q*sw + j*dw] for pixel y0*ow + n.

    The transpose of :func:`im2col` (one contiguous row of taps per output
    pixel ``(y, q)``), for the rows ``n0 <= n < n1``.
    """
    nc = x.shape[0]
    for n in range(n0, n1):
        y = y0 + n // ow
        q = n % ow
        row = rows[n]
        t = 0
        for c in range(nc):
            xc = x[c]
            for i in range(kh):
                src = xc[y * sh + i * dh]
                for j in range(kw):
                    row[t] = src[q * sw + j * dw]
                    t += 1


@njit(cache=True, nogil=True, fastmath=_FASTMATH_DOT)
def gemm_dot(w, rows, bias, out, off, t0, t1):
    """out[m, off + n] = bias[m] + w[m] . rows[n], output channels 4*t0 <= m < 4*t1.

    Dot products along the taps, four output channels times four pixels at a
    time: the sixteen sums stay in registers (vector accumulators) for the
    whole length of the rows, and each loaded value feeds four of them. Wins
    over :func:`gemm_bias` when the rows are long (many input channels) and the
    pixels few (small maps).
    """
    nr = w.shape[1]
    nn = rows.shape[0]
    m1 = min(w.shape[0], 4 * t1)
    step = nr
    if nn * nr > DOT_L2_FLOATS and nr > DOT_CHUNK:
        # The rows do not fit L2 together: the taps go in equal chunks of whole vectors,
        # so a chunk of every pixel row stays in L2 while all the output channels pass
        # over it (a 14x14 256-channel layer, one core: 2.3 -> 1.5-1.9 ms); the sums
        # over later chunks are added to the output.
        parts = (nr + DOT_CHUNK - 1) // DOT_CHUNK
        step = ((nr + parts - 1) // parts + 15) // 16 * 16
    for r0 in range(0, nr, step):
        r1 = min(nr, r0 + step)
        first = r0 == 0
        nc = r1 - r0
        for m in range(4 * t0, m1, 4):
            if m + 4 > m1:
                for mm in range(m, m1):
                    wr = w[mm, r0:r1]
                    for n in range(nn):
                        pr = rows[n, r0:r1]
                        s = np.float32(0.0)
                        for r in range(nc):
                            s += wr[r] * pr[r]
                        out[mm, off + n] = s + (bias[mm] if first else out[mm, off + n])
                break
            wa = w[m, r0:r1]
            wb = w[m + 1, r0:r1]
            wc = w[m + 2, r0:r1]
            wd = w[m + 3, r0:r1]
            n = 0
            while n < nn:
                if n + 4 > nn:
                    pr = rows[n, r0:r1]
                    for mm in range(m, m + 4):
                        wr = w[mm, r0:r1]
                        s = np.float32(0.0)
                        for r in range(nc):
                            s += wr[r] * pr[r]
                        out[mm, off + n] = s + (bias[mm] if first else out[mm, off + n])
                    n += 1
                    continue
                pa = rows[n, r0:r1]
                pb = rows[n + 1, r0:r1]
                pc = rows[n + 2, r0:r1]
                pd = rows[n + 3, r0:r1]
                s00 = s01 = s02 = s03 = np.float32(0.0)
                s10 = s11 = s12 = s13 = np.float32(0.0)
                s20 = s21 = s22 = s23 = np.float32(0.0)
                s30 = s31 = s32 = s33 = np.float32(0.0)
                for r in range(nc):
                    a = wa[r]
                    b = wb[r]
                    c = wc[r]
                    d = wd[r]
                    e = pa[r]
                    f = pb[r]
                    g = pc[r]
                    h = pd[r]
                    s00 += a * e
                    s01 += a * f
                    s02 += a * g
                    s03 += a * h
                    s10 += b * e
                    s11 += b * f
                    s12 += b * g
                    s13 += b * h
                    s20 += c * e
                    s21 += c * f
                    s22 += c * g
                    s23 += c * h
                    s30 += d * e
                    s31 += d * f
                    s32 += d * g
                    s33 += d * h
                k = off + n
                out[m, k] = s00 + (bias[m] if first else out[m, k])
                out[m, k + 1] = s01 + (bias[m] if first else out[m, k + 1])
                out[m, k + 2] = s02 + (bias[m] if first else out[m, k + 2])
                out[m, k + 3] = s03 + (bias[m] if first else out[m, k + 3])
                out[m + 1, k] = s10 + (bias[m + 1] if first else out[m + 1, k])
                out[m + 1, k + 1] = s11 + (bias[m + 1] if first else out[m + 1, k + 1])
                out[m + 1, k + 2] = s12 + (bias[m + 1] if first else out[m + 1, k + 2])
                out[m + 1, k + 3] = s13 + (bias[m + 1] if first else out[m + 1, k + 3])
                out[m + 2, k] = s20 + (bias[m + 2] if first else out[m + 2, k])
                out[m + 2, k + 1] = s21 + (bias[m + 2] if first else out[m + 2, k + 1])
                out[m + 2, k + 2] = s22 + (bias[m + 2] if first else out[m + 2, k + 2])
                out[m + 2, k + 3] = s23 + (bias[m + 2] if first else out[m + 2, k + 3])
                out[m + 3, k] = s30 + (bias[m + 3] if first else out[m + 3, k])
                out[m + 3, k + 1] = s31 + (bias[m + 3] if first else out[m + 3, k + 1])
                out[m + 3, k + 2] = s32 + (bias[m + 3] if first else out[m + 3, k + 2])
                out[m + 3, k + 3] = s33 + (bias[m + 3] if first else out[m + 3, k + 3])
                n += 4
