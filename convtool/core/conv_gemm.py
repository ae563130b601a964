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
"""

from __future__ import annotations

from numba import njit

_FASTMATH = {"contract", "arcp", "nsz"}

#: Output pixels per product tile (long vector loops, an L1-sized row per channel).
N_BLOCK = 256
#: Output channels per product tile.
M_BLOCK = 64
#: Patch rows per pass over a tile's output channels (64 x N_BLOCK floats: 64 KiB).
R_CHUNK = 64


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
