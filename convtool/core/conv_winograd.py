"""Winograd F(4x4, 3x3): a multi-channel 3x3 stride-1 correlation in 4x fewer multiplies.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016).
Each 4x4 block ("tile") of output is computed from the 6x6 input patch under it:

    Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A

The weight transform ``U = G g G^T`` (6x6 per (output, input) channel pair) is
done once by the caller in numpy; this module does the rest, fused per block of
tiles so the transformed input stays in cache:

1. input transform of every channel of the block: ``V[p, c, t]`` for the 36
   positions ``p`` (``B^T d B`` on each 6x6 patch);
2. for each block of output channels, 36 small matrix products
   ``Y[p] = U[p] @ V[p]`` (output channels x channels times channels x tiles),
   written as vector loops over the tiles (four input channels per pass, so
   the accumulator row is loaded and stored once per four multiply-adds);
3. output transform ``A^T Y A`` (+ bias) into the 4x4 output tiles.

Blocks of tiles are shared out over threads by the caller (the kernel is
serial and releases the GIL: a ``parallel=True`` kernel would take several
times longer to compile on a user's first run). One compiled signature:
float32 arrays only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FASTMATH = {"contract", "arcp", "nsz"}

#: Output channels per pass of the matrix products (their accumulators stay in L1).
M_BLOCK = 8


@njit(cache=True)
def _bt(d0, d1, d2, d3, d4, d5):
    """B^T d for one column of six values (points 0, +-1, +-2, infinity)."""
    return (
        np.float32(4) * d0 - np.float32(5) * d2 + d4,
        -np.float32(4) * (d1 + d2) + d3 + d4,
        np.float32(4) * (d1 - d2) - d3 + d4,
        np.float32(2) * (d3 - d1) - d2 + d4,
        np.float32(2) * (d1 - d3) - d2 + d4,
        np.float32(4) * d1 - np.float32(5) * d3 + d5,
    )


@njit(cache=True)
def _at(m0, m1, m2, m3, m4, m5):
    """A^T m for one column of six values: four outputs."""
    s12 = m1 + m2
    d12 = m1 - m2
    s34 = m3 + m4
    d34 = m3 - m4
    return (
        m0 + s12 + s34,
        d12 + np.float32(2) * d34,
        s12 + np.float32(4) * s34,
        d12 + np.float32(8) * d34 + m5,
    )


@njit(cache=True, fastmath=_FASTMATH)
def _tile_in(src, r, q, vc, k):
    """vc[:, k] = B^T d B for the 6x6 patch d = src[r : r + 6, q : q + 6]."""
    # rows of B^T d: transform each of the six columns
    a00, a10, a20, a30, a40, a50 = _bt(
        src[r, q], src[r + 1, q], src[r + 2, q], src[r + 3, q], src[r + 4, q], src[r + 5, q]
    )
    a01, a11, a21, a31, a41, a51 = _bt(
        src[r, q + 1], src[r + 1, q + 1], src[r + 2, q + 1],
        src[r + 3, q + 1], src[r + 4, q + 1], src[r + 5, q + 1],
    )  # fmt: skip
    a02, a12, a22, a32, a42, a52 = _bt(
        src[r, q + 2], src[r + 1, q + 2], src[r + 2, q + 2],
        src[r + 3, q + 2], src[r + 4, q + 2], src[r + 5, q + 2],
    )  # fmt: skip
    a03, a13, a23, a33, a43, a53 = _bt(
        src[r, q + 3], src[r + 1, q + 3], src[r + 2, q + 3],
        src[r + 3, q + 3], src[r + 4, q + 3], src[r + 5, q + 3],
    )  # fmt: skip
    a04, a14, a24, a34, a44, a54 = _bt(
        src[r, q + 4], src[r + 1, q + 4], src[r + 2, q + 4],
        src[r + 3, q + 4], src[r + 4, q + 4], src[r + 5, q + 4],
    )  # fmt: skip
    a05, a15, a25, a35, a45, a55 = _bt(
        src[r, q + 5], src[r + 1, q + 5], src[r + 2, q + 5],
        src[r + 3, q + 5], src[r + 4, q + 5], src[r + 5, q + 5],
    )  # fmt: skip
    # then (B^T d) B: transform each of the six rows
    b = _bt(a00, a01, a02, a03, a04, a05)
    for j in range(6):
        vc[j, k] = b[j]
    b = _bt(a10, a11, a12, a13, a14, a15)
    for j in range(6):
        vc[6 + j, k] = b[j]
    b = _bt(a20, a21, a22, a23, a24, a25)
    for j in range(6):
        vc[12 + j, k] = b[j]
    b = _bt(a30, a31, a32, a33, a34, a35)
    for j in range(6):
        vc[18 + j, k] = b[j]
    b = _bt(a40, a41, a42, a43, a44, a45)
    for j in range(6):
        vc[24 + j, k] = b[j]
    b = _bt(a50, a51, a52, a53, a54, a55)
    for j in range(6):
        vc[30 + j, k] = b[j]


@njit(cache=True, fastmath=_FASTMATH)
def _input_tiles(xc, vc, ty0, ty1, tw, top, left, fill, patch):
    """vc[:, k] = B^T d B for the 6x6 patch of each tile k of tile rows [ty0, ty1).

    ``xc`` is the unpadded channel: the frame starts ``top`` rows above and
    ``left`` columns left of it, and every value outside is ``fill``. Tiles
    whose patch lies inside read ``xc`` directly; the others copy their patch
    into ``patch`` (6x6) first, so the padded image is never built.
    """
    h, w = xc.shape
    for ty in range(ty0, ty1):
        r = 4 * ty - top
        k0 = (ty - ty0) * tw
        for tx in range(tw):
            q = 4 * tx - left
            if r >= 0 and q >= 0 and r + 6 <= h and q + 6 <= w:
                _tile_in(xc, r, q, vc, k0 + tx)
            else:
                for i in range(6):
                    for j in range(6):
                        y = r + i
                        x = q + j
                        inside = y >= 0 and y < h and x >= 0 and x < w
                        patch[i, j] = xc[y, x] if inside else fill
                _tile_in(patch, 0, 0, vc, k0 + tx)


@njit(cache=True, fastmath=_FASTMATH)
def _products(u, v, y, m0, mb):
    """y[mi, p] = sum_c u[p, m0 + mi, c] * v[c, p] for mi < mb: 36 small matrix products.

    Four output channels times four input channels per pass: each loaded row
    of ``v`` feeds four accumulator rows, each accumulator row is loaded and
    stored once per four input channels.
    """
    nc = v.shape[0]
    nt = v.shape[2]
    for p in range(36):
        mi = 0
        while mi + 4 <= mb:
            ua = u[p, m0 + mi]
            ub = u[p, m0 + mi + 1]
            uc = u[p, m0 + mi + 2]
            ud = u[p, m0 + mi + 3]
            ya = y[mi, p]
            yb = y[mi + 1, p]
            yc = y[mi + 2, p]
            yd = y[mi + 3, p]
            for k in range(nt):
                ya[k] = 0.0
                yb[k] = 0.0
                yc[k] = 0.0
                yd[k] = 0.0
            c = 0
            while c + 4 <= nc:
                a0, a1, a2, a3 = ua[c], ua[c + 1], ua[c + 2], ua[c + 3]
                b0, b1, b2, b3 = ub[c], ub[c + 1], ub[c + 2], ub[c + 3]
                c0, c1, c2, c3 = uc[c], uc[c + 1], uc[c + 2], uc[c + 3]
                d0, d1, d2, d3 = ud[c], ud[c + 1], ud[c + 2], ud[c + 3]
                v0 = v[c, p]
                v1 = v[c + 1, p]
                v2 = v[c + 2, p]
                v3 = v[c + 3, p]
                for k in range(nt):
                    x0 = v0[k]
                    x1 = v1[k]
                    x2 = v2[k]
                    x3 = v3[k]
                    # chained, so each product is one fused multiply-add
                    ya[k] = (((ya[k] + a0 * x0) + a1 * x1) + a2 * x2) + a3 * x3
                    yb[k] = (((yb[k] + b0 * x0) + b1 * x1) + b2 * x2) + b3 * x3
                    yc[k] = (((yc[k] + c0 * x0) + c1 * x1) + c2 * x2) + c3 * x3
                    yd[k] = (((yd[k] + d0 * x0) + d1 * x1) + d2 * x2) + d3 * x3
                c += 4
            while c < nc:
                a0, b0, c0, d0 = ua[c], ub[c], uc[c], ud[c]
                v0 = v[c, p]
                for k in range(nt):
                    x0 = v0[k]
                    ya[k] += a0 * x0
                    yb[k] += b0 * x0
                    yc[k] += c0 * x0
                    yd[k] += d0 * x0
                c += 1
            mi += 4
        while mi < mb:
            ua = u[p, m0 + mi]
            ya = y[mi, p]
            for k in range(nt):
                ya[k] = 0.0
            for c in range(nc):
                a0 = ua[c]
                v0 = v[c, p]
                for k in range(nt):
                    ya[k] += a0 * v0[k]
            mi += 1


@njit(cache=True, fastmath=_FASTMATH)
def _output_tiles(ym, om, bm, ty0, ty1, tw):
    """om's 4x4 tiles of tile rows [ty0, ty1) = A^T ym[:, k] A + bm."""
    for ty in range(ty0, ty1):
        r = 4 * ty
        k0 = (ty - ty0) * tw
        for tx in range(tw):
            k = k0 + tx
            q = 4 * tx
            # A^T on each of the six columns of the 6x6 product
            c00, c10, c20, c30 = _at(
                ym[0, k], ym[6, k], ym[12, k],
                ym[18, k], ym[24, k], ym[30, k],
            )  # fmt: skip
            c01, c11, c21, c31 = _at(
                ym[1, k], ym[7, k], ym[13, k],
                ym[19, k], ym[25, k], ym[31, k],
            )  # fmt: skip
            c02, c12, c22, c32 = _at(
                ym[2, k], ym[8, k], ym[14, k],
                ym[20, k], ym[26, k], ym[32, k],
            )  # fmt: skip
            c03, c13, c23, c33 = _at(
                ym[3, k], ym[9, k], ym[15, k],
                ym[21, k], ym[27, k], ym[33, k],
            )  # fmt: skip
            c04, c14, c24, c34 = _at(
                ym[4, k], ym[10, k], ym[16, k],
                ym[22, k], ym[28, k], ym[34, k],
            )  # fmt: skip
            c05, c15, c25, c35 = _at(
                ym[5, k], ym[11, k], ym[17, k],
                ym[23, k], ym[29, k], ym[35, k],
            )  # fmt: skip
            # then A^T on each of the four rows
            o = _at(c00, c01, c02, c03, c04, c05)
            for j in range(4):
                om[r, q + j] = o[j] + bm
            o = _at(c10, c11, c12, c13, c14, c15)
            for j in range(4):
                om[r + 1, q + j] = o[j] + bm
            o = _at(c20, c21, c22, c23, c24, c25)
            for j in range(4):
                om[r + 2, q + j] = o[j] + bm
            o = _at(c30, c31, c32, c33, c34, c35)
            for j in range(4):
                om[r + 3, q + j] = o[j] + bm


@njit(cache=True, nogil=True)
def winograd_f43(x, top, left, fill, u, bias, out, rows_per_block, m_parts, i0, i1):
    """out[m] = bias[m] + sum_c correlate_valid(x[c], g[m, c]) for 3x3 g, via U = G g G^T.

    ``x``: (C, H, W) float32, seen through a frame that starts ``top`` rows
    above and ``left`` columns left of it and holds ``fill`` outside it;
    ``out``: (M, 4*th, 4*tw), whole 4x4 tiles (the frame is 4*th + 2 by
    4*tw + 2); ``u``: (36, M, C) transformed weights; ``bias``: (M,).

    Work item ``i`` (``i0 <= i < i1``) is block ``i // m_parts`` of
    ``rows_per_block`` tile rows times part ``i % m_parts`` of the output
    channels (small maps have few blocks: splitting the channels too keeps every
    thread busy; each part transforms its block's input again, which is cheap
    next to the products). Serial and free of the GIL: the caller runs item
    ranges on its threads.
    """
    nc = x.shape[0]
    nm = u.shape[1]
    th = out.shape[1] // 4
    tw = out.shape[2] // 4
    rows = rows_per_block
    ntp = (rows * tw + 15) // 16 * 16  # whole vectors: no scalar remainder in the products
    part = ((nm + m_parts - 1) // m_parts + 3) // 4 * 4
    v = np.zeros((nc, 36, ntp), dtype=np.float32)
    y = np.empty((M_BLOCK, 36, ntp), dtype=np.float32)
    patch = np.empty((6, 6), dtype=np.float32)
    done = -1
    for i in range(i0, i1):
        blk = i // m_parts
        ty0 = blk * rows
        ty1 = min(th, ty0 + rows)
        if blk != done:
            for c in range(nc):
                _input_tiles(x[c], v[c], ty0, ty1, tw, top, left, fill, patch)
            done = blk
        m_end = min(nm, (i % m_parts + 1) * part)
        for m0 in range((i % m_parts) * part, m_end, M_BLOCK):
            mb = min(M_BLOCK, m_end - m0)
            _products(u, v, y, m0, mb)
            for mi in range(mb):
                _output_tiles(y[mi], out[m0 + mi], bias[m0 + mi], ty0, ty1, tw)


#: G of F(4x4, 3x3) (interpolation points 0, +-1, +-2, infinity).
_G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=np.float32,
)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def weight_transform(w, u, m0, m1):
    """u[:, m, c] = G w[m, c] G^T (the 36 values of a 6x6) for m0 <= m < m1.

    ``w``: (M, C, 3, 3) float32, ``u``: (36, M, C). Per output channel, all
    input channels at once: the taps are laid out as nine rows of C, then
    ``t = G g`` goes into a (6, 3, C) buffer and each of the 36 rows of
    ``u[:, m]`` is one vector loop over the channels.
    """
    nc = w.shape[1]
    g = np.empty((9, nc), dtype=np.float32)
    t = np.empty((6, 3, nc), dtype=np.float32)
    for m in range(m0, m1):
        wm = w[m]
        for c in range(nc):  # the nine taps as rows: every loop below runs along c
            for k in range(9):
                g[k, c] = wm[c, k // 3, k % 3]
        for a in range(6):
            g0 = _G[a, 0]
            g1 = _G[a, 1]
            g2 = _G[a, 2]
            for j in range(3):
                row = t[a, j]
                r0 = g[j]
                r1 = g[3 + j]
                r2 = g[6 + j]
                for c in range(nc):
                    row[c] = g0 * r0[c] + g1 * r1[c] + g2 * r2[c]
        for a in range(6):
            r0 = t[a, 0]
            r1 = t[a, 1]
            r2 = t[a, 2]
            for b in range(6):
                g0 = _G[b, 0]
                g1 = _G[b, 1]
                g2 = _G[b, 2]
                row = u[6 * a + b, m]
                for c in range(nc):
                    row[c] = g0 * r0[c] + g1 * r1[c] + g2 * r2[c]
