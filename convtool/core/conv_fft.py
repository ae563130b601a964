"""FFT correlation for large kernels (numpy.fft only, no Numba).

The image is padded exactly as the direct path reads it (by the same index
maps), so a circular correlation over the padded frame has no wrap-around in
the positions we keep and the result equals the direct path up to float32
rounding.
"""

from __future__ import annotations

import numpy as np


def next_fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c 7^d >= n (sizes pocketfft transforms quickly).

    Examples
    --------
    >>> next_fast_len(4097), next_fast_len(1000)
    (4116, 1000)
    """
    if n <= 8:
        return n
    best = 1 << (n - 1).bit_length()
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                p2 = p3
                while p2 < n:
                    p2 *= 2
                best = min(best, p2)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


def fft_correlate_plane(
    plane: np.ndarray,
    w: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    cval: float,
    out_rows: slice,
    out_cols: slice,
) -> np.ndarray:
    """Correlate one float32 plane with an (already dilated) kernel by FFT.

    Parameters
    ----------
    plane : (H, W) array
    w : (kh, kw) float32, the dilated correlation kernel.
    rows, cols : int arrays
        Source index of every row / column of the padded frame (``-1``: cval).
    cval : float
        Value of constant padding.
    out_rows, out_cols : slice
        Which full-resolution positions to return (stride sampling).
    """
    ri = np.asarray(rows)
    ci = np.asarray(cols)
    padded = plane.take(np.clip(ri, 0, None), axis=0).take(np.clip(ci, 0, None), axis=1)
    padded = padded.astype(np.float32, copy=False)
    if (ri < 0).any() or (ci < 0).any():
        padded[ri < 0, :] = cval
        padded[:, ci < 0] = cval
    ph, pw = padded.shape
    kh, kw = w.shape
    fh, fw = next_fast_len(ph), next_fast_len(pw)
    spec = np.fft.rfft2(padded, s=(fh, fw))
    kspec = np.fft.rfft2(w.astype(np.float32), s=(fh, fw))
    spec *= np.conj(kspec)
    full = np.fft.irfft2(spec, s=(fh, fw))
    valid = full[: ph - kh + 1, : pw - kw + 1]
    return np.ascontiguousarray(valid[out_rows, out_cols], dtype=np.float32)
