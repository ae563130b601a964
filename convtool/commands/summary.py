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
Print a network's layer table: output C x H x W, kernel/stride/pad, parameters
(weights + biases: a 5x5 filter on one channel has 26), receptive field and jump
(input pixels between neighbouring outputs), multiply-accumulates, and for each
conv layer the weights + biases a fully connected layer with the same input and
output sizes would need. Nothing runs; a stack that breaks (an output below one
pixel, a weight file of the wrong shape) is reported at the layer that breaks.

[cyan]convtool summary samples/nets/lenet.toml --input 32x32x1[/]

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


def rows(layers: list[Any], input_shape: tuple[int, int, int]) -> list[dict[str, Any]]:
    """One JSON-ready record per layer (input first)."""
    c, h, w = input_shape
    out: list[dict[str, Any]] = [
        {"index": 0, "layer": "input", "output": [c, h, w], "rf": 1, "jump": 1, "params": 0}
    ]
    for layer in layers:
        out.append(
            {
                "index": layer.index,
                "layer": layer.name,
                "type": layer.kind,
                "source": layer.source,
                "detail": layer.detail,
                "output": list(layer.out_shape),
                "params": layer.params,
                "rf": layer.rf,
                "jump": layer.jump,
                "macs": layer.macs,
                "fc_params": layer.fc_params,
            }
        )
    return out


#: The layer table's columns: heading and alignment (``summary`` and index.html).
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


def table_rows(
    layers: list[Any], input_shape: tuple[int, int, int]
) -> tuple[list[list[str]], list[str]]:
    """The layer table as text in :data:`COLUMNS` order: input and layers, then the total."""
    from ..network.graph import shape_text

    body = [["", "input", "", shape_text(input_shape, "×"), "0", "1", "1", "", ""]]
    total_params = total_macs = 0
    for layer in layers:
        total_params += layer.params
        total_macs += layer.macs
        body.append(
            [
                str(layer.index),
                layer.label,
                layer.detail,
                shape_text(layer.out_shape, "×"),
                f"{layer.params:,}",
                _num(layer.rf),
                _num(layer.jump),
                _human(layer.macs) if layer.macs else "",
                _human(layer.fc_params) if layer.fc_params is not None else "",
            ]
        )
    total = ["", "total", "", "", f"{total_params:,}", "", "", _human(total_macs), ""]
    return body, total


def print_summary(layers: list[Any], input_shape: tuple[int, int, int], title: str) -> None:
    """Print the rich layer table for planned ``layers`` to stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    body, total = table_rows(layers, input_shape)
    for row in body:
        table.add_row(*row)
    table.add_section()
    table.add_row(*total)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)


@cli_errors
def summary(
    net: str = typer.Argument(
        ..., metavar="NET", help="A network TOML file, or an inline layer string."
    ),
    input_shape: str = typer.Option(
        None,
        "--input",
        "-i",
        metavar="HxWxC",
        help="Input size, e.g. 224x224x3 or 32x32 (one channel); default: the net's 'input'.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as one JSON array."),
    until: str = typer.Option(
        None, "--until", metavar="NODE", help="Stop after the node or layer of this name."
    ),
) -> None:
    """Print a network's layer table without running it."""
    from ..network import load_net, parse_shape, plan
    from ..network.walk import up_to

    spec = up_to(net, until) if until else load_net(net)
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
