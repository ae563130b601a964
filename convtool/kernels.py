"""The named-kernel library and the kernel-spec parser.

Every kernel a user can name on the command line or pass to the Python API goes
through :func:`resolve`, the one place where a *kernel spec* is parsed:

==============================  ==================================================
spec                            meaning
==============================  ==================================================
``NAME``                        a built-in with its default parameters (``sobel``)
``NAME:VALUE``                  the kernel's main parameter (``gaussian:2`` is
                                sigma 2, ``box:5`` is size 5, ``motion:9`` length 9)
``NAME:key=value,key=value``    named parameters (``gabor:theta=45,lambda=6``);
                                ``NAME:VALUE,key=value`` mixes both
``"1 0 -1; 2 0 -2; 1 0 -1"``    an inline matrix: rows split by ``;`` or newlines,
                                numbers by spaces or commas (``[[1,0],[0,1]]`` too)
``@path``                       a file: whitespace/comma text or ``.csv`` (``#``
                                starts a comment), or a ``.npy`` array
==============================  ==================================================

A numpy array or a nested sequence is accepted as a matrix as well. Names are
case-insensitive and ``_`` or ``-`` may be left out (``Sobel_X`` = ``sobelx`` =
``sobel-x``). Every mistake is a :class:`~convtool.errors.UsageError` with a
one-line message that says what to type instead.

Sign conventions
----------------
Kernels are stored as *correlation* weights: the weight at row ``r``, column
``c`` multiplies the pixel at offset ``(r - K//2, c - K//2)`` from the output
pixel, which is what ``convtool convolve --correlate`` (and a CNN layer)
computes. ``x`` points right (increasing column), ``y`` points *down*
(increasing row, the image's own order); angles are in degrees,
counter-clockwise as seen on screen (0 = right, 90 = up).

* ``sobel-x``, ``scharr-x``, ``prewitt-x`` respond **positively to intensity
  increasing to the right**, ``-y`` to intensity increasing downwards, under
  correlation. True convolution (the default of ``convolve``) rotates the
  kernel by 180 degrees, which flips the sign of these odd kernels; the
  magnitude (plain ``sobel``) is the same either way.
* ``roberts-x`` responds positively to intensity increasing towards the lower
  right, ``roberts-y`` towards the lower left.
* ``kirsch-n`` / ``compass-n`` respond positively to a bright region *above*
  the pixel (north); the other directions follow clockwise
  (n, ne, e, se, s, sw, w, nw).
* ``laplacian`` and ``log`` have a negative centre (the discrete Laplacian,
  as ``scipy.ndimage.laplace``); ``dog`` (sigma1 < sigma2) has a positive one.
* ``line-*`` respond positively to a bright line one pixel wide.

The default ``--scale auto`` policy of each kernel (how a signed result becomes
an 8/16-bit picture) is its :attr:`KernelSpec.scale`; ``list_kernels()`` lists
it for every built-in.

This module is pure numpy: it never imports Numba or Pillow.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UsageError

__all__ = [
    "COMBINES",
    "MAX_SIZE",
    "KERNELS",
    "SCALES",
    "KernelDef",
    "KernelSpec",
    "Param",
    "kernel",
    "list_kernels",
    "resolve",
]

#: How a multi-kernel spec merges its responses ("single" for one kernel).
COMBINES: tuple[str, ...] = ("single", "magnitude", "max", "sum")
#: The values of ``--scale`` that ``auto`` can stand for.
SCALES: tuple[str, ...] = ("clip", "abs", "normalize", "offset")


# ---------------------------------------------------------------------------
# data types


@dataclass(frozen=True, eq=False)
class KernelSpec:
    """A resolved kernel spec: one kernel or a bank of kernels of one shape.

    Attributes
    ----------
    name : str
        The canonical spec (``"gaussian:sigma=2"``, ``"sobel"``, ``"matrix"``,
        ``"@k.txt"``).
    labels : tuple of str
        One label per kernel (``("sobel-x", "sobel-y")``).
    weights : tuple of numpy.ndarray
        Read-only float32 2-D correlation weights, one per label.
    combine : str
        ``"single"`` for one kernel, else how the responses are merged:
        ``"magnitude"`` (sqrt of the sum of squares), ``"max"`` or ``"sum"``.
    scale : str
        What ``--scale auto`` means for this kernel: ``"clip"``, ``"abs"``,
        ``"normalize"`` or ``"offset"``.
    params : tuple of (str, value) pairs
        The parameters the kernel was built with (defaults filled in).

    Examples
    --------
    >>> spec = resolve("sobel")
    >>> spec.labels, spec.combine, spec.scale, spec.shape
    (('sobel-x', 'sobel-y'), 'magnitude', 'normalize', (3, 3))
    """

    name: str
    labels: tuple[str, ...]
    weights: tuple[np.ndarray, ...]
    combine: str = "single"
    scale: str = "clip"
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of each kernel."""
        return tuple(self.weights[0].shape)  # type: ignore[return-value]

    @property
    def count(self) -> int:
        """Number of kernels (1 for a single kernel)."""
        return len(self.weights)

    def stack(self) -> np.ndarray:
        """A fresh float32 ``(M, K, L)`` array of all the kernels."""
        return np.stack(self.weights).astype(np.float32)

    def __repr__(self) -> str:
        rows, cols = self.shape
        return (
            f"KernelSpec(name={self.name!r}, labels={self.labels!r}, shape=({rows}, {cols}), "
            f"combine={self.combine!r}, scale={self.scale!r})"
        )


@dataclass(frozen=True)
class Param:
    """One typed parameter of a built-in kernel.

    ``default=None`` means "derived from the others" (``help`` says how).
    """

    name: str
    type: type
    default: Any
    help: str
    gt: float | None = None  # value must be > gt
    ge: float | None = None  # value must be >= ge
    le: float | None = None  # value must be <= le
    odd: bool = False
    choices: tuple[Any, ...] | None = None
    aliases: tuple[str, ...] = ()

    def describe(self) -> str:
        """``name=default`` as the kernel table shows it."""
        default = "auto" if self.default is None else _fmt_value(self.default)
        return f"{self.name}={default}"

    def convert(self, kernel_name: str, raw: Any) -> Any:
        """Check and convert one user value; UsageError names the fix."""
        where = f"{kernel_name}: {self.name}"
        if self.type is bool:
            return _convert_bool(where, raw)
        want = "a whole number" if self.type is int else "a number"
        if isinstance(raw, str):
            text = raw.strip()
            try:
                value: Any = float(text)
            except ValueError:
                raise UsageError(
                    f"{where} must be {want}, got {raw!r} (e.g. {kernel_name}:{self.name}="
                    f"{_fmt_value(self._example())})"
                ) from None
        elif isinstance(raw, (bool, np.bool_)) or not isinstance(raw, (int, float, np.number)):
            raise UsageError(f"{where} must be {want}, got {raw!r}")
        else:
            value = float(raw)
        if not math.isfinite(value):
            raise UsageError(f"{where} must be a finite number, got {raw!r}")
        if self.type is int:
            if value != int(value):
                raise UsageError(f"{where} must be a whole number, got {raw!r}")
            value = int(value)
        if self.choices is not None and value not in self.choices:
            options = " or ".join(_fmt_value(c) for c in self.choices)
            raise UsageError(f"{where} must be {options}, got {raw!r}")
        if self.gt is not None and not value > self.gt:
            raise UsageError(f"{where} must be > {_fmt_value(self.gt)}, got {raw!r}")
        if self.ge is not None and not value >= self.ge:
            raise UsageError(f"{where} must be >= {_fmt_value(self.ge)}, got {raw!r}")
        if self.le is not None and not value <= self.le:
            raise UsageError(f"{where} must be <= {_fmt_value(self.le)}, got {raw!r}")
        if self.odd and value % 2 != 1:
            raise UsageError(
                f"{where} must be odd so the kernel has a centre, got {raw!r} "
                f"(use {value - 1} or {value + 1})"
            )
        return value

    def _example(self) -> Any:
        if self.default is not None:
            return self.default
        return 3 if self.type is int else 1.0


@dataclass(frozen=True)
class KernelDef:
    """A built-in kernel: a factory with typed parameters and its documentation.

    ``factory(**params)`` returns one 2-D array, or a dict label -> array for a
    bank. ``main`` names the parameter that ``NAME:VALUE`` sets.
    """

    name: str
    factory: Callable[..., Any]
    meaning: str
    scale: str
    combine: str = "single"
    params: tuple[Param, ...] = ()
    main: str | None = None
    size: str = ""  # how the size follows from the parameters ("" = fixed)
    aliases: tuple[str, ...] = ()
    group: str | None = None  # directional variants listed together in the table

    def param(self, key: str) -> Param | None:
        key = key.strip().lower()
        for p in self.params:
            if key == p.name or key in p.aliases:
                return p
        return None

    def build(self, values: dict[str, Any]) -> KernelSpec:
        full = {p.name: values.get(p.name, p.default) for p in self.params}
        out = self.factory(**full)
        if isinstance(out, dict):
            labels = tuple(out)
            arrays = tuple(out.values())
        else:
            labels, arrays = (self.name,), (out,)
        weights = tuple(_freeze(a) for a in arrays)
        shown = ",".join(f"{k}={_fmt_value(v)}" for k, v in values.items())
        return KernelSpec(
            name=f"{self.name}:{shown}" if shown else self.name,
            labels=labels,
            weights=weights,
            combine=self.combine,
            scale=self.scale,
            params=tuple(
                (k, weights[0].shape[0] if v is None and k == "size" else v)
                for k, v in full.items()
            ),
        )

    def size_text(self, shape: tuple[int, int] | None = None) -> str:
        """Size as the table shows it: the rule and the default shape.

        ``shape``: the default build's shape when the caller already has it.
        """
        rows, cols = shape if shape is not None else self.build({}).shape
        shape = f"{rows}x{cols}"
        return f"{self.size} ({shape})" if self.size else shape


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _convert_bool(where: str, raw: Any) -> bool:
    if isinstance(raw, (bool, np.bool_)):
        return bool(raw)
    if isinstance(raw, (int, float, np.number)) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    raise UsageError(f"{where} must be true or false, got {raw!r}")


def _fmt_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _freeze(array: Any) -> np.ndarray:
    out = np.array(array, dtype=np.float32)
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------------------
# factories (plain numpy; every one returns correlation weights)


#: The widest kernel a built-in may make (a bigger one is almost surely a typo).
MAX_SIZE = 1025


def _odd_size(sigma: float, what: str = "sigma") -> int:
    """``2*ceil(3*sigma)+1``, the default width of the Gaussian-based kernels."""
    size = 2 * math.ceil(3.0 * sigma) + 1
    if size > MAX_SIZE:
        raise UsageError(
            f"{what} {_fmt_value(sigma)} would need a {size}x{size} kernel, over the "
            f"{MAX_SIZE}x{MAX_SIZE} limit: use {what} <= {(MAX_SIZE - 1) // 6} or give size="
        )
    return size


def _gauss1d(sigma: float, size: int) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _gaussian2d(sigma: float, size: int) -> np.ndarray:
    g = _gauss1d(sigma, size)
    return np.outer(g, g)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (right) and ``y`` (up) coordinates of a size x size grid, centre 0."""
    half = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    return cols - half, half - rows


def _identity(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def _box(size: int) -> np.ndarray:
    return np.full((size, size), 1.0 / (size * size))


def _gaussian(sigma: float, size: int | None) -> np.ndarray:
    return _gaussian2d(sigma, size or _odd_size(sigma))


def _sharpen(amount: float) -> np.ndarray:
    return _identity(3) - amount * _LAPLACIAN[4]


def _unsharp(sigma: float, amount: float, size: int | None) -> np.ndarray:
    size = size or _odd_size(sigma)
    delta = _identity(size)
    return delta + amount * (delta - _gaussian2d(sigma, size))


def _emboss() -> np.ndarray:
    return np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)


def _motion(length: int, angle: float) -> np.ndarray:
    # Each pixel is weighted by how much a 1-pixel-wide segment of `length`
    # pixels through the centre covers it (tent across the line, hard-ish ends),
    # then the weights are normalised to sum 1.
    size = length if length % 2 == 1 else length + 1
    x, y = _grid(size)
    theta = math.radians(angle)
    along = x * math.cos(theta) + y * math.sin(theta)
    across = -x * math.sin(theta) + y * math.cos(theta)
    w = np.clip(1.0 - np.abs(across), 0.0, 1.0)
    w *= np.clip(length / 2.0 - np.abs(along) + 0.5, 0.0, 1.0)
    w[np.abs(w) < 1e-12] = 0.0
    return w / w.sum()


_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
_SCHARR_X = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], dtype=np.float64)
_PREWITT_X = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64)
_ROBERTS_X = np.array([[-1, 0], [0, 1]], dtype=np.float64)
_ROBERTS_Y = np.array([[0, -1], [1, 0]], dtype=np.float64)


def _const(matrix: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: matrix.copy()


def _pair(family: str, x: np.ndarray, y: np.ndarray) -> Callable[[], dict[str, np.ndarray]]:
    return lambda: {f"{family}-x": x.copy(), f"{family}-y": y.copy()}


_LAPLACIAN = {
    4: np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    8: np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]], dtype=np.float64),
}


def _laplacian(neighbours: int) -> np.ndarray:
    return _LAPLACIAN[neighbours].copy()


def _log(sigma: float, size: int | None) -> np.ndarray:
    # Scale-normalised Laplacian of Gaussian sigma^2 * nabla^2 G (Lindeberg), so
    # responses keep the image's magnitude at any sigma; made exactly zero-sum.
    size = size or _odd_size(sigma)
    x, y = _grid(size)
    r2 = (x * x + y * y) / (sigma * sigma)
    w = (r2 - 2.0) * np.exp(-0.5 * r2) / (2.0 * math.pi * sigma * sigma)
    return w - w.mean()


def _dog(sigma1: float, sigma2: float, size: int | None) -> np.ndarray:
    if sigma1 == sigma2:
        raise UsageError("dog: sigma1 and sigma2 must differ (e.g. dog:sigma1=1,sigma2=1.6)")
    size = size or _odd_size(max(sigma1, sigma2), "max(sigma1, sigma2)")
    return _gaussian2d(sigma1, size) - _gaussian2d(sigma2, size)


def _gabor(
    theta: float,
    sigma: float,
    gamma: float,
    psi: float,
    size: int | None,
    dc: bool = False,
    **rest: float,
) -> np.ndarray:
    # Real part of a Gabor filter: with dc=true exactly OpenCV's getGaborKernel
    # (amplitude 1 at the centre). `theta` is the direction of the wave (across
    # the stripes). That wave under a Gaussian does not sum to zero (for the
    # default psi=0, lambda=6, sigma=2 the weights sum to ~3.8 times the
    # centre), so it also responds to plain brightness and looks like a blur.
    # By default the DC term is removed as Morlet wavelets remove it: subtract
    # the envelope times the constant that makes the sum zero, which keeps the
    # kernel's support and shape (a uniform shift would add a square pedestal).
    lambd = rest["lambda"]  # a Python keyword, so it arrives by **
    size = size or _odd_size(max(sigma, sigma / gamma), "sigma/min(gamma,1)")
    x, y = _grid(size)
    t = math.radians(theta)
    xr = x * math.cos(t) + y * math.sin(t)
    yr = -x * math.sin(t) + y * math.cos(t)
    envelope = np.exp(-(xr * xr + (gamma * yr) ** 2) / (2.0 * sigma * sigma))
    wave = np.cos(2.0 * math.pi * xr / lambd + math.radians(psi))
    if not dc:
        wave -= float((envelope * wave).sum() / envelope.sum())
    return envelope * wave


# clockwise around a 3x3 ring, starting top-left
_RING = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))
DIRECTIONS: tuple[str, ...] = ("n", "ne", "e", "se", "s", "sw", "w", "nw")


def _ring_rotations(north: np.ndarray) -> dict[str, np.ndarray]:
    """The 8 compass rotations of a 3x3 kernel, by shifting its outer ring."""
    values = [north[r, c] for r, c in _RING]
    out = {}
    for step, direction in enumerate(DIRECTIONS):
        k = north.copy()
        for i, (r, c) in enumerate(_RING):
            k[r, c] = values[(i - step) % 8]
        out[direction] = k
    return out


_KIRSCH = _ring_rotations(np.array([[5, 5, 5], [-3, 0, -3], [-3, -3, -3]], dtype=np.float64))
_COMPASS = _ring_rotations(np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64))
_LINES = {
    "h": np.array([[-1, -1, -1], [2, 2, 2], [-1, -1, -1]], dtype=np.float64),
    "v": np.array([[-1, 2, -1], [-1, 2, -1], [-1, 2, -1]], dtype=np.float64),
    "d1": np.array([[-1, -1, 2], [-1, 2, -1], [2, -1, -1]], dtype=np.float64),
    "d2": np.array([[2, -1, -1], [-1, 2, -1], [-1, -1, 2]], dtype=np.float64),
}
_LINE_MEANING = {
    "h": "horizontal",
    "v": "vertical",
    "d1": "45-degree (rising /)",
    "d2": "135-degree (falling \\)",
}


# ---------------------------------------------------------------------------
# the registry


def _sigma(default: float, help: str = "Gaussian standard deviation in pixels") -> Param:
    return Param("sigma", float, default, help, gt=0)


def _size_auto(rule: str = "2*ceil(3*sigma)+1") -> Param:
    return Param("size", int, None, f"odd kernel width; auto = {rule}", ge=1, le=MAX_SIZE, odd=True)


def _defs() -> list[KernelDef]:
    defs = [
        KernelDef(
            "identity",
            _identity,
            "passes the image through unchanged",
            "clip",
            params=(Param("size", int, 1, "odd kernel width", ge=1, le=MAX_SIZE, odd=True),),
            main="size",
            size="size",
        ),
        KernelDef(
            "box",
            _box,
            "mean of a size x size window (box blur)",
            "clip",
            params=(Param("size", int, 3, "kernel width", ge=1, le=MAX_SIZE),),
            main="size",
            size="size",
            aliases=("mean", "average", "blur"),
        ),
        KernelDef(
            "gaussian",
            _gaussian,
            "Gaussian blur, weights sum to 1",
            "clip",
            params=(_sigma(1.0), _size_auto()),
            main="sigma",
            size="2*ceil(3*sigma)+1",
            aliases=("gauss",),
        ),
        KernelDef(
            "sharpen",
            _sharpen,
            "identity minus amount x 4-neighbour Laplacian",
            "clip",
            params=(Param("amount", float, 1.0, "strength", ge=0),),
            main="amount",
        ),
        KernelDef(
            "unsharp",
            _unsharp,
            "unsharp mask: image + amount x (image - gaussian blur)",
            "clip",
            params=(
                _sigma(1.0, "blur sigma in pixels"),
                Param("amount", float, 1.0, "strength", ge=0),
                _size_auto(),
            ),
            main="sigma",
            size="2*ceil(3*sigma)+1",
            aliases=("unsharp-mask",),
        ),
        KernelDef("emboss", _emboss, "relief lit from the top left (sum 1)", "clip"),
        KernelDef(
            "motion",
            _motion,
            "motion blur along a line of `length` pixels (sum 1)",
            "clip",
            params=(
                Param("length", int, 9, "line length in pixels", ge=1, le=MAX_SIZE),
                Param("angle", float, 0.0, "degrees counter-clockwise from right"),
            ),
            main="length",
            size="length rounded up to odd",
        ),
    ]
    for family, x, meaning in (
        ("sobel", _SOBEL_X, "Sobel"),
        ("scharr", _SCHARR_X, "Scharr"),
        ("prewitt", _PREWITT_X, "Prewitt"),
    ):
        y = x.T.copy()
        defs += [
            KernelDef(
                family,
                _pair(family, x, y),
                f"{meaning} gradient magnitude sqrt(x^2 + y^2)",
                "normalize",
                combine="magnitude",
            ),
            KernelDef(
                f"{family}-x",
                _const(x),
                f"{meaning} d/dx: + where intensity rises to the right",
                "offset",
            ),
            KernelDef(
                f"{family}-y",
                _const(y),
                f"{meaning} d/dy: + where intensity rises downwards",
                "offset",
            ),
        ]
    defs += [
        KernelDef(
            "roberts",
            _pair("roberts", _ROBERTS_X, _ROBERTS_Y),
            "Roberts cross gradient magnitude (2x2)",
            "normalize",
            combine="magnitude",
        ),
        KernelDef(
            "roberts-x",
            _const(_ROBERTS_X),
            "Roberts cross: + where intensity rises to the lower right",
            "offset",
        ),
        KernelDef(
            "roberts-y",
            _const(_ROBERTS_Y),
            "Roberts cross: + where intensity rises to the lower left",
            "offset",
        ),
        KernelDef(
            "laplacian",
            _laplacian,
            "discrete Laplacian (4 or 8 neighbours), negative centre",
            "offset",
            params=(
                Param(
                    "neighbours",
                    int,
                    4,
                    "4 (cross) or 8 (with diagonals)",
                    choices=(4, 8),
                    aliases=("neighbors", "n"),
                ),
            ),
            main="neighbours",
            aliases=("laplace",),
        ),
        KernelDef("laplacian4", _const(_LAPLACIAN[4]), "4-neighbour Laplacian", "offset"),
        KernelDef("laplacian8", _const(_LAPLACIAN[8]), "8-neighbour Laplacian", "offset"),
        KernelDef(
            "log",
            _log,
            "Laplacian of Gaussian sigma^2*lap(G), zero-sum (blobs, edges)",
            "offset",
            params=(_sigma(1.4), _size_auto()),
            main="sigma",
            size="2*ceil(3*sigma)+1",
            aliases=("laplacian-of-gaussian", "mexican-hat"),
        ),
        KernelDef(
            "dog",
            _dog,
            "difference of Gaussians G(sigma1) - G(sigma2), zero-sum",
            "offset",
            params=(
                Param("sigma1", float, 1.0, "inner (narrow) sigma", gt=0, aliases=("s1",)),
                Param("sigma2", float, 1.6, "outer (wide) sigma", gt=0, aliases=("s2",)),
                _size_auto("2*ceil(3*max(sigma1, sigma2))+1"),
            ),
            main="sigma1",
            size="2*ceil(3*max(sigma1,sigma2))+1",
            aliases=("difference-of-gaussians",),
        ),
        KernelDef(
            "gabor",
            _gabor,
            "Gabor filter, real part, zero-mean (dc=true: as OpenCV): stripes across theta",
            "offset",
            params=(
                Param("theta", float, 0.0, "wave direction, degrees counter-clockwise"),
                _sigma(2.0, "envelope sigma in pixels"),
                Param("lambda", float, 6.0, "wavelength in pixels", gt=0, aliases=("wavelength",)),
                Param("gamma", float, 0.5, "aspect ratio of the envelope", gt=0),
                Param("psi", float, 0.0, "phase offset in degrees", aliases=("phase",)),
                _size_auto("2*ceil(3*sigma/min(gamma,1))+1"),
                Param(
                    "dc",
                    bool,
                    False,
                    "keep the DC term (OpenCV's getGaborKernel; the weights do not sum to 0)",
                    aliases=("keep_dc",),
                ),
            ),
            main="theta",
            size="2*ceil(3*sigma/min(gamma,1))+1",
        ),
    ]
    for family, bank, what in (
        ("kirsch", _KIRSCH, "Kirsch compass"),
        ("compass", _COMPASS, "Robinson compass (rotated Sobel)"),
    ):
        defs.append(
            KernelDef(
                family,
                lambda bank=bank, family=family: {
                    f"{family}-{d}": k.copy() for d, k in bank.items()
                },
                f"{what} edges: max over 8 directions",
                "normalize",
                combine="max",
            )
        )
        for d, k in bank.items():
            defs.append(
                KernelDef(
                    f"{family}-{d}",
                    _const(k),
                    f"{what}, one direction: + where the {d.upper()} side is brighter",
                    "offset",
                    group=family,
                )
            )
    defs.append(
        KernelDef(
            "line",
            lambda: {f"line-{d}": k.copy() for d, k in _LINES.items()},
            "thin bright lines in any of 4 directions: max of line-h/v/d1/d2",
            "normalize",
            combine="max",
        )
    )
    for d, k in _LINES.items():
        defs.append(
            KernelDef(
                f"line-{d}",
                _const(k),
                f"{_LINE_MEANING[d]} line detector (+ on a bright line)",
                "abs",
                group="line",
            )
        )
    return defs


#: Every built-in kernel by canonical name, in listing order.
KERNELS: dict[str, KernelDef] = {d.name: d for d in _defs()}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")


_LOOKUP: dict[str, str] = {}
for _d in KERNELS.values():
    for _alias in (_d.name, *_d.aliases):
        _LOOKUP[_key(_alias)] = _d.name
del _d, _alias


def list_kernels() -> list[dict[str, Any]]:
    """Describe every built-in kernel (JSON-friendly).

    Returns
    -------
    list of dict
        One dict per kernel, in listing order, with keys ``name``, ``size``
        (rule and default shape), ``parameters`` (list of dicts: name, type,
        default -- ``None`` = derived --, help), ``main`` (what ``NAME:VALUE``
        sets), ``meaning``, ``scale`` (what ``--scale auto`` means for it),
        ``combine``, ``kernels`` (count), ``aliases`` and ``group`` (the
        family of a directional variant, else ``None``).

    Examples
    --------
    >>> rows = {row["name"]: row for row in list_kernels()}
    >>> rows["sobel-x"]["scale"], rows["gaussian"]["main"], rows["kirsch"]["kernels"]
    ('offset', 'sigma', 8)
    """
    rows = []
    for d in KERNELS.values():
        built = d.build({})
        rows.append(
            {
                "name": d.name,
                "size": d.size_text(built.shape),
                "parameters": [
                    {"name": p.name, "type": p.type.__name__, "default": p.default, "help": p.help}
                    for p in d.params
                ],
                "main": d.main,
                "meaning": d.meaning,
                "scale": d.scale,
                "combine": d.combine,
                "kernels": built.count,
                "aliases": list(d.aliases),
                "group": d.group,
            }
        )
    return rows


# ---------------------------------------------------------------------------
# spec parsing

_NAME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_\-]*)\s*(?::(.*))?$", re.DOTALL)
_NUMBER_WORDS = {"nan", "inf", "infinity"}


def resolve(spec: Any) -> KernelSpec:
    """Parse any kernel spec into a :class:`KernelSpec`.

    Parameters
    ----------
    spec : str, numpy.ndarray, nested sequence or KernelSpec
        ``NAME``, ``NAME:VALUE``, ``NAME:key=value,...``, an inline matrix
        (``"1 0 -1; 2 0 -2; 1 0 -1"``), ``@path`` (text, ``.csv`` or ``.npy``),
        a 2-D array or nested list. A KernelSpec is returned unchanged.

    Returns
    -------
    KernelSpec
        Read-only float32 weights plus the combine rule and auto scale.

    Raises
    ------
    UsageError
        Unknown name (with the list of names and a did-you-mean), bad
        parameter, ragged or empty matrix, NaN/inf weights, not 2-D, missing
        or unreadable file. The message is one line.

    Examples
    --------
    >>> resolve("gaussian:2").params
    (('sigma', 2.0), ('size', 13))
    >>> resolve("1 0 -1; 2 0 -2; 1 0 -1").weights[0].tolist()
    [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
    >>> resolve("kirsch").combine
    'max'
    """
    if isinstance(spec, KernelSpec):
        return spec
    if isinstance(spec, (str, os.PathLike)) and not isinstance(spec, str):
        spec = "@" + os.fspath(spec)
    if isinstance(spec, bytes):
        spec = spec.decode("utf-8", "replace")
    if isinstance(spec, str):
        text = spec.strip()
        if not text:
            raise UsageError(
                "empty kernel spec: give a name (e.g. sobel, gaussian:2), a matrix "
                "('1 0 -1; 2 0 -2; 1 0 -1') or @file; `convtool kernels` lists the names"
            )
        if text.startswith("@"):
            return _from_file(os.path.expanduser(text[1:].strip()))
        first = re.match(r"[A-Za-z]+", text)
        if first and first.group(0).lower() not in _NUMBER_WORDS:
            match = _NAME_RE.match(text)
            if match is None:
                raise UsageError(
                    f"bad kernel spec {text!r}: write NAME, NAME:VALUE or NAME:key=value,... "
                    "without spaces in the name (e.g. gaussian:sigma=2), a matrix or @file"
                )
            return _from_name(match.group(1), match.group(2))
        return _matrix_spec(_parse_matrix(text, "inline kernel"), "matrix", "inline kernel")
    return _matrix_spec(_as_matrix(spec, "kernel array"), "matrix", "kernel array")


def kernel(spec: Any) -> np.ndarray:
    """The weights of a kernel spec as a new float32 array.

    Parameters
    ----------
    spec : str, numpy.ndarray, nested sequence or KernelSpec
        Anything :func:`resolve` accepts.

    Returns
    -------
    numpy.ndarray
        float32 ``(K, L)`` for a single kernel, ``(M, K, L)`` for a bank
        (``sobel``, ``kirsch``, ``line``); correlation weights (see the module
        notes on signs).

    Examples
    --------
    >>> kernel("sobel-x")
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]], dtype=float32)
    >>> kernel("box:2").sum(), kernel("sobel").shape
    (np.float32(1.0), (2, 3, 3))
    """
    resolved = resolve(spec)
    if resolved.count == 1:
        return np.array(resolved.weights[0], dtype=np.float32)
    return resolved.stack()


def _unknown_name(name: str) -> UsageError:
    names = [d.name for d in KERNELS.values() if d.group is None]
    families: dict[str, list[str]] = {}
    for d in KERNELS.values():
        if d.group:
            families.setdefault(d.group, []).append(d.name[len(d.group) + 1 :])
    close = [_LOOKUP[k] for k in difflib.get_close_matches(_key(name), list(_LOOKUP), n=5)]
    close = list(dict.fromkeys(close))[:3]
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    listing = ", ".join(
        names + [f"{f}-{{{','.join(suffixes)}}}" for f, suffixes in families.items()]
    )
    return UsageError(f"unknown kernel {name!r}: {hint}known kernels: {listing}")


def _from_name(name: str, args: str | None) -> KernelSpec:
    canonical = _LOOKUP.get(_key(name))
    if canonical is None:
        raise _unknown_name(name)
    d = KERNELS[canonical]
    values: dict[str, Any] = {}
    if args is not None:
        if not d.params:
            raise UsageError(f"kernel {d.name!r} takes no parameters; use just {d.name!r}")
        items = [item.strip() for item in args.split(",")]
        if not args.strip() or any(not item for item in items):
            raise UsageError(
                f"empty parameter in {name}:{args}; write {d.name}:VALUE or "
                f"{d.name}:key=value,key=value ({_param_list(d)})"
            )
        for position, item in enumerate(items):
            if "=" in item:
                key, raw = (part.strip() for part in item.split("=", 1))
                param = d.param(key)
                if param is None:
                    known = [p.name for p in d.params] + [a for p in d.params for a in p.aliases]
                    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.5)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise UsageError(
                        f"kernel {d.name!r} has no parameter {key!r}: {hint}"
                        f"its parameters are {_param_list(d)}"
                    )
            elif position == 0 and d.main is not None:
                param, raw = d.param(d.main), item  # type: ignore[assignment]
            else:
                raise UsageError(
                    f"{d.name}: write key=value for {item!r} "
                    f"(only the first value may omit its name); parameters: {_param_list(d)}"
                )
            assert param is not None
            if param.name in values:
                raise UsageError(f"{d.name}: parameter {param.name!r} given twice")
            values[param.name] = param.convert(d.name, raw)
    return d.build(values)


def _param_list(d: KernelDef) -> str:
    return ", ".join(p.describe() for p in d.params) or "none"


def _from_file(path: str) -> KernelSpec:
    what = f"kernel file {path!r}"
    if not path:
        raise UsageError("empty kernel file name after '@': write -k @path/to/kernel.txt")
    if not os.path.exists(path):
        raise UsageError(f"{what} not found; check the path (the spec was @{path})")
    if os.path.isdir(path):
        raise UsageError(f"{what} is a directory; give a .txt, .csv or .npy file")
    if path.lower().endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"{what} is not a readable .npy array: {reason}") from None
        matrix = _as_matrix(array, what)
    else:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except UnicodeDecodeError:
            raise UsageError(
                f"{what} is not text; use whitespace/comma separated numbers or a .npy file"
            ) from None
        except OSError as exc:
            raise UsageError(f"{what} cannot be read: {exc.strerror or exc}") from None
        matrix = _parse_matrix(text, what)
    return _matrix_spec(matrix, f"@{path}", what)


def _parse_matrix(text: str, what: str) -> np.ndarray:
    """Rows split by ';' or newlines, numbers by spaces or commas; '#' comments."""
    body = text.replace("\u2212", "-").strip()  # a typographic minus pasted from a paper
    if body.startswith("[["):
        try:
            return _as_matrix(json.loads(body), what)
        except json.JSONDecodeError:
            pass  # fall through: maybe MATLAB-style "[1 2; 3 4]" with brackets
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    rows: list[list[float]] = []
    lines = [line.split("#", 1)[0] for line in body.splitlines()]
    filled = [line.strip().rstrip(";") for line in lines if line.strip().rstrip(";")]
    if len(filled) > 1 and any(";" in line for line in filled):
        raise UsageError(
            f"{what} uses both ';' and line breaks between rows; put one row per line "
            "(numbers split by spaces or commas) or every row on one line split by ';'"
        )
    for chunk in ";".join(lines).split(";"):
        chunk = chunk.strip().strip("[]").strip().strip(",")
        if not chunk:
            continue
        row = []
        for token in re.split(r"[,\s]+", chunk.strip()):
            try:
                row.append(float(token.strip("\"'")))
            except ValueError:
                raise UsageError(
                    f"{what}: {token!r} is not a number (row {len(rows) + 1}); write rows "
                    "of numbers split by ';' or newlines, e.g. '1 0 -1; 2 0 -2; 1 0 -1'"
                ) from None
        if rows and len(row) != len(rows[0]):
            raise UsageError(
                f"{what} is ragged: row {len(rows) + 1} has {_count(len(row))} but row 1 "
                f"has {_count(len(rows[0]))}; every row needs the same count"
            )
        rows.append(row)
    if not rows:
        raise UsageError(f"{what} is empty; give at least one number, e.g. '1' or '1 2; 3 4'")
    return _check_matrix(np.array(rows, dtype=np.float64), what)


def _count(n: int) -> str:
    return f"{n} number" if n == 1 else f"{n} numbers"


def _as_matrix(value: Any, what: str) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        lengths = {len(r) if isinstance(r, (list, tuple, np.ndarray)) else -1 for r in value}
        if len(lengths) > 1:
            raise UsageError(f"{what} is ragged: rows have different lengths {sorted(lengths)}")
    try:
        array = np.asarray(value)
    except ValueError:
        raise UsageError(f"{what} is ragged or not numeric; give a 2-D grid of numbers") from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise UsageError(f"{what} is not numeric (dtype {array.dtype}); give a 2-D grid of numbers")
    if np.iscomplexobj(array):
        raise UsageError(f"{what} is complex; give real weights")
    return _check_matrix(array.astype(np.float64), what)


def _check_matrix(array: np.ndarray, what: str) -> np.ndarray:
    if array.size == 0:
        raise UsageError(f"{what} is empty (shape {array.shape}); give at least one weight")
    if array.ndim != 2:
        hint = (
            "; for a bank of filters pass several -k options"
            if array.ndim == 3
            else "; give rows of numbers"
        )
        raise UsageError(f"{what} must be 2-D, got {array.ndim}-D shape {array.shape}{hint}")
    bad = ~np.isfinite(array)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise UsageError(
            f"{what} has a non-finite weight ({array[r, c]}) at row {r + 1}, column {c + 1}; "
            "all weights must be finite numbers"
        )
    with np.errstate(over="ignore"):
        as32 = array.astype(np.float32)
    if not np.isfinite(as32).all():
        raise UsageError(f"{what} has weights too large for float32 (|w| > 3.4e38)")
    return array


def _matrix_spec(matrix: np.ndarray, name: str, what: str) -> KernelSpec:
    weights = _freeze(matrix)
    return KernelSpec(
        name=name,
        labels=(os.path.basename(name[1:]) if name.startswith("@") else name,),
        weights=(weights,),
        combine="single",
        scale=_auto_scale(weights),
    )


def _auto_scale(weights: np.ndarray) -> str:
    """``--scale auto`` for a user matrix: clip if non-negative, offset if zero-sum."""
    if (weights >= 0).all():
        return "clip"
    w = weights.astype(np.float64)  # float32 sums of huge weights would overflow
    total = float(np.abs(w).sum())
    if abs(float(w.sum())) <= 1e-6 * max(total, 1.0):
        return "offset"
    return "clip"
