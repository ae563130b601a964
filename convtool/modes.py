"""Pad-mode names and output-size arithmetic, decided once for every command.

Table (row ``abcd`` is the image edge)::

    convtool    extends abcd as   numpy.pad   scipy.ndimage  OpenCV               PyTorch
    constant    00|abcd|00        constant    constant       BORDER_CONSTANT      zeros
    replicate   aa|abcd|dd        edge        nearest        BORDER_REPLICATE     replicate
    reflect     cb|abcd|cb        reflect     mirror         BORDER_REFLECT_101   reflect
    symmetric   ba|abcd|dc        symmetric   reflect        BORDER_REFLECT       -
    wrap        cd|abcd|ab        wrap        grid-wrap      BORDER_WRAP          circular
    valid       no padding, the output shrinks by (K-1)*D

This module is pure Python/numpy: importing it never imports numba.
"""

from __future__ import annotations

from .errors import UsageError

#: Every accepted spelling -> canonical name.
PAD_ALIASES: dict[str, str] = {
    "zero": "constant",
    "zeros": "constant",
    "constant": "constant",
    "replicate": "replicate",
    "edge": "replicate",
    "nearest": "replicate",
    "reflect": "reflect",
    "mirror": "reflect",
    "reflect101": "reflect",
    "symmetric": "symmetric",
    "wrap": "wrap",
    "circular": "wrap",
    "valid": "valid",
    "none": "valid",
}

#: Canonical pad modes, in the order the docs list them.
PAD_MODES: tuple[str, ...] = ("constant", "replicate", "reflect", "symmetric", "wrap", "valid")

#: Canonical name -> numpy.pad mode (``valid`` has none).
NUMPY_PAD_MODE: dict[str, str] = {
    "constant": "constant",
    "replicate": "edge",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "wrap": "wrap",
}

#: Canonical name -> scipy.ndimage mode (for tests and docs).
SCIPY_MODE: dict[str, str] = {
    "constant": "constant",
    "replicate": "nearest",
    "reflect": "mirror",
    "symmetric": "reflect",
    "wrap": "grid-wrap",
}

#: Small integer codes the Numba core uses for the canonical modes.
PAD_CODE: dict[str, int] = {name: i for i, name in enumerate(PAD_MODES)}


def normalize_pad(mode: str) -> str:
    """Return the canonical pad-mode name for any accepted spelling.

    Raises
    ------
    UsageError
        For an unknown name; the message lists the accepted ones.

    Examples
    --------
    >>> normalize_pad("edge")
    'replicate'
    """
    key = str(mode).strip().lower().replace("-", "").replace("_", "")
    try:
        return PAD_ALIASES[key]
    except KeyError:
        names = ", ".join(PAD_MODES[:-1]) + " or valid (aliases: zero, edge, nearest, circular)"
        raise UsageError(f"unknown pad mode {mode!r}: use {names}") from None


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` as int if it is an integer >= 1, else raise UsageError."""
    try:
        ivalue = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a whole number >= 1, got {value!r}") from None
    if ivalue != value or ivalue < 1:
        raise UsageError(f"{name} must be a whole number >= 1, got {value!r}")
    return ivalue


def pad_before_after(k: int, dilation: int = 1) -> tuple[int, int]:
    """Padding on each side for a kernel of width ``k`` in a padded mode.

    The anchor (centre) of a correlation kernel is index ``k // 2``, as in
    scipy.ndimage and OpenCV, so an even kernel reaches one pixel further
    before the centre than after it.

    Examples
    --------
    >>> pad_before_after(3), pad_before_after(4), pad_before_after(3, dilation=2)
    ((1, 1), (2, 1), (2, 2))
    """
    return dilation * (k // 2), dilation * (k - 1 - k // 2)


def conv_output_size(
    n: int, k: int, *, stride: int = 1, dilation: int = 1, pad: str = "reflect", axis: str = "width"
) -> int:
    """Output length along one axis, by PyTorch's conv2d rule.

    ``floor((n + P - d*(k-1) - 1) / s) + 1`` with ``P = d*(k-1)`` for the padded
    modes and ``0`` for ``valid``.

    Raises
    ------
    UsageError
        When the result is below 1; the message says why and what to change.

    Examples
    --------
    >>> conv_output_size(10, 3, pad="valid"), conv_output_size(10, 3, stride=2)
    (8, 5)
    """
    span = dilation * (k - 1)
    total_pad = 0 if normalize_pad(pad) == "valid" else span
    out = (n + total_pad - span - 1) // stride + 1
    if out < 1:
        raise UsageError(
            f"output {axis} would be {out}: the image {axis} {n} is smaller than the "
            f"kernel's reach {span + 1} (size {k}, dilation {dilation}) with pad 'valid'; "
            "use a padded mode or a smaller kernel"
        )
    return out


def pool_output_size(
    n: int,
    f: int,
    s: int,
    *,
    padding: int = 0,
    ceil: bool = False,
    axis: str = "width",
    padding_after: int | None = None,
) -> int:
    """Pooling output length: ``floor((n + 2p - f) / s) + 1`` (or ceil mode).

    In ceil mode, as in PyTorch, a last window that would start inside the
    right padding is dropped. ``padding_after`` (default: ``padding``) pads
    the end by another amount (ONNX's asymmetric pads).

    Raises
    ------
    UsageError
        When the window (``f``) is larger than the padded length; the message
        names no option (the API, the CLI and network layers call the size
        differently).

    Examples
    --------
    >>> pool_output_size(7, 2, 2), pool_output_size(7, 2, 2, ceil=True)
    (3, 4)
    """
    total = padding + (padding if padding_after is None else padding_after)
    span = n + total - f
    if span < 0:
        raise UsageError(
            f"pool window {f} is larger than the image {axis} {n}"
            + (f" plus padding {total}" if total else "")
            + "; use a smaller pool size"
        )
    if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= n + padding:
            out -= 1
    else:
        out = span // s + 1
    return out
