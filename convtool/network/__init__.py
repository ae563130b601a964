"""Convolutional networks as graphs: specs, planning, operators and feature maps.

A network is a graph of named nodes, written as a TOML file, an inline
chain, or (through :mod:`convtool.network.onnx_import`) an ONNX model::

    conv(edges) relu pool(max,2) conv(random:8,seed=1) relu pool(max,2)

Rooms
-----
``spec``     text -> :class:`Net` of :class:`Node` records (TOML, inline ``--layers``),
             each layer type's options checked once (:data:`spec.LAYER_OPTIONS`).
``graph``    the planner: names, inputs, topological order, and through each
             operator's ``plan`` every node's output shape, parameters, MACs,
             receptive field and jump (:class:`Layer`); the memory estimate.
``ops``      the operator registry :data:`OPS`: node type -> :class:`~ops.Op`
             (``plan`` and ``run`` functions); heavy members call
             :func:`convtool.conv2d.conv2d` and :func:`convtool.pooling.pool`.
``weights``  named filter banks, seeded random init, ``.npy``/``.npz`` files.
``walk``     the walker: a dict of named values, nodes in order, each run by
             its type's operator; :func:`feature_maps`.

The graph interface (TOML and ONNX alike)
-----------------------------------------
- A :class:`Node` is ``kind`` (the operator's key in :data:`OPS`), ``options``
  (parsed attributes: numbers, tuples, absolute paths, numpy arrays for
  constant tensors), ``name`` (unique; it names the node's one output value)
  and ``inputs`` (names of earlier values; ``"input"`` is the image). A node
  without a name is named after its type (``conv``, ``conv_2``); a node
  without inputs reads the node before it.
- A :class:`Net` is those nodes plus ``name``, ``input_scale`` and the
  default ``input_shape`` (C, H, W). A translator builds one directly:
  ``Net(layers=(Node("conv", {...}, "c1", ("input",)), ...), name="model")``.
- Values are float32 arrays of any rank: ``"input"`` is the image as
  (C, H, W) times ``input_scale``; conv-like maps are (C, H, W), flat
  vectors 1-D. A node has exactly one output (split a multi-output operator
  into one node per output).
- :func:`plan` sorts the nodes, checks names and inputs, and calls each
  operator's ``plan(layer, ins) -> shape`` (see :mod:`convtool.network.ops`):
  every shape is known before anything runs, for ``summary`` and for the
  memory estimate. Operators that are not in :data:`OPS` are refused with
  the list of those that are. Rules for every node live in the planner:
  the receptive field and jump of a node with several inputs start from the
  largest of its inputs', labels carry through when the channel count does.
- :func:`walk` runs planned layers; :func:`feature_maps` plans, checks the
  memory (every map is kept: see ``CONVTOOL_MAX_MEMORY``), and walks.

TOML layer types
----------------
Every ``[[layers]]`` table has ``type``, optionally ``name`` and ``inputs``.

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

Everything is checked before anything runs: :func:`plan` walks the graph
with the input shape and reports the first layer whose output would be
empty, a weight file of the wrong shape or a malformed option, naming the
layer.
"""

from __future__ import annotations

from ..conv2d import conv2d
from .graph import INPUT, Layer, Memory, graph_order, memory_estimate, plan, shape_text
from .ops import OPS, Op, register
from .spec import (
    LAYER_TYPES,
    LayerSpec,
    Net,
    Node,
    load_net,
    make_layer,
    net_from_dict,
    parse_layers,
    parse_shape,
)
from .walk import as_chw, check_memory, feature_maps, run_layer, walk
from .weights import BANKS, INITS, named_filters

__all__ = [
    "BANKS",
    "INITS",
    "INPUT",
    "LAYER_TYPES",
    "OPS",
    "Layer",
    "LayerSpec",
    "Memory",
    "Net",
    "Node",
    "Op",
    "as_chw",
    "check_memory",
    "conv2d",
    "feature_maps",
    "graph_order",
    "load_net",
    "make_layer",
    "memory_estimate",
    "named_filters",
    "net_from_dict",
    "parse_layers",
    "parse_shape",
    "plan",
    "register",
    "run_layer",
    "shape_text",
    "walk",
]
