"""``convtool kernels``: list the built-in kernels, print or draw one spec.

Imports only Typer and the standard library at module level; listing and
printing need numpy (through :mod:`convtool.kernels`) and never Numba; ``--png``
imports Pillow when it draws.
"""

from __future__ import annotations

import json
import math
from typing import Any

import typer

from ._common import cli_errors

SPEC_GRAMMAR = """\
A kernel spec is one of:

[bold]NAME[/] a built-in with its defaults: [cyan]sobel[/], [cyan]gaussian[/], [cyan]kirsch[/]

[bold]NAME:VALUE[/] its main parameter: [cyan]gaussian:2[/] (sigma 2), [cyan]box:5[/] (5x5),
[cyan]motion:15[/] (length 15)

[bold]NAME:key=value,...[/] named parameters: [cyan]gabor:theta=45,lambda=8[/],
[cyan]laplacian:neighbours=8[/], [cyan]gaussian:2,size=9[/]

[bold]"ROWS"[/] an inline matrix, rows split by ';' or newlines, numbers by spaces
or commas: [cyan]"1 0 -1; 2 0 -2; 1 0 -1"[/]

[bold]@FILE[/] a text or .csv file of rows of numbers ('#' starts a comment), or a
2-D .npy array: [cyan]@edge.txt[/], [cyan]@k.npy[/]

Names ignore case, '-' and '_' ([cyan]sobel-x[/] = [cyan]sobelx[/]). Weights are correlation
weights; [cyan]convolve[/] rotates them by 180 degrees unless [cyan]--correlate[/]. x points right,
y down, angles are degrees counter-clockwise (0 = right, 90 = up); sobel-x is + where
intensity rises to the right, kirsch-n where the north side is brighter."""

SHOW_HELP = """\
Print a kernel's weights as a matrix ('#' lines give its size, parameters, combine
rule and what --scale auto does), or draw them with --png.

[cyan]convtool kernels show sobel[/]  (both kernels and the magnitude rule)

[cyan]convtool kernels show gaussian:1.5 --exact > g.txt[/]  (reads back as -k @g.txt)

[cyan]convtool kernels show kirsch --png kirsch.png --cell 32[/]

"""

_COMBINE_TEXT = {
    "magnitude": "sqrt of the sum of the squared responses",
    "max": "pixelwise maximum of the responses",
    "sum": "sum of the responses",
}


def register(app: typer.Typer) -> None:
    """Add ``kernels`` (list) and ``kernels show SPEC`` to the app."""
    sub = typer.Typer(
        name="kernels",
        help="List the built-in kernels; `kernels show SPEC` prints or draws one.\n\n"
        + SPEC_GRAMMAR,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    sub.callback(invoke_without_command=True)(kernels_list)
    sub.command("show", help=SHOW_HELP + SPEC_GRAMMAR)(kernels_show)
    app.add_typer(sub, short_help="List the built-in kernels; `kernels show SPEC` draws one.")


@cli_errors
def kernels_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(
        False, "--json", help="Print the registry as one JSON array (for scripts)."
    ),
) -> None:
    """Print the table of built-in kernels: name, size, parameters, meaning, auto scale."""
    if ctx.invoked_subcommand is not None:
        return
    from ..kernels import list_kernels

    rows = list_kernels()
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="convtool kernels",
        caption=(
            "Use NAME, NAME:VALUE (the main parameter, marked *) or NAME:key=value,...; "
            "'auto scale' is what --scale auto does with the result."
        ),
        caption_justify="left",
    )
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("size")
    table.add_column("parameters (defaults)")
    table.add_column("meaning")
    table.add_column("auto scale")
    seen_groups: set[str] = set()
    for row in rows:
        group = row["group"]
        if group is not None:
            if group in seen_groups:
                continue
            seen_groups.add(group)
            members = [r["name"][len(group) + 1 :] for r in rows if r["group"] == group]
            name = f"{group}-DIR"
            meaning = f"one {group} kernel alone; DIR = {' '.join(members)}"
        else:
            name = row["name"]
            meaning = row["meaning"]
            if row["kernels"] > 1:
                meaning += f" [dim]({row['kernels']} kernels, combine {row['combine']})[/]"
            if row["aliases"]:
                meaning += f" [dim](alias {', '.join(row['aliases'])})[/]"
        params = ", ".join(
            ("*" if p["name"] == row["main"] else "")
            + f"{p['name']}={'auto' if p['default'] is None else _fmt_number(p['default'])}"
            for p in row["parameters"]
        )
        table.add_row(name, row["size"], params or "-", meaning, row["scale"])
    console = Console(highlight=False)
    if not console.is_terminal:  # piped: a wide, unwrapped table (scripts use --json)
        console = Console(highlight=False, width=140)
    console.print(table)


@cli_errors
def kernels_show(
    spec: str = typer.Argument(..., help="Kernel spec (see above), e.g. sobel or gaussian:2."),
    png: str | None = typer.Option(
        None,
        "--png",
        help="Draw the weights as an enlarged grid image (negative blue, zero white, "
        "positive red; one panel per kernel of a bank) to this file.",
    ),
    cell: int | None = typer.Option(
        None, "--cell", help="Pixels per weight in the --png image (default: fits ~256 px)."
    ),
    precision: int = typer.Option(
        4, "--precision", "-p", help="Decimals when printing non-integer weights."
    ),
    exact: bool = typer.Option(
        False,
        "--exact",
        help="Print each weight's shortest exact float32 form (the output then reads "
        "back as an @file kernel unchanged).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the spec and weights as JSON."),
) -> None:
    """Print a kernel's weights as a matrix (the combine rule for a bank), or draw them."""
    from ..errors import UsageError
    from ..kernels import resolve

    if precision < 0 or precision > 12:
        raise UsageError(f"--precision must be 0..12, got {precision}")
    if cell is not None and not 1 <= cell <= 256:
        raise UsageError(f"--cell must be 1..256 pixels, got {cell}")
    resolved = resolve(spec)
    if png is not None:
        _draw_png(resolved, png, cell)
        if png != "-":
            typer.echo(f"wrote {png}", err=True)
        return
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "name": resolved.name,
                    "labels": list(resolved.labels),
                    "shape": list(resolved.shape),
                    "combine": resolved.combine,
                    "scale": resolved.scale,
                    "params": dict(resolved.params),
                    "weights": [w.tolist() for w in resolved.weights],
                }
            )
        )
        return
    typer.echo(_format_spec(resolved, precision=precision, exact=exact), nl=False)


def _fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _format_spec(resolved: Any, *, precision: int = 4, exact: bool = False) -> str:
    """The text ``kernels show`` prints: '#' header lines, then each matrix."""
    import numpy as np

    rows, cols = resolved.shape
    lines = [f"# {resolved.name}: {rows}x{cols}"]
    if resolved.params:
        lines[0] += ", " + ", ".join(f"{k}={_fmt_number(v)}" for k, v in resolved.params)
    if resolved.count > 1:
        lines.append(
            f"# {resolved.count} kernels, combine {resolved.combine}: "
            f"{_COMBINE_TEXT.get(resolved.combine, resolved.combine)}"
        )
    from ..scaling import AUTO

    lines.append(f"# --scale auto = {AUTO[resolved.scale]}")
    for label, weights in zip(resolved.labels, resolved.weights, strict=True):
        total = float(np.float64(weights).sum())
        if resolved.count > 1 or label != resolved.name:
            lines.append(f"# {label} (sum {_fmt_sum(total)})")
        else:
            lines.append(f"# sum {_fmt_sum(total)}")
        lines.extend(_format_matrix(weights, precision=precision, exact=exact))
    return "\n".join(lines) + "\n"


def _fmt_sum(total: float) -> str:
    if abs(total) < 1e-6:
        return "0"
    return f"{total:.6g}"


def _format_matrix(weights: Any, *, precision: int, exact: bool) -> list[str]:
    import numpy as np

    values = np.asarray(weights, dtype=np.float32)
    if np.all(values == np.round(values)) and np.all(np.abs(values) < 1e7):
        cells = [[str(int(v)) for v in row] for row in values]
    elif exact:
        cells = [[_exact(v) for v in row] for row in values]
    else:
        cells = []
        for row in values:
            text = [f"{float(v):.{precision}f}" for v in row]
            # a tiny negative rounds to "-0.0000": show it as zero
            cells.append([t[1:] if t.startswith("-") and float(t) == 0 else t for t in text])
    width = max(len(c) for row in cells for c in row)
    return [" ".join(c.rjust(width) for c in row) for row in cells]


def _exact(value: Any) -> str:
    import numpy as np

    v = np.float32(value)
    if v == 0:
        return "0"
    if 1e-4 <= abs(v) < 1e7:
        return np.format_float_positional(v, unique=True, trim="-")
    return np.format_float_scientific(v, unique=True, trim="-")


# ---------------------------------------------------------------------------
# --png

_NEG = (33, 102, 172)  # blue, the strongest negative weight
_POS = (178, 24, 43)  # red, the strongest positive weight
_GRID = (210, 210, 210)
_FRAME = (90, 90, 90)


def _draw_png(resolved: Any, dest: str, cell: int | None) -> None:
    """Render every kernel of ``resolved`` as a coloured grid and write it atomically."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from ..io import write_image

    stack = np.stack([np.asarray(w, dtype=np.float64) for w in resolved.weights])
    count, rows, cols = stack.shape
    if cell is None:
        cell = int(min(64, max(6, round(256 / max(rows, cols)))))
    vmax = float(np.abs(stack).max()) or 1.0

    per_row = count if count <= 4 else math.ceil(count / 2)
    grid_rows = math.ceil(count / per_row)
    try:
        font = ImageFont.load_default(size=max(10, min(16, cell // 3)))
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    label_h = 24
    gap = 12
    pw, ph = cols * cell + 1, rows * cell + 1
    width = gap + per_row * (pw + gap)
    footer_h = 20
    height = gap + grid_rows * (label_h + ph + gap) + footer_h
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)

    for index in range(count):
        gx, gy = index % per_row, index // per_row
        x0 = gap + gx * (pw + gap)
        y0 = gap + gy * (label_h + ph + gap) + label_h
        label = resolved.labels[index]
        if count == 1 and not resolved.name.startswith("@"):
            label = resolved.name  # with its parameters
        draw.text((x0, y0 - label_h + 2), label, fill=(0, 0, 0), font=font)
        weights = stack[index]
        for r in range(rows):
            for c in range(cols):
                colour = _diverging(weights[r, c] / vmax)
                box = (x0 + c * cell, y0 + r * cell, x0 + (c + 1) * cell, y0 + (r + 1) * cell)
                draw.rectangle(box, fill=colour, outline=_GRID if cell >= 6 else None)
                if cell >= 36 and rows * cols <= 121:
                    _draw_value(draw, font, box, weights[r, c], colour)
        draw.rectangle((x0, y0, x0 + pw - 1, y0 + ph - 1), outline=_FRAME)

    legend = f"blue -{vmax:.4g} .. white 0 .. red +{vmax:.4g}"
    draw.text((gap, height - footer_h), legend, fill=(60, 60, 60), font=font)
    pixels = np.asarray(image, dtype=np.float32)
    write_image(dest, pixels, scale="clip")


def _diverging(t: float) -> tuple[int, int, int]:
    """-1 -> blue, 0 -> white, +1 -> red (linear in between)."""
    end = _POS if t >= 0 else _NEG
    a = min(1.0, abs(float(t)))
    return tuple(int(round(255 + (e - 255) * a)) for e in end)  # type: ignore[return-value]


def _draw_value(draw: Any, font: Any, box: tuple[int, int, int, int], value: float, colour) -> None:
    v = float(value)
    if v == int(v) and abs(v) < 1e4:
        texts = [str(int(v))]
    else:
        texts = [f"{v:.3g}", f"{v:.2g}", f"{v:.1g}"]
    for text in texts:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        if tw <= box[2] - box[0] - 4:
            break
    else:
        return
    dark = sum(colour) / 3 < 150
    x = (box[0] + box[2] - tw) / 2 - left
    y = (box[1] + box[3] - th) / 2 - top
    draw.text((x, y), text, fill=(255, 255, 255) if dark else (0, 0, 0), font=font)
