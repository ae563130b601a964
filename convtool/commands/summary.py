"""``convtool summary``: a network's shapes, parameters, receptive fields and MACs.

Imports only Typer and the standard library at module level; the network code
(numpy, no Numba) and rich are imported when the command runs.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from ._common import cli_errors

HELP = """\
Print a network's layer table: output C x H x W (a flat vector: N),
kernel/stride/pad, parameters as PyTorch counts them (weights + biases: a 5x5
filter on one channel has 26; batch norm's scale and shift, not its running
statistics), receptive field along the longest path and jump (input pixels
between neighbouring outputs), multiply-accumulates, and for each conv layer the
weights + biases a fully connected layer with the same input and output sizes
would need. A graph (branches, add, concat) also shows each node's name and the
inputs it reads. Below the table: the memory a run needs with every map kept.
Nothing runs; a net that breaks (an output below one pixel, a weight file of the
wrong shape, inputs that do not fit) is reported at the layer that breaks.

[cyan]convtool summary samples/nets/lenet.toml --input 32x32x1[/]

[cyan]convtool summary samples/nets/inception.toml[/]

[cyan]convtool summary "conv(random:8,size=3) relu pool(max,2)" --input 224x224x3[/]
"""


def _human(n: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g}"


def _num(v: float | None) -> str:
    if v is None:  # no receptive field or jump (a flat vector)
        return ""
    return f"{int(v):,}" if float(v).is_integer() else f"{v:.3g}"


def is_chain(layers: list[Any]) -> bool:
    """True when every layer reads only the one before it (the image for the first)."""
    prev = "input"
    for layer in layers:
        if tuple(layer.inputs) != (prev,):
            return False
        prev = layer.name
    return True


def rows(layers: list[Any], input_shape: tuple[int, int, int]) -> list[dict[str, Any]]:
    """One JSON-ready record per node (input first); ``inputs`` names the values it reads."""
    out: list[dict[str, Any]] = [
        {"index": 0, "layer": "input", "output": list(input_shape), "rf": 1, "jump": 1,
         "params": 0}
    ]  # fmt: skip
    for layer in layers:
        out.append(
            {
                "index": layer.index,
                "layer": layer.name,
                "type": layer.kind,
                "inputs": list(layer.inputs),
                "source": layer.source,
                "detail": layer.detail,
                "output": list(layer.out_shape),
                "params": layer.params,
                "buffers": layer.buffers,
                "rf": layer.rf,
                "jump": layer.jump,
                "macs": layer.macs,
                "fc_params": layer.fc_params,
            }
        )
    return out


#: The layer table's columns for a chain: heading and alignment (``summary`` and index.html).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("#", "right"),
    ("layer", "left"),
    ("kernel/stride pad", "left"),
    ("output C×H×W", "right"),
    ("params", "right"),
    ("RF", "right"),
    ("jump", "right"),
    ("MACs", "right"),
    ("FC equivalent", "right"),
)
#: A graph's columns: each node's unique name, its type, and the inputs it reads.
GRAPH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("#", "right"),
    ("name", "left"),
    ("type", "left"),
    ("kernel/stride pad", "left"),
    ("inputs", "left"),
    ("output", "right"),
    *COLUMNS[4:],
)


def columns(layers: list[Any]) -> tuple[tuple[str, str], ...]:
    """:data:`COLUMNS` for a chain, :data:`GRAPH_COLUMNS` for a graph (branches, joins)."""
    return COLUMNS if is_chain(layers) else GRAPH_COLUMNS


def table_rows(
    layers: list[Any], input_shape: tuple[int, int, int]
) -> tuple[list[list[str]], list[str]]:
    """The layer table as text in :func:`columns` order: input and layers, then the total."""
    from ..network.graph import shape_text

    chain = is_chain(layers)

    def row(index: str, names: list[str], detail: str, inputs: str, rest: list[str]) -> list[str]:
        if chain:
            return [index, " ".join(p for p in names if p), detail, *rest]
        return [index, names[0], " ".join(p for p in names[1:] if p), detail, inputs, *rest]

    body = [row("", ["input"], "", "", [shape_text(input_shape, "×"), "0", "1", "1", "", ""])]
    total_params = total_macs = 0
    for layer in layers:
        total_params += layer.params
        total_macs += layer.macs
        names = [layer.label] if chain else [layer.name, layer.kind, layer.source]
        rest = [
            shape_text(layer.out_shape, "×"),
            f"{layer.params:,}",
            _num(layer.rf),
            _num(layer.jump),
            _human(layer.macs) if layer.macs else "",
            _human(layer.fc_params) if layer.fc_params is not None else "",
        ]
        body.append(row(str(layer.index), names, layer.detail, ", ".join(layer.inputs), rest))
    total = row("", ["total"], "", "", ["", f"{total_params:,}", "", "", _human(total_macs), ""])
    return body, total


def memory_line(layers: list[Any], input_shape: tuple[int, int, int]) -> str:
    """``memory with every map kept: about 12.8 MiB (maps ..., weights ..., scratch ...)``."""
    from ..network import memory_estimate
    from ..network.walk import human_bytes

    mem = memory_estimate(layers, input_shape)
    return (
        f"memory with every map kept: about {human_bytes(mem.total)} (maps "
        f"{human_bytes(mem.maps)}, weights {human_bytes(mem.weights)}, scratch "
        f"{human_bytes(mem.work)})"
    )


def print_summary(
    layers: list[Any], input_shape: tuple[int, int, int], title: str, *, stderr: bool = False
) -> None:
    """Print the rich layer table for planned ``layers``, the memory estimate below.

    On stdout, or on stderr with ``stderr=True`` (a command whose stdout carries
    lines for programs).
    """
    from rich.console import Console
    from rich.table import Table

    cols = columns(layers)
    table = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in cols:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    body, total = table_rows(layers, input_shape)
    for line in body:
        table.add_row(*line)
    table.add_section()
    table.add_row(*total)
    table.caption = memory_line(layers, input_shape)
    table.caption_justify = "left"
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=160 if cols is COLUMNS else 200)
    console.print(table)


@cli_errors
def summary(
    net: str = typer.Argument(
        ..., metavar="NET", help="A network TOML file, or an inline layer string (a chain)."
    ),
    input_shape: str = typer.Option(
        None,
        "--input",
        "-i",
        metavar="HxWxC",
        help="Input size, e.g. 224x224x3 or 32x32 (one channel); default: the net's 'input'.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the rows as one JSON array (each with its inputs)."
    ),
    until: str = typer.Option(
        None, "--until", metavar="NODE", help="Stop after the node or layer of this name."
    ),
) -> None:
    """Print a network's layer table without running it."""
    from ..network import load_net, parse_shape, plan
    from ..network.walk import up_to

    spec = up_to(net, until) if until else load_net(net)
    if hasattr(spec, "at_shape") and input_shape:
        spec = spec.at_shape(input_shape)  # ONNX: "HxW" takes the model's own channels
        shape = spec.input_shape
    else:
        shape = parse_shape(input_shape) if input_shape else spec.input_shape
    layers = plan(spec, shape)
    assert shape is not None  # plan raised otherwise
    if as_json:
        typer.echo(json.dumps(rows(layers, shape)))
        return
    c, h, w = shape
    print_summary(layers, shape, f"{spec.name}: input {h}x{w}x{c}")


def register(app: typer.Typer) -> None:
    """Add ``summary`` to the app."""
    app.command(
        "summary",
        help=HELP,
        short_help="Print a network's shapes, parameters, receptive fields and MACs.",
    )(summary)
