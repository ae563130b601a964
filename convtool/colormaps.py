"""Built-in colour maps: 256-entry lookup tables made from a few anchor colours.

No matplotlib: each map is a short list of anchor colours (sRGB hex) that is
interpolated in CIELAB, so lightness changes linearly between anchors and a
map whose anchors grow lighter is monotonic in lightness everywhere (``gray``
is the plain sRGB ramp, so grey level v is drawn as v).

=============  ==============================================================
``gray``       black to white
``viridis``    dark violet, blue, teal, green, yellow (lightness rises)
``magma``      black, purple, red-pink, orange, pale yellow (lightness rises)
``diverging``  dark blue, white at the centre, dark red: for signed maps,
               used with a range symmetric about zero so zero is white
=============  ==============================================================

This module imports only numpy.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .errors import UsageError

#: name -> anchor colours, from the low end to the high end.
ANCHORS: dict[str, tuple[str, ...]] = {
    "gray": ("#000000", "#ffffff"),
    "viridis": ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"),
    "magma": ("#000004", "#3b0f70", "#8c2981", "#de4968", "#fe9f6d", "#fcfdbf"),
    "diverging": ("#08306b", "#2c7bb6", "#abd9e9", "#f7f7f7", "#fdae61", "#d7191c", "#67000d"),
}

#: Colour-map names, in the order the docs list them.
CMAPS: tuple[str, ...] = tuple(ANCHORS)

#: Maps meant for signed data (centred on zero).
SIGNED_CMAPS: frozenset[str] = frozenset({"diverging"})

_WHITE = np.array([0.95047, 1.0, 1.08883])  # D65
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)


def _hex_to_rgb(code: str) -> np.ndarray:
    code = code.lstrip("#")
    return np.array([int(code[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float64) / 255.0


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB in 0..1 (..., 3) to CIELAB (D65) (..., 3); L* is in 0..100.

    Examples
    --------
    >>> import numpy as np
    >>> [round(float(v), 2) + 0.0 for v in srgb_to_lab(np.array([1.0, 1.0, 1.0]))]
    [100.0, 0.0, 0.0]
    """
    xyz = _srgb_to_linear(np.asarray(rgb, dtype=np.float64)) @ _RGB_TO_XYZ.T / _WHITE
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )
    return lab + 0.0  # no negative zeros


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """Convert CIELAB (D65) (..., 3) to sRGB in 0..1, clipped to the gamut."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    d = 6 / 29
    xyz = np.where(f > d, f**3, 3 * d * d * (f - 4 / 29)) * _WHITE
    return _linear_to_srgb(xyz @ np.linalg.inv(_RGB_TO_XYZ).T)


@cache
def _lut(name: str, n: int) -> np.ndarray:
    rgb = np.array([_hex_to_rgb(c) for c in ANCHORS[name]])
    stops = np.linspace(0.0, 1.0, len(rgb))
    t = np.linspace(0.0, 1.0, n)
    if name == "gray":  # the identity ramp: grey level v shows as v
        out = np.stack([np.interp(t, stops, rgb[:, i]) for i in range(3)], axis=-1)
    else:
        lab = srgb_to_lab(rgb)
        out = lab_to_srgb(np.stack([np.interp(t, stops, lab[:, i]) for i in range(3)], axis=-1))
    table = np.rint(out * 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def check_cmap(name: str) -> str:
    """Return the canonical colour-map name, or raise UsageError listing the choices.

    Examples
    --------
    >>> check_cmap("Gray")
    'gray'
    """
    key = str(name).strip().lower()
    if key == "grey":
        key = "gray"
    if key not in ANCHORS:
        raise UsageError(f"unknown colour map {name!r}: use {', '.join(CMAPS)} or auto")
    return key


def lut(name: str, n: int = 256) -> np.ndarray:
    """The colour map ``name`` as an (n, 3) uint8 lookup table (read-only).

    Examples
    --------
    >>> t = lut("gray")
    >>> t.shape, t[0].tolist(), t[-1].tolist()
    ((256, 3), [0, 0, 0], [255, 255, 255])
    """
    if n < 2:
        raise UsageError(f"a colour map needs at least 2 entries, got {n}")
    return _lut(check_cmap(name), int(n))


def apply(values: np.ndarray, name: str, lo: float, hi: float) -> np.ndarray:
    """Map ``values`` (any shape) through colour map ``name``; ``lo``..``hi`` spans it.

    Values outside the range are clipped to its ends; NaN maps to the low end.

    Returns
    -------
    numpy.ndarray
        uint8 array of shape ``values.shape + (3,)``.

    Examples
    --------
    >>> import numpy as np
    >>> apply(np.array([-1.0, 0.0, 1.0]), "diverging", -1, 1).tolist()
    [[8, 48, 107], [247, 246, 245], [103, 0, 13]]
    """
    words = apply_packed(values, name, lo, hi)
    return words.view(np.uint8).reshape(*words.shape, 4)[..., :3]


def apply_packed(values: np.ndarray, name: str, lo: float, hi: float) -> np.ndarray:
    """As :func:`apply`, but each colour packed in one uint32 (R, G, B, 0 in memory order).

    A uint32 canvas takes these with plain contiguous copies, which is what
    :func:`convtool.grid.grid` does.
    """
    table = _packed(check_cmap(name))
    v = np.asarray(values, dtype=np.float32)
    span = float(hi) - float(lo)
    scale = 255.0 / span if span > 0 else 0.0
    idx = v - np.float32(lo)
    idx *= np.float32(scale)
    idx += np.float32(0.5)
    np.fmax(idx, np.float32(0), out=idx)  # fmax also sends NaN to 0
    np.minimum(idx, np.float32(255), out=idx)
    return table[idx.astype(np.uint8)]


@cache
def _packed(name: str) -> np.ndarray:
    """The 256-entry table of ``name`` with each colour packed in one uint32."""
    table = np.zeros((256, 4), dtype=np.uint8)
    table[:, :3] = _lut(name, 256)
    return table.view(np.uint32).reshape(256)
