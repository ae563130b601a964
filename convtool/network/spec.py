"""Network specs as written: TOML files and the inline ``--layers`` form.

This module turns text into a :class:`Net`, a list of :class:`Node` records
whose options are checked and normalised here, once, per layer type. Shapes,
weights and arithmetic come later (:mod:`convtool.network.graph`).

A TOML file has optional top-level ``name``, ``description``, ``input``
(``"32x32x1"``) and ``input_scale`` (a number or ``"1/255"``), and one
``[[layers]]`` table per layer with ``type``, optionally ``name`` and
``inputs``, and that type's options. The inline form is a chain::

    conv(edges) relu pool(max,2) conv(random:8,seed=1) relu pool(max,2)
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..modes import normalize_pad
from .weights import BANKS, INITS

_CONV_KEYS = (
    "filters",
    "weights",
    "size",
    "seed",
    "init",
    "bias",
    "stride",
    "pad",
    "pad_value",
    "dilation",
    "groups",
)
_POOL_KEYS = (
    "mode",
    "size",
    "stride",
    "pad",
    "padding",
    "pad_value",
    "ceil",
    "seed",
    "p",
    "eval",
    "ratio",
    "output_size",
    "sequence",
    "overlapping",
)
_POOL_MODES = ("max", "avg", "min", "lp", "topleft", "stochastic", "fractional")
_POOL_MODE_ALIASES = {"average": "avg", "mean": "avg"}
#: Keys of a ``[[layers]]`` table that every type has.
GRAPH_KEYS = ("type", "name", "inputs")
_ALIASES = {
    "leakyrelu": "leaky_relu",
    "standardize": "norm",
    "standardise": "norm",
    "batchnorm2d": "batchnorm",
    "batch_norm": "batchnorm",
    "bn": "batchnorm",
    "linear": "fc",
    "dense": "fc",
    "global_avg_pool": "global_pool",
    "cat": "concat",
    "hardtanh": "clip",
}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Node:
    """One node of a network graph, before shapes are known.

    Attributes
    ----------
    kind : str
        The operator's type name, the key of :data:`convtool.network.ops.OPS`
        (``conv``, ``relu``, ... for TOML; the ONNX import uses its own keys).
    options : dict
        The node's attributes, parsed and checked (numbers are numbers, paths
        are absolute, constant tensors are numpy arrays).
    name : str or None
        The name of the node and of the value it outputs, unique in the net.
        None: the planner names it after its type (``conv``, ``conv_2``, ...).
    inputs : tuple of str, or None
        Names of the values it reads: earlier nodes' names or ``"input"`` (the
        image). None: the node before it (the image for the first node).
    """

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    inputs: tuple[str, ...] | None = None


#: The name the first versions used; a layer spec is a graph node.
LayerSpec = Node


@dataclass(frozen=True)
class Net:
    """A network: nodes plus how to read the input.

    Attributes
    ----------
    layers : tuple of Node
        In any order that lets each node's inputs be found (the planner sorts
        them topologically, keeping this order where it can).
    name : str
    input_scale : float
        The image is multiplied by this before the first layer (``1/255`` maps
        8-bit values to 0..1).
    input_shape : tuple (C, H, W) or None
        Default input for ``convtool summary`` when ``--input`` is not given.
    base_dir : Path
        Directory that relative weight-file paths were read from.
    """

    layers: tuple[Node, ...]
    name: str = "net"
    input_scale: float = 1.0
    input_shape: tuple[int, int, int] | None = None
    base_dir: Path = field(default_factory=Path)


def canonical_kind(kind: Any) -> str:
    """A layer type as written -> its key: ``Leaky-ReLU`` -> ``leaky_relu``, ``linear`` -> ``fc``.

    Examples
    --------
    >>> canonical_kind("Leaky-ReLU"), canonical_kind("BatchNorm2d"), canonical_kind("cat")
    ('leaky_relu', 'batchnorm', 'concat')
    """
    key = str(kind).strip().lower().replace("-", "_")
    return _ALIASES.get(key, key)


def layer_ref(index: int, kind: str, name: str | None = None) -> str:
    """How messages name a layer: ``layer 3 (conv)`` or ``layer 3 'b1' (conv)``."""
    return f"layer {index} '{name}' ({kind})" if name else f"layer {index} ({kind})"


# ------------------------------------------------------------------ option values


def _as_int(where: str, key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"{where}: {key} must be a whole number >= {minimum}, got {value!r}")
    try:
        ivalue = int(value)
        ok = float(value) == ivalue
    except (TypeError, ValueError):
        ok = False
    if not ok or ivalue < minimum:
        raise UsageError(f"{where}: {key} must be a whole number >= {minimum}, got {value!r}")
    return ivalue


def _as_float(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise UsageError(f"{where}: {key} must be a number, got {value!r}")
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/", 1)
            out = float(num) / float(den)
        else:
            out = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise UsageError(f"{where}: {key} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise UsageError(f"{where}: {key} must be finite, got {value!r}")
    return out


def _as_bool(where: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{where}: {key} must be true or false, got {value!r}")


def _check_keys(where: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    for key in options:
        if key not in allowed:
            raise UsageError(
                f"{where}: unknown option {key!r}; expected one of {', '.join(allowed)}"
            )


def _weights_path(where: str, value: Any, base_dir: Path | None) -> str:
    text = str(value).strip()
    if not text:
        raise UsageError(f"{where}: weights must name a .npy or .npz file")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return str(path)


# ------------------------------------------------------------ options per type
# Each parser takes (where, options as written, base_dir) and returns the
# checked, normalised options; unknown keys are refused by _check_keys.


def _conv_options(where: str, options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    _check_keys(where, options, _CONV_KEYS)
    opts: dict[str, Any] = {}
    filters = options.get("filters")
    weights = options.get("weights")
    if (filters is None) == (weights is None):
        raise UsageError(
            f"{where}: give exactly one of filters (a bank: {', '.join(BANKS)}, "
            "random:N or kernel specs) or weights (a .npy/.npz file)"
        )
    if weights is not None:
        opts["weights"] = _weights_path(where, weights, base_dir)
    else:
        if isinstance(filters, (list, tuple)):
            specs = tuple(str(f).strip() for f in filters)
        else:
            specs = tuple(s.strip() for s in str(filters).split("|"))
        if not specs or any(not s for s in specs):
            raise UsageError(f"{where}: empty filter spec in {filters!r}")
        head = specs[0].lower()
        if len(specs) == 1 and head.startswith("random"):
            count = head.partition(":")[2] or "1"
            opts["random"] = _as_int(where, "random:N", count)
            opts["size"] = _as_int(where, "size", options.get("size", 3))
            opts["seed"] = _as_int(where, "seed", options.get("seed", 0), minimum=0)
            opts["init"] = _init(where, options)
        else:
            for key in ("size", "seed", "init"):
                if key in options:
                    raise UsageError(
                        f"{where}: {key} applies only to random:N filters; "
                        "named filters have their own size"
                    )
            opts["filters"] = specs
    opts["bias"] = _bias(where, options.get("bias", True))
    opts["stride"] = _as_int(where, "stride", options.get("stride", 1))
    opts["dilation"] = _as_int(where, "dilation", options.get("dilation", 1))
    pad = options.get("pad", "valid")
    if isinstance(pad, (int, float)) and not isinstance(pad, bool) or str(pad).isdigit():
        opts["pad"] = _as_int(where, "pad", pad, minimum=0)
    else:
        try:
            opts["pad"] = normalize_pad(str(pad))
        except UsageError as exc:
            raise UsageError(f"{where}: {exc} or a number of zeros per side") from None
    opts["pad_value"] = _as_float(where, "pad_value", options.get("pad_value", 0.0))
    groups = options.get("groups", 1)
    if str(groups).strip().lower() in ("depthwise", "dw"):
        opts["groups"] = "depthwise"
    else:
        opts["groups"] = _as_int(where, "groups", groups)
    return opts


def _bias(where: str, bias: Any) -> bool | float | tuple[float, ...]:
    """``bias``: true (zeros, or the weight file's), false (none), one value, or a list."""
    if isinstance(bias, (list, tuple)):
        return tuple(_as_float(where, "bias", b) for b in bias)
    if isinstance(bias, bool) or str(bias).lower() in ("true", "false"):
        return _as_bool(where, "bias", bias)
    return _as_float(where, "bias", bias)


def _init(where: str, options: dict[str, Any]) -> str:
    init = str(options.get("init", "he")).lower()
    init = {"kaiming": "he", "glorot": "xavier"}.get(init, init)
    if init not in INITS:
        raise UsageError(f"{where}: init must be he or xavier, got {init!r}")
    return init


def _pool_options(where: str, options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    _check_keys(where, options, _POOL_KEYS)
    opts: dict[str, Any] = {}
    mode = str(options.get("mode", "max")).strip().lower()
    mode = _POOL_MODE_ALIASES.get(mode, mode)
    if mode not in _POOL_MODES:
        raise UsageError(f"{where}: unknown pool mode {mode!r}; use {', '.join(_POOL_MODES)}")
    opts["mode"] = mode
    if mode == "fractional":
        if "output_size" in options:
            opts["output_size"] = _as_int(where, "output_size", options["output_size"])
        else:
            ratio = _as_float(where, "ratio", options.get("ratio", math.sqrt(2)))
            if not 1.0 < ratio < 2.0 + 1e-9:
                raise UsageError(f"{where}: ratio must be in (1, 2], got {ratio}")
            opts["ratio"] = ratio
        opts["seed"] = _as_int(where, "seed", options.get("seed", 0), minimum=0)
        sequence = str(options.get("sequence", "pseudorandom")).lower()
        if sequence not in ("pseudorandom", "random"):
            raise UsageError(f"{where}: sequence must be pseudorandom or random")
        opts["sequence"] = sequence
        opts["overlapping"] = _as_bool(where, "overlapping", options.get("overlapping", False))
        for key in ("size", "stride", "pad", "padding", "ceil"):
            if key in options:
                raise UsageError(
                    f"{where}: fractional pooling draws its own regions; "
                    f"drop {key} (use ratio or output_size)"
                )
        return opts
    opts["size"] = _as_int(where, "size", options.get("size", 2))
    opts["stride"] = _as_int(where, "stride", options.get("stride", opts["size"]))
    try:
        opts["pad"] = normalize_pad(str(options.get("pad", "valid")))
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    default = 0 if opts["pad"] == "valid" else opts["size"] // 2
    opts["padding"] = _as_int(where, "padding", options.get("padding", default), minimum=0)
    if opts["padding"] > opts["size"] // 2 or (opts["pad"] == "valid" and opts["padding"]):
        raise UsageError(
            f"{where}: padding {opts['padding']} needs a padded mode and at most "
            f"size // 2 = {opts['size'] // 2}"
        )
    if "pad_value" in options:
        opts["pad_value"] = _as_float(where, "pad_value", options["pad_value"])
    opts["ceil"] = _as_bool(where, "ceil", options.get("ceil", False))
    if mode == "stochastic":
        opts["seed"] = _as_int(where, "seed", options.get("seed", 0), minimum=0)
        opts["eval"] = _as_bool(where, "eval", options.get("eval", False))
    if mode == "lp":
        opts["p"] = _as_float(where, "p", options.get("p", 2.0))
    return opts


def _no_options(where: str, options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    _check_keys(where, options, ())
    return {}


def _leaky_relu_options(
    where: str, options: dict[str, Any], base_dir: Path | None
) -> dict[str, Any]:
    _check_keys(where, options, ("alpha",))
    return {"alpha": _as_float(where, "alpha", options.get("alpha", 0.01))}


def _norm_options(where: str, options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    _check_keys(where, options, ("eps",))
    return {"eps": _as_float(where, "eps", options.get("eps", 1e-5))}


def _batchnorm_options(
    where: str, options: dict[str, Any], base_dir: Path | None
) -> dict[str, Any]:
    _check_keys(where, options, ("weights", "eps"))
    opts: dict[str, Any] = {"eps": _as_float(where, "eps", options.get("eps", 1e-5))}
    if opts["eps"] < 0:
        raise UsageError(f"{where}: eps must be >= 0, got {opts['eps']}")
    if "weights" in options:
        opts["weights"] = _weights_path(where, options["weights"], base_dir)
    return opts


def _global_pool_options(
    where: str, options: dict[str, Any], base_dir: Path | None
) -> dict[str, Any]:
    _check_keys(where, options, ("mode",))
    mode = str(options.get("mode", "avg")).strip().lower()
    mode = _POOL_MODE_ALIASES.get(mode, mode)
    if mode not in ("avg", "max"):
        raise UsageError(f"{where}: mode must be avg or max, got {mode!r}")
    return {"mode": mode}


def _fc_options(where: str, options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    _check_keys(where, options, ("units", "weights", "seed", "init", "bias"))
    if ("units" in options) == ("weights" in options):
        raise UsageError(
            f"{where}: give exactly one of units (random weights, e.g. units = 10) or "
            "weights (an .npz with weight (out, in) and bias (out,), as PyTorch's Linear)"
        )
    opts: dict[str, Any] = {}
    if "weights" in options:
        opts["weights"] = _weights_path(where, options["weights"], base_dir)
        for key in ("seed", "init"):
            if key in options:
                raise UsageError(f"{where}: {key} applies only to random weights (units = N)")
    else:
        opts["units"] = _as_int(where, "units", options["units"])
        opts["seed"] = _as_int(where, "seed", options.get("seed", 0), minimum=0)
        opts["init"] = _init(where, options)
    opts["bias"] = _bias(where, options.get("bias", True))
    return opts


def _dropout_options(where: str, options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    _check_keys(where, options, ("p",))
    p = _as_float(where, "p", options.get("p", 0.5))
    if not 0.0 <= p < 1.0:
        raise UsageError(f"{where}: p must be in [0, 1), got {p}")
    return {"p": p}


def _clip_options(where: str, options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    _check_keys(where, options, ("min", "max"))
    if "min" not in options and "max" not in options:
        raise UsageError(f"{where}: give min, max or both (relu6 is clip(min=0, max=6))")
    lo = _as_float(where, "min", options["min"]) if "min" in options else -math.inf
    hi = _as_float(where, "max", options["max"]) if "max" in options else math.inf
    if lo > hi:
        raise UsageError(f"{where}: min {lo:g} is larger than max {hi:g}")
    return {"min": lo, "max": hi}


def _relu6_options(where: str, options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    _check_keys(where, options, ())
    return {"min": 0.0, "max": 6.0}  # clip(0, 6), run by the clip operator


OptionParser = Callable[[str, dict[str, Any], "Path | None"], dict[str, Any]]

#: TOML / inline layer type -> its option parser. A type listed here needs an
#: operator of the same name in convtool.network.ops.OPS.
LAYER_OPTIONS: dict[str, OptionParser] = {
    "conv": _conv_options,
    "relu": _no_options,
    "leaky_relu": _leaky_relu_options,
    "tanh": _no_options,
    "sigmoid": _no_options,
    "abs": _no_options,
    "pool": _pool_options,
    "norm": _norm_options,
    "add": _no_options,
    "concat": _no_options,
    "batchnorm": _batchnorm_options,
    "global_pool": _global_pool_options,
    "flatten": _no_options,
    "fc": _fc_options,
    "softmax": _no_options,
    "dropout": _dropout_options,
    "clip": _clip_options,
    "relu6": _relu6_options,
}
#: Layer types that join several inputs: a graph, written in TOML.
JOINS = ("add", "concat")
LAYER_TYPES = tuple(LAYER_OPTIONS)


def _inputs(where: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise UsageError(
            f'{where}: inputs must be a list of earlier layer names or "input", got {value!r}'
        )
    names = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise UsageError(f"{where}: inputs must be layer names (strings), got {item!r}")
        names.append(item.strip())
    return tuple(names)


def make_layer(
    index: int,
    kind: str,
    options: dict[str, Any],
    name: str | None = None,
    inputs: Sequence[str] | str | None = None,
    base_dir: Path | None = None,
) -> Node:
    """Validate one layer's options and return its :class:`Node`.

    Parameters
    ----------
    index : int
        1-based position in the file (for messages).
    kind : str
        Layer type (see :data:`LAYER_TYPES`).
    options : dict
        The type's options as written.
    name, inputs : optional
        The layer's name and the names of the values it reads.
    base_dir : Path, optional
        Directory that relative weight files are read from (default: the
        current directory).

    Raises
    ------
    UsageError
        Unknown type or option, or a value of the wrong kind; the message
        names the layer by its 1-based index and type.

    Examples
    --------
    >>> make_layer(1, "pool", {"mode": "max", "size": 3}).options["stride"]
    3
    """
    kind = canonical_kind(kind)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise UsageError(f"layer {index}: name must be a non-empty string, got {name!r}")
    name = name.strip() if name else None
    ref = layer_ref(index, kind, name)
    parser = LAYER_OPTIONS.get(kind)
    if parser is None:
        raise UsageError(f"layer {index}: unknown type {kind!r}; use {', '.join(LAYER_TYPES)}")
    opts = parser(ref, options, base_dir)
    return Node(
        kind=kind,
        options=opts,
        name=name,
        inputs=None if inputs is None else _inputs(ref, inputs),
    )


# ---------------------------------------------------------------------- parsing

_TOKEN = re.compile(r"\s*([A-Za-z_][\w-]*)\s*(\((?:[^()\"']|\"[^\"]*\"|'[^']*')*\))?")


def _split_args(text: str, where: str) -> list[str]:
    """Split ``a, b="x,y", c`` on top-level commas, honouring quotes."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = ","
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return [part.strip() for part in lexer if part.strip()]
    except ValueError as exc:
        raise UsageError(f"{where}: {exc} in {text!r}") from None


_POSITIONAL = {
    "conv": ("filters",),
    "pool": ("mode", "size", "stride"),
    "leaky_relu": ("alpha",),
    "norm": ("eps",),
    "batchnorm": ("weights",),
    "global_pool": ("mode",),
    "fc": ("units",),
    "dropout": ("p",),
    "clip": ("min", "max"),
}


def parse_layers(text: str) -> Net:
    """Parse the inline form: ``"conv(edges) relu pool(max,2)"``.

    Each layer is ``type`` or ``type(args)``; arguments are positional (conv:
    filters; pool: mode, size, stride; leaky_relu: alpha) or ``key=value``.
    A filter source ending in ``.npy``/``.npz`` is a weight file. Quote an
    argument that contains a comma: ``conv("gaussian:sigma=2,size=5")``.

    Examples
    --------
    >>> net = parse_layers("conv(random:8, size=5, seed=1) relu pool(max,2)")
    >>> [layer.kind for layer in net.layers]
    ['conv', 'relu', 'pool']
    """
    layers: list[Node] = []
    pos = 0
    text = str(text)
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        if not match:
            snippet = text[pos:].strip()[:20]
            raise UsageError(
                f"layer {len(layers) + 1}: cannot read {snippet!r}; "
                "write layers as type or type(args), e.g. 'conv(edges) relu pool(max,2)'"
            )
        pos = match.end()
        kind = canonical_kind(match.group(1))
        index = len(layers) + 1
        where = layer_ref(index, kind)
        if match.group(2) is None and text[pos:].lstrip().startswith("("):
            raise UsageError(
                f"{where}: unbalanced parentheses or quotes in {text[match.start() :].strip()!r}"
            )
        options: dict[str, Any] = {}
        positional = list(_POSITIONAL.get(kind, ()))
        body = match.group(2)
        for arg in _split_args(body[1:-1], where) if body else []:
            key, eq, value = arg.partition("=")
            if eq and re.fullmatch(r"[A-Za-z_]\w*", key.strip()):
                key = key.strip().lower()
                if key in ("name", "inputs"):
                    raise UsageError(
                        f"{where}: the inline form is a chain; write a graph (name, inputs) "
                        "in a TOML file with one [[layers]] table per layer (see samples/nets/)"
                    )
                options[key] = value.strip()
            elif positional:
                slot = positional.pop(0)
                options[slot] = arg
            else:
                raise UsageError(f"{where}: unexpected argument {arg!r}; use key=value")
        if kind in JOINS:
            raise UsageError(
                f"{where}: {kind} joins branches, and the inline form is a chain; write the "
                "graph in a TOML file with name and inputs (see samples/nets/)"
            )
        slot = {"conv": "filters", "fc": "units"}.get(kind)
        if slot in options and str(options[slot]).lower().endswith((".npy", ".npz")):
            options["weights"] = options.pop(slot)
        layers.append(make_layer(index, kind, options, base_dir=Path.cwd()))
    if not layers:
        raise UsageError("the layer list is empty; e.g. --layers 'conv(edges) relu pool(max,2)'")
    return Net(layers=tuple(layers), name="inline", base_dir=Path.cwd())


def parse_shape(text: str) -> tuple[int, int, int]:
    """Parse ``HxW`` or ``HxWxC`` (as numpy's image shape) into ``(C, H, W)``.

    Examples
    --------
    >>> parse_shape("224x224x3"), parse_shape("32x32")
    ((3, 224, 224), (1, 32, 32))
    """
    parts = re.split(r"\s*[x×,]\s*", str(text).strip().lower())
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) not in (2, 3) or min(nums) < 1:
        raise UsageError(
            f"input shape {text!r} is not HxW or HxWxC with sizes >= 1 (e.g. 224x224x3)"
        )
    h, w = nums[:2]
    c = nums[2] if len(nums) == 3 else 1
    return (c, h, w)


def load_net(source: str | os.PathLike | Net) -> Net:
    """Load a network from a TOML file (or an ONNX model), or parse an inline layer string.

    The TOML form has optional top-level ``name``, ``description``, ``input``
    (``"32x32x1"``) and ``input_scale`` (a number or ``"1/255"``), and one
    ``[[layers]]`` table per layer with ``type``, optionally ``name`` and
    ``inputs``, and that type's options. A path ending in ``.onnx`` goes to
    :mod:`convtool.network.onnx_import`.

    Raises
    ------
    UsageError
        A missing, unreadable or malformed file (naming it), or a bad layer
        (named by index).

    Examples
    --------
    >>> load_net("conv(edges) abs").layers[1].kind
    'abs'
    """
    if isinstance(source, Net):
        return source
    text = os.fspath(source)
    path = Path(text)
    looks_like_file = text.lower().endswith(".toml") or (
        "(" not in text and (path.suffix or "/" in text or os.sep in text)
    )
    if not looks_like_file and not path.is_file():
        return parse_layers(text)
    if path.suffix.lower() == ".onnx":
        try:
            from .onnx_import import load_onnx  # type: ignore[import-not-found]
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.onnx_import":
                raise
            raise UsageError(f"{text}: ONNX models are not supported yet") from None
        return load_onnx(path)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"network file {text} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read network file {text}: {exc.strerror or exc}") from None
    try:
        body = data.decode("utf-8")
        if "\x00" in body:
            raise UnicodeError
    except UnicodeError:
        raise UsageError(
            f"{text}: not a network file: it is binary, not TOML text "
            "(a network is a .toml file, or an .onnx model)"
        ) from None
    try:
        doc = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{text}: malformed TOML: {exc}") from None
    return net_from_dict(doc, name=path.stem, base_dir=path.resolve().parent, where=text)


def net_from_dict(
    doc: dict[str, Any], *, name: str = "net", base_dir: Path | None = None, where: str = "net"
) -> Net:
    """Build a :class:`Net` from a parsed TOML document (a dict).

    Examples
    --------
    >>> net = net_from_dict({"input": "28x28", "layers": [{"type": "conv", "filters": "edges"}]})
    >>> net.input_shape, net.layers[0].options["filters"]
    ((1, 28, 28), ('edges',))
    """
    allowed = ("name", "description", "input", "input_scale", "layers", "layer")
    for key in doc:
        if key not in allowed:
            raise UsageError(
                f"{where}: unknown top-level key {key!r}; expected {', '.join(allowed)}"
            )
    raw = doc.get("layers", doc.get("layer"))
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{where}: no layers; add one [[layers]] table per layer with a type")
    layers = []
    for i, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict) or "type" not in entry:
            raise UsageError(
                f'{where}: layer {i} has no type; write type = "conv" (or relu, pool, ...)'
            )
        options = {k: v for k, v in entry.items() if k not in GRAPH_KEYS}
        try:
            node = make_layer(
                i, entry["type"], options, entry.get("name"), entry.get("inputs"), base_dir
            )
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        layers.append(node)
    try:
        shape = parse_shape(doc["input"]) if "input" in doc else None
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    scale = _as_float(where, "input_scale", doc.get("input_scale", 1.0))
    return Net(
        layers=tuple(layers),
        name=str(doc.get("name", name)),
        input_scale=scale,
        input_shape=shape,
        base_dir=base_dir or Path.cwd(),
    )
