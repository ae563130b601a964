"""ONNX operators as small functions on numpy arrays (opset 11 and later).

Every operator has the same signature::

    op(inputs, attrs, opset, n_outputs) -> list of arrays

``inputs`` holds one array per node input (``None`` for an omitted optional
input, written ``""`` in the model), ``attrs`` the node's attributes as plain
Python values (ints, floats, ``str``, lists, numpy arrays for tensors),
``opset`` the model's ``ai.onnx`` version (some operators changed meaning over
time: Softmax's ``axis`` at 13, Split's and Squeeze's ``axes`` moving from
attributes to inputs...), ``n_outputs`` the number of outputs the node
declares. Values keep ONNX's layout (N, C, spatial...), so a caller's arrays
are what any ONNX runtime would see.

:data:`ONNX_OPS` maps each ONNX type name to its function. Heavy operators call
convtool's own kernels: 2-D Conv runs :func:`convtool.conv2d.conv2d`; MaxPool
and AveragePool run :func:`convtool.pooling.pool` whenever the window fits its
geometry (square window, one stride, padding of at most half the
window) and a plain numpy loop over window offsets otherwise.

Examples
--------
>>> import numpy as np
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> ONNX_OPS["MaxPool"]([x], {"kernel_shape": [2, 2], "strides": [2, 2]}, 13, 1)[0].tolist()
[[[[5.0, 7.0], [13.0, 15.0]]]]
>>> ONNX_OPS["Softmax"]([np.zeros((1, 4), np.float32)], {}, 13, 1)[0].tolist()
[[0.25, 0.25, 0.25, 0.25]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import UsageError

Array = np.ndarray
Op = Callable[[list, dict, int, int], list]

#: ONNX TensorProto data types -> numpy (the ones CNN exports use).
ONNX_DTYPES: dict[int, Any] = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}

ONNX_OPS: dict[str, Op] = {}


def register(*names: str) -> Callable[[Op], Op]:
    """Add a function to :data:`ONNX_OPS` under one or more ONNX type names."""

    def deco(fn: Op) -> Op:
        for name in names:
            ONNX_OPS[name] = fn
        return fn

    return deco


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


# ------------------------------------------------------------------ geometry


def _spatial_pads(
    attrs: dict, in_sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
    dilations: Sequence[int],
) -> tuple[list[int], list[int]]:  # fmt: skip
    """(begin, end) padding per spatial axis from ``pads`` or ``auto_pad``."""
    n = len(in_sizes)
    auto = attrs.get("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(in_sizes, kernel, strides, dilations, strict=True):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return begin, end
    if auto == "VALID":
        return [0] * n, [0] * n
    if auto not in ("NOTSET", ""):
        raise UsageError(f"unknown auto_pad {auto!r}")
    pads = _ints(attrs.get("pads", [0] * (2 * n)))
    if len(pads) != 2 * n:
        raise UsageError(f"pads has {len(pads)} values for {n} spatial axes (needs {2 * n})")
    return pads[:n], pads[n:]


#: _geometry's answers per (node attributes, input shape, kernel): a network
#: asks the same ones for every image (0.3 ms of ResNet-18's run). The entry
#: holds the attrs dict itself, so its id is not reused while the entry lives.
_GEOMETRY: dict[tuple, tuple] = {}


def _geometry(attrs: dict, x: Array, kernel: Sequence[int] | None = None):
    key = (id(attrs), x.shape, None if kernel is None else tuple(kernel))
    hit = _GEOMETRY.get(key)
    if hit is not None and hit[0] is attrs:
        return hit[1]
    answer = tuple(tuple(part) for part in _geometry_of(attrs, x, kernel))
    if len(_GEOMETRY) >= 4096:
        _GEOMETRY.clear()
    _GEOMETRY[key] = (attrs, answer)
    return answer


def _geometry_of(attrs: dict, x: Array, kernel: Sequence[int] | None):
    n = x.ndim - 2
    kernel = _ints(kernel if kernel is not None else attrs["kernel_shape"])
    strides = _ints(attrs.get("strides", [1] * n))
    dilations = _ints(attrs.get("dilations", [1] * n))
    if len(kernel) != n or len(strides) != n or len(dilations) != n:
        raise UsageError(
            f"kernel_shape/strides/dilations must have {n} values for a {x.ndim}-D input"
        )
    begin, end = _spatial_pads(attrs, x.shape[2:], kernel, strides, dilations)
    return kernel, strides, dilations, begin, end


# ---------------------------------------------------------------------- Conv


def _conv_nd(x: Array, w: Array, group: int, strides, dilations) -> Array:
    """Plain numpy N-D correlation on an already padded (N, C, ...) input."""
    n, c = x.shape[:2]
    m = w.shape[0]
    k = w.shape[2:]
    span = [(kk - 1) * d + 1 for kk, d in zip(k, dilations, strict=True)]
    win = np.lib.stride_tricks.sliding_window_view(x, span, axis=tuple(range(2, x.ndim)))
    sl = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
    sl += tuple(slice(None, None, d) for d in dilations)
    win = win[sl]  # (N, C, *out, *k)
    cg, mg = c // group, m // group
    outs = []
    sp = x.ndim - 2
    for g in range(group):
        wg = w[g * mg : (g + 1) * mg]
        xg = win[:, g * cg : (g + 1) * cg]
        axes_x = [1] + list(range(2 + sp, 2 + 2 * sp))
        axes_w = [1] + list(range(2, 2 + sp))
        res = np.tensordot(xg, wg, axes=(axes_x, axes_w))  # (N, *out, Mg)
        outs.append(np.moveaxis(res, -1, 1))
    return np.concatenate(outs, axis=1)


@register("Conv")
def conv(inputs: list, attrs: dict, opset: int, n_outputs: int) -> list:
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    if x.ndim < 3 or w.ndim != x.ndim:
        raise UsageError(
            f"Conv needs input and weight of the same rank >= 3, got {x.shape}, {w.shape}"
        )
    group = int(attrs.get("group", 1))
    kernel, strides, dilations, begin, end = _geometry(attrs, x, w.shape[2:])
    if x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise UsageError(
            f"Conv weight {w.shape} does not fit {x.shape[1]} input channels in {group} groups"
        )
    if x.ndim == 3:  # 1-D: a 2-D convolution on rows of height 1
        attrs2 = dict(
            attrs,
            kernel_shape=[1, *kernel],
            strides=[1, *strides],
            dilations=[1, *dilations],
            pads=[0, begin[0], 0, end[0]],
            auto_pad="NOTSET",
        )
        (y,) = conv([x[:, :, None], w[:, :, None], b], attrs2, opset, 1)
        return [y[:, :, 0]]
    if x.ndim != 4:
        widths = [(0, 0), (0, 0)] + list(zip(begin, end, strict=True))
        xp = _pad_crop(x, widths, "constant", 0.0)
        y = _conv_nd(xp, w, group, strides, dilations).astype(np.float32)
        if b is not None:
            y += np.asarray(b, np.float32).reshape((1, -1) + (1,) * (x.ndim - 2))
        return [y]
    from ..conv2d import conv2d

    # negative pads crop; conv2d pads only
    crop = [(0, 0), (0, 0)] + [(min(p, 0), min(q, 0)) for p, q in zip(begin, end, strict=True)]
    if any(p < 0 or q < 0 for p, q in crop[2:]):
        x = _pad_crop(x, crop, "constant", 0.0)
    padding = (max(begin[0], 0), max(end[0], 0), max(begin[1], 0), max(end[1], 0))
    opts = dict(stride=tuple(strides), dilation=tuple(dilations), groups=group, padding=padding)
    if x.shape[0] == 1:  # one image (what the walker gives): no stacked copy
        if attrs.get(RELU_TOO):
            from ..conv2d import conv2d_relu

            y, r = conv2d_relu(x[0], w, b, **opts)
            return [y[None], r[None]]
        return [conv2d(x[0], w, b, **opts)[None]]
    return [np.stack([conv2d(sample, w, b, **opts) for sample in x])]


#: Private key in a Conv's attributes (set by the ONNX loader, never an ONNX
#: name): its output feeds a Relu, so ``conv`` returns the ReLU as a second
#: array when it can write it with the product (:func:`convtool.conv2d.conv2d_relu`).
RELU_TOO = " convtool relu"


def _pad_crop(x: Array, widths: list[tuple[int, int]], mode: str, value: float) -> Array:
    """numpy.pad that also accepts negative widths (cropping), as ONNX Pad does."""
    crop = tuple(slice(-min(a, 0), x.shape[i] + min(b, 0)) for i, (a, b) in enumerate(widths))
    x = x[crop]
    pos = [(max(a, 0), max(b, 0)) for a, b in widths]
    if not any(a or b for a, b in pos):
        return x
    if mode == "constant":
        return np.pad(x, pos, mode="constant", constant_values=value)
    return np.pad(x, pos, mode=mode)


# --------------------------------------------------------------- activations


@register("Relu")
def relu(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    if x.dtype == np.float32:
        from .ops import elementwise

        return [elementwise(np.maximum, x, 0.0)]
    return [np.maximum(x, 0).astype(x.dtype, copy=False)]


@register("LeakyRelu")
def leaky_relu(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    alpha = np.asarray(attrs.get("alpha", 0.01), x.dtype)
    return [np.where(x >= 0, x, alpha * x).astype(x.dtype)]


@register("PRelu")
def prelu(inputs, attrs, opset, n_outputs):
    x, slope = inputs
    return [np.where(x >= 0, x, slope * x).astype(x.dtype)]


@register("Sigmoid")
def sigmoid(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    half = np.asarray(0.5, x.dtype)
    return [(half * (np.tanh(half * x) + 1)).astype(x.dtype)]


@register("Tanh")
def tanh(inputs, attrs, opset, n_outputs):
    return [np.tanh(inputs[0])]


@register("Clip")
def clip(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("min")
    hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else attrs.get("max")
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo, x.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi, x.dtype))
    return [np.asarray(y, x.dtype)]


def _unary(name: str, fn: Callable[[Array], Array]) -> None:
    def op(inputs, attrs, opset, n_outputs):
        x = inputs[0]
        return [np.asarray(fn(x), x.dtype)]

    op.__name__ = name.lower()
    register(name)(op)


_unary("Sqrt", np.sqrt)
_unary("Exp", np.exp)
_unary("Neg", np.negative)
_unary("Abs", np.abs)
_unary("Reciprocal", np.reciprocal)
_unary("Floor", np.floor)
_unary("Ceil", np.ceil)
_unary("Not", np.logical_not)
_unary("Log", np.log)
_unary("Softplus", lambda x: np.logaddexp(0, x))


@register("HardSigmoid")
def hard_sigmoid(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    return [np.clip(x * np.float32(alpha) + np.float32(beta), 0, 1).astype(x.dtype)]


@register("HardSwish")
def hard_swish(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    return [(x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1)).astype(x.dtype)]


@register("Elu")
def elu(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    alpha = float(attrs.get("alpha", 1.0))
    return [np.where(x > 0, x, np.float32(alpha) * np.expm1(np.minimum(x, 0))).astype(x.dtype)]


@register("Selu")
def selu(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    alpha = float(attrs.get("alpha", 1.67326319217681884765625))
    gamma = float(attrs.get("gamma", 1.05070102214813232421875))
    neg = np.float32(alpha) * np.expm1(np.minimum(x, 0))
    return [(np.float32(gamma) * np.where(x > 0, x, neg)).astype(x.dtype)]


# ------------------------------------------------------------------ pooling


def _pool_output(size, k, s, d, b, e, ceil):
    from ..modes import pool_output_size

    span = (k - 1) * d + 1
    if size + b + e < span:
        raise UsageError(f"pool window {span} is larger than the padded input {size + b + e}")
    return pool_output_size(size, span, s, padding=b, padding_after=e, ceil=ceil)


def _pool_nd(x: Array, kind: str, kernel, strides, dilations, begin, end, ceil, include_pad):
    """Max or average pooling in numpy, one window offset at a time."""
    sp = x.ndim - 2
    outs = [
        _pool_output(x.shape[2 + i], kernel[i], strides[i], dilations[i], begin[i], end[i], ceil)
        for i in range(sp)
    ]
    # room for the overhang of a ceil-mode window past the end padding
    extra = [
        max(0, (o - 1) * s + (k - 1) * d + 1 - (n + b + e))
        for o, s, k, d, n, b, e in zip(
            outs, strides, kernel, dilations, x.shape[2:], begin, end, strict=True
        )  # fmt: skip
    ]
    fill = -np.inf if kind == "max" else 0.0
    widths = [(0, 0), (0, 0)] + [(b, e + q) for b, e, q in zip(begin, end, extra, strict=True)]
    xp = np.pad(x.astype(np.float32), widths, mode="constant", constant_values=fill)
    acc = None
    for offset in np.ndindex(*kernel):
        sl = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, n, s in zip(offset, dilations, outs, strides, strict=True)
        )
        part = xp[sl]
        if acc is None:
            acc = part.copy()
        elif kind == "max":
            np.maximum(acc, part, out=acc)
        else:
            acc += part
    if kind == "max":
        return acc
    # divisor: samples of the window inside the image (count_include_pad=0) or
    # inside the padded extent (count_include_pad=1), per axis, multiplied
    div = np.ones((1, 1) + tuple(outs), np.float32)
    for i in range(sp):
        n, k, s, d, b, e = x.shape[2 + i], kernel[i], strides[i], dilations[i], begin[i], end[i]
        lo, hi = (0, n) if not include_pad else (-b, n + e)
        taps = np.arange(outs[i])[:, None] * s - b + np.arange(k)[None] * d
        count = ((taps >= lo) & (taps < hi)).sum(axis=1).astype(np.float32)
        shape = [1] * (2 + sp)
        shape[2 + i] = outs[i]
        div = div * count.reshape(shape)
    return acc / div


def _fast_pool(x: Array, kind: str, kernel, strides, dilations, begin, end, ceil, include_pad):
    """The same through convtool's pooling kernels, every plane in one call
    (:func:`convtool.network.ops.pool_planes`), or None when the geometry does
    not fit them."""
    if x.ndim != 4 or len(set(kernel)) != 1 or len(set(strides)) != 1 or set(dilations) != {1}:
        return None
    k, s = kernel[0], strides[0]
    top, left = begin
    bottom, right = end
    padding = (top, bottom, left, right)
    if min(padding) < 0 or max(padding) > k // 2:
        return None
    from .ops import max_3x3_s2_planes, pool_planes

    n, c, h, w = x.shape
    planes = np.ascontiguousarray(x, np.float32).reshape(n * c, h, w)
    if kind == "max" and (k, s) == (3, 2):
        out = max_3x3_s2_planes(planes, padding, ceil)
        if out is not None:
            return out.reshape(n, c, *out.shape[1:])
    out = pool_planes(planes, kind, k, s, padding, ceil)
    if out is None:
        return None
    if kind == "avg" and any(padding) and not include_pad:
        ones = np.ones((1, h, w), np.float32)
        out /= pool_planes(ones, "avg", k, s, padding, ceil)
    return out.reshape(n, c, *out.shape[1:])


def _pool(kind: str, inputs: list, attrs: dict) -> Array:
    x = np.asarray(inputs[0], np.float32)
    kernel, strides, dilations, begin, end = _geometry(attrs, x)
    ceil = bool(attrs.get("ceil_mode", 0))
    include_pad = bool(attrs.get("count_include_pad", 0))
    args = (kind, kernel, strides, dilations, begin, end, ceil, include_pad)
    out = _fast_pool(x, *args)
    return _pool_nd(x, *args) if out is None else out


@register("MaxPool")
def max_pool(inputs, attrs, opset, n_outputs):
    if n_outputs > 1:
        raise UsageError("MaxPool with an Indices output is not supported")
    if int(attrs.get("storage_order", 0)):
        raise UsageError("MaxPool storage_order=1 is not supported")
    return [_pool("max", inputs, attrs)]


@register("AveragePool")
def average_pool(inputs, attrs, opset, n_outputs):
    return [_pool("avg", inputs, attrs)]


@register("GlobalAveragePool")
def global_average_pool(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    axes = tuple(range(2, x.ndim))
    return [x.mean(axis=axes, keepdims=True, dtype=np.float64).astype(x.dtype)]


@register("GlobalMaxPool")
def global_max_pool(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


def _reduce(fn, inputs, attrs, opset, axes_input_from):
    x = inputs[0]
    if opset >= axes_input_from:
        axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    else:
        axes = attrs.get("axes")
    keep = bool(attrs.get("keepdims", 1))
    if axes is None or np.asarray(axes).size == 0:
        if int(attrs.get("noop_with_empty_axes", 0)):
            return [x]
        axes_t = tuple(range(x.ndim))
    else:
        axes_t = tuple(sorted(_axis(a, x.ndim) for a in _ints(axes)))
    return [np.asarray(fn(x, axes_t, keep), x.dtype)]


@register("ReduceMean")
def reduce_mean(inputs, attrs, opset, n_outputs):
    def fn(x, axes, keep):
        return x.mean(axis=axes, keepdims=keep, dtype=np.float64)

    return _reduce(fn, inputs, attrs, opset, 18)


@register("ReduceMax")
def reduce_max(inputs, attrs, opset, n_outputs):
    return _reduce(lambda x, a, k: x.max(axis=a, keepdims=k), inputs, attrs, opset, 18)


@register("ReduceSum")
def reduce_sum(inputs, attrs, opset, n_outputs):
    def fn(x, axes, keep):
        return x.sum(axis=axes, keepdims=keep, dtype=np.float64 if x.dtype.kind == "f" else None)

    return _reduce(fn, inputs, attrs, opset, 13)


# -------------------------------------------------------------- normalisation


@register("BatchNormalization")
def batch_normalization(inputs, attrs, opset, n_outputs):
    if int(attrs.get("training_mode", 0)) or n_outputs > 1:
        raise UsageError(
            "BatchNormalization in training mode is not supported (export in eval mode)"
        )
    x, scale, bias, mean, var = inputs[:5]
    eps = float(attrs.get("epsilon", 1e-5))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    a = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    c = np.asarray(bias, np.float64) - np.asarray(mean, np.float64) * a
    y = x * a.astype(np.float32).reshape(shape)
    y += c.astype(np.float32).reshape(shape)  # in place: one pass less, the same rounding
    return [y.astype(x.dtype, copy=False)]


@register("LRN")
def lrn(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    size = int(attrs["size"])
    alpha = float(attrs.get("alpha", 1e-4))
    beta = float(attrs.get("beta", 0.75))
    bias = float(attrs.get("bias", 1.0))
    sq = np.square(x.astype(np.float64))
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    c = x.shape[1]
    csum = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1)], axis=1)
    idx = np.arange(c)
    top = np.minimum(idx + hi + 1, c)
    bot = np.maximum(idx - lo, 0)
    square_sum = csum[:, top] - csum[:, bot]
    return [(x / (bias + alpha / size * square_sum) ** beta).astype(x.dtype)]


# --------------------------------------------------------------- arithmetic


def _binary(name: str, fn: Callable[[Array, Array], Array]) -> None:
    def op(inputs, attrs, opset, n_outputs):
        a, b = inputs[0], inputs[1]
        if name == "Add" and a.dtype == np.float32 and getattr(b, "shape", None) == a.shape:
            from .ops import elementwise

            return [elementwise(np.add, a, b)]  # residual sums of whole maps
        out = fn(a, b)
        if name not in ("Equal", "Less", "Greater", "And", "Or"):
            out = np.asarray(out, a.dtype)
        return [np.asarray(out)]

    op.__name__ = name.lower()
    register(name)(op)


def _div(a: Array, b: Array) -> Array:
    if a.dtype.kind in "iu":
        return np.trunc(np.true_divide(a, b)).astype(a.dtype)  # C's truncating division
    return np.true_divide(a, b)


def _pow(a: Array, b: Array) -> Array:
    return np.power(a, b.astype(a.dtype) if a.dtype.kind == "f" else b)


_binary("Add", np.add)
_binary("Sub", np.subtract)
_binary("Mul", np.multiply)
_binary("Div", _div)
_binary("Pow", _pow)
_binary("Equal", np.equal)
_binary("Less", np.less)
_binary("Greater", np.greater)
_binary("And", np.logical_and)
_binary("Or", np.logical_or)


def _variadic(name: str, fn) -> None:
    def op(inputs, attrs, opset, n_outputs):
        out = inputs[0]
        for other in inputs[1:]:
            out = fn(out, other)
        return [np.asarray(out, inputs[0].dtype)]

    op.__name__ = name.lower()
    register(name)(op)


_variadic("Sum", np.add)
_variadic("Max", np.maximum)
_variadic("Min", np.minimum)


@register("Where")
def where(inputs, attrs, opset, n_outputs):
    cond, a, b = inputs
    return [np.where(cond, a, b).astype(np.result_type(a, b))]


@register("MatMul")
def matmul(inputs, attrs, opset, n_outputs):
    a, b = inputs
    if a.ndim <= 2 and b.ndim <= 2:
        from .ops import matmul as small_matmul  # small products without BLAS threads

        return [np.asarray(small_matmul(a, b)).astype(a.dtype, copy=False)]
    return [np.matmul(a, b).astype(a.dtype)]


@register("Gemm")
def gemm(inputs, attrs, opset, n_outputs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if int(attrs.get("transA", 0)):
        a = a.T
    if int(attrs.get("transB", 0)):
        b = b.T
    alpha = float(attrs.get("alpha", 1.0))
    beta = float(attrs.get("beta", 1.0))
    from .ops import matmul as small_matmul  # small products without BLAS threads

    y = small_matmul(a, b) if a.ndim <= 2 and b.ndim <= 2 else a @ b
    if alpha != 1.0:
        y = y * np.float32(alpha)
    if c is not None:
        y = y + (c if beta == 1.0 else np.float32(beta) * c)
    return [np.asarray(y, inputs[0].dtype)]


@register("Softmax")
def softmax(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    if opset >= 13:
        axis = _axis(int(attrs.get("axis", -1)), x.ndim)
        z = x - x.max(axis=axis, keepdims=True)
        e = np.exp(z)
        return [(e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)]
    # before 13: the input is flattened to 2-D at axis, softmax over the second
    axis = _axis(int(attrs.get("axis", 1)), x.ndim)
    flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
    z = flat - flat.max(axis=1, keepdims=True)
    e = np.exp(z)
    return [(e / e.sum(axis=1, keepdims=True)).reshape(x.shape).astype(x.dtype)]


@register("Dropout")
def dropout(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    outs = [x]
    if n_outputs > 1:
        outs.append(np.ones(x.shape, np.bool_))
    return outs


@register("Identity")
def identity(inputs, attrs, opset, n_outputs):
    return [inputs[0]]


@register("Constant")
def constant(inputs, attrs, opset, n_outputs):
    for key, dtype in (
        ("value", None),
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in attrs:
            return [np.asarray(attrs[key], dtype)]
    raise UsageError(f"Constant with attributes {', '.join(attrs)} is not supported")


# ------------------------------------------------------------------- shapes


@register("Concat")
def concat(inputs, attrs, opset, n_outputs):
    arrays = [a for a in inputs if a is not None]
    axis = _axis(int(attrs["axis"]), arrays[0].ndim)
    for a in arrays[1:]:
        other = [s for i, s in enumerate(a.shape) if i != axis]
        first = [s for i, s in enumerate(arrays[0].shape) if i != axis]
        if a.ndim != arrays[0].ndim or other != first:
            raise UsageError(
                f"Concat on axis {axis}: shapes {arrays[0].shape} and {a.shape} differ elsewhere"
            )
    return [np.concatenate(arrays, axis=axis)]


@register("Split")
def split(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    axis = _axis(int(attrs.get("axis", 0)), x.ndim)
    if opset >= 13:
        sizes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    else:
        sizes = attrs.get("split")
    n = x.shape[axis]
    if sizes is None:
        parts = int(attrs.get("num_outputs", n_outputs))
        step = -(-n // parts)  # opset 18: the last part may be smaller
        sizes = [min(step, n - i * step) for i in range(parts)]
    sizes = _ints(sizes)
    if sum(sizes) != n:
        raise UsageError(f"Split sizes {sizes} do not add up to {n} along axis {axis}")
    cuts = np.cumsum(sizes)[:-1]
    return list(np.split(x, cuts, axis=axis))


@register("Flatten")
def flatten(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    axis = _axis(int(attrs.get("axis", 1)), x.ndim)
    outer = int(np.prod(x.shape[:axis]))
    return [x.reshape(outer, -1) if x.size else x.reshape(outer, int(np.prod(x.shape[axis:])))]


@register("Reshape")
def reshape(inputs, attrs, opset, n_outputs):
    x, shape = inputs
    shape = _ints(shape)
    if not int(attrs.get("allowzero", 0)):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    try:
        return [x.reshape(shape)]
    except ValueError:
        raise UsageError(f"Reshape cannot make {x.shape} into {shape}") from None


@register("Squeeze")
def squeeze(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    axes = (inputs[1] if len(inputs) > 1 else None) if opset >= 13 else attrs.get("axes")
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(_axis(a, x.ndim) for a in _ints(axes)))]


@register("Unsqueeze")
def unsqueeze(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    axes = inputs[1] if opset >= 13 else attrs["axes"]
    rank = x.ndim + len(_ints(axes))
    out = x
    for a in sorted(_axis(a, rank) for a in _ints(axes)):
        out = np.expand_dims(out, a)
    return [out]


@register("Transpose")
def transpose(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    perm = attrs.get("perm")
    return [np.transpose(x, None if perm is None else _ints(perm))]


@register("Pad")
def pad(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    pads = _ints(inputs[1])
    value = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    axes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
    mode = attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    axes_l = list(range(x.ndim)) if axes is None else [_axis(a, x.ndim) for a in _ints(axes)]
    n = len(axes_l)
    if len(pads) != 2 * n:
        raise UsageError(f"Pad has {len(pads)} pads for {n} axes (needs {2 * n})")
    widths = [(0, 0)] * x.ndim
    for i, a in enumerate(axes_l):
        widths[a] = (pads[i], pads[i + n])
    numpy_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}
    if mode not in numpy_mode:
        raise UsageError(f"Pad mode {mode!r} is not supported (constant, reflect, edge, wrap)")
    fill = 0 if value is None else np.asarray(value).reshape(-1)[0]
    return [_pad_crop(x, widths, numpy_mode[mode], fill).astype(x.dtype)]


@register("Shape")
def shape(inputs, attrs, opset, n_outputs):
    dims = np.asarray(inputs[0].shape, np.int64)
    rank = len(dims)
    start = int(attrs.get("start", 0))
    end = attrs.get("end")
    start = min(max(_axis(start, rank), 0), rank)
    stop = rank if end is None else min(max(_axis(int(end), rank), 0), rank)
    return [dims[start:stop]]


@register("Size")
def size(inputs, attrs, opset, n_outputs):
    return [np.asarray(inputs[0].size, np.int64)]


@register("Gather")
def gather(inputs, attrs, opset, n_outputs):
    x, idx = inputs
    axis = _axis(int(attrs.get("axis", 0)), x.ndim)
    idx = np.asarray(idx, np.int64)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return [np.take(x, idx, axis=axis)]


@register("Slice")
def slice_(inputs, attrs, opset, n_outputs):
    x = inputs[0]
    starts, ends = _ints(inputs[1]), _ints(inputs[2])
    axes = (
        _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    )
    steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a = _axis(a, x.ndim)
        n = x.shape[a]
        # clamp as ONNX does (python's slicing would wrap a very negative end)
        s = max(min(s + n if s < 0 else s, n if st > 0 else n - 1), 0)
        e = e + n if e < 0 else e
        e = max(min(e, n), 0 if st > 0 else -1)
        index[a] = slice(s, None if e == -1 and st < 0 else e, st)
    return [x[tuple(index)]]


@register("ConstantOfShape")
def constant_of_shape(inputs, attrs, opset, n_outputs):
    value = attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full(_ints(inputs[0]), value[0], dtype=value.dtype)]


@register("Cast")
def cast(inputs, attrs, opset, n_outputs):
    to = int(attrs["to"])
    if to not in ONNX_DTYPES:
        raise UsageError(f"Cast to ONNX data type {to} is not supported")
    return [np.asarray(inputs[0]).astype(ONNX_DTYPES[to])]


@register("Range")
def range_(inputs, attrs, opset, n_outputs):
    start, limit, delta = (np.asarray(v).reshape(()) for v in inputs)
    dtype = start.dtype
    count = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    return [(start + np.arange(count, dtype=dtype) * delta).astype(dtype)]


@register("Expand")
def expand(inputs, attrs, opset, n_outputs):
    x, shp = inputs
    target = np.broadcast_shapes(x.shape, tuple(_ints(shp)))
    return [np.broadcast_to(x, target).copy()]


# ------------------------------------------------------------- Erf, Gelu

# Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7 for every x (float32's own step)
_ERF_P = 0.3275911
_ERF_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def _erf(x: Array) -> Array:
    """The error function (numpy has none; scipy is not a dependency)."""
    a = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + _ERF_P * a)
    poly = 0.0
    for coef in _ERF_A:  # Horner: ((((a5 t + a4) t + a3) t + a2) t + a1) t
        poly = (poly + coef) * t
    return np.copysign(1.0 - poly * np.exp(-a * a), x)


_unary("Erf", _erf)


@register("Gelu")
def gelu(inputs, attrs, opset, n_outputs):
    """GELU (opset 20): x * Phi(x), exact (erf) or the ``tanh`` approximation."""
    x = inputs[0]
    approximate = attrs.get("approximate", "none")
    f = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * f * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (f + 0.044715 * f**3)))
    elif approximate == "none":
        y = 0.5 * f * (1.0 + _erf(f / math.sqrt(2.0)))
    else:
        raise UsageError(f"Gelu approximate={approximate!r} is not 'none' or 'tanh'")
    return [y.astype(x.dtype)]


# ------------------------------------------------------------------ Resize

_ROUNDING: dict[str, Callable[[Array], Array]] = {
    "round_prefer_floor": lambda v: np.ceil(v - 0.5),
    "round_prefer_ceil": lambda v: np.floor(v + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


def _source_coords(mode: str, m: int, n: int, scale: float, opset: int) -> Array:
    """Where each of ``m`` output positions falls in the ``n`` input positions."""
    x = np.arange(m, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if m > 1 else np.zeros(m)
    if mode == "align_corners":
        return x * (n - 1) / (m - 1) if m > 1 else np.zeros(m)
    if mode == "asymmetric":
        return x / scale
    if mode == "half_pixel_symmetric":
        offset = n / 2 * (1 - m / (scale * n))
        return offset + (x + 0.5) / scale - 0.5
    if mode == "tf_half_pixel_for_nn" and opset < 13:
        return (x + 0.5) / scale
    raise UsageError(
        f"Resize coordinate_transformation_mode={mode!r} is not supported (half_pixel, "
        "pytorch_half_pixel, align_corners, asymmetric, half_pixel_symmetric)"
    )


def _resize_axis(x: Array, axis: int, m: int, scale: float, attrs: dict, opset: int) -> Array:
    n = x.shape[axis]
    mode = attrs.get("mode", "nearest")
    where = _source_coords(
        attrs.get("coordinate_transformation_mode", "half_pixel"), m, n, scale, opset
    )
    if mode == "nearest":
        rounding = attrs.get("nearest_mode", "round_prefer_floor")
        if rounding not in _ROUNDING:
            raise UsageError(f"Resize nearest_mode={rounding!r} is not one of {sorted(_ROUNDING)}")
        idx = np.clip(_ROUNDING[rounding](where), 0, n - 1).astype(np.intp)
        return np.take(x, idx, axis=axis)
    # linear: the two neighbours, positions outside the input clamped to its edge
    where = np.clip(where, 0, n - 1)
    lo = np.floor(where).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    frac = (where - lo).reshape((-1,) + (1,) * (x.ndim - axis - 1)).astype(np.float32)
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    return a + (b - a) * frac


@register("Resize")
def resize(inputs, attrs, opset, n_outputs):
    """Nearest and linear resizing with scales or sizes (opsets 11, 13, 18, 19).

    Separable: one axis at a time, which for linear is exactly the N-linear
    interpolation ONNX defines. Not supported: cubic, antialias,
    tf_crop_and_resize (its roi), keep_aspect_ratio_policy other than stretch.
    """
    x = inputs[0]
    scales = inputs[2] if len(inputs) > 2 else None
    sizes = inputs[3] if len(inputs) > 3 else None
    mode = attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise UsageError(f"Resize mode {mode!r} is not supported (nearest, linear)")
    if int(attrs.get("antialias", 0)):
        raise UsageError("Resize with antialias=1 is not supported")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise UsageError("Resize keep_aspect_ratio_policy other than 'stretch' is not supported")
    axes = [_axis(a, x.ndim) for a in attrs.get("axes", range(x.ndim))]
    if sizes is not None and sizes.size:
        out = _ints(sizes)
        factors = [m / x.shape[a] for m, a in zip(out, axes, strict=True)]
    elif scales is not None and scales.size:
        factors = [float(v) for v in np.asarray(scales).reshape(-1)]
        out = [int(math.floor(x.shape[a] * f)) for a, f in zip(axes, factors, strict=True)]
    else:
        raise UsageError("Resize needs scales or sizes")
    if len(out) != len(axes) or min(out) < 1:
        raise UsageError(f"Resize to {out} does not fit an input of shape {x.shape}")
    y = x
    for a, m, f in zip(axes, out, factors, strict=True):
        if m != x.shape[a] or f != 1.0:
            y = _resize_axis(y, a, m, f, attrs, opset)
    return [np.ascontiguousarray(y, dtype=x.dtype)]


#: Operators whose value never depends on pixels once shapes are fixed.
SHAPE_OPS = frozenset({"Shape", "Size", "ConstantOfShape", "Constant"})
