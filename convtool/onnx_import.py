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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError
from .onnx_ops import ONNX_OPS

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
    """A model with its input shape fixed and its constants folded."""

    path: str
    opset: int
    input_name: str
    input_shape: tuple[int, ...]  # (1, C, H, W)
    nodes: list[OnnxNode]
    constants: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    folded: int = 0  # how many nodes were folded away

    def run(self, x: np.ndarray, until: str | None = None):
        """Yield ``(node, outputs)`` for each node, in order, from an NCHW input."""
        if tuple(x.shape) != self.input_shape:
            raise UsageError(
                f"{self.path}: the input has shape {tuple(x.shape)}; the model takes "
                f"{self.input_shape}"
            )
        values: dict[str, np.ndarray] = dict(self.constants)
        values[self.input_name] = x
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
    except UsageError as exc:
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


def _input_shape(path: str, value_info: Any, input_size: Any) -> tuple[tuple[int, ...], list[Any]]:
    dims = value_info.type.tensor_type.shape.dim
    raw = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    labels = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    if len(raw) != 4:
        raise UsageError(
            f"{path}: input {value_info.name!r} has shape ({', '.join(labels) or 'unknown'}); "
            "convtool runs 2-D image models with an (N, C, H, W) input"
        )
    want: list[int | None] = [1, raw[1], raw[2], raw[3]]
    if input_size is not None:
        c, h, w = _size(input_size)
        for i, v in ((1, c), (2, h), (3, w)):
            if v is None:
                continue
            if raw[i] is not None and raw[i] != v:
                raise UsageError(
                    f"{path}: input {value_info.name!r} is fixed at ({', '.join(labels)}); "
                    f"an input size of {h}x{w}x{c} does not fit it"
                )
            want[i] = v
    if None in want:
        raise UsageError(
            f"{path}: input {value_info.name!r} has dynamic size ({', '.join(labels)}): "
            "give the input size (--input-size HxW, or input_size= in the API)"
        )
    return tuple(int(v) for v in want), list(dims)  # type: ignore[arg-type]


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
    """The chosen branch's nodes, with its outputs renamed to the If's outputs."""
    branch = node.attrs["then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch"]
    prefix = f"{node.name}/"
    local = {o for n in branch.node for o in n.output if o}
    local |= {t.name for t in branch.initializer}

    def rename(v: str) -> str:
        return prefix + v if v in local else v

    nodes = []
    for t in branch.initializer:
        const = onnx.helper.make_node(
            "Constant", [], [rename(t.name)], value=t, name=prefix + t.name
        )
        nodes.append(const)
    for n in branch.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        del copy.input[:]
        copy.input.extend(rename(v) for v in n.input)
        del copy.output[:]
        copy.output.extend(rename(v) for v in n.output)
        copy.name = prefix + (n.name or n.output[0])
        nodes.append(copy)
    for out, res in zip(node.outputs, branch.output, strict=True):
        nodes.append(
            onnx.helper.make_node("Identity", [rename(res.name)], [out], name=f"{node.name}:{out}")
        )
    return nodes


def read_onnx(
    source: str | os.PathLike, input_size: Any = None, until: str | None = None
) -> OnnxGraph:
    """Load an ONNX model, fix its input shape and fold its constants.

    Parameters
    ----------
    source : path to a ``.onnx`` file
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
    path = os.fspath(source)
    onnx = _onnx()
    model = _load_model(path)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise UsageError(
            f"{path}: opset {opset or 'unknown'} is older than {MIN_OPSET}; convert it with "
            "onnx.version_converter.convert_version(model, 13) or export again"
        )
    graph = model.graph
    constants: dict[str, np.ndarray] = {t.name: _array(onnx, t) for t in graph.initializer}
    images = [v for v in graph.input if v.name not in constants]
    if len(images) != 1:
        names = ", ".join(v.name for v in images) or "none"
        raise UsageError(f"{path}: convtool needs a model with one image input; it has {names}")
    image = images[0]
    shape, _ = _input_shape(path, image, input_size)

    # the live part of the graph, with every constant computed once
    taken: set[str] = set()
    queue = deque(graph.node)
    live: set[str] = {image.name}
    shapes: dict[str, tuple[int, ...]] = {image.name: shape}
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
            queue.extendleft(reversed(_inline_if(onnx, node, constants[cond])))
            folded += 1
            continue
        if node.op_type not in ONNX_OPS:
            raise UsageError(f"{path}: " + unsupported(node.op_type, node.name))
        if node.op_type in ("Shape", "Size") and depends:
            src = node.inputs[0]
            if src not in shapes and pending_shapes:
                shapes.update(_infer_shapes(onnx, model, image.name, shape, constants, protos))
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
    known = _infer_shapes(onnx, model, image.name, shape, constants, protos)
    for n in nodes:
        n.shapes = [known.get(v) for v in n.outputs]
    return OnnxGraph(
        path=path,
        opset=opset,
        input_name=image.name,
        input_shape=shape,
        nodes=nodes,
        constants=constants,
        outputs=tuple(o.name for o in graph.output),
        folded=folded,
    )


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
