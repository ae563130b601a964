"""``convtool visualize``: feature maps of filters or a small network, as grids.

Imports only Typer and the standard library at module level; numpy, Pillow,
the network code and the filtering core are imported when the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from . import _complete
from ._common import cli_errors, set_threads

HELP = """\
Draw feature maps as labelled grids of tiles, input first.

Filters: each -k SPEC (or each filter of --bank edges|gabor|log|random:N) is
convolved with the image (its luminance, for colour images) and drawn as one
tile of one PNG.

[cyan]convtool visualize samples/camera.png -k sobel-x -k sobel-y -k laplacian -o edges.png[/]

[cyan]convtool visualize samples/brick.png --bank gabor --cmap diverging -o gabor.png[/]

Networks: --net FILE.toml or --layers "..." runs the stack and writes one grid
per layer (01_conv.png, 02_relu.png, ...), overview.png and index.html (one
self-contained page: the layer table, each layer linked to its sheet) into -o DIR/.

A layer with many channels shows its --max-maps most active (mean |value|); a net
ending in a classifier prints its top classes with --labels FILE (one per line).

[cyan]convtool visualize samples/astronaut.png --net samples/nets/lenet.toml -o out/ --summary[/]

[cyan]convtool visualize samples/camera.png --layers "conv(edges) relu pool(max,2)" -o out/[/]

Trained models: the image is prepared as the model was trained, torchvision
style: resized (shorter side; default 256 for a 224x224 input, the 0.875 crop
ratio), centre-cropped to --input-size (default: the model's own input size
when it is fixed), scaled to 0..1 (--pixel-range 1) or 0..255, channels
reversed with --bgr, then (x - mean) / std. The line on stderr says what was done.

[cyan]convtool visualize photo.jpg --net model.onnx --mean imagenet --std imagenet -o maps/[/]

[cyan]convtool visualize a.jpg --net caffe.onnx --pixel-range 255 --bgr --mean 104,117,124 -o m/[/]

[cyan]convtool visualize photo.jpg --net samples/nets/lenet.toml --input-size 32 -o out/[/]

[cyan]convtool visualize cat.jpg --net m.onnx --labels classes.txt --top 3 --max-maps 16 -o m/[/]

Colour maps: auto (default) draws signed maps with diverging (blue < 0 < red,
white at zero, range symmetric about zero) and the others with gray. --normalize
map gives every tile its own range, global one range for all.
"""


def _write_png(dest: Path, rgb: Any, compress: int | None) -> None:
    """Write a uint8 RGB sheet as PNG, atomically (temporary file, then rename)."""
    from ..io import DEFAULT_PNG_LEVEL, atomic_write, encode_png

    # Row filter "none": the sheets are flat colour and smooth tiles, where it
    # deflates faster and smaller than "up" (LeNet sheets: 0.56 s vs 1.28 s CPU
    # against Pillow's adaptive filters, 14 MB vs 20 MB).
    level = DEFAULT_PNG_LEVEL if compress is None else compress
    data = encode_png(rgb, level, row_filter="none")
    atomic_write(dest, lambda fh: fh.write(data))


def _thumbnail(image: Any, side: int, value_range: tuple[float, float]) -> Any:
    """The input as uint8, reduced (area average) so its longer side is at most ``side``.

    ``value_range`` is the (black, white) of the file it came from (its bit depth).
    """
    import numpy as np

    from ..grid import _input_rgb

    h, w = image.shape[:2]
    s = min(1.0, side / max(h, w))
    th, tw = max(1, round(h * s)), max(1, round(w * s))
    rgb = _input_rgb(image, th, tw, value_range)
    return rgb if image.ndim == 3 else np.ascontiguousarray(rgb[..., 0])


#: White on an image's own scale, by bit depth (float images are 0..1).
_FULL_SCALE = {8: 255.0, 16: 65535.0}


def _fixed_input(spec: Any) -> tuple[int, int, int] | None:
    """The net's (C, H, W) input when it cannot run at another size, else None.

    ONNX models declare theirs; a TOML net's ``input`` counts only when it has
    a layer that fixes the size (flatten, fc): a convolutional stack runs at
    any size, and its ``input`` is the size ``summary`` uses.
    """
    shape = getattr(spec, "input_shape", None)
    if shape is None:
        return None
    if getattr(spec, "fixed_input", False):
        return shape
    kinds = {getattr(layer, "kind", None) for layer in spec.layers}
    return shape if kinds & {"flatten", "fc"} else None


def _recipe(
    spec: Any,
    input_size: str,
    resize: str | None,
    mean: str | None,
    std: str | None,
    bgr: bool,
    pixel_range: str | None,
) -> tuple[Any, Any]:
    """The preprocessing for ``spec`` from the options, and the net to run it with.

    When values are rescaled here (--pixel-range, --mean, --std, or an ONNX
    model), a TOML net's own ``input_scale`` is not applied on top.
    """
    import dataclasses

    from ..errors import UsageError
    from ..preprocess import Preprocess, parse_size, stats

    fixed = _fixed_input(spec)
    onnx = hasattr(spec, "at_shape")  # a trained model: it takes 0..1 unless told otherwise
    key = (input_size or "auto").strip().lower()
    size = (fixed[1], fixed[2]) if key == "auto" and fixed else None
    if key != "auto":
        size = parse_size(input_size, "--input-size")
    resize_to: int | tuple[int, int] | None = None
    if resize is not None:
        r = parse_size(resize, "--resize")
        resize_to = r[0] if "x" not in resize.lower() else r
    rng: float | None = None
    if pixel_range is not None:
        rng = {"1": 1.0, "0..1": 1.0, "255": 255.0, "0..255": 255.0}.get(pixel_range.strip())
        if rng is None:
            raise UsageError(f"--pixel-range {pixel_range!r}: use 1 (values 0..1) or 255 (0..255)")
    elif mean is not None or std is not None or onnx:
        rng = 1.0
    channels = fixed[0] if fixed else getattr(spec, "input_channels", None)
    recipe = Preprocess(
        size=size,
        resize=resize_to,
        channels=channels,
        pixel_range=rng,
        mean=stats(mean, "mean", pixel_range=rng, bgr=bgr),
        std=stats(std, "std", pixel_range=rng, bgr=bgr),
        bgr=bgr,
    )
    if rng is not None and getattr(spec, "input_scale", 1.0) != 1.0:
        spec = dataclasses.replace(spec, input_scale=1.0)
    return recipe, spec


#: Maps per layer in overview.png (the most active first).
OVERVIEW_MAPS = 8


def _shown_maps(layer: Any, out: Any, max_maps: int) -> tuple[list[Any], list[str], int]:
    """The maps a layer's sheet draws, their labels, and how many maps the layer has.

    A flat output (1-D, or C x 1 x 1 after global pooling) is one vector tile;
    a layer with more than ``max_maps`` channels shows its most active ones,
    most active first.
    """
    from ..grid import most_active

    if out.ndim == 1 or (out.ndim == 3 and out.shape[1:] == (1, 1)):
        return [out.reshape(-1)], [f"{out.size} values, row by row"], 1
    labels = list(layer.labels) if len(layer.labels) == len(out) else []
    labels = labels or [f"c{i}" for i in range(len(out))]
    if not max_maps or len(out) <= max_maps:
        return list(out), labels, len(out)
    idx = most_active(out, max_maps)
    return [out[i] for i in idx], [labels[i] for i in idx], len(out)


def _note(shown: int, total: int) -> str:
    """Title suffix when only some maps are drawn: ``" (32 most active of 512)"``."""
    return f" ({shown} most active of {total})" if shown < total else ""


def _class_names(last: Any, labels_file: Path | None) -> list[str]:
    """Check that the net ends in a classifier; its labels (``[]`` without a file)."""
    import math

    from ..classify import is_class_vector, read_labels
    from ..errors import UsageError

    shape = tuple(last.out_shape)
    if not is_class_vector(shape):
        dims = "x".join(str(v) for v in shape)
        raise UsageError(
            f"--labels/--top need a net whose last layer is a classifier (one value per class); "
            f"its last layer {last.name} gives {dims} maps"
        )
    if labels_file is None:
        return []
    names = read_labels(labels_file)
    n = math.prod(shape)
    if len(names) != n:
        raise UsageError(
            f"labels file {labels_file} has {len(names)} labels but the last layer {last.name} "
            f"gives {n} classes: write one label per class, one per line"
        )
    return names


def _print_top(ranked: list[Any], heading: str) -> None:
    """The top-k classes: a rich table on a terminal, JSON lines when stdout is piped."""
    import json
    import sys

    if not sys.stdout.isatty():
        for r in ranked:
            row = {"rank": r.rank, "index": r.index, "label": r.label, "probability": r.probability}
            typer.echo(json.dumps(row))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(heading)
    table = Table(header_style="bold")
    for name, justify in (("#", "right"), ("class", "right"), ("label", "left"), ("p", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in ranked:
        table.add_row(str(r.rank), str(r.index), r.label, f"{r.probability:.4f}")
    console.print(table)


def _filter_maps(
    image: Any,
    kernels: list[str],
    bank: str | None,
    pad: str,
    correlate: bool,
    size: int,
    seed: int,
) -> tuple[list[Any], list[str]]:
    """Responses of -k specs and/or a --bank, one 2-D map per filter."""
    from ..filtering import convolve
    from ..kernels import resolve
    from ..network import BANKS, Net, make_layer, plan

    specs: list[str] = list(kernels)
    maps: list[Any] = []
    labels: list[str] = []
    if bank:
        key = bank.strip().lower()
        if key.startswith("random"):
            layer = make_layer(1, "conv", {"filters": key, "size": size, "seed": seed})
            (planned,) = plan(Net(layers=(layer,)), (1, size, size))
            weights = planned.weight[:, 0]
            labels += [f"random {i}" for i in range(len(weights))]
            resp = convolve(image, weights, pad=pad, correlate=True, combine="stack")
            maps += list(resp)
        elif key in BANKS:
            specs = list(BANKS[key]) + specs
        else:
            from ..errors import UsageError

            raise UsageError(
                f"unknown bank {bank!r}: use {', '.join(BANKS)} or random:N (or -k SPEC)"
            )
    for spec in specs:
        ks = resolve(spec)
        maps.append(convolve(image, ks, pad=pad, correlate=correlate))
        labels.append(spec)
    return maps, labels


@cli_errors
def visualize(
    image: Path = typer.Argument(..., metavar="IMAGE", help="Input image ('-' for stdin)."),
    kernel: list[str] = typer.Option(
        None,
        "--kernel",
        "-k",
        metavar="SPEC",
        help="A filter to show (repeatable).",
        autocompletion=_complete.kernel_names,
    ),
    bank: str = typer.Option(
        None, "--bank", "-b", metavar="NAME", help="A filter bank: edges, gabor, log, random:N."
    ),
    net: str = typer.Option(None, "--net", "-n", metavar="FILE", help="A network TOML file."),
    layers: str = typer.Option(
        None,
        "--layers",
        "-l",
        metavar="TEXT",
        help='Inline network: "conv(edges) relu pool(max,2)".',
    ),
    output: str = typer.Option(
        None,
        "--output",
        "-o",
        metavar="PATH",
        help="Grid PNG for filters (default IMAGE-STEM_maps.png); a directory for a network "
        "(default IMAGE-STEM_layers/).",
    ),
    normalize: str = typer.Option("map", "--normalize", help="map (per tile) or global."),
    cmap: str = typer.Option(
        "auto", "--cmap", help="auto, gray, viridis, magma or diverging (auto: see above)."
    ),
    cols: int = typer.Option(None, "--cols", min=1, help="Tiles per row (default near-square)."),
    gutter: int = typer.Option(6, "--gutter", min=0, help="Pixels between tiles."),
    colorbar: bool = typer.Option(
        False, "--colorbar", help="A colour bar with its range per tile."
    ),
    show_range: bool = typer.Option(False, "--range", help="Print each tile's min and max."),
    clip: float = typer.Option(
        0.5,
        "--clip",
        min=0.0,
        max=49.9,
        metavar="PCT",
        help="Ignore the PCT percent most extreme values at each end when choosing a tile's range "
        "(a few strong pixels then do not darken the rest); 0 = exact min..max.",
    ),
    max_tile: int = typer.Option(
        None,
        "--max-tile",
        min=16,
        help="Largest tile side in pixels; bigger maps are reduced (default 512 for filters, "
        "256 for a network's layers).",
    ),
    pad: str = typer.Option(
        "reflect",
        "--pad",
        help="Pad mode for -k/--bank filters.",
        autocompletion=_complete.pad_modes,
    ),
    correlate: bool = typer.Option(False, "--correlate", help="Correlate -k filters (no flip)."),
    size: int = typer.Option(5, "--size", min=1, help="Kernel size of --bank random:N."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of --bank random:N."),
    gray: bool = typer.Option(False, "--gray", help="Convert the image to luminance first."),
    summary: bool = typer.Option(
        False,
        "--summary",
        help="Print the network's layer table (on stderr when stdout is piped).",
    ),
    max_maps: int = typer.Option(
        32,
        "--max-maps",
        min=0,
        metavar="N",
        help="Per layer, draw the N most active maps (highest mean |value|; the title says "
        "'N most active of C'); 0 draws all. overview.png shows up to 8 of them.",
    ),
    until: str = typer.Option(
        None,
        "--until",
        metavar="NODE",
        help="Stop after the node or layer of this name (ONNX: the node's name, or its first "
        "output's); what comes after it is neither run nor read.",
    ),
    labels_file: Path = typer.Option(
        None,
        "--labels",
        metavar="FILE",
        help="Class names, one per line, for a net ending in a classifier: print the top "
        "classes with probabilities (a table on a terminal, JSON lines when piped).",
    ),
    top: int = typer.Option(
        None, "--top", min=1, metavar="K", help="How many classes to print (default 5)."
    ),
    input_size: str = typer.Option(
        "auto",
        "--input-size",
        metavar="N|HxW",
        help="Centre-crop to this size (the model's input). auto: the model's fixed input size "
        "(ONNX models, TOML nets with flatten/fc), else the image's own size.",
    ),
    resize: str = typer.Option(
        None,
        "--resize",
        metavar="N|HxW",
        help="Before the crop, resize the shorter side to N (aspect kept) or to exactly HxW. "
        "Default with a crop: floor(max(H, W) / 0.875), 256 for 224.",
    ),
    mean: str = typer.Option(
        None,
        "--mean",
        metavar="M",
        help="Subtract per channel: imagenet (0.485,0.456,0.406 on 0..1) or 1 or 3 numbers "
        "on the --pixel-range scale, in the model's channel order.",
    ),
    std: str = typer.Option(
        None,
        "--std",
        metavar="S",
        help="Then divide per channel: imagenet (0.229,0.224,0.225 on 0..1) or 1 or 3 numbers.",
    ),
    bgr: bool = typer.Option(False, "--bgr", help="The model takes BGR (OpenCV, Caffe) order."),
    pixel_range: str = typer.Option(
        None,
        "--pixel-range",
        metavar="1|255",
        help="Model input values 0..1 (1) or 0..255 (255). Default 1 for ONNX models and with "
        "--mean/--std; a TOML net otherwise gets the image's own scale times its input_scale.",
    ),
    compress: int = typer.Option(None, "--compress", min=0, max=9, help="PNG zlib level."),
    threads: int = typer.Option(None, "--threads", min=1, help="Numba threads."),
) -> None:
    """Draw feature maps as labelled grids (filters, a bank, or a network layer by layer)."""
    from ..errors import UsageError

    kernels = list(kernel or [])
    use_net = net is not None or layers is not None
    if net is not None and layers is not None:
        raise UsageError("give --net FILE or --layers TEXT, not both")
    if use_net and (kernels or bank):
        raise UsageError("-k/--bank draw filters, --net/--layers a network: use one or the other")
    if not use_net and not kernels and not bank:
        raise UsageError("nothing to draw: give -k SPEC, --bank NAME, --net FILE or --layers TEXT")
    if summary and not use_net:
        raise UsageError("--summary needs --net or --layers")
    model_opts = {
        "--input-size": input_size != "auto",
        "--resize": resize is not None,
        "--mean": mean is not None,
        "--std": std is not None,
        "--bgr": bgr,
        "--pixel-range": pixel_range is not None,
        "--until": until is not None,
        "--labels": labels_file is not None,
        "--top": top is not None,
    }
    given = [name for name, on in model_opts.items() if on]
    if given and not use_net:
        raise UsageError(f"{given[0]} applies to a network: give --net or --layers")

    from ..grid import grid as draw_grid
    from ..grid import overview, styles
    from ..io import check_not_input, luminance, read_image

    grid_kw = dict(
        cols=cols,
        normalize=normalize,
        cmap=cmap,
        gutter=gutter,
        colorbar=colorbar,
        show_range=show_range,
        max_tile=max_tile or (256 if use_net else 512),
        clip=clip,
    )
    styles([], normalize=normalize, cmap=cmap, clip=clip)  # validate before reading
    set_threads(threads)
    stem = "stdin" if str(image) == "-" else Path(image).stem

    if not use_net:
        dest = Path(output or f"{stem}_maps.png")
        if dest.suffix.lower() != ".png":
            raise UsageError(f"the grid is a PNG: give -o NAME.png, not {dest}")
        check_not_input([dest], [image])
        img = read_image(image, gray=gray)
        data = img.data if img.data.ndim == 2 else luminance(img.data)
        maps, labels = _filter_maps(data, kernels, bank, pad, correlate, size, seed)
        sheet = draw_grid(
            maps, labels, input_image=img.data, input_range=img.value_range, **grid_kw
        )
        _write_png(dest, sheet, compress)
        plural = "" if len(maps) == 1 else "s"
        typer.echo(f"{dest}: the input and {len(maps)} map{plural}", err=True)
        return

    from ..network import check_memory, feature_maps, load_net, memory_estimate, plan
    from ..network.walk import up_to

    source = net if net is not None else layers
    spec = up_to(source, until) if until else load_net(source)
    outdir = Path(output or f"{stem}_layers")
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"-o {outdir} is a file; a network writes a directory of PNGs")
    recipe, spec = _recipe(spec, input_size, resize, mean, std, bgr, pixel_range)
    img = read_image(image, gray=gray)
    seen = recipe.fit(img.data)  # what the model sees, on the image's scale
    x = recipe.normalize(seen, _FULL_SCALE.get(img.depth, 1.0))
    shape = (x.shape[2], x.shape[0], x.shape[1])
    planned = plan(spec, shape)  # fails before anything runs or is written
    check_memory(memory_estimate(planned, shape))  # every map is kept: refuse what cannot fit
    class_names = _class_names(planned[-1], labels_file) if labels_file or top else None
    c = img.data.shape[2] if img.data.ndim == 3 else 1
    steps = recipe.describe(img.data.shape[0], img.data.shape[1], c)
    if steps != "none":
        typer.echo(f"{img.name}: {img.data.shape[0]}x{img.data.shape[1]}, {steps}", err=True)
    if summary:
        from .summary import print_summary

        h, w, c = shape[1], shape[2], shape[0]
        # stdout is for programs when piped (the --labels JSON lines): the table is for people
        import sys

        to_stderr = not sys.stdout.isatty()
        print_summary(planned, shape, f"{spec.name}: input {h}x{w}x{c}", stderr=to_stderr)
    results = feature_maps(x, spec, layers=planned)  # checked above: run, do not plan again
    outdir.mkdir(parents=True, exist_ok=True)
    thumb = _thumbnail(
        seen, grid_kw["max_tile"], img.value_range
    )  # drawn in every sheet: shrink it once
    written = [outdir / f"{layer.stem}.png" for layer, _ in results]

    shown = [_shown_maps(layer, maps, max_maps) for layer, maps in results]

    def sheet_job(layer: Any, maps: Any, labels: Any, total: int, dest: Path) -> tuple[int, int]:
        title = f"{spec.name}: {layer.title}{_note(len(maps), total)}"
        # a vector block is a handful of cells: draw it as large as the input
        grow = {"min_tile": grid_kw["max_tile"] * 3 // 4} if maps[0].ndim == 1 else {}
        sheet = draw_grid(maps, labels, input_image=thumb, title=title, **grid_kw, **grow)
        _write_png(dest, sheet, compress)
        return sheet.shape[1], sheet.shape[0]

    def overview_job() -> None:
        rows = [
            (layer.title + _note(len(maps[:OVERVIEW_MAPS]), total), maps[:OVERVIEW_MAPS])
            for (layer, _), (maps, _, total) in zip(results, shown, strict=True)
        ]
        sheet = overview(
            rows, input_image=thumb, max_maps=OVERVIEW_MAPS, cmap=cmap, title=spec.name, clip=clip
        )
        _write_png(outdir / "overview.png", sheet, compress)

    # two sheets at a time: zlib and most numpy work release the GIL
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(overview_job)]
        jobs += [
            pool.submit(sheet_job, layer, maps, labels, total, dest)
            for (layer, _), (maps, labels, total), dest in zip(results, shown, written, strict=True)
        ]
        sizes = [job.result() for job in jobs][1:]
    ranked = None
    if class_names is not None:
        from ..classify import probabilities, top_k

        last, scores = results[-1]
        ranked = top_k(scores, top or 5, class_names or None)
        how = "softmax of" if probabilities(scores)[1] else "output of"
        heading = f"top {len(ranked)} of {scores.size} classes ({how} {last.name})"
    from ..report import Sheet, index_html
    from .summary import columns, table_rows

    body, total_row = table_rows(planned, shape)
    stems = {layer.index: layer.stem for layer, _ in results}
    meta = [f"input {img.name}: {img.data.shape[0]}x{img.data.shape[1]}"]
    if steps != "none":
        meta.append(f"preprocessing: {steps}")
    page = index_html(
        spec.name,
        meta=meta,
        columns=columns(planned),
        rows=body,
        row_links=[None] + [stems.get(layer.index) for layer in planned],
        total=total_row,
        sheets=[
            Sheet(layer.stem, layer.title + _note(len(maps), n), dest.name, w, h)
            for (layer, _), (maps, _, n), dest, (w, h) in zip(
                results, shown, written, sizes, strict=True
            )
        ],
        overview="overview.png",
        classes_title=heading[0].upper() + heading[1:] if ranked is not None else "",
        classes=None
        if ranked is None
        else [(str(r.rank), str(r.index), r.label, f"{r.probability:.4f}") for r in ranked],
    )
    from ..io import atomic_write

    atomic_write(outdir / "index.html", lambda fh: fh.write(page.encode("utf-8")))
    typer.echo(
        f"{outdir}{os.sep}: {len(written)} layer grids, overview.png and index.html", err=True
    )
    if ranked is not None:
        _print_top(ranked, heading)


def register(app: typer.Typer) -> None:
    """Add ``visualize`` to the app."""
    app.command("visualize", help=HELP)(visualize)
