"""Border handling by index: where each tap of each output reads in the image.

Pure numpy (no Numba), so the API can build index maps, and the numpy
fallback path can run, without paying Numba's start-up.
"""

from __future__ import annotations

import numpy as np

#: Pad-mode codes (same order as convtool.modes.PAD_MODES).
CONSTANT, REPLICATE, REFLECT, SYMMETRIC, WRAP, VALID = range(6)


def index_map(n: int, start: int, step: int, count: int, taps: int, dil: int, mode: int):
    """Source indices ``(count, taps)`` for positions ``start + i*step + dil*t``.

    Positions outside ``[0, n)`` are folded back by the pad mode, or set to
    ``-1`` in constant mode. Works for any amount of padding (repeated
    reflection / wrapping), as scipy.ndimage does.

    Examples
    --------
    >>> index_map(4, -2, 1, 1, 5, 1, REFLECT).tolist()
    [[2, 1, 0, 1, 2]]
    """
    pos = start + step * np.arange(count, dtype=np.int64)[:, None]
    pos = pos + dil * np.arange(taps, dtype=np.int64)[None, :]
    if mode == CONSTANT:
        return np.where((pos >= 0) & (pos < n), pos, -1)
    if mode == REPLICATE:
        return np.clip(pos, 0, n - 1)
    if mode == WRAP:
        return np.mod(pos, n)
    if mode == REFLECT:
        if n == 1:
            return np.zeros_like(pos)
        period = 2 * n - 2
        m = np.mod(pos, period)
        return np.where(m >= n, period - m, m)
    if mode == SYMMETRIC:
        period = 2 * n
        m = np.mod(pos, period)
        return np.where(m >= n, period - 1 - m, m)
    # VALID: every position is inside by construction
    return pos
