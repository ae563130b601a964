"""Read an ONNX model into a fixed-shape graph of the nodes that see pixels.

:func:`read_onnx` loads a model with the ``onnx`` package (the optional extra
``convtool[onnx]``), checks it, fixes the input shape (batch 1; dynamic sizes
from ``input_size``) and folds everything that does not depend on the pixels:
initializers, Constant nodes, the exporters' shape arithmetic (Shape, Gather,
Slice, Concat, ConstantOfShape, Cast, Equal, Where, Range, Reshape of
constants...) and ``If`` on a condition known at load time (its branch is
inlined). What is left, :attr:`OnnxGraph.nodes`, are the nodes whose value
depends on the image, in topological order; their constant inputs (weights)
are in :attr:`OnnxGraph.constants`.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .onnx_ops import ONNX_OPS, RELU_TOO
from .spec import Net

MIN_OPSET = 11
INSTALL_HINT = "pip install 'convtool[onnx]'"


@dataclass
class OnnxNode:
    """One node that depends on the image.

    Attributes
    ----------
    name : str
        The node's name, or its first output's name when it has none (made
        unique by a ``#2`` suffix when two nodes share it).
    op_type : str
    inputs, outputs : tuple of str
        Value names (``""`` for an omitted optional input).
    attrs : dict
        Attributes as Python values and numpy arrays.
    shapes : list of tuple
        The output shapes at the fixed input shape (when shape inference
        knows them).
    """

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    shapes: list[tuple[int, ...] | None] = field(default_factory=list)


@dataclass
class OnnxGraph:
    """A model with its input shape fixed and its constants folded.

    ``input_shape`` is (1, C, H, W), what convtool gives; a model whose input is
    declared channels last (``channels_last``) gets it as (1, H, W, C).
    """

    path: str
    opset: int
    input_name: str
    input_shape: tuple[int, ...]  # (1, C, H, W)
    nodes: list[OnnxNode]
    constants: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    folded: int = 0  # how many nodes were folded away
    channels_last: bool = False  # the model takes (1, H, W, C): run() transposes its input

    def run(self, x: np.ndarray, until: str | None = None):
        """Yield ``(node, outputs)`` for each node, in order, from an NCHW input."""
        if tuple(x.shape) != self.input_shape:
            raise UsageError(
                f"{self.path}: the input has shape {tuple(x.shape)}; the model takes "
                f"{self.input_shape}"
            )
        values: dict[str, np.ndarray] = dict(self.constants)
        values[self.input_name] = x.transpose(0, 2, 3, 1) if self.channels_last else x
        for node in self.nodes:
            ins = [values[n] if n else None for n in node.inputs]
            outs = call(node, ins, self.opset)
            for name, out in zip(node.outputs, outs, strict=False):
                if name:
                    values[name] = out
            yield node, outs
            if until is not None and node.name == until:
                return


def _onnx():
    try:
        import onnx
    except ImportError:
        raise UsageError(f"reading ONNX models needs the onnx package: {INSTALL_HINT}") from None
    return onnx


def call(node: OnnxNode, inputs: list, opset: int) -> list[np.ndarray]:
    """Run one node through :data:`convtool.onnx_ops.ONNX_OPS`, naming it in errors."""
    fn = ONNX_OPS.get(node.op_type)
    if fn is None:
        raise UsageError(unsupported(node.op_type, node.name))
    try:
        outs = fn(inputs, node.attrs, opset, len(node.outputs))
    except (UsageError, ValueError) as exc:  # numpy's shape errors: the model's inputs do not fit
        raise UsageError(f"node {node.name} ({node.op_type}): {exc}") from None
    return outs


def unsupported(op_type: str, name: str) -> str:
    supported = ", ".join(sorted(ONNX_OPS))
    return f"node {name}: operator {op_type} is not supported; supported: {supported}"


def _attrs(onnx: Any, node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, onnx.TensorProto):
            value = onnx.numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        out[attr.name] = value
    return out


def _array(onnx: Any, tensor: Any) -> np.ndarray:
    arr = onnx.numpy_helper.to_array(tensor)
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    if arr.base is None:  # read-only: conv2d then trusts the weights it packed (_frozen)
        arr.setflags(write=False)
    return arr


def _load_model(path: str) -> Any:
    onnx = _onnx()
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise UsageError(f"network file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read network file {path}: {exc.strerror}") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001  (protobuf raises DecodeError and friends)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not an ONNX model ({reason})") from None
    if not model.graph.node or not model.opset_import:
        raise UsageError(f"{path}: not an ONNX model (no graph nodes or no opset)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        try:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(model, str(Path(path).resolve().parent))
        except Exception as exc:  # noqa: BLE001
            raise UsageError(f"{path}: cannot read its external weight data: {exc}") from None
    return model


def _dims(value_info: Any) -> list[int | None]:
    """A value's sizes, None where dynamic."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def channels_last(value_info: Any) -> bool:
    """True when a 4-D image input looks (N, H, W, C), as some TensorFlow exports declare it.

    Its last size is 1, 3 or 4 (grey, RGB, RGBA) and its second is not.
    """
    raw = _dims(value_info)
    return len(raw) == 4 and raw[3] in (1, 3, 4) and raw[1] not in (1, 3, 4)


def _chw_axes(value_info: Any) -> tuple[int, int, int]:
    """Where C, H and W are in the model's input shape."""
    return (3, 1, 2) if channels_last(value_info) else (1, 2, 3)


def _input_shape(
    path: str, value_info: Any, input_size: Any
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(1, C, H, W) as convtool feeds it, and the shape the model takes (NCHW or NHWC)."""
    dims = value_info.type.tensor_type.shape.dim
    raw = _dims(value_info)
    labels = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    if len(raw) != 4:
        raise UsageError(
            f"{path}: input {value_info.name!r} has shape ({', '.join(labels) or 'unknown'}); "
            "convtool runs 2-D image models with an (N, C, H, W) input"
        )
    axes = _chw_axes(value_info)
    want: list[int | None] = [1, *(raw[a] for a in axes)]  # N, C, H, W
    if input_size is not None:
        c, h, w = _size(input_size)
        for i, v in ((1, c), (2, h), (3, w)):
            if v is None:
                continue
            if raw[axes[i - 1]] is not None and raw[axes[i - 1]] != v:
                raise UsageError(
                    f"{path}: input {value_info.name!r} is fixed at ({', '.join(labels)}); "
                    f"an input size of {h}x{w}x{c} does not fit it"
                )
            want[i] = v
    if None in want:
        raise UsageError(
            f"{path}: input {value_info.name!r} has dynamic size ({', '.join(labels)}): "
            "give an input size (visualize --input-size HxW, summary --input HxWxC)"
        )
    nchw = tuple(int(v) for v in want)  # type: ignore[arg-type]
    own = (1, nchw[2], nchw[3], nchw[1]) if axes[0] == 3 else nchw
    return nchw, own


def _size(value: Any) -> tuple[int | None, int, int]:
    """(C or None, H, W) from "HxW", "HxWxC", an int, or an (H, W[, C]) tuple."""
    if isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
    elif isinstance(value, (int, np.integer)):
        nums = [int(value), int(value)]
    else:
        nums = [int(v) for v in value]
    if len(nums) not in (2, 3) or min(nums) < 1:
        raise UsageError(f"input size {value!r} is not HxW or HxWxC with sizes >= 1")
    return (nums[2] if len(nums) == 3 else None, nums[0], nums[1])


def _name(node: Any, taken: set[str]) -> str:
    base = node.name or (node.output[0] if node.output else node.op_type)
    name, k = base, 2
    while name in taken:
        name, k = f"{base}#{k}", k + 1
    taken.add(name)
    return name


def _inline_if(onnx: Any, node: OnnxNode, cond: np.ndarray) -> list[Any]:
    """The chosen branch's nodes, writing the If's outputs.

    Values made inside the branch get the If's name as a prefix; the node
    that makes the If's first output takes the If's name. A branch output
    that is an outer value passes through an Identity.
    """
    branch = node.attrs["then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch"]
    prefix = f"{node.name}/"
    local = {o for n in branch.node for o in n.output if o}
    local |= {t.name for t in branch.initializer}
    names = {v: prefix + v for v in local}
    passthrough = []
    for out, res in zip(node.outputs, branch.output, strict=True):
        if res.name in {o for n in branch.node for o in n.output} and res.name not in (
            names.get(r.name) for r in branch.output if r is not res
        ):
            names[res.name] = out
        else:
            passthrough.append((names.get(res.name, res.name), out))

    def rename(v: str) -> str:
        return names.get(v, v)

    nodes = []
    for t in branch.initializer:
        nodes.append(
            onnx.helper.make_node("Constant", [], [rename(t.name)], value=t, name=prefix + t.name)
        )
    for n in branch.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        del copy.input[:]
        copy.input.extend(rename(v) for v in n.input)
        del copy.output[:]
        copy.output.extend(rename(v) for v in n.output)
        first = node.outputs[0] if node.outputs else None
        copy.name = node.name if first in copy.output else prefix + (n.name or n.output[0])
        nodes.append(copy)
    for src, out in passthrough:
        nodes.append(onnx.helper.make_node("Identity", [src], [out], name=f"{node.name}:{out}"))
    return nodes


def _without_weights(onnx: Any, model: Any) -> Any:
    """A copy of ``model`` whose initializers keep their name, type and shape, not their data.

    Built field by field: ``CopyFrom`` would copy the weights too, and with
    protobuf's arena a cleared field keeps its memory until the whole message
    goes. Model-level metadata, doc strings and sparse initializers are left out.
    """
    light = onnx.ModelProto(ir_version=model.ir_version)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph, lg = model.graph, light.graph
    lg.name = graph.name
    for part in ("node", "input", "output", "value_info"):
        getattr(lg, part).extend(getattr(graph, part))
    lg.initializer.extend(
        onnx.TensorProto(name=t.name, data_type=t.data_type, dims=t.dims) for t in graph.initializer
    )
    return light


def open_model(source: str | os.PathLike | Any) -> tuple[Any, str, int, Any, dict]:
    """Load and check a model.

    Returns (ModelProto without weight data, path text, opset, the image
    input's ValueInfo, the initializers as numpy arrays). The weights are kept
    once, as arrays: the ModelProto that held them is not referenced (a model
    read from a file is freed; a caller's ModelProto is left as it was).
    """
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        model, path = source, source.graph.name or "model"
    else:
        path = os.fspath(source)
        model = _load_model(path)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise UsageError(
            f"{path}: opset {opset or 'unknown'} is older than {MIN_OPSET}; convert it with "
            "onnx.version_converter.convert_version(model, 13) or export again"
        )
    names = {t.name for t in model.graph.initializer}
    images = [v.name for v in model.graph.input if v.name not in names]
    if len(images) != 1:
        listed = ", ".join(images) or "none"
        raise UsageError(f"{path}: convtool needs a model with one image input; it has {listed}")
    weights = {t.name: _array(onnx, t) for t in model.graph.initializer}
    light = _without_weights(onnx, model)
    image = next(v for v in light.graph.input if v.name == images[0])
    return light, path, opset, image, weights


def read_onnx(
    source: str | os.PathLike | Any,
    input_size: Any = None,
    until: str | None = None,
    *,
    opened: tuple[Any, str, int, Any, dict] | None = None,
) -> OnnxGraph:
    """Load an ONNX model, fix its input shape and fold its constants.

    Parameters
    ----------
    source : path to a ``.onnx`` file, or an ``onnx.ModelProto``
    input_size : "HxW", "HxWxC", (H, W[, C]) or None
        Needed when the model's input has dynamic height, width or channels;
        must agree with the sizes the model fixes.
    until : str, optional
        Keep the nodes up to and including this one (by name).

    Raises
    ------
    UsageError
        The onnx package is missing, the file is not an ONNX model, its opset
        is older than 11, its input size is dynamic and not given, or a node
        uses an operator convtool does not have (named, with the list).
    """
    onnx = _onnx()
    model, path, opset, image, weights = opened or open_model(source)
    graph = model.graph
    constants: dict[str, np.ndarray] = dict(weights)
    shape, own = _input_shape(path, image, input_size)

    # the live part of the graph, with every constant computed once
    taken: set[str] = {"input"}  # the network package's name for the image
    queue = deque(graph.node)
    live: set[str] = {image.name}
    shapes: dict[str, tuple[int, ...]] = {image.name: own}
    nodes: list[OnnxNode] = []
    protos: list[Any] = []  # the live nodes as NodeProto, for shape inference
    folded = 0
    pending_shapes = True
    while queue:
        proto = queue.popleft()
        if proto.domain not in ("", "ai.onnx"):
            raise UsageError(
                f"{path}: "
                + unsupported(f"{proto.domain}.{proto.op_type}", proto.name or proto.output[0])
            )
        node = OnnxNode(
            name=_name(proto, taken),
            op_type=proto.op_type,
            inputs=tuple(proto.input),
            outputs=tuple(proto.output),
            attrs=_attrs(onnx, proto),
        )
        missing = [v for v in node.inputs if v and v not in constants and v not in live]
        if missing:
            raise UsageError(
                f"{path}: node {node.name} reads {missing[0]!r}, which no earlier node makes"
            )
        depends = [v for v in node.inputs if v in live]
        if node.op_type == "If":
            cond = node.inputs[0]
            if cond in live:
                raise UsageError(
                    f"{path}: node {node.name} (If) branches on a value computed from the "
                    "image; convtool folds only an If whose condition is known at load time"
                )
            taken.discard(node.name)  # the branch node that makes its output takes it
            queue.extendleft(reversed(_inline_if(onnx, node, constants[cond])))
            folded += 1
            continue
        if node.op_type not in ONNX_OPS:
            raise UsageError(f"{path}: " + unsupported(node.op_type, node.name))
        if node.op_type in ("Shape", "Size") and depends:
            src = node.inputs[0]
            if src not in shapes and pending_shapes:
                shapes.update(_infer_shapes(onnx, model, image.name, own, constants, protos))
                pending_shapes = False
            if src not in shapes:
                raise UsageError(f"{path}: node {node.name}: cannot tell the shape of {src!r}")
            dims = shapes[src]
            dummy = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), dims, [0] * len(dims))
            outs = call(node, [dummy], opset)
            depends = []
        elif not depends:
            ins = [constants[v] if v else None for v in node.inputs]
            try:
                outs = call(node, ins, opset)
            except UsageError as exc:
                raise UsageError(f"{path}: {exc}") from None
        else:
            outs = None
        if outs is not None:
            for v, out in zip(node.outputs, outs, strict=False):
                if v:
                    constants[v] = np.asarray(out)
            folded += 1
            continue
        live.update(v for v in node.outputs if v)
        pending_shapes = True
        nodes.append(node)
        protos.append(proto)
        if until is not None and node.name == until:
            break
    if until is not None and (not nodes or nodes[-1].name != until):
        names = ", ".join(n.name for n in nodes[:8])
        raise UsageError(
            f"{path}: no node named {until!r} computes from the image (e.g. {names}, ...)"
        )
    if not nodes:
        raise UsageError(f"{path}: no node depends on the input {image.name!r}")
    # keep only the constants the live nodes read
    needed = {v for n in nodes for v in n.inputs if v}
    constants = {k: v for k, v in constants.items() if k in needed}
    known = _infer_shapes(onnx, model, image.name, own, constants, protos)
    for n in nodes:
        n.shapes = [known.get(v) for v in n.outputs]
    g = OnnxGraph(
        path=path,
        opset=opset,
        input_name=image.name,
        input_shape=shape,
        channels_last=own != shape,
        nodes=nodes,
        constants=constants,
        outputs=tuple(o.name for o in graph.output),
        folded=folded,
    )
    if any(s is None for n in nodes for s in n.shapes):
        # onnx's inference left a gap (or refused a bad graph): run the nodes
        # on zeros once; an operator that cannot work says so, naming its node
        try:
            for n, outs in g.run(np.zeros(shape, np.float32)):
                n.shapes = [np.shape(o) for o in outs] + [None] * (len(n.outputs) - len(outs))
        except UsageError as exc:
            raise UsageError(f"{path}: {exc}") from None
    return g


def _infer_shapes(
    onnx: Any,
    model: Any,
    input_name: str,
    shape: tuple[int, ...],
    constants: dict[str, np.ndarray],
    protos: list[Any],
) -> dict[str, tuple[int, ...]]:
    """Static shapes of the live values, by onnx's shape inference on a light copy.

    The copy holds the live nodes only; large constants become graph inputs
    (their shapes are all that inference needs), small ones stay initializers
    so that Reshape targets and Pad amounts are known.
    """
    helper = onnx.helper
    inputs = [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, shape)]
    inits = []
    needed = {v for n in protos for v in n.input if v}
    for name in sorted(needed):
        if name not in constants:
            continue
        arr = constants[name]
        elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
        if arr.size <= 64:
            inits.append(onnx.numpy_helper.from_array(arr, name))
        else:
            inputs.append(helper.make_tensor_value_info(name, elem, arr.shape))
    graph = helper.make_graph(protos, "shapes", inputs, [], initializer=inits)
    light = helper.make_model(graph, opset_imports=list(model.opset_import))
    light.ir_version = model.ir_version
    try:
        inferred = onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception:  # noqa: BLE001  (inference is a help, never a requirement)
        return {}
    out: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            out[vi.name] = tuple(int(d.dim_value) for d in dims)
    return out


# ------------------------------------------------------- into the network graph


@dataclass(frozen=True, eq=False)
class OnnxInfo:
    """What a graph node needs to run its ONNX operator (kept in ``options["onnx"]``).

    Attributes
    ----------
    op_type, attrs, opset : the ONNX operator, its attributes and the model's opset
    slots : tuple
        One entry per ONNX input: ``("value", i)`` for the node's i-th graph
        input, ``("const", key)`` for a folded constant in ``consts``, or None
        for an omitted optional input.
    consts : dict of numpy arrays
    in_shapes : tuple of shapes
        The ONNX shapes of the graph inputs (with the batch axis): the walker's
        values drop a leading 1, the operator gets them back.
    out_shape : tuple
        The ONNX shape of the output this node gives.
    output_index : int
        Which of the operator's outputs this node is.
    n_outputs : int
    nhwc : tuple of int
        Graph inputs (the image) that the model takes channels last: the
        walker's (C, H, W) is transposed to (1, H, W, C) for the operator.
    """

    op_type: str
    attrs: dict[str, Any]
    opset: int
    slots: tuple[tuple[str, Any] | None, ...]
    consts: dict[str, np.ndarray]
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    output_index: int = 0
    n_outputs: int = 1
    matmul_bias: bool = False  # an Add of a constant to a MatMul: PyTorch's Linear bias
    nhwc: tuple[int, ...] = ()  # graph inputs the model takes channels last (the image)


def value_shape(onnx_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The walker's shape for an ONNX value: the leading batch axis of 1 dropped.

    Examples
    --------
    >>> value_shape((1, 8, 5, 5)), value_shape((1, 10)), value_shape((7,)), value_shape(())
    ((8, 5, 5), (10,), (7,), (1,))
    """
    shape = tuple(onnx_shape)
    if len(shape) >= 2 and shape[0] == 1:
        shape = shape[1:]
    return shape or (1,)


def to_nodes(g: OnnxGraph) -> tuple:
    """Translate a folded :class:`OnnxGraph` into network :class:`Node` records."""
    from .spec import Node

    producer: dict[str, str] = {g.input_name: "input"}
    _, c, h, w = g.input_shape
    own = (1, h, w, c) if g.channels_last else g.input_shape
    shapes: dict[str, tuple[int, ...]] = {g.input_name: own}
    kinds: dict[str, str] = {g.input_name: "input"}
    used = {v for n in g.nodes for v in n.inputs if v} | set(g.outputs)
    rectified = {n.inputs[0] for n in g.nodes if n.op_type == "Relu" and n.inputs}
    nodes = []
    for node in g.nodes:
        for k, (value, shape) in enumerate(zip(node.outputs, node.shapes, strict=True)):
            if k and value not in used:
                continue
            if shape is None:
                raise UsageError(
                    f"{g.path}: node {node.name} ({node.op_type}): cannot tell the shape of "
                    f"its output {value!r} at input {g.input_shape}"
                )
            inputs: list[str] = []
            in_shapes: list[tuple[int, ...]] = []
            slots: list[tuple[str, Any] | None] = []
            consts: dict[str, np.ndarray] = {}
            nhwc: list[int] = []
            for v in node.inputs:
                if not v:
                    slots.append(None)
                elif v in producer:
                    if v == g.input_name and g.channels_last:
                        nhwc.append(len(inputs))
                    slots.append(("value", len(inputs)))
                    inputs.append(producer[v])
                    in_shapes.append(shapes[v])
                else:
                    slots.append(("const", v))
                    consts[v] = g.constants[v]
            matmul_bias = (
                node.op_type == "Add"
                and len(inputs) == 1
                and any(kinds.get(v) == "MatMul" for v in node.inputs)
            )
            attrs = node.attrs
            if node.op_type == "Conv" and k == 0 and value in rectified:
                attrs = {**attrs, RELU_TOO: True}  # the Relu's map comes with the product
            info = OnnxInfo(
                op_type=node.op_type,
                attrs=attrs,
                opset=g.opset,
                slots=tuple(slots),
                consts=consts,
                in_shapes=tuple(in_shapes),
                out_shape=tuple(shape),
                output_index=k,
                n_outputs=len(node.outputs),
                matmul_bias=matmul_bias,
                nhwc=tuple(nhwc),
            )
            name = node.name if k == 0 else f"{node.name}:{value}"
            nodes.append(Node(node.op_type, {"onnx": info}, name, tuple(inputs)))
            producer[value] = name
            shapes[value] = tuple(shape)
            kinds[value] = node.op_type
    return tuple(nodes)


def _fixed_shape(image: Any) -> tuple[int, int, int] | None:
    """The model's own (C, H, W) when its input fixes them, else None."""
    vals = _dims(image)
    if len(vals) == 4 and None not in vals[1:]:
        return tuple(int(vals[a]) for a in _chw_axes(image))  # type: ignore[return-value,arg-type]
    return None


@dataclass(frozen=True)
class OnnxNet(Net):
    """A :class:`~convtool.network.Net` read from an ONNX model.

    Its nodes are the model's at ``input_shape``; :meth:`at_shape` folds the
    model again for another input size (the planner calls it).
    """

    opened: Any = None
    until: str | None = None
    graph: OnnxGraph | None = None
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def fixed_input(self) -> bool:
        """True when the model fixes its input's channels, height and width."""
        return _fixed_shape(self.opened[3]) is not None

    @property
    def input_channels(self) -> int | None:
        """The channels the model's input fixes (C of N x C x H x W), or None."""
        image = self.opened[3]
        raw = _dims(image)
        return raw[_chw_axes(image)[0]] if len(raw) == 4 else None

    def at_shape(self, input_shape: Any = None) -> OnnxNet:
        """This model folded at ``input_shape``: (C, H, W), "HxW[xC]" text, or None (its own).

        Raises
        ------
        UsageError
            The size is dynamic and not given, or differs from the size the
            model fixes.
        """
        model = self.opened[0]
        if input_shape is None:
            if self.input_shape is not None:
                return self
            size = None
        elif isinstance(input_shape, str):
            size = input_shape
        else:
            c, h, w = (int(v) for v in input_shape)
            if (c, h, w) == self.input_shape:
                return self
            size = (h, w, c)
        key = size if isinstance(size, str) else tuple(size or ())
        if key not in self.cache:  # the same shape again (plan, then feature_maps): no refold
            g = read_onnx(model, size, self.until, opened=self.opened)
            _, c, h, w = g.input_shape
            self.cache[key] = replace(self, layers=to_nodes(g), input_shape=(c, h, w), graph=g)
        return self.cache[key]

    def up_to(self, until: str) -> OnnxNet:
        """The same model read only up to node ``until`` (at the same input size)."""
        cut = replace(self, until=until, layers=(), input_shape=None, graph=None, cache={})
        if self.input_shape is not None:
            image = self.opened[3]
            return cut.at_shape(self.input_shape if _fixed_shape(image) is None else None)
        return cut


def load_onnx(
    source: str | os.PathLike | Any, input_size: Any = None, until: str | None = None
) -> OnnxNet:
    """An ONNX model as a network: every node that computes from the image.

    Parameters
    ----------
    source : path to a ``.onnx`` file, or an ``onnx.ModelProto``
    input_size : "HxW", "HxWxC", (C, H, W) or None
        The input size for a model whose input size is dynamic; None leaves
        it open (the planner gives it: the image's own size when
        :func:`convtool.network.feature_maps` runs the model).
    until : str, optional
        Keep the nodes up to and including this one.

    Returns
    -------
    OnnxNet
        Folded at the model's own input shape (or ``input_size``) when that is
        known, else folded when planned.

    Raises
    ------
    UsageError
        The onnx package is missing, the file is not an ONNX model, its opset
        is older than 11, a node uses an operator outside the supported list,
        ``until`` names no node.

    Examples
    --------
    >>> from onnx import TensorProto, helper
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])
    >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    >>> nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Relu", ["x"], ["y"])]
    >>> model = helper.make_model(helper.make_graph(nodes, "m", [x], [y]))
    >>> net = load_onnx(model, input_size="4x5")  # dynamic H, W: a size is needed
    >>> [(node.kind, node.name) for node in net.layers], net.input_shape
    ([('Relu', 'y')], (3, 4, 5))
    """
    opened = open_model(source)
    _, path, _, image, _ = opened
    file = Path(path)
    net = OnnxNet(
        layers=(),
        name=file.name[: -len(file.suffix)] if file.suffix else file.name,
        base_dir=file.resolve().parent if file.is_file() else Path.cwd(),
        opened=opened,
        until=until,
    )
    if input_size is not None or _fixed_shape(image) is not None:
        return net.at_shape(input_size)
    return net


# ------------------------------------------------------ planning and running


def _info(layer: Any) -> OnnxInfo:
    return layer.attrs["onnx"]


def _const(info: OnnxInfo, position: int) -> np.ndarray | None:
    """The folded constant at ONNX input ``position``, or None (a value or omitted)."""
    if position >= len(info.slots) or info.slots[position] is None:
        return None
    kind, key = info.slots[position]  # type: ignore[misc]
    return info.consts[key] if kind == "const" else None


def _ints_attr(info: OnnxInfo, key: str, n: int, default: int) -> list[int]:
    return [int(v) for v in info.attrs.get(key, [default] * n)]


def _window(layer: Any, info: OnnxInfo, kernel: list[int]) -> str:
    """Receptive field and jump through a sliding window; returns the geometry text."""
    n = len(kernel)
    strides = _ints_attr(info, "strides", n, 1)
    dilations = _ints_attr(info, "dilations", n, 1)
    reach = max((k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True))
    if layer.jump is not None:
        layer.rf = layer.rf + (reach - 1) * layer.jump
        layer.jump = layer.jump * max(strides)
    text = "x".join(map(str, kernel)) + "/" + "x".join(map(str, sorted(set(strides))))
    auto = info.attrs.get("auto_pad", "NOTSET")
    if auto not in ("NOTSET", ""):
        text += f" {auto.lower()}"
    else:
        pads = _ints_attr(info, "pads", 2 * n, 0)
        if any(pads):
            text += " pad " + (str(pads[0]) if len(set(pads)) == 1 else ",".join(map(str, pads)))
    if max(dilations) > 1:
        text += " dilation " + "x".join(map(str, dilations))
    return text


def _arith_conv(layer: Any, info: OnnxInfo) -> None:
    w, b = _const(info, 1), _const(info, 2)
    out = info.out_shape
    if w is None:
        layer.detail = "weights computed from the image"
        return
    m, cg, *kernel = w.shape
    group = int(info.attrs.get("group", 1))
    c = info.in_shapes[0][1] if info.in_shapes and len(info.in_shapes[0]) > 1 else None
    if c is not None and (cg * group != c or m % group):
        raise UsageError(
            f"{layer.where}: weight {tuple(w.shape)} does not fit {c} input channels in "
            f"{group} group(s) (expected (M, {c // group if c % group == 0 else '?'}, ...))"
        )
    layer.arrays = {"weight": w} | ({"bias": b} if b is not None else {})
    layer.params = int(w.size + (b.size if b is not None else 0))
    layer.macs = int(np.prod(out[1:]) * cg * np.prod(kernel)) * out[0]
    layer.detail = _window(layer, info, list(kernel)) + (f" groups {group}" if group > 1 else "")
    layer.labels = tuple(f"f{i}" for i in range(m)) if len(out) == 4 else ()
    if len(out) == 4:
        c, h, wd = info.in_shapes[0][1:]
        layer.fc_params = int(c * h * wd * np.prod(out[1:]) + np.prod(out[1:]))


def _arith_pool(layer: Any, info: OnnxInfo) -> None:
    kernel = [int(k) for k in info.attrs["kernel_shape"]]
    mode = "max" if info.op_type == "MaxPool" else "avg"
    text = f"{mode} " + _window(layer, info, kernel)
    if int(info.attrs.get("ceil_mode", 0)):
        text += " ceil"
    if mode == "avg" and int(info.attrs.get("count_include_pad", 0)):
        text += " count pad"
    layer.detail = text


def _arith_global(layer: Any, info: OnnxInfo) -> None:
    spatial = info.in_shapes[0][2:]
    if layer.jump is not None and spatial:
        layer.rf = layer.rf + (max(spatial) - 1) * layer.jump
        layer.jump = layer.jump * max(spatial)
    layer.detail = "over " + "x".join(map(str, spatial))


def _arith_reduce(layer: Any, info: OnnxInfo) -> None:
    axes = _const(info, 1) if info.opset >= 18 else info.attrs.get("axes")
    rank = len(info.in_shapes[0])
    axes_l = list(range(rank)) if axes is None else [int(a) % rank for a in np.ravel(axes)]
    if set(axes_l) >= set(range(2, rank)) and rank > 2:
        _arith_global(layer, info)
    layer.detail = "axes " + ",".join(map(str, axes_l))


def _arith_gemm(layer: Any, info: OnnxInfo) -> None:
    b, c = _const(info, 1), _const(info, 2)
    a_shape = info.in_shapes[0] if info.slots[0] and info.slots[0][0] == "value" else None
    if b is not None:
        k = b.shape[1] if int(info.attrs.get("transB", 0)) else b.shape[0]
        if a_shape is not None and len(a_shape) == 2:
            ka = a_shape[0] if int(info.attrs.get("transA", 0)) else a_shape[1]
            if ka != k:
                raise UsageError(
                    f"{layer.where}: weight {tuple(b.shape)} takes {k} inputs, got {ka}"
                )
        layer.arrays = {"weight": b} | ({"bias": c} if c is not None else {})
        layer.params = int(b.size + (c.size if c is not None else 0))
        layer.macs = int(np.prod(info.out_shape) * k)
        layer.detail = f"{k} -> {info.out_shape[-1]}"
    elif a_shape is not None:
        layer.macs = int(np.prod(info.out_shape) * a_shape[-1])


def _arith_matmul(layer: Any, info: OnnxInfo) -> None:
    a, b = _const(info, 0), _const(info, 1)
    weight = b if b is not None else a
    if weight is not None:
        layer.arrays = {"weight": weight}
        layer.params = int(weight.size)
    live = info.in_shapes[0] if info.in_shapes else ()
    k = (b.shape[0] if b is not None else live[-1]) if (b is not None or live) else 0
    layer.macs = int(np.prod(info.out_shape) * k)
    if b is not None and b.ndim == 2:
        layer.detail = f"{b.shape[0]} -> {b.shape[1]}"


def _arith_add(layer: Any, info: OnnxInfo) -> None:
    if info.matmul_bias:  # the bias of a Linear exported as MatMul + Add
        bias = next(v for v in info.consts.values())
        layer.arrays = {"bias": bias}
        layer.params = int(bias.size)


def _arith_bn(layer: Any, info: OnnxInfo) -> None:
    scale, bias, mean, var = (_const(info, i) for i in (1, 2, 3, 4))
    c = info.in_shapes[0][1] if info.in_shapes and len(info.in_shapes[0]) > 1 else None
    for key, v in (("scale", scale), ("B", bias), ("mean", mean), ("var", var)):
        if v is not None and c is not None and v.shape != (c,):
            raise UsageError(f"{layer.where}: {key} has shape {v.shape}; expected ({c},)")
    layer.arrays = {
        k: v
        for k, v in (
            ("weight", scale),
            ("bias", bias),
            ("running_mean", mean),
            ("running_var", var),
        )
        if v is not None
    }
    layer.params = int(sum(v.size for v in (scale, bias) if v is not None))
    layer.buffers = int(sum(v.size for v in (mean, var) if v is not None))
    layer.detail = f"eps {float(info.attrs.get('epsilon', 1e-5)):g}"


def _arith_prelu(layer: Any, info: OnnxInfo) -> None:
    slope = _const(info, 1)
    if slope is not None:
        layer.arrays = {"weight": slope}
        layer.params = int(slope.size)


def _arith_resize(layer: Any, info: OnnxInfo) -> None:
    src, out = info.in_shapes[0] if info.in_shapes else (), info.out_shape
    mode = info.attrs.get("mode", "nearest")
    layer.detail = mode
    if len(src) != 4 or len(out) != 4:
        return
    (h, w), (oh, ow) = src[2:], out[2:]
    layer.detail = f"{mode} {h}x{w} -> {oh}x{ow}"
    if layer.jump is not None:
        if mode != "nearest":
            layer.rf = layer.rf + layer.jump  # two neighbours per axis
        layer.jump = layer.jump * max(h / oh, w / ow)


def _arith_detail(*keys: str):
    def arith(layer: Any, info: OnnxInfo) -> None:
        parts = [f"{k} {info.attrs[k]:g}" for k in keys if k in info.attrs]
        if info.op_type == "Clip":
            lo, hi = _const(info, 1), _const(info, 2)
            parts = [f"{k} {float(v):g}" for k, v in (("min", lo), ("max", hi)) if v is not None]
        layer.detail = " ".join(parts)

    return arith


_ARITH = {
    "Conv": _arith_conv,
    "MaxPool": _arith_pool,
    "AveragePool": _arith_pool,
    "GlobalAveragePool": _arith_global,
    "GlobalMaxPool": _arith_global,
    "ReduceMean": _arith_reduce,
    "ReduceMax": _arith_reduce,
    "Gemm": _arith_gemm,
    "MatMul": _arith_matmul,
    "Add": _arith_add,
    "Resize": _arith_resize,
    "BatchNormalization": _arith_bn,
    "PRelu": _arith_prelu,
    "LeakyRelu": _arith_detail("alpha"),
    "LRN": _arith_detail("size", "alpha", "beta", "bias"),
    "Clip": _arith_detail(),
    "Softmax": _arith_detail("axis"),
    "Concat": _arith_detail("axis"),
    "Flatten": _arith_detail("axis"),
}


def plan_node(layer: Any, ins: list) -> tuple[int, ...]:
    """The planner's rule for every ONNX operator: shapes from the load-time fold."""
    info = _info(layer)
    shape = value_shape(info.out_shape)
    arith = _ARITH.get(info.op_type)
    if arith is not None:
        arith(layer, info)
    if len(shape) != 3:
        if len(layer.in_shape) == 3 and layer.jump is not None:
            # a flat output (Flatten, Reshape, Gemm on a map) sees every position
            side = max(layer.in_shape[1:])
            layer.rf = layer.rf + (side - 1) * layer.jump
        layer.jump = None
    layer.work_bytes = 4 * int(np.prod(shape))
    return shape


#: ReLU maps a Conv wrote with its product (``onnx_ops.RELU_TOO``), by the id
#: of the Conv's map, for the Relu node that reads that map next. Each entry
#: holds the map itself, so the id is not reused while the entry lives.
_RELU_READY: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def run_node(layer: Any, *values: np.ndarray) -> np.ndarray:
    """Run one ONNX node on the walker's values (batch axis restored, then dropped)."""
    info = _info(layer)
    if info.op_type == "Relu" and values and info.slots[0] == ("value", 0):
        ready = _RELU_READY.pop(id(values[0]), None)
        if ready is not None and ready[0] is values[0]:
            return ready[1]
    ins: list[np.ndarray | None] = []
    for slot in info.slots:
        if slot is None:
            ins.append(None)
        elif slot[0] == "value":
            v = values[slot[1]]
            if slot[1] in info.nhwc:  # the walker's (C, H, W) image, to the model's (1, H, W, C)
                v = v.transpose(1, 2, 0)
            ins.append(v.reshape(info.in_shapes[slot[1]]))
        else:
            ins.append(info.consts[slot[1]])
    fn = ONNX_OPS[info.op_type]
    try:
        outs = fn(ins, info.attrs, info.opset, info.n_outputs)
    except (UsageError, ValueError) as exc:
        raise UsageError(f"{layer.where}: {exc}") from None
    out = np.asarray(outs[info.output_index])
    if out.dtype.kind == "f" and out.dtype != np.float32:
        out = out.astype(np.float32)
    result = np.ascontiguousarray(out).reshape(layer.out_shape)
    if len(outs) > info.n_outputs:  # a Conv's ReLU, for the Relu node that follows
        if len(_RELU_READY) >= 8:  # a walk that stopped before its Relu (--until)
            _RELU_READY.pop(next(iter(_RELU_READY)))
        _RELU_READY[id(result)] = (result, np.ascontiguousarray(outs[-1]).reshape(layer.out_shape))
    return result


def register_all() -> None:
    """Add every ONNX operator to the network registry under its ONNX type name."""
    from .ops import register

    for op_type in ONNX_OPS:
        register(op_type, plan_node, run_node, arity=(1, None))


register_all()
