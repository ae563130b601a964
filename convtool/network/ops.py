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
from .weights import load_weights, named_filters, random_weights

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
        layer.labels = tuple(f"f{m}" for m in range(weight.shape[0]))
        layer.source = path.name
        m, k = weight.shape[0], weight.shape[2]
    elif "random" in o:
        m, k = o["random"], o["size"]
        if m % groups:
            raise UsageError(f"{where}: random:{m} filters do not split into groups={groups}")
        layer.labels = tuple(f"r{i}" for i in range(m))
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
    bias = _conv_bias(where, o["bias"], bias_given, m)
    s, d = o["stride"], o["dilation"]
    pad = o["pad"]
    span = d * (k - 1)
    if isinstance(pad, int):
        padding = (pad, pad, pad, pad)
        pad_mode, pad_text = "constant", str(pad)
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
    # a padded copy of the input, one block of im2col patches (<= 32 MiB) and
    # a second output-sized buffer for the per-channel path
    padded = nbytes((c, h + padding[0] + padding[1], w + padding[2] + padding[3]))
    patches = min(nbytes((cg * k * k, oh, ow)), (1 << 25) + nbytes((cg * k * k, ow)))
    layer.work_bytes = (padded if any(padding) else 0) + patches + nbytes((m, oh, ow))

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


def _conv_bias(
    where: str, bias_opt: Any, bias_given: np.ndarray | None, m: int
) -> np.ndarray | None:
    """The conv bias: from the weight file, a list of values, one value for all, or none."""
    if bias_given is not None:
        if bias_opt is False:
            return None
        if bias_given.shape != (m,):
            raise UsageError(f"{where}: bias has shape {bias_given.shape}; expected ({m},)")
        return bias_given
    if isinstance(bias_opt, tuple):
        if len(bias_opt) != m:
            raise UsageError(f"{where}: {len(bias_opt)} bias values for {m} filters")
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


def _load_numba_pool() -> None:
    # Pooling runs on Numba, so the process pays its start-up anyway; load it
    # first so that convolutions take the compiled paths, not the numpy path
    # convtool.filtering uses while Numba is not loaded.
    import convtool.core.pool  # noqa: F401


def _run_pool(layer: Layer, x: np.ndarray) -> np.ndarray:
    from ..pooling import pool

    o = dict(layer.attrs)
    mode = o.pop("mode")
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


def _relu(layer: Layer, x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.float32(0))


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


# -------------------------------------------------------------------- registry

#: Node type -> operator. The TOML layer types; the ONNX import registers its own.
OPS: dict[str, Op] = {
    "conv": Op(_plan_conv, _run_conv),
    "pool": Op(_plan_pool, _run_pool, prepare=_load_numba_pool),
    "relu": Op(same_shape, _relu),
    "leaky_relu": Op(_plan_leaky_relu, _leaky_relu),
    "tanh": Op(same_shape, _tanh),
    "sigmoid": Op(same_shape, _sigmoid),
    "abs": Op(same_shape, _abs),
    "norm": Op(_plan_norm, _norm),
}
