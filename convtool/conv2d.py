"""Multi-channel 2-D convolution with PyTorch ``conv2d`` semantics.

The layer-level convolution that networks (TOML specs and ONNX models) run:
(C, H, W) in, (M, H', W') out, groups, stride, dilation and padding.
"""

from __future__ import annotations

import numpy as np

from .errors import UsageError
from .modes import check_positive_int, normalize_pad


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding: int | tuple[int, int, int, int] = 0,
    pad_mode: str = "constant",
    pad_value: float = 0.0,
    method: str = "auto",
) -> np.ndarray:
    """Multi-channel 2-D convolution with PyTorch ``conv2d`` semantics.

    Parameters
    ----------
    x : (C, H, W) array
    weight : (M, C/groups, KH, KW) array
    bias : (M,) array or None
    stride, dilation : int or (int, int)
        One value for both axes, or (rows, columns) as PyTorch and ONNX take them.
    groups : int
    padding : int or (top, bottom, left, right)
    pad_mode : canonical pad mode for the padding (``constant`` uses ``pad_value``)
    method : ``auto``, ``bank`` or ``matmul`` (see Notes)

    Returns
    -------
    numpy.ndarray
        float32 (M, H', W').

    Notes
    -----
    Cross-correlation, as CNN layers compute it, on the padded input. Two
    ways, same numbers within float32 round-off:

    ``bank``
        :func:`convtool.filtering.convolve` (``pad="valid"``,
        ``correlate=True``, ``combine="stack"``) filters each input channel
        with the stack of its M/groups filter slices, and the stacks are
        summed over the group's channels. It picks direct, separable or FFT
        loops itself, so it wins for one channel per group (first layers,
        depthwise) and for large kernels.
    ``matmul``
        im2col in row blocks of at most ~32 MB: the (C/groups * K * K, rows *
        W') patch matrix times the (M/groups, C/groups * K * K) weight matrix,
        one BLAS product per block. It wins for small kernels.

    ``auto`` takes ``bank`` for a kernel side >= 9 or at most 24 (output, input)
    channel pairs per group (equal strides), else ``matmul``. Measured on 512x512 inputs
    (benchmarks/bench_visualize.py): LeNet's C1 (3 -> 6 channels, 5x5) 49 ms
    bank vs 96 ms matmul; C3 (6 -> 16) 122 ms bank vs 35 ms matmul.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((2, 4, 4), np.float32)
    >>> conv2d(x, np.ones((1, 2, 3, 3), np.float32), np.array([1.0], np.float32))[0, 0].tolist()
    [19.0, 19.0]
    """
    x = np.asarray(x, dtype=np.float32)
    weight = np.asarray(weight, dtype=np.float32)
    if x.ndim != 3 or weight.ndim != 4:
        raise UsageError(
            "conv2d needs x of shape (C, H, W) and weight of shape (M, C/groups, KH, KW)"
        )
    sh, sw = _pair("stride", stride)
    dh, dw = _pair("dilation", dilation)
    groups = check_positive_int("groups", groups)
    c = x.shape[0]
    m, cg, kh, kw = weight.shape
    if c % groups or cg * groups != c or m % groups or min(m, kh, kw) < 1:
        raise UsageError(
            f"weight shape {weight.shape} does not fit {c} channels in {groups} groups"
        )
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float32)
        if bias.shape != (m,):
            raise UsageError(f"bias shape {bias.shape} does not fit {m} output channels")
    padding = _padding(padding)
    top, bottom, left, right = padding
    pad_mode = normalize_pad(pad_mode)
    if pad_mode == "valid" and any(padding):
        raise UsageError(f"pad mode 'valid' adds no padding, but padding {padding} was given")
    if any(padding):
        widths = ((0, 0), (top, bottom), (left, right))
        if pad_mode == "constant":
            x = np.pad(x, widths, mode="constant", constant_values=pad_value)
        else:
            from .modes import NUMPY_PAD_MODE

            x = np.pad(x, widths, mode=NUMPY_PAD_MODE[pad_mode])
    h, w = x.shape[1:]
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (w - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise UsageError(
            f"conv2d output would be {oh}x{ow}: the padded input {h}x{w} is smaller than the "
            f"kernel's reach {dh * (kh - 1) + 1}x{dw * (kw - 1) + 1}"
        )
    mg = m // groups
    if method == "auto":
        method = "bank" if (max(kh, kw) >= 9 or mg * cg <= 24) and sh == sw else "matmul"
    elif method not in ("bank", "matmul"):
        raise UsageError(f"unknown conv2d method {method!r}: use auto, bank or matmul")
    out = np.empty((m, oh, ow), dtype=np.float32)
    for g in range(groups):
        xg = x[g * cg : (g + 1) * cg]
        wg = weight[g * mg : (g + 1) * mg]
        og = out[g * mg : (g + 1) * mg]
        if method == "bank":
            _conv_bank(xg, wg, og, (sh, sw), (dh, dw))
        else:
            _conv_matmul(xg, wg, og, (sh, sw), (dh, dw))
    if bias is not None:
        out += bias[:, None, None]
    return out


def _pair(name: str, value: int | tuple[int, int]) -> tuple[int, int]:
    """``value`` as a (rows, columns) pair of whole numbers >= 1."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise UsageError(f"{name} must be one number or a (rows, columns) pair, got {value!r}")
        return check_positive_int(name, value[0]), check_positive_int(name, value[1])
    n = check_positive_int(name, value)
    return n, n


def _padding(padding: int | tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``padding`` as (top, bottom, left, right) whole numbers >= 0."""
    sides = (padding,) * 4 if not isinstance(padding, (tuple, list)) else tuple(padding)
    if len(sides) != 4:
        raise UsageError(
            f"padding must be one number or (top, bottom, left, right), got {padding!r}"
        )
    for p in sides:
        if isinstance(p, bool) or int(p) != p or p < 0:
            raise UsageError(f"padding must be whole numbers >= 0, got {padding!r}")
    return tuple(int(p) for p in sides)  # type: ignore[return-value]


def _conv_bank(
    x: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> None:
    """out[m] = sum_c correlate_valid(x[c], w[m, c]) via filtering.convolve stacks.

    filtering.convolve takes one stride and one dilation for both axes; unequal
    ones are reached by spelling the dilation out in the kernel (zeros between
    the taps) and by taking every row / column of a stride-1 result.
    """
    from .filtering import convolve

    (sh, sw), (dh, dw) = stride, dilation
    if dh != dw:
        m, c, kh, kw = w.shape
        wide = np.zeros((m, c, dh * (kh - 1) + 1, dw * (kw - 1) + 1), np.float32)
        wide[:, :, ::dh, ::dw] = w
        w, dh = wide, 1
    one = sh if sh == sw else 1
    for c in range(x.shape[0]):
        resp = convolve(
            x[c],
            np.ascontiguousarray(w[:, c]),
            pad="valid",
            stride=one,
            dilation=dh,
            correlate=True,
            combine="stack",
        )
        if one != sh or one != sw:
            resp = resp[:, ::sh, ::sw]
        resp = resp.reshape(out.shape)
        if c == 0:
            out[...] = resp
        else:
            out += resp


def _conv_matmul(
    x: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    budget: int = 1 << 25,
) -> None:
    """out = W @ im2col(x), in blocks of output rows so the patch matrix stays small."""
    (sh, sw), (dh, dw) = stride, dilation
    cg, kh, kw = w.shape[1:]
    mg, oh, ow = out.shape
    taps = cg * kh * kw
    wmat = w.reshape(mg, taps)
    block = max(1, budget // (4 * taps * ow))
    span = sw * (ow - 1) + 1
    for r0 in range(0, oh, block):
        r1 = min(oh, r0 + block)
        nr = r1 - r0
        cols = np.empty((cg, kh, kw, nr, ow), dtype=np.float32)
        for i in range(kh):
            top = r0 * sh + i * dh
            rows = x[:, top : top + sh * (nr - 1) + 1 : sh]
            for j in range(kw):
                left = j * dw
                cols[:, i, j] = rows[:, :, left : left + span : sw]
        res = wmat @ cols.reshape(taps, nr * ow)
        out[:, r0:r1] = res.reshape(mg, nr, ow)
