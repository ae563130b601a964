"""Small convolutional stacks: specs, validation, shape arithmetic and feature maps.

A network is a list of layers, written as a TOML file or an inline string::

    conv(edges) relu pool(max,2) conv(random:8,seed=1) relu pool(max,2)

Layer types
-----------
``conv``
    Filters from a named bank (``edges``, ``gabor``, ``log``), kernel specs
    (anything :func:`convtool.kernels.resolve` accepts, several joined by ``|``),
    ``random:N`` (He or Xavier normal init, reproducible with ``seed``), or
    weights from a ``.npy``/``.npz`` file of shape (M, C/groups, K, K) (an
    ``.npz`` may also hold ``bias``). Options: ``size`` (random filters),
    ``bias``, ``stride``, ``pad``, ``pad_value``, ``dilation``, ``groups``
    (a number or ``depthwise``).
``relu``, ``leaky_relu`` (``alpha``), ``tanh``, ``sigmoid``, ``abs``
    Element-wise non-linearities.
``pool``
    Every mode of :func:`convtool.pooling.pool` (``mode``, ``size``, ``stride``,
    ``pad``, ``ceil``, ``seed`` and the mode's own options such as ``p``).
``norm``
    Per-channel standardisation: zero mean and unit standard deviation.

Semantics
---------
Multi-channel convolution is PyTorch's ``conv2d``: a cross-correlation in
which output channel ``m`` of group ``g`` sums the responses of its filter's
``C/groups`` slices over the input channels of group ``g``, plus its bias.
``pad`` is either a number ``p`` (``p`` zeros on every side, as PyTorch's
``padding=p``) or a pad-mode name from :mod:`convtool.modes`: ``valid`` (no
padding, the default, as PyTorch's default) or a padded mode (``zero``,
``reflect``, ...) that pads ``dilation*(K-1)`` in total so stride 1 keeps the
size. Named filters (a bank or kernel specs) act on the mean of their group's
input channels, so ``N`` named filters make ``N*groups`` output channels;
``random:N`` and weight files give exactly ``N`` (or ``M``) output channels.

Everything is checked before anything runs: :func:`plan` walks the stack with
the input shape and reports the first layer whose output would be empty, a
weight file of the wrong shape or a malformed option, naming the layer.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .conv2d import conv2d
from .errors import UsageError
from .modes import normalize_pad, pad_before_after

#: Named filter banks -> kernel specs (resolved by convtool.kernels).
BANKS: dict[str, tuple[str, ...]] = {
    "edges": ("sobel-x", "sobel-y", "laplacian"),
    "gabor": tuple(f"gabor:theta={t}" for t in (0, 45, 90, 135)),
    "log": ("log:sigma=1", "log:sigma=2", "log:sigma=3"),
}

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "abs")
LAYER_TYPES = ("conv", *ACTIVATIONS, "pool", "norm")
INITS = ("he", "xavier")

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
_COMMON_KEYS = ("type", "name")


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class LayerSpec:
    """One layer as written: its type and its validated options.

    ``options`` holds only keys valid for ``kind``; :func:`plan` turns a spec
    into a :class:`Layer` once the input shape is known.
    """

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    def describe(self) -> str:
        """Short text such as ``conv(random:8, seed=1)``."""
        args = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.kind}({args})" if args else self.kind


@dataclass(frozen=True)
class Net:
    """A network: layer specs plus how to read the input.

    Attributes
    ----------
    layers : tuple of LayerSpec
    name : str
    input_scale : float
        The image is multiplied by this before the first layer (``1/255`` maps
        8-bit values to 0..1).
    input_shape : tuple (C, H, W) or None
        Default input for ``convtool summary`` when ``--input`` is not given.
    base_dir : Path
        Directory that relative weight-file paths are read from.
    """

    layers: tuple[LayerSpec, ...]
    name: str = "net"
    input_scale: float = 1.0
    input_shape: tuple[int, int, int] | None = None
    base_dir: Path = field(default_factory=Path)


def _where(index: int, kind: str) -> str:
    return f"layer {index} ({kind})"


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


def make_layer(
    index: int, kind: str, options: dict[str, Any], name: str | None = None
) -> LayerSpec:
    """Validate one layer's options and return its :class:`LayerSpec`.

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
    kind = str(kind).strip().lower().replace("-", "_")
    aliases = {"leakyrelu": "leaky_relu", "standardize": "norm", "standardise": "norm"}
    kind = aliases.get(kind, kind)
    where = _where(index, kind)
    if kind not in LAYER_TYPES:
        raise UsageError(f"layer {index}: unknown type {kind!r}; use {', '.join(LAYER_TYPES)}")
    opts: dict[str, Any] = {}
    if kind == "conv":
        _check_keys(where, options, _CONV_KEYS)
        filters = options.get("filters")
        weights = options.get("weights")
        if (filters is None) == (weights is None):
            raise UsageError(
                f"{where}: give exactly one of filters (a bank: {', '.join(BANKS)}, "
                "random:N or kernel specs) or weights (a .npy/.npz file)"
            )
        if weights is not None:
            opts["weights"] = str(weights)
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
                init = str(options.get("init", "he")).lower()
                init = {"kaiming": "he", "glorot": "xavier"}.get(init, init)
                if init not in INITS:
                    raise UsageError(f"{where}: init must be he or xavier, got {init!r}")
                opts["init"] = init
            else:
                for key in ("size", "seed", "init"):
                    if key in options:
                        raise UsageError(
                            f"{where}: {key} applies only to random:N filters; "
                            "named filters have their own size"
                        )
                opts["filters"] = specs
        bias = options.get("bias", True)
        if isinstance(bias, (list, tuple)):
            opts["bias"] = tuple(_as_float(where, "bias", b) for b in bias)
        elif isinstance(bias, bool) or str(bias).lower() in ("true", "false"):
            opts["bias"] = _as_bool(where, "bias", bias)
        else:
            opts["bias"] = _as_float(where, "bias", bias)
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
    elif kind in ACTIVATIONS:
        allowed = ("alpha",) if kind == "leaky_relu" else ()
        _check_keys(where, options, allowed)
        if kind == "leaky_relu":
            opts["alpha"] = _as_float(where, "alpha", options.get("alpha", 0.01))
    elif kind == "norm":
        _check_keys(where, options, ("eps",))
        opts["eps"] = _as_float(where, "eps", options.get("eps", 1e-5))
    else:  # pool
        _check_keys(where, options, _POOL_KEYS)
        mode = str(options.get("mode", "max")).strip().lower()
        mode = {"average": "avg", "mean": "avg"}.get(mode, mode)
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
        else:
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
    return LayerSpec(kind=kind, options=opts, name=str(name) if name else None)


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
    layers: list[LayerSpec] = []
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
        kind = match.group(1).lower().replace("-", "_")
        index = len(layers) + 1
        where = _where(index, kind)
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
                options[key.strip().lower()] = value.strip()
            elif positional:
                slot = positional.pop(0)
                options[slot] = arg
            else:
                raise UsageError(f"{where}: unexpected argument {arg!r}; use key=value")
        if kind == "conv" and "filters" in options:
            source = str(options["filters"])
            if source.lower().endswith((".npy", ".npz")):
                options["weights"] = options.pop("filters")
        layers.append(make_layer(index, kind, options))
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
    """Load a network from a TOML file, or parse an inline layer string.

    The TOML form has optional top-level ``name``, ``input`` (``"32x32x1"``)
    and ``input_scale`` (a number or ``"1/255"``), and one ``[[layers]]``
    table per layer with ``type`` and that type's options.

    Raises
    ------
    UsageError
        A missing file, malformed TOML, or a bad layer (named by index).

    Examples
    --------
    >>> load_net("conv(edges) abs").layers[1].kind
    'abs'
    """
    if isinstance(source, Net):
        return source
    text = os.fspath(source)
    path = Path(text)
    looks_like_file = text.lower().endswith(".toml") or (path.suffix and "(" not in text)
    if not looks_like_file and not path.is_file():
        return parse_layers(text)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"network file {text} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read network file {text}: {exc.strerror}") from None
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
        options = {k: v for k, v in entry.items() if k not in _COMMON_KEYS}
        try:
            layers.append(make_layer(i, entry["type"], options, entry.get("name")))
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    shape = parse_shape(doc["input"]) if "input" in doc else None
    scale = _as_float(where, "input_scale", doc.get("input_scale", 1.0))
    return Net(
        layers=tuple(layers),
        name=str(doc.get("name", name)),
        input_scale=scale,
        input_shape=shape,
        base_dir=base_dir or Path.cwd(),
    )


# ---------------------------------------------------------------------- planning


@dataclass
class Layer:
    """A layer resolved against its input shape: weights, sizes and arithmetic.

    Attributes
    ----------
    index, kind, name : int, str, str
        1-based position, type, and display name (``conv``, ``relu``, ...).
    spec : LayerSpec
    in_shape, out_shape : tuple (C, H, W)
    params : int
        Weights plus biases.
    macs : int
        Multiply-accumulates (conv only; 0 for the others).
    rf, jump : int, float
        Receptive-field size (pixels of the input) and the distance in input
        pixels between neighbouring outputs.
    fc_params : int or None
        For conv layers: weights plus biases of a fully connected layer with
        the same input and output sizes.
    labels : tuple of str
        One label per output channel (the filter's name when it has one).
    weight, bias : numpy.ndarray or None
        Conv only: (M, C/groups, K, K) and (M,) float32.
    """

    index: int
    kind: str
    name: str
    spec: LayerSpec
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    params: int = 0
    macs: int = 0
    rf: int = 1
    jump: float = 1.0
    fc_params: int | None = None
    labels: tuple[str, ...] = ()
    detail: str = ""
    source: str = ""
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    groups: int = 1
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    pad_mode: str = "constant"

    @property
    def title(self) -> str:
        """``"03 pool max 2x2/2 -> 6x127x127"`` style heading."""
        c, h, w = self.out_shape
        parts = [f"{self.index:02d}", self.label, self.detail, f"-> {c}x{h}x{w}"]
        return " ".join(p for p in parts if p)

    @property
    def label(self) -> str:
        """Name, type (when the name differs) and filter source: ``C1 conv random:6 he``."""
        parts = [self.name] + ([self.kind] if self.kind != self.name else []) + [self.source]
        return " ".join(p for p in parts if p)

    @property
    def stem(self) -> str:
        """File stem for this layer's picture: ``01_conv``, ``02_relu``."""
        return f"{self.index:02d}_{self.kind}"


def _fit(stack: list[np.ndarray]) -> np.ndarray:
    """Centre 2-D kernels of different sizes in one (N, K, K) zero-padded stack."""
    k = max(max(a.shape) for a in stack)
    out = np.zeros((len(stack), k, k), dtype=np.float32)
    for i, a in enumerate(stack):
        top = (k - a.shape[0]) // 2
        left = (k - a.shape[1]) // 2
        out[i, top : top + a.shape[0], left : left + a.shape[1]] = a
    return out


def named_filters(specs: Sequence[str], where: str = "conv") -> tuple[np.ndarray, tuple[str, ...]]:
    """Resolve bank names and kernel specs into an (N, K, K) stack and N labels.

    Examples
    --------
    >>> w, labels = named_filters(["edges"])
    >>> w.shape[0] == len(labels)
    True
    """
    from . import kernels

    stack: list[np.ndarray] = []
    labels: list[str] = []
    for spec in specs:
        names = BANKS.get(spec.strip().lower(), (spec,))
        for one in names:
            try:
                ks = kernels.resolve(one)
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
            single = len(ks.weights) == 1
            for label, weight in zip(ks.labels, ks.weights, strict=True):
                arr = np.asarray(weight, dtype=np.float32)
                if arr.ndim != 2:
                    raise UsageError(f"{where}: kernel {one!r} is not 2-D")
                stack.append(arr)
                labels.append(one if single else str(label))
    return _fit(stack), tuple(labels)


def _load_weights(path: Path, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{where}: weights file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{where}: cannot read weights file {path}: {exc}") from None
    bias = None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.keys())
            key = "weight" if "weight" in keys else "weights" if "weights" in keys else None
            if key is None:
                arrays = [k for k in keys if k != "bias"]
                if len(arrays) != 1:
                    raise UsageError(
                        f"{where}: {path.name} must hold an array named 'weight' (and optionally "
                        f"'bias'); it holds {', '.join(keys) or 'nothing'}"
                    )
                key = arrays[0]
            weight = np.asarray(data[key])
            if "bias" in keys:
                bias = np.asarray(data["bias"])
    else:
        weight = np.asarray(data)
    if not np.issubdtype(weight.dtype, np.number) or np.iscomplexobj(weight):
        raise UsageError(f"{where}: weights in {path.name} must be real numbers")
    return weight.astype(np.float32), (None if bias is None else bias.astype(np.float32))


def _conv_layer(
    spec: LayerSpec,
    index: int,
    in_shape: tuple[int, int, int],
    base_dir: Path,
    rf: int,
    jump: float,
) -> Layer:
    where = _where(index, "conv")
    o = spec.options
    c, h, w = in_shape
    groups = c if o["groups"] == "depthwise" else o["groups"]
    if c % groups:
        raise UsageError(f"{where}: groups={groups} does not divide the {c} input channels")
    cg = c // groups
    bias_given: np.ndarray | None = None
    if "weights" in o:
        path = Path(o["weights"])
        if not path.is_absolute():
            path = base_dir / path
        weight, bias_given = _load_weights(path, where)
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
        labels = tuple(f"f{m}" for m in range(weight.shape[0]))
        source = path.name
    elif "random" in o:
        m, k = o["random"], o["size"]
        if m % groups:
            raise UsageError(f"{where}: random:{m} filters do not split into groups={groups}")
        fan_in, fan_out = cg * k * k, m * k * k
        std = math.sqrt(2.0 / fan_in) if o["init"] == "he" else math.sqrt(2.0 / (fan_in + fan_out))
        rng = np.random.default_rng(o["seed"])
        weight = (rng.standard_normal((m, cg, k, k)) * std).astype(np.float32)
        labels = tuple(f"r{i}" for i in range(m))
        source = f"random:{m} {o['init']}"
    else:
        stack, names = named_filters(o["filters"], where)
        n, k, _ = stack.shape
        weight = np.repeat(stack[:, None] / np.float32(cg), cg, axis=1)
        weight = np.tile(weight, (groups, 1, 1, 1))
        if groups > 1:
            labels = tuple(f"{name}@g{g}" for g in range(groups) for name in names)
        else:
            labels = names
        source = "|".join(o["filters"])
    m, _, k, _ = weight.shape
    if not np.all(np.isfinite(weight)):
        raise UsageError(f"{where}: weights contain NaN or infinity")
    bias_opt = o["bias"]
    if bias_given is not None:
        if bias_opt is False:
            bias_given = None
        elif bias_given.shape != (m,):
            raise UsageError(f"{where}: bias has shape {bias_given.shape}; expected ({m},)")
    if bias_given is not None:
        bias = bias_given
    elif isinstance(bias_opt, tuple):
        if len(bias_opt) != m:
            raise UsageError(f"{where}: {len(bias_opt)} bias values for {m} filters")
        bias = np.asarray(bias_opt, dtype=np.float32)
    elif bias_opt is False:
        bias = None
    else:
        bias = np.full(m, 0.0 if bias_opt is True else bias_opt, dtype=np.float32)
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
    out_shape = (m, oh, ow)
    params = weight.size + (m if bias is not None else 0)
    in_size, out_size = c * h * w, m * oh * ow
    extra = f" groups {groups}" if groups > 1 else ""
    d_text = f" dilation {d}" if d > 1 else ""
    if pad_text == "constant":
        pad_text = "zero" if o["pad_value"] == 0 else f"constant {o['pad_value']:g}"
    return Layer(
        index=index,
        kind="conv",
        name=spec.name or "conv",
        spec=spec,
        in_shape=in_shape,
        out_shape=out_shape,
        params=int(params),
        macs=int(m * cg * k * k * oh * ow),
        rf=rf + span * jump,
        jump=jump * s,
        fc_params=int(in_size * out_size + out_size),
        labels=labels,
        detail=f"{k}x{k}/{s} {pad_text}{d_text}{extra}",
        source=source,
        weight=np.ascontiguousarray(weight, dtype=np.float32),
        bias=bias,
        groups=groups,
        padding=padding,
        pad_mode=pad_mode,
    )


def _pool_layer(
    spec: LayerSpec, index: int, in_shape: tuple[int, int, int], rf: int, jump: float
) -> Layer:
    from .modes import pool_output_size

    where = _where(index, "pool")
    o = spec.options
    c, h, w = in_shape
    mode = o["mode"]
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
        new_rf = rf + (math.ceil(ratio) - 1) * jump  # regions are ceil(ratio) pixels at most
        detail = f"fractional {h / oh:.3g}x"
        return Layer(
            index, "pool", spec.name or "pool", spec, in_shape, (c, oh, ow),
            rf=new_rf, jump=jump * ratio, labels=(), detail=detail,
        )  # fmt: skip
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
    return Layer(
        index=index,
        kind="pool",
        name=spec.name or "pool",
        spec=spec,
        in_shape=in_shape,
        out_shape=(c, oh, ow),
        rf=rf + (f - 1) * jump,
        jump=jump * s,
        detail=f"{mode} {f}x{f}/{s}{pad_text}{' ceil' if o['ceil'] else ''}",
        padding=(padding,) * 4,
    )


def plan(
    net: Net | str | os.PathLike, input_shape: tuple[int, int, int] | str | None = None
) -> list[Layer]:
    """Resolve every layer against the input shape, before anything runs.

    Parameters
    ----------
    net : Net, path to a TOML file, or inline layer string
    input_shape : (C, H, W), ``"HxWxC"`` text, or None for the net's own ``input``

    Returns
    -------
    list of Layer
        Weights loaded and checked, output shapes, parameters, MACs,
        receptive field and jump for each layer.

    Raises
    ------
    UsageError
        At the first layer that cannot work (an output below 1 pixel, a
        weight file of the wrong shape, ...), naming it.

    Examples
    --------
    >>> layers = plan("conv(random:6,size=5) tanh pool(avg,2) conv(random:16,size=5)", "32x32x1")
    >>> [(layer.out_shape, layer.params) for layer in layers if layer.kind == "conv"]
    [((6, 28, 28), 156), ((16, 10, 10), 2416)]
    """
    net = load_net(net)
    if input_shape is None:
        if net.input_shape is None:
            raise UsageError("no input size: pass --input HxWxC (e.g. 224x224x3)")
        shape = net.input_shape
    elif isinstance(input_shape, str):
        shape = parse_shape(input_shape)
    else:
        shape = tuple(int(v) for v in input_shape)  # type: ignore[assignment]
        if len(shape) != 3 or min(shape) < 1:
            raise UsageError(f"input shape {input_shape!r} must be (C, H, W) with sizes >= 1")
    layers: list[Layer] = []
    rf: float = 1
    jump: float = 1
    for index, spec in enumerate(net.layers, start=1):
        if spec.kind == "conv":
            layer = _conv_layer(spec, index, shape, net.base_dir, rf, jump)
        elif spec.kind == "pool":
            layer = _pool_layer(spec, index, shape, rf, jump)
        else:
            detail = f"alpha {spec.options['alpha']:g}" if spec.kind == "leaky_relu" else ""
            layer = Layer(index, spec.kind, spec.name or spec.kind, spec, shape, shape,
                          rf=rf, jump=jump, detail=detail)  # fmt: skip
        if layer.kind != "conv":
            prev = layers[-1].labels if layers else ()
            layer.labels = prev if len(prev) == layer.out_shape[0] else ()
        if not layer.labels:
            layer.labels = tuple(f"c{i}" for i in range(layer.out_shape[0]))
        layers.append(layer)
        shape = layer.out_shape
        if float(layer.jump).is_integer() and float(layer.rf).is_integer():
            layer.rf, layer.jump = int(layer.rf), int(layer.jump)
        rf, jump = layer.rf, layer.jump
    return layers


# ---------------------------------------------------------------------- running


def _pool_maps(x: np.ndarray, spec: LayerSpec, out_shape: tuple[int, int, int]) -> np.ndarray:
    from .pooling import pool

    o = dict(spec.options)
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
    if out.shape != out_shape:
        raise UsageError(
            f"layer {spec.name or 'pool'}: pooling gave {out.shape}, planned {out_shape} (a bug)"
        )
    return np.ascontiguousarray(out)


def run_layer(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Apply one planned layer to a (C, H, W) float32 array.

    Examples
    --------
    >>> import numpy as np
    >>> (layer,) = plan("leaky_relu(0.5)", (1, 1, 2))
    >>> run_layer(layer, np.array([[[-2.0, 3.0]]], np.float32)).tolist()
    [[[-1.0, 3.0]]]
    """
    kind = layer.kind
    if kind == "conv":
        return conv2d(
            x,
            layer.weight,
            layer.bias,
            stride=layer.spec.options["stride"],
            dilation=layer.spec.options["dilation"],
            groups=layer.groups,
            padding=layer.padding,
            pad_mode=layer.pad_mode,
            pad_value=layer.spec.options["pad_value"],
        )
    if kind == "relu":
        return np.maximum(x, np.float32(0))
    if kind == "leaky_relu":
        alpha = np.float32(layer.spec.options["alpha"])
        return np.where(x >= 0, x, alpha * x).astype(np.float32)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "sigmoid":
        return (np.float32(0.5) * (np.tanh(np.float32(0.5) * x) + np.float32(1))).astype(np.float32)
    if kind == "abs":
        return np.abs(x)
    if kind == "norm":
        mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
        std = x.std(axis=(1, 2), keepdims=True, dtype=np.float64)
        return ((x - mean) / (std + layer.spec.options["eps"])).astype(np.float32)
    if kind == "pool":
        return _pool_maps(x, layer.spec, layer.out_shape)
    raise UsageError(f"layer {layer.index}: unknown type {kind!r}")  # pragma: no cover


def as_chw(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, C) image as a float32 (C, H, W) array.

    Examples
    --------
    >>> import numpy as np
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


def feature_maps(image: np.ndarray, net: Net | str | os.PathLike) -> list[tuple[Layer, np.ndarray]]:
    """Run ``image`` through ``net`` and return every layer's output.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
        Values on the image's own scale; the net's ``input_scale`` is applied.
    net : Net, path to a TOML file, or inline layer string

    Returns
    -------
    list of (Layer, numpy.ndarray)
        One entry per layer: the planned layer and its float32 (C, H, W) output.

    Raises
    ------
    UsageError
        From :func:`plan`, before any layer runs.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    >>> maps = feature_maps(img, "conv(random:4,size=3) relu pool(max,2)")
    >>> [(layer.name, out.shape) for layer, out in maps]
    [('conv', (4, 30, 30)), ('relu', (4, 30, 30)), ('pool', (4, 15, 15))]
    """
    net = load_net(net)
    x = as_chw(image)
    if not np.all(np.isfinite(x)):
        raise UsageError("the image contains NaN or infinity")
    layers = plan(net, x.shape)
    if net.input_scale != 1.0:
        x = x * np.float32(net.input_scale)
    results: list[tuple[Layer, np.ndarray]] = []
    for layer in layers:
        x = run_layer(layer, x)
        results.append((layer, x))
    return results
