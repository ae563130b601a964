"""The operator registry: each node type's shape rule and its computation.

An operator is an :class:`Op`: a ``plan`` function that the planner calls
once per node, before anything runs, and a ``run`` function that the walker
calls with the node's input arrays. :data:`OPS` maps a node's ``kind`` to its
operator; adding one is one entry there (or one :func:`register` call from
another module, as the ONNX import does).

``plan(layer, ins) -> shape``
    ``layer`` is the :class:`~convtool.network.graph.Layer` being planned
    (``attrs`` holds the node's options, ``in_shapes`` its input shapes,
    ``rf``/``jump`` the largest of its inputs'); ``ins`` are the input
    layers. It returns the output shape, may set ``params``, ``buffers``,
    ``macs``, ``rf``, ``jump``, ``detail``, ``source``, ``labels``,
    ``work_bytes``, resolved ``attrs`` and ``arrays`` (or ``make_arrays``,
    to build big arrays only when the node runs), and raises
    :class:`~convtool.errors.UsageError` naming ``layer.where`` when the
    node cannot work. It must not touch pixels.
``run(layer, *inputs) -> array``
    The node's output for its input arrays, of exactly the planned shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from ..modes import pad_before_after
from .graph import Numbered, shape_text
from .weights import load_arrays, load_weights, named_filters, random_weights

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Layer

Shape = tuple[int, ...]
PlanFn = Callable[["Layer", list["Layer"]], Shape]
RunFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Op:
    """One operator: its shape rule, its computation and how many inputs it takes.

    Attributes
    ----------
    plan : callable ``(layer, ins) -> shape``
    run : callable ``(layer, *inputs) -> numpy.ndarray``
    arity : (min, max)
        Number of inputs; max None for any number (``add``, ``concat``).
    prepare : callable or None
        Called once before a net that uses the operator runs (after the plan
        and the memory check), e.g. to load compiled kernels.
    """

    plan: PlanFn
    run: RunFn
    arity: tuple[int, int | None] = (1, 1)
    prepare: Callable[[], None] | None = None


def register(
    kind: str,
    plan: PlanFn,
    run: RunFn,
    arity: tuple[int, int | None] = (1, 1),
    prepare: Callable[[], None] | None = None,
) -> None:
    """Add (or replace) the operator for node type ``kind`` in :data:`OPS`.

    Examples
    --------
    >>> register("double", same_shape, lambda layer, x: 2 * x)
    >>> OPS["double"].run(None, np.ones(2, np.float32)).tolist()
    [2.0, 2.0]
    >>> del OPS["double"]
    """
    OPS[kind] = Op(plan, run, arity, prepare)


def nbytes(shape: Shape) -> int:
    """Bytes of a float32 array of ``shape``."""
    return 4 * math.prod(shape)


def spatial(layer: Layer, what: str = "input") -> tuple[int, int, int]:
    """The first input's (C, H, W), or an error naming the layer when it is not a map."""
    shape = layer.in_shape
    if len(shape) != 3:
        raise UsageError(
            f"{layer.where}: needs a (C, H, W) map as {what}, got shape {shape} "
            "(a flat vector: this layer must come before flatten/fc)"
        )
    return shape  # type: ignore[return-value]


def same_shape(layer: Layer, ins: list[Layer]) -> Shape:
    """Shape rule of element-wise operators: the output has the input's shape."""
    return layer.in_shape


# ------------------------------------------------------------------------ conv


#: Matrix products of at most this many multiply-adds run in numpy's own
#: einsum loop on the calling thread instead of BLAS. A fully connected layer
#: on one image is a matrix-vector product: OpenBLAS splits it over its
#: threads, and with another process on one of the two cores they wait for
#: each other (ResNet-18's 512x1000 fc: 0.08 ms median quiet, 5.9 ms median
#: under load; einsum 0.04-0.1 ms either way, measured in the network walk).
SMALL_PRODUCT = 1 << 21


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 1-D or 2-D operands; small float32 products without BLAS threads.

    Examples
    --------
    >>> matmul(np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32)).tolist()
    [3.0, 3.0]
    """
    if (
        a.dtype == b.dtype == np.float32
        and 1 <= a.ndim <= 2
        and 1 <= b.ndim <= 2
        and a.shape[-1] == b.shape[0]  # else numpy's own error message
        and a.size * (b.shape[1] if b.ndim == 2 else 1) <= SMALL_PRODUCT
    ):
        rows = "ik"[2 - a.ndim :]
        cols = "kj"[: b.ndim]
        out = "".join(ch for ch in rows + cols if ch != "k")
        return np.einsum(f"{rows},{cols}->{out}", a, b)
    return a @ b


def _plan_conv(layer: Layer, ins: list[Layer]) -> Shape:
    where = layer.where
    o = layer.attrs
    c, h, w = spatial(layer)
    groups = c if o["groups"] == "depthwise" else o["groups"]
    if c % groups:
        raise UsageError(f"{where}: groups={groups} does not divide the {c} input channels")
    cg = c // groups
    bias_given: np.ndarray | None = None
    weight: np.ndarray | None = None
    if "weights" in o:
        path = Path(o["weights"])
        weight, bias_given = load_weights(path, where)
        if weight.ndim == 3:
            weight = weight[:, None]
        if (
            weight.ndim != 4
            or weight.shape[1] != cg
            or weight.shape[2] != weight.shape[3]
            or weight.shape[0] % groups
        ):
            raise UsageError(
                f"{where}: weights in {path.name} have shape {weight.shape}; expected "
                f"(M, {cg}, K, K) for {c} input channels and groups={groups}, "
                f"M a multiple of {groups}"
            )
        layer.labels = Numbered("f", weight.shape[0])
        layer.source = path.name
        m, k = weight.shape[0], weight.shape[2]
    elif "random" in o:
        m, k = o["random"], o["size"]
        if m % groups:
            raise UsageError(f"{where}: random:{m} filters do not split into groups={groups}")
        layer.labels = Numbered("r", m)
        layer.source = f"random:{m} {o['init']}"
    else:
        stack, names = named_filters(o["filters"], where)
        n, k, _ = stack.shape
        weight = np.repeat(stack[:, None] / np.float32(cg), cg, axis=1)
        weight = np.tile(weight, (groups, 1, 1, 1))
        if groups > 1:
            layer.labels = tuple(f"{name}@g{g}" for g in range(groups) for name in names)
        else:
            layer.labels = names
        layer.source = "|".join(o["filters"])
        m = weight.shape[0]
    bias = _bias(where, o["bias"], bias_given, m, "filters")
    s, d = o["stride"], o["dilation"]
    pad = o["pad"]
    span = d * (k - 1)
    if isinstance(pad, int):
        padding = (pad, pad, pad, pad)
        pad_mode, pad_text = "constant", f"pad {pad}"
    elif pad == "valid":
        padding, pad_mode, pad_text = (0, 0, 0, 0), "constant", "valid"
    else:
        before, after = pad_before_after(k, d)
        padding, pad_mode, pad_text = (before, after, before, after), pad, pad
    oh = (h + padding[0] + padding[1] - span - 1) // s + 1
    ow = (w + padding[2] + padding[3] - span - 1) // s + 1
    if oh < 1 or ow < 1:
        raise UsageError(
            f"{where}: output would be {max(oh, 0)}x{max(ow, 0)}: the {h}x{w} input is smaller "
            f"than the kernel's reach {span + 1} (size {k}, dilation {d}) with pad {pad_text}; "
            "use padding, a smaller kernel or fewer pooling layers before it"
        )
    if pad_text == "constant":
        pad_text = "zero" if o["pad_value"] == 0 else f"constant {o['pad_value']:g}"
    layer.attrs.update(groups=groups, padding=padding, pad_mode=pad_mode)
    layer.params = m * cg * k * k + (m if bias is not None else 0)
    layer.macs = m * cg * k * k * oh * ow
    in_size, out_size = c * h * w, m * oh * ow
    layer.fc_params = in_size * out_size + out_size
    layer.rf = layer.rf + span * layer.jump
    layer.jump = layer.jump * s
    extra = f" groups {groups}" if groups > 1 else ""
    d_text = f" dilation {d}" if d > 1 else ""
    layer.detail = f"{k}x{k}/{s} {pad_text}{d_text}{extra}"
    # conv2d's scratch: a padded copy of the input and one block of im2col
    # patches (at most 32 MiB); the output is counted with the maps
    padded = nbytes((c, h + padding[0] + padding[1], w + padding[2] + padding[3]))
    patches = min(nbytes((cg * k * k, oh, ow)), (1 << 25) + nbytes((cg * k * k, ow)))
    layer.work_bytes = (padded if any(padding) else 0) + patches

    if weight is not None:
        arrays = {"weight": np.ascontiguousarray(weight, dtype=np.float32)}
        if bias is not None:
            arrays["bias"] = bias
        layer.arrays = arrays
    else:
        seed, init = o["seed"], o["init"]

        def draw() -> dict[str, np.ndarray]:
            arrays = {"weight": random_weights((m, cg, k, k), cg * k * k, m * k * k, init, seed)}
            if bias is not None:
                arrays["bias"] = bias
            return arrays

        layer.make_arrays = draw
    return (m, oh, ow)


def _bias(
    where: str, bias_opt: Any, bias_given: np.ndarray | None, m: int, what: str
) -> np.ndarray | None:
    """A conv or fc bias: from the weight file, a list of values, one value for all, or none."""
    if bias_given is not None:
        if bias_opt is False:
            return None
        if bias_given.shape != (m,):
            raise UsageError(f"{where}: bias has shape {bias_given.shape}; expected ({m},)")
        return bias_given
    if isinstance(bias_opt, tuple):
        if len(bias_opt) != m:
            raise UsageError(f"{where}: {len(bias_opt)} bias values for {m} {what}")
        return np.asarray(bias_opt, dtype=np.float32)
    if bias_opt is False:
        return None
    return np.full(m, 0.0 if bias_opt is True else bias_opt, dtype=np.float32)


def _run_conv(layer: Layer, x: np.ndarray) -> np.ndarray:
    from ..conv2d import conv2d

    a = layer.attrs
    return conv2d(
        x,
        layer.arrays["weight"],
        layer.arrays.get("bias"),
        stride=a["stride"],
        dilation=a["dilation"],
        groups=a["groups"],
        padding=a["padding"],
        pad_mode=a["pad_mode"],
        pad_value=a["pad_value"],
    )


# ------------------------------------------------------------------------ pool


def _plan_pool(layer: Layer, ins: list[Layer]) -> Shape:
    from ..modes import pool_output_size

    where = layer.where
    o = layer.attrs
    c, h, w = spatial(layer)
    mode = o["mode"]
    layer.work_bytes = nbytes((c, h, w))  # per-channel results before they are stacked
    if mode == "fractional":
        if "output_size" in o:
            oh = ow = o["output_size"]
            if oh >= min(h, w):
                raise UsageError(
                    f"{where}: output_size {oh} must be smaller than the {h}x{w} input"
                )
        else:
            oh, ow = math.floor(h / o["ratio"]), math.floor(w / o["ratio"])
        if oh < 1 or ow < 1:
            raise UsageError(f"{where}: output would be {oh}x{ow} from a {h}x{w} input")
        ratio = max(h / oh, w / ow)
        layer.rf = layer.rf + (math.ceil(ratio) - 1) * layer.jump  # regions: ceil(ratio) px
        layer.jump = layer.jump * ratio
        layer.detail = f"fractional {h / oh:.3g}x"
        return (c, oh, ow)
    f, s = o["size"], o["stride"]
    pad, padding = o["pad"], o["padding"]
    try:
        oh = pool_output_size(h, f, s, padding=padding, ceil=o["ceil"], axis="height")
        ow = pool_output_size(w, f, s, padding=padding, ceil=o["ceil"], axis="width")
    except UsageError:
        extra = f" plus padding {2 * padding}" if padding else ""
        raise UsageError(
            f"{where}: output would be empty: the window {f} is larger than the {h}x{w} "
            f"input{extra}; use a smaller size or fewer layers before it"
        ) from None
    pad_text = "" if padding == 0 else f" pad {padding} {'zero' if pad == 'constant' else pad}"
    layer.rf = layer.rf + (f - 1) * layer.jump
    layer.jump = layer.jump * s
    layer.detail = f"{mode} {f}x{f}/{s}{pad_text}{' ceil' if o['ceil'] else ''}"
    return (c, oh, ow)


def pool_planes(
    x: np.ndarray,
    mode: str,
    size: int,
    stride: int,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    ceil: bool = False,
    pad_value: float | None = None,
) -> np.ndarray | None:
    """Max, min or average pooling of every plane of a (C, H, W) stack in one call.

    The same numbers as :func:`convtool.pooling.pool` on each plane with
    constant padding ``(top, bottom, left, right)`` of ``pad_value`` (default
    -inf for max, +inf for min, 0 for avg) and the same ceil rule, from one
    pool call on a 2-D array: the planes one under the other, each padded
    with the fill and rounded up to a whole number of strides, so that no
    window reaches from one plane into the next. No copy at all when there is
    no padding and the height is a multiple of a stride at least the window
    (VGG's 2x2/2). An average whose ceil-mode window hangs over the padded
    edge divides by the area inside it, as pool does. ``None`` for a mode
    other than max/min/avg or a window larger than the padded plane.

    Examples
    --------
    >>> x = np.arange(32, dtype=np.float32).reshape(2, 4, 4)
    >>> pool_planes(x, "max", 2, 2).tolist()
    [[[5.0, 7.0], [13.0, 15.0]], [[21.0, 23.0], [29.0, 31.0]]]
    >>> pool_planes(x, "max", 3, 2, (1, 1, 1, 1)).tolist()
    [[[5.0, 7.0], [13.0, 15.0]], [[21.0, 23.0], [29.0, 31.0]]]
    """
    from ..modes import pool_output_size
    from ..pooling import pool

    if mode not in ("max", "min", "avg") or x.ndim != 3:
        return None
    c, h, w = x.shape
    f, s = size, stride
    top, bottom, left, right = padding
    hp, wp = h + top + bottom, w + left + right
    if hp < f or wp < f:
        return None

    def out_len(n: int, before: int, after: int) -> int:
        return pool_output_size(n, f, s, padding=before, padding_after=after, ceil=ceil)

    oh, ow = out_len(h, top, bottom), out_len(w, left, right)
    rows, cols = (oh - 1) * s + f, (ow - 1) * s + f  # extent the windows read
    skip = {"max": -np.inf, "min": np.inf}.get(mode, 0.0)  # beyond the padding: left out
    fill = skip if pad_value is None else np.float32(pad_value)
    if not any(padding) and h % s == 0 and f <= s and rows <= h and cols <= w:
        per = h // s
        flat = np.ascontiguousarray(x, dtype=np.float32).reshape(c * h, w)
    else:
        per = -(-max(hp, rows) // s)  # output rows per plane (some past the last window)
        hb = per * s  # rows per plane: a whole number of strides
        wb = max(wp, cols)
        from ..conv2d import _scratch  # reused: no fresh pages to fault in per call

        buf = _scratch("pool", (c * hb + f) * wb).reshape(c * hb + f, wb)
        planes = buf[: c * hb].reshape(c, hb, wb)
        buf[c * hb :] = skip
        planes[:, hp:] = skip  # beyond the padding: rows and columns left out
        planes[:, :hp, wp:] = skip
        border = fill if any(padding) else skip
        planes[:, :top, :wp] = border
        planes[:, top + h : hp, :wp] = border
        planes[:, top : top + h, :left] = border
        planes[:, top : top + h, left + w : wp] = border
        planes[:, top : top + h, left : left + w] = x
        flat = buf
    out = pool(flat, mode, size=f, stride=s)
    out = np.ascontiguousarray(out[: c * per].reshape(c, per, out.shape[1])[:, :oh, :ow])
    if mode == "avg" and (rows > hp or cols > wp):  # divide by the clipped area, not F*F
        starts = np.arange(max(oh, ow)) * s
        area = np.outer(np.minimum(starts[:oh] + f, hp) - starts[:oh],
                        np.minimum(starts[:ow] + f, wp) - starts[:ow])  # fmt: skip
        out *= (f * f / area).astype(np.float32)
    return out


def max_3x3_s2_planes(
    x: np.ndarray, padding: tuple[int, int, int, int], ceil: bool
) -> np.ndarray | None:
    """3x3 stride-2 max pooling of every plane of a (C, H, W) stack (ResNet's and
    GoogLeNet's stem), read in place on the compute threads; ``None`` while
    Numba is not loaded (then :func:`pool_planes`) or when a window would not
    fit. The same numbers as :func:`pool_planes` with -inf padding.

    Examples
    --------
    >>> x = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    >>> out = max_3x3_s2_planes(x, (1, 1, 1, 1), False)
    >>> out is None or out.tolist() == [[[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]]
    True
    """
    from .. import rentbuy
    from ..modes import pool_output_size
    from ..parallel import run_blocks

    top, bottom, left, right = padding
    c, h, w = x.shape
    if not rentbuy.numba_loaded() or h + top + bottom < 3 or w + left + right < 3:
        return None
    from ..core.pool import max_3x3_s2_planes as kernel

    oh = pool_output_size(h, 3, 2, padding=top, padding_after=bottom, ceil=ceil)
    ow = pool_output_size(w, 3, 2, padding=left, padding_after=right, ceil=ceil)
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty((c, oh, ow), np.float32)
    run_blocks(lambda c0, c1: kernel(x, out, top, left, c0, c1), c, work=9.0 * out.size)
    return out


def _run_pool(layer: Layer, x: np.ndarray) -> np.ndarray:
    from ..pooling import pool

    o = dict(layer.attrs)
    mode = o.pop("mode")
    if mode in ("max", "min", "avg") and (
        o["pad"] == "constant" or (not o["padding"] and "pad_value" not in o)
    ):
        p = o["padding"]
        out = pool_planes(x, mode, o["size"], o["stride"], (p,) * 4, o["ceil"], o.get("pad_value"))
        if out is not None:
            return out
    kwargs: dict[str, Any] = {}
    if mode != "fractional":
        kwargs.update(size=o.pop("size"), stride=o.pop("stride"), pad=o.pop("pad"))
        kwargs["ceil"] = o.pop("ceil")
    kwargs.update(o)
    # channel planes of a (C, H, W) array are contiguous: pool them one by one
    # (an (H, W, C) copy would cost more than the pooling); a seed gives every
    # channel its own stream, as one call on an (H, W, C) image would not
    if "seed" in kwargs and mode in ("stochastic", "fractional"):
        hwc = np.ascontiguousarray(np.moveaxis(x, 0, -1)) if x.shape[0] > 1 else x[0]
        out = np.asarray(pool(hwc, mode, **kwargs), dtype=np.float32)
        out = out[None] if out.ndim == 2 else np.moveaxis(out, -1, 0)
    else:
        out = np.stack([np.asarray(pool(plane, mode, **kwargs), np.float32) for plane in x])
    return np.ascontiguousarray(out)


# ------------------------------------------------------------ element-wise


def _plan_leaky_relu(layer: Layer, ins: list[Layer]) -> Shape:
    layer.detail = f"alpha {layer.attrs['alpha']:g}"
    return layer.in_shape


#: Values from which an element-wise map is split over the compute threads
#: (measured, ReLU with two threads: 64x112x112 0.24 -> 0.17 ms; 64x56x56 0.06
#: either way; 128x28x28 0.03 -> 0.055).
ELEMENTWISE_SPLIT = 1 << 19


def elementwise(ufunc: np.ufunc, a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """``ufunc(a, b)`` as float32, large maps split over the compute threads.

    numpy releases the GIL in its loops, and once Numba is loaded the team
    threads of :mod:`convtool.parallel` wait for work, so two threads take a
    third off a ReLU of 64x112x112 values. ``b`` is a scalar or an array
    (an array of another shape or dtype: numpy's broadcasting, not split).

    Examples
    --------
    >>> elementwise(np.maximum, np.array([-1.0, 2.0], np.float32), 0.0).tolist()
    [0.0, 2.0]
    """
    from ..parallel import get_threads, run_blocks

    a = np.ascontiguousarray(a, np.float32)
    if np.ndim(b) == 0:
        b = np.float32(b)
    elif b.shape != a.shape or b.dtype != np.float32:
        return ufunc(a, b).astype(np.float32, copy=False)
    else:
        b = np.ascontiguousarray(b)
    n = a.size
    if n < ELEMENTWISE_SPLIT or get_threads() == 1:
        return ufunc(a, b)
    out = np.empty_like(a)
    flat_a, flat_o = a.reshape(-1), out.reshape(-1)
    flat_b = b if np.ndim(b) == 0 else b.reshape(-1)

    def part(lo: int, hi: int) -> None:
        rhs = flat_b if np.ndim(flat_b) == 0 else flat_b[lo:hi]
        ufunc(flat_a[lo:hi], rhs, out=flat_o[lo:hi])

    run_blocks(part, n, work=16.0 * n)
    return out


def _relu(layer: Layer, x: np.ndarray) -> np.ndarray:
    return elementwise(np.maximum, x, 0.0)


def _leaky_relu(layer: Layer, x: np.ndarray) -> np.ndarray:
    alpha = np.float32(layer.attrs["alpha"])
    return np.where(x >= 0, x, alpha * x).astype(np.float32)


def _tanh(layer: Layer, x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def _sigmoid(layer: Layer, x: np.ndarray) -> np.ndarray:
    return (np.float32(0.5) * (np.tanh(np.float32(0.5) * x) + np.float32(1))).astype(np.float32)


def _abs(layer: Layer, x: np.ndarray) -> np.ndarray:
    return np.abs(x)


def _plan_norm(layer: Layer, ins: list[Layer]) -> Shape:
    spatial(layer)
    layer.work_bytes = 2 * nbytes(layer.in_shape)  # float64 differences
    return layer.in_shape


def _norm(layer: Layer, x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    std = x.std(axis=(1, 2), keepdims=True, dtype=np.float64)
    return ((x - mean) / (std + layer.attrs["eps"])).astype(np.float32)


# ----------------------------------------------------------------- joins


def _plan_add(layer: Layer, ins: list[Layer]) -> Shape:
    first = ins[0]
    for other in ins[1:]:
        if other.out_shape != first.out_shape:
            raise UsageError(
                f"{layer.where}: inputs {first.name!r} ({shape_text(first.out_shape)}) and "
                f"{other.name!r} ({shape_text(other.out_shape)}) have different shapes; "
                "add needs equal shapes"
            )
    return first.out_shape


def _add(layer: Layer, *xs: np.ndarray) -> np.ndarray:
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out += x
    return out


def _plan_concat(layer: Layer, ins: list[Layer]) -> Shape:
    first = ins[0]
    for other in ins[1:]:
        a, b = first.out_shape, other.out_shape
        if len(a) != len(b) or a[1:] != b[1:]:
            what = "the same H x W" if len(a) == 3 else "the same rank"
            raise UsageError(
                f"{layer.where}: inputs {first.name!r} ({shape_text(a)}) and "
                f"{other.name!r} ({shape_text(b)}) do not fit together; concat joins "
                f"channels and needs {what}"
            )
    channels = sum(x.out_shape[0] for x in ins)
    if len(first.out_shape) == 3 and channels <= 1 << 16:  # else numbered, as planning stays cheap
        layer.labels = tuple(f"{x.name}:{label}" for x in ins for label in x.labels)
    layer.work_bytes = 0
    return (channels, *first.out_shape[1:])


def _concat(layer: Layer, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=0)


# ------------------------------------------------------------ normalisation

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def _plan_batchnorm(layer: Layer, ins: list[Layer]) -> Shape:
    where, o = layer.where, layer.attrs
    c = layer.in_shape[0]
    if "weights" in o:
        path = Path(o["weights"])
        arrays = load_arrays(path, where)
        missing = [k for k in _BN_KEYS if k not in arrays]
        if missing:
            raise UsageError(
                f"{where}: {path.name} must hold {', '.join(_BN_KEYS)} (PyTorch's BatchNorm2d "
                f"names); missing {', '.join(missing)}"
            )
        for key in _BN_KEYS:
            if arrays[key].shape != (c,):
                raise UsageError(
                    f"{where}: {key} in {path.name} has shape {arrays[key].shape}; expected "
                    f"({c},) for {c} input channels"
                )
        if (arrays["running_var"] < 0).any():
            raise UsageError(f"{where}: running_var in {path.name} has negative values")
        stats = {k: arrays[k] for k in _BN_KEYS}
        layer.source = path.name
    else:  # a fresh PyTorch BatchNorm2d: scale 1, shift 0, mean 0, variance 1
        ones, zeros = np.ones(c, np.float32), np.zeros(c, np.float32)
        stats = {"weight": ones, "bias": zeros, "running_mean": zeros, "running_var": ones}
    layer.arrays = stats
    layer.params, layer.buffers = 2 * c, 2 * c
    layer.detail = f"eps {o['eps']:g}"
    return layer.in_shape


def _batchnorm(layer: Layer, x: np.ndarray) -> np.ndarray:
    a = layer.arrays
    var = a["running_var"].astype(np.float64) + layer.attrs["eps"]
    scale = (a["weight"] / np.sqrt(var)).astype(np.float32)
    shift = (a["bias"] - a["running_mean"] * scale).astype(np.float32)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return x * scale.reshape(shape) + shift.reshape(shape)


# ---------------------------------------------------------- the classifier end


def _whole_input(layer: Layer) -> None:
    """Receptive field of an output that sees every position of a (C, H, W) input."""
    if len(layer.in_shape) == 3 and layer.jump is not None:
        side = max(layer.in_shape[1:])
        layer.rf = layer.rf + (side - 1) * layer.jump
        layer.jump = layer.jump * side


def _plan_global_pool(layer: Layer, ins: list[Layer]) -> Shape:
    c, h, w = spatial(layer)
    _whole_input(layer)
    layer.detail = f"{layer.attrs['mode']} {h}x{w}"
    return (c, 1, 1)


def _global_pool(layer: Layer, x: np.ndarray) -> np.ndarray:
    if layer.attrs["mode"] == "max":
        return x.max(axis=(1, 2), keepdims=True)
    return x.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)


def _plan_flatten(layer: Layer, ins: list[Layer]) -> Shape:
    _whole_input(layer)
    layer.jump = None
    layer.work_bytes = 0
    return (math.prod(layer.in_shape),)


def _flatten(layer: Layer, x: np.ndarray) -> np.ndarray:
    return x.reshape(-1)


def _plan_fc(layer: Layer, ins: list[Layer]) -> Shape:
    where, o = layer.where, layer.attrs
    if len(layer.in_shape) != 1:
        raise UsageError(
            f"{where}: needs a flat vector, got a {shape_text(layer.in_shape)} map; "
            "put a flatten layer (or global_pool, then flatten) before it"
        )
    (n,) = layer.in_shape
    weight: np.ndarray | None = None
    bias_given: np.ndarray | None = None
    if "weights" in o:
        path = Path(o["weights"])
        weight, bias_given = load_weights(path, where)
        if weight.ndim != 2 or weight.shape[1] != n:
            raise UsageError(
                f"{where}: weight in {path.name} has shape {weight.shape}; expected "
                f"(out, {n}) for {n} inputs (PyTorch Linear layout)"
            )
        units = weight.shape[0]
        layer.source = path.name
    else:
        units = o["units"]
        layer.source = f"random {o['init']}"
    bias = _bias(where, o["bias"], bias_given, units, "units")
    layer.params = units * n + (units if bias is not None else 0)
    layer.macs = units * n
    layer.detail = f"{n} -> {units}"
    _whole_input(layer)
    layer.jump = None
    if weight is not None:
        layer.arrays = {"weight": weight} | ({} if bias is None else {"bias": bias})
    else:
        seed, init = o["seed"], o["init"]

        def draw() -> dict[str, np.ndarray]:
            w = random_weights((units, n), n, units, init, seed)
            return {"weight": w} | ({} if bias is None else {"bias": bias})

        layer.make_arrays = draw
    return (units,)


def _fc(layer: Layer, x: np.ndarray) -> np.ndarray:
    out = matmul(layer.arrays["weight"], x)
    if "bias" in layer.arrays:
        out += layer.arrays["bias"]
    return out


def _softmax(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Softmax over axis 0: the classes of a vector, the channels of a map (dim=1 in NCHW)."""
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _plan_dropout(layer: Layer, ins: list[Layer]) -> Shape:
    layer.detail = f"p {layer.attrs['p']:g}, identity at inference"
    layer.work_bytes = 0
    return layer.in_shape


def _identity(layer: Layer, x: np.ndarray) -> np.ndarray:
    return x


def _plan_clip(layer: Layer, ins: list[Layer]) -> Shape:
    layer.detail = f"{layer.attrs['min']:g}..{layer.attrs['max']:g}"
    return layer.in_shape


def _clip(layer: Layer, x: np.ndarray) -> np.ndarray:
    return np.clip(x, np.float32(layer.attrs["min"]), np.float32(layer.attrs["max"]))


# -------------------------------------------------------------------- registry

#: Node type -> operator. The TOML layer types; the ONNX import registers its own.
OPS: dict[str, Op] = {
    "conv": Op(_plan_conv, _run_conv),
    "pool": Op(_plan_pool, _run_pool),
    "relu": Op(same_shape, _relu),
    "leaky_relu": Op(_plan_leaky_relu, _leaky_relu),
    "tanh": Op(same_shape, _tanh),
    "sigmoid": Op(same_shape, _sigmoid),
    "abs": Op(same_shape, _abs),
    "norm": Op(_plan_norm, _norm),
    "add": Op(_plan_add, _add, arity=(2, None)),
    "concat": Op(_plan_concat, _concat, arity=(2, None)),
    "batchnorm": Op(_plan_batchnorm, _batchnorm),
    "global_pool": Op(_plan_global_pool, _global_pool),
    "flatten": Op(_plan_flatten, _flatten),
    "fc": Op(_plan_fc, _fc),
    "softmax": Op(same_shape, _softmax),
    "dropout": Op(_plan_dropout, _identity),
    "clip": Op(_plan_clip, _clip),
    "relu6": Op(_plan_clip, _clip),  # its options are min 0, max 6
}
