"""Numba kernel that undoes PNG row filters (RFC 2083 / PNG spec section 9).

The average and Paeth filters predict each byte from the already decoded byte
to its left, so a row cannot be vectorised; this loop does a 2048x2048 16-bit
RGB image in a few milliseconds. :mod:`convtool.png` calls it only when an
image has such rows (none, sub and up are undone in numpy without Numba).
One compiled signature. This module holds the kernel only.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def unfilter(data: np.ndarray, out: np.ndarray, bpp: int) -> int:  # pragma: no cover - jitted
    """Undo the filters of ``out.shape[0]`` scanlines into ``out``.

    ``data`` is the decompressed stream: each row is one filter-type byte and
    ``out.shape[1]`` filtered bytes. ``bpp`` is the bytes per complete pixel
    (at least 1). Returns -1, or the index of the first row whose filter type
    is not 0..4 (``out`` is then partly written).
    """
    h, n = out.shape
    for r in range(h):
        base = r * (n + 1)
        ft = data[base]
        src = base + 1
        if ft == 0:
            for i in range(n):
                out[r, i] = data[src + i]
        elif ft == 1:  # sub: + the byte one pixel to the left
            for i in range(min(bpp, n)):
                out[r, i] = data[src + i]
            for i in range(bpp, n):
                out[r, i] = (data[src + i] + out[r, i - bpp]) & 0xFF
        elif ft == 2:  # up: + the byte above
            if r == 0:
                for i in range(n):
                    out[r, i] = data[src + i]
            else:
                for i in range(n):
                    out[r, i] = (data[src + i] + out[r - 1, i]) & 0xFF
        elif ft == 3:  # average of left and up, rounded down
            for i in range(n):
                left = np.int32(out[r, i - bpp]) if i >= bpp else np.int32(0)
                up = np.int32(out[r - 1, i]) if r > 0 else np.int32(0)
                out[r, i] = (np.int32(data[src + i]) + ((left + up) >> 1)) & 0xFF
        elif ft == 4:  # Paeth: whichever of left, up, upper-left is nearest left + up - upper-left
            for i in range(n):
                a = np.int32(out[r, i - bpp]) if i >= bpp else np.int32(0)
                b = np.int32(out[r - 1, i]) if r > 0 else np.int32(0)
                c = np.int32(out[r - 1, i - bpp]) if (r > 0 and i >= bpp) else np.int32(0)
                pa = abs(b - c)
                pb = abs(a - c)
                pc = abs(a + b - 2 * c)
                if pa <= pb and pa <= pc:
                    pred = a
                elif pb <= pc:
                    pred = b
                else:
                    pred = c
                out[r, i] = (np.int32(data[src + i]) + pred) & 0xFF
        else:
            return r
    return -1
