"""The graph planner: each node's shape, parameters, MACs and receptive field, before it runs.

:func:`plan` sorts a net's nodes topologically, resolves each node's inputs,
and asks the node's operator (:data:`convtool.network.ops.OPS`) for its output
shape and arithmetic. The result is a list of :class:`Layer` records, one per
node, that the walker (:mod:`convtool.network.walk`) runs and ``summary``
prints. Nothing here knows any operator: rules that hold for every node
(names, inputs, the receptive field of a node with several inputs, labels,
memory) live here, the rest in the operators.
"""

from __future__ import annotations

import heapq
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from .spec import Net, Node, layer_ref, load_net, parse_shape

#: The value name of the network's input image in every graph.
INPUT = "input"

Shape = tuple[int, ...]


class Numbered(Sequence[str]):
    """The labels ``r0``, ``r1``, ... made when read: a planned layer may have millions
    of channels, and planning must stay cheap until the memory check has seen them.

    Examples
    --------
    >>> labels = Numbered("c", 3)
    >>> len(labels), labels[-1], labels[:2], labels == ("c0", "c1", "c2")
    (3, 'c2', ('c0', 'c1'), True)
    """

    def __init__(self, prefix: str, n: int) -> None:
        self.prefix, self.n = prefix, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(self.n)))
        j = i + self.n if i < 0 else i
        if not 0 <= j < self.n:
            raise IndexError(i)
        return f"{self.prefix}{j}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != self.n:
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Numbered({self.prefix!r}, {self.n})"


@dataclass(eq=False)
class Layer:
    """A node resolved against its input shapes: sizes, arithmetic and arrays.

    Attributes
    ----------
    index : int
        1-based position in topological order (0 for the input).
    kind : str
        Operator type (``conv``, ``relu``, ``add``, ...: a key of ``OPS``).
    name : str
        Unique name of the node and of its output value.
    spec : Node
        The node as written.
    inputs : tuple of str
        Names of the values it reads (``"input"`` is the image).
    in_shapes : tuple of shapes
        Shapes of those values.
    out_shape : tuple of int
        (C, H, W) for maps, (N,) for flat vectors.
    params : int
        Learnable values, as PyTorch counts them (weights and biases).
    buffers : int
        Other stored values (batch norm's running statistics).
    macs : int
        Multiply-accumulates.
    rf : int or float
        Receptive field in input pixels (the longest path's).
    jump : int, float or None
        Input pixels between neighbouring outputs (None for flat vectors).
    fc_params : int or None
        Conv only: weights plus biases of a fully connected layer with the
        same input and output sizes.
    labels : sequence of str
        One label per output channel (the filter's name when it has one;
        numbered labels are a :class:`Numbered` made when read).
    detail : str
        Kernel, stride, pad and such, for tables and titles.
    source : str
        Where the weights came from (``random:8 he``, ``w.npz``, ``edges``).
    attrs : dict
        Resolved attributes the operator's run function reads.
    work_bytes : int
        Scratch memory the operator needs while it runs, beyond its output
        (when its plan does not say: one temporary of the output's size).
    """

    index: int
    kind: str
    name: str
    spec: Node
    inputs: tuple[str, ...] = ()
    in_shapes: tuple[Shape, ...] = ()
    out_shape: Shape = ()
    params: int = 0
    buffers: int = 0
    macs: int = 0
    rf: float = 1
    jump: float | None = 1
    fc_params: int | None = None
    labels: Sequence[str] = ()
    detail: str = ""
    source: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    work_bytes: int | None = None
    make_arrays: Callable[[], dict[str, np.ndarray]] | None = field(default=None, repr=False)
    _arrays: dict[str, np.ndarray] | None = field(default=None, repr=False)

    # ------------------------------------------------------------ arrays

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The node's arrays (``weight``, ``bias``, ...), made on first use.

        Random weights are drawn here, not when planning, so that a net too
        big for memory is refused before it costs anything.
        """
        if self._arrays is None:
            self._arrays = self.make_arrays() if self.make_arrays is not None else {}
        return self._arrays

    @arrays.setter
    def arrays(self, value: dict[str, np.ndarray]) -> None:
        self._arrays = value

    @property
    def weight(self) -> np.ndarray | None:
        """``arrays["weight"]``: conv (M, C/groups, K, K), fc (out, in), batchnorm (C,)."""
        return self.arrays.get("weight")

    @property
    def bias(self) -> np.ndarray | None:
        """``arrays["bias"]`` or None."""
        return self.arrays.get("bias")

    @property
    def groups(self) -> int:
        """Conv groups (1 for other operators)."""
        return int(self.attrs.get("groups", 1))

    # ------------------------------------------------------------- text

    @property
    def in_shape(self) -> Shape:
        """The first input's shape."""
        return self.in_shapes[0] if self.in_shapes else self.out_shape

    @property
    def where(self) -> str:
        """How messages name this node: ``layer 3 (conv)`` or ``layer 3 'b1' (conv)``."""
        return layer_ref(self.index, self.kind, self.spec.name)

    @property
    def title(self) -> str:
        """``"03 pool max 2x2/2 -> 6x127x127"`` style heading."""
        parts = [f"{self.index:02d}", self.label, self.detail, f"-> {shape_text(self.out_shape)}"]
        return " ".join(p for p in parts if p)

    @property
    def label(self) -> str:
        """Name, type (when the name differs) and source: ``C1 conv random:6 he``."""
        name = self.spec.name or self.kind
        parts = [name] + ([self.kind] if self.kind != name else []) + [self.source]
        return " ".join(p for p in parts if p)

    @property
    def stem(self) -> str:
        """File stem for this node's picture: ``01_conv``, ``05_branch1``."""
        name = re.sub(r"[^\w.-]+", "_", self.spec.name or self.kind).strip("._") or self.kind
        return f"{self.index:02d}_{name}"


def shape_text(shape: Shape, sep: str = "x") -> str:
    """``(3, 32, 32)`` -> ``"3x32x32"``.

    Examples
    --------
    >>> shape_text((3, 32, 32)), shape_text((10,), "×")
    ('3x32x32', '10')
    """
    return sep.join(str(v) for v in shape)


def input_layer(shape: Shape) -> Layer:
    """The pseudo-node for the image: index 0, receptive field 1, jump 1, channels c0, c1..."""
    labels = Numbered("c", shape[0]) if len(shape) == 3 else ()
    return Layer(0, INPUT, INPUT, Node(INPUT, name=INPUT), out_shape=tuple(shape), labels=labels)


# ---------------------------------------------------------------- topology


def graph_order(nodes: tuple[Node, ...] | list[Node]) -> list[tuple[str, tuple[str, ...], Node]]:
    """Name every node, resolve default inputs, and sort them topologically.

    A node without a name gets its type (``conv``), or its type and a number
    when that is taken (``conv_2``); a node without inputs reads the node
    before it (the image for the first). The order is the written order
    wherever the inputs allow it.

    Returns
    -------
    list of (name, inputs, node)

    Raises
    ------
    UsageError
        A duplicate name, an input that names nothing, or a cycle, naming
        the layer (1-based index as written).

    Examples
    --------
    >>> nodes = [Node("relu", name="b", inputs=("a",)), Node("abs", name="a", inputs=("input",))]
    >>> [(name, inputs) for name, inputs, _ in graph_order(nodes)]
    [('a', ('input',)), ('b', ('a',))]
    """
    given: dict[str, int] = {}
    for i, node in enumerate(nodes, start=1):
        if node.name is None:
            continue
        ref = layer_ref(i, node.kind, node.name)
        if node.name == INPUT:
            raise UsageError(f"{ref}: the name 'input' is the image's; choose another name")
        if node.name in given:
            first = given[node.name]
            raise UsageError(f"{ref}: name {node.name!r} is already used by layer {first}")
        given[node.name] = i
    names: list[str] = []
    taken = set(given)
    for node in nodes:
        if node.name is not None:
            names.append(node.name)
            continue
        name, n = node.kind, 1
        while name in taken or name == INPUT:
            n += 1
            name = f"{node.kind}_{n}"
        taken.add(name)
        names.append(name)
    position = {name: i for i, name in enumerate(names)}
    inputs: list[tuple[str, ...]] = []
    for i, node in enumerate(nodes):
        ins = node.inputs if node.inputs is not None else ((names[i - 1],) if i else (INPUT,))
        for value in ins:
            if value != INPUT and value not in position:
                known = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
                raise UsageError(
                    f"{layer_ref(i + 1, node.kind, node.name)}: input {value!r} is not the name "
                    f"of a layer (names: 'input', {known})"
                )
        inputs.append(tuple(ins))
    # Kahn's algorithm, taking the earliest written node that is ready
    waiting = [sum(1 for v in ins if v != INPUT) for ins in inputs]
    readers: dict[str, list[int]] = {}
    for i, ins in enumerate(inputs):
        for value in ins:
            if value != INPUT:
                readers.setdefault(value, []).append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in readers.get(names[i], ()):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(nodes):
        stuck = next(i for i, n in enumerate(waiting) if n)
        cycle = _find_cycle(stuck, names, inputs, position)
        node = nodes[cycle[0]]
        path = " -> ".join(names[j] for j in (*cycle, cycle[0]))
        raise UsageError(
            f"{layer_ref(cycle[0] + 1, node.kind, node.name)}: its inputs form a cycle "
            f"({path}); a layer can read only layers that do not read it"
        )
    return [(names[i], inputs[i], nodes[i]) for i in order]


def _find_cycle(
    start: int, names: list[str], inputs: list[tuple[str, ...]], position: dict[str, int]
) -> list[int]:
    """Indices of one cycle reachable from ``start`` by following inputs."""
    seen: dict[int, int] = {}
    path: list[int] = []
    i = start
    while i not in seen:
        seen[i] = len(path)
        path.append(i)
        # follow an input that is itself stuck (part of or behind a cycle)
        i = next(position[v] for v in inputs[i] if v != INPUT and v in position)
    return path[seen[i] :]


# ------------------------------------------------------------------ planning


def _input_shape(net: Net, input_shape: Shape | str | None) -> Shape:
    if input_shape is None:
        if net.input_shape is None:
            raise UsageError("no input size: pass --input HxWxC (e.g. 224x224x3)")
        return tuple(net.input_shape)
    if isinstance(input_shape, str):
        return parse_shape(input_shape)
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"input shape {input_shape!r} must be (C, H, W) with sizes >= 1")
    return shape


def plan(net: Net | str | os.PathLike, input_shape: Shape | str | None = None) -> list[Layer]:
    """Resolve every node against its input shapes, before anything runs.

    Parameters
    ----------
    net : Net, path to a TOML file, or inline layer string
    input_shape : (C, H, W), ``"HxWxC"`` text, or None for the net's own ``input``

    Returns
    -------
    list of Layer
        One per node in topological order: weights checked (random weights
        are drawn later, when first used), output shapes, parameters, MACs,
        receptive field and jump.

    Raises
    ------
    UsageError
        At the first node that cannot work (an output below 1 pixel, a
        weight file of the wrong shape, inputs of different shapes, an
        unsupported operator, ...), naming it.

    Examples
    --------
    >>> layers = plan("conv(random:6,size=5) tanh pool(avg,2) conv(random:16,size=5)", "32x32x1")
    >>> [(layer.out_shape, layer.params) for layer in layers if layer.kind == "conv"]
    [((6, 28, 28), 156), ((16, 10, 10), 2416)]
    """
    from .ops import OPS

    net = load_net(net)
    if hasattr(net, "at_shape"):  # ONNX: fold shape arithmetic at this input size
        net = net.at_shape(input_shape)
    shape = _input_shape(net, input_shape)
    planned: dict[str, Layer] = {INPUT: input_layer(shape)}
    layers: list[Layer] = []
    for index, (name, inputs, node) in enumerate(graph_order(net.layers), start=1):
        ins = [planned[value] for value in inputs]
        layer = Layer(
            index=index,
            kind=node.kind,
            name=name,
            spec=node,
            inputs=inputs,
            in_shapes=tuple(x.out_shape for x in ins),
            rf=max(x.rf for x in ins),
            jump=_max_jump(ins),
            attrs=dict(node.options),
        )
        op = OPS.get(node.kind)
        if op is None:
            raise UsageError(
                f"{layer.where}: unsupported operator {node.kind!r}; "
                f"supported: {', '.join(sorted(OPS))}"
            )
        low, high = op.arity
        if not low <= len(ins) <= (high if high is not None else len(ins)):
            want = f"{low} or more" if high is None else f"{low}-{high}"
            want = f"{low}" if low == high else want
            raise UsageError(f"{layer.where}: takes {want} input(s), got {len(ins)}")
        layer.out_shape = tuple(int(v) for v in op.plan(layer, ins))
        if not layer.out_shape or min(layer.out_shape) < 1:
            raise UsageError(
                f"{layer.where}: output shape would be {layer.out_shape}; "
                "a map needs at least one value along each axis"
            )
        if layer.work_bytes is None:
            layer.work_bytes = 4 * math.prod(layer.out_shape)
        if not layer.labels:
            layer.labels = _inherited_labels(layer, ins)
        if float(layer.rf).is_integer():
            layer.rf = int(layer.rf)
        if layer.jump is not None and float(layer.jump).is_integer():
            layer.jump = int(layer.jump)
        planned[name] = layer
        layers.append(layer)
    return layers


def _max_jump(ins: list[Layer]) -> float | None:
    jumps = [x.jump for x in ins if x.jump is not None]
    return max(jumps) if jumps else None


def _inherited_labels(layer: Layer, ins: list[Layer]) -> Sequence[str]:
    """The first input's channel labels when the channels carry through, else ``c0``, ``c1``..."""
    if len(layer.out_shape) != 3:
        return ()
    if len(ins[0].labels) == layer.out_shape[0]:
        return ins[0].labels
    return Numbered("c", layer.out_shape[0])


# --------------------------------------------------------------------- memory


@dataclass(frozen=True)
class Memory:
    """Bytes a run needs with every map kept.

    Attributes
    ----------
    maps : int
        The input and every node's output (float32).
    weights : int
        Every node's arrays (parameters and buffers, float32).
    work : int
        The largest scratch space one node needs while it runs.
    """

    maps: int
    weights: int
    work: int

    @property
    def total(self) -> int:
        """Peak estimate: maps + weights + the largest scratch space."""
        return self.maps + self.weights + self.work


def memory_estimate(layers: list[Layer], input_shape: Shape) -> Memory:
    """Peak memory of :func:`convtool.network.feature_maps`, from planned shapes alone.

    Examples
    --------
    >>> mem = memory_estimate(plan("conv(random:8,size=3)", "10x10"), (1, 10, 10))
    >>> mem.maps, mem.weights
    (2448, 320)
    """
    maps = 4 * (math.prod(input_shape) + sum(math.prod(x.out_shape) for x in layers))
    weights = 4 * sum(x.params + x.buffers for x in layers)
    work = max((x.work_bytes or 0 for x in layers), default=0)
    return Memory(maps, weights, work)
