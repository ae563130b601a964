"""The graph walker: run planned nodes in order, keeping every value by name.

:func:`walk` knows no operator: it looks each node's ``kind`` up in
:data:`convtool.network.ops.OPS` and calls its ``run`` with the values the
node names as inputs. :func:`feature_maps` is the public door: image in,
every node's output out, after the plan and the memory check.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Iterator

import numpy as np

from ..errors import UsageError
from .graph import INPUT, Layer, Memory, memory_estimate, plan
from .spec import Net, load_net

#: Environment variable that sets the memory a run may use (``16G``, ``512M``, ``none``).
MEMORY_ENV = "CONVTOOL_MAX_MEMORY"


def walk(layers: list[Layer], x: np.ndarray) -> Iterator[tuple[Layer, np.ndarray]]:
    """Run planned ``layers`` on the input value ``x``, yielding each node's output.

    Every value stays in a dict keyed by name (``"input"`` is ``x``), so any
    node may read any earlier one.

    Examples
    --------
    >>> layers = plan("relu abs", (1, 1, 2))
    >>> [out.tolist() for _, out in walk(layers, np.array([[[-1.0, 2.0]]], np.float32))]
    [[[[0.0, 2.0]]], [[[0.0, 2.0]]]]
    """
    from .ops import OPS

    values: dict[str, np.ndarray] = {INPUT: x}
    for layer in layers:
        out = OPS[layer.kind].run(layer, *(values[name] for name in layer.inputs))
        if out.shape != layer.out_shape:
            raise RuntimeError(
                f"{layer.where}: computed shape {out.shape}, planned {layer.out_shape} (a bug)"
            )
        values[layer.name] = out
        yield layer, out


def run_layer(layer: Layer, *inputs: np.ndarray) -> np.ndarray:
    """Apply one planned node to its input array(s).

    Examples
    --------
    >>> (layer,) = plan("leaky_relu(0.5)", (1, 1, 2))
    >>> run_layer(layer, np.array([[[-2.0, 3.0]]], np.float32)).tolist()
    [[[-1.0, 3.0]]]
    """
    from .ops import OPS

    return OPS[layer.kind].run(layer, *inputs)


def as_chw(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, C) image as a float32 (C, H, W) array.

    Examples
    --------
    >>> as_chw(np.zeros((4, 5, 3))).shape
    (3, 4, 5)
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3:
        arr = np.moveaxis(arr, -1, 0)
    else:
        raise UsageError(f"an image must be 2-D (H, W) or 3-D (H, W, C), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise UsageError("the image must hold real numbers")
    return np.ascontiguousarray(arr, dtype=np.float32)


# ---------------------------------------------------------------------- memory

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str) -> int | None:
    """``"16G"``, ``"512MiB"``, ``"1.5g"``, ``"123456"`` -> bytes; ``none``/``off``/``0`` -> None.

    Units are binary (K = 1024).

    Examples
    --------
    >>> parse_bytes("16G"), parse_bytes("512MiB"), parse_bytes("none")
    (17179869184, 536870912, None)
    """
    s = str(text).strip().lower()
    if s in ("", "0", "none", "off", "unlimited", "inf"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", s)
    if not m:
        raise UsageError(
            f"{MEMORY_ENV}={text!r} is not a size; use e.g. 16G, 512M, a number of bytes, or none"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def available_memory() -> int | None:
    """Memory the system can give this process now (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``.

    Examples
    --------
    >>> human_bytes(192_000_000_000), human_bytes(100)
    ('179 GiB', '100 B')
    """
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def check_memory(mem: Memory, limit: int | str | None = None) -> None:
    """Refuse a run whose estimated peak exceeds the limit, in one line.

    Parameters
    ----------
    mem : Memory
        From :func:`convtool.network.graph.memory_estimate`.
    limit : int, size text or None
        Bytes allowed; None: the ``CONVTOOL_MAX_MEMORY`` environment variable
        if set, else the memory available now. ``"none"`` turns the check off.

    Raises
    ------
    UsageError
        Saying how much the run needs, how much there is, and how to allow more.
    """
    if limit is None:
        env = os.environ.get(MEMORY_ENV)
        cap = parse_bytes(env) if env is not None else available_memory()
        source = f"{MEMORY_ENV}={env}" if env is not None else "available"
    else:
        cap = parse_bytes(str(limit)) if not isinstance(limit, int) else (limit or None)
        source = "allowed"
    if cap is None or mem.total <= cap:
        return
    raise UsageError(
        f"the network needs about {human_bytes(mem.total)} of memory with every map kept "
        f"(maps {human_bytes(mem.maps)}, weights {human_bytes(mem.weights)}, scratch "
        f"{human_bytes(mem.work)}) but {human_bytes(cap)} is {source}; use a smaller image or "
        f"fewer/smaller layers, or set {MEMORY_ENV}=SIZE (e.g. "
        f"{_suggest(mem.total)}) to allow more"
    )


def _suggest(n: int) -> str:
    """A round size just above ``n``: ``391G``, ``96T``."""
    unit, size = ("T", 1 << 40) if n >= 1 << 40 else ("G", 1 << 30)
    return f"{-(-n // size)}{unit}"


# ------------------------------------------------------------------ feature maps


def _planned_input(layers: list[Layer]) -> tuple[int, ...] | None:
    """The input shape planned layers expect (from the first node that reads the image)."""
    for layer in layers:
        if INPUT in layer.inputs:
            return layer.in_shapes[layer.inputs.index(INPUT)]
    return None


#: Plans kept per Net object, by input shape (the last few shapes): a Net is
#: frozen, so its plan for a shape never changes, and the arrays its layers
#: build when they first run (seeded random weights) are built once.
_PLANS: dict[int, dict[tuple[int, ...], list[Layer]]] = {}
_PLANS_PER_NET = 2  # each holds its layers' drawn weights: keep few


def _plan_once(net: Net, shape: tuple[int, ...]) -> list[Layer]:
    """``plan(net, shape)``, kept for as long as ``net`` lives."""
    key = id(net)
    plans = _PLANS.get(key)
    if plans is None:
        try:
            weakref.finalize(net, _PLANS.pop, key, None)  # forget it with the net
        except TypeError:  # pragma: no cover - a Net subclass with __slots__
            return plan(net, shape)
        plans = _PLANS[key] = {}
    layers = plans.get(shape)
    if layers is None:
        layers = plan(net, shape)
        if len(plans) >= _PLANS_PER_NET:
            del plans[next(iter(plans))]
        plans[shape] = layers
    return layers


def feature_maps(
    image: np.ndarray,
    net: Net | str | os.PathLike,
    *,
    max_memory: int | str | None = None,
    layers: list[Layer] | None = None,
) -> list[tuple[Layer, np.ndarray]]:
    """Run ``image`` through ``net`` and return every node's output.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
        Values on the image's own scale; the net's ``input_scale`` is applied.
    net : Net, path to a TOML file, or inline layer string
    max_memory : int, size text (``"16G"``) or None
        Refuse to run when the estimated peak memory (every map is kept) is
        larger; default: ``CONVTOOL_MAX_MEMORY`` if set, else the memory
        available now; ``"none"`` turns the check off.
    layers : list of Layer, optional
        ``plan(net, shape)`` already made by the caller for this image's
        (C, H, W) shape: run them instead of planning again. Without it a
        ``Net`` object keeps its plan for the last few image shapes (and the
        weights its layers drew), so running it again on images of the same
        size plans once.

    Returns
    -------
    list of (Layer, numpy.ndarray)
        One entry per node in topological order: the planned node and its
        float32 output ((C, H, W) maps, 1-D vectors).

    Raises
    ------
    UsageError
        From :func:`plan` or the memory check, before any node runs.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    >>> maps = feature_maps(img, "conv(random:4,size=3) relu pool(max,2)")
    >>> [(layer.name, out.shape) for layer, out in maps]
    [('conv', (4, 30, 30)), ('relu', (4, 30, 30)), ('pool', (4, 15, 15))]
    """
    from .ops import OPS

    net = load_net(net)
    x = as_chw(image)
    if not np.all(np.isfinite(x)):
        raise UsageError("the image contains NaN or infinity")
    if layers is None:
        layers = _plan_once(net, x.shape)
    elif _planned_input(layers) != x.shape:
        raise UsageError(
            f"the layers were planned for input {_planned_input(layers)}, the image is {x.shape}"
        )
    check_memory(memory_estimate(layers, x.shape), max_memory)
    for kind in dict.fromkeys(layer.kind for layer in layers):
        if OPS[kind].prepare is not None:
            OPS[kind].prepare()
    if net.input_scale != 1.0:
        x = x * np.float32(net.input_scale)
    return list(walk(layers, x))


# ----------------------------------------------------------------------- until


def up_to(source: Net | str | os.PathLike, until: str) -> Net:
    """The network ``source`` with only the nodes up to and including ``until``.

    Nodes come in topological order, as :func:`plan` sorts them; everything
    before ``until`` in that order stays (branches that do not lead to it
    too). For an ONNX model the cut happens while it is read, so operators
    after ``until`` need not be supported.

    Raises
    ------
    UsageError
        No node of that name (the message lists the first names).

    Examples
    --------
    >>> net = up_to("conv(random:4,size=3) relu pool(max,2)", "relu")
    >>> [node.kind for node in net.layers]
    ['conv', 'relu']
    """
    import dataclasses

    from .graph import graph_order

    if not isinstance(source, Net) and os.fspath(source).lower().endswith(".onnx"):
        from .onnx_import import load_onnx

        return load_onnx(source, until=until)
    net = load_net(source)
    if hasattr(net, "up_to"):
        return net.up_to(until)
    order = graph_order(net.layers)
    names = [name for name, _, _ in order]
    if until not in names:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise UsageError(f"--until {until!r}: the net has no layer of that name ({shown})")
    keep = order[: names.index(until) + 1]
    nodes = tuple(dataclasses.replace(node, name=name, inputs=ins) for name, ins, node in keep)
    return dataclasses.replace(net, layers=nodes)
