"""`convtool detect`: find where images look like a template (a neuron as a detector).

Only Typer and the standard library at module level: numpy, Numba and Pillow
are imported when the command runs, so ``convtool detect --help`` is fast.
"""

from __future__ import annotations

import sys

import typer

from . import _complete
from ._common import cli_errors

FORMATS = ("auto", "table", "json", "csv")
FIELDS = ("image", "x", "y", "width", "height", "cx", "cy", "score", "scale")

HELP = """\
Find where images look like a template: the similarity of every window to the
template's weights (a neuron's response |w||x|cos theta), peaks above a
threshold, one detection per object (non-maximum suppression).

[bold]Examples[/bold]

  convtool detect photo.png -t eye.png

  convtool detect 'shots/*.jpg' -t logo.png --scales 0.5:2:7 --format json > hits.jsonl

  convtool detect coins.png -t coin.png --max 30 -o boxes.png --heatmap heat.png

  convtool detect scan.png -k "0 1 0; 1 -4 1; 0 1 0" --threshold 0.7

  if convtool detect page.png -t stamp.png -q; then echo stamped; fi

[bold]Methods[/bold] (--method): zncc (default; zero-mean normalised cross-correlation,
= OpenCV TM_CCOEFF_NORMED, -1..1), cosine (cos theta of the raw vectors,
= TM_CCORR_NORMED), sqdiff (normalised squared difference, = TM_SQDIFF_NORMED,
0..1, lower is better). Default --threshold: zncc 0.8, cosine 0.98, sqdiff 0.04.
Flat windows score 0 (sqdiff: 1). Colour images compare all channels; a gray
template is used for every channel; --gray converts both to luminance.

[bold]Output[/bold]: a table on a terminal, JSON lines when piped (--format json|csv|table):
one record per detection with image, x, y (top-left), width, height, cx, cy
(box centre), score, scale. Batches stream one image at a time.
-o draws boxes and scores (one input, DIR/, or a {stem} template);
--heatmap writes the score map the size of the image, each score at its
window's centre, the border without a score drawn as the worst score
(.png: colour-mapped, bright = similar; .npy/.tif: raw float32).

[bold]Exit codes[/bold] (like grep): 0 something found, 1 nothing found, 2 an error
(bad option, unreadable file, template larger than an image).
"""


def _records(name: str, detections) -> list[dict]:
    out = []
    for d in detections:
        rec = {"image": name}
        rec.update(d.as_dict())
        rec["cx"] = round(rec["cx"], 2)
        rec["cy"] = round(rec["cy"], 2)
        rec["score"] = round(rec["score"], 6)
        rec["scale"] = round(rec["scale"], 6)
        out.append(rec)
    return out


def _print_table(console, name: str, records: list[dict], method: str) -> None:
    from rich.table import Table

    from ..detection import higher_is_better

    better = "higher is better" if higher_is_better(method) else "lower is better"
    table = Table(title=f"{name}: {len(records)} found ({method}, {better})", title_justify="left")
    for col in ("#", "x", "y", "width", "height", "cx", "cy", "score", "scale"):
        table.add_column(col, justify="right")
    for i, r in enumerate(records, 1):
        table.add_row(
            str(i),
            str(r["x"]),
            str(r["y"]),
            str(r["width"]),
            str(r["height"]),
            f"{r['cx']:g}",
            f"{r['cy']:g}",
            f"{r['score']:.4f}",
            f"{r['scale']:.4g}",
        )
    console.print(table)


def _load_template(template: str | None, kernel_spec: str | None, gray: bool):
    from ..errors import UsageError

    if (template is None) == (kernel_spec is None):
        raise UsageError("give exactly one of --template FILE or --kernel SPEC")
    if template is not None:
        from ..io import read_image

        return read_image(template, gray=gray).data, template
    from ..kernels import kernel

    weights = kernel(kernel_spec)
    if weights.ndim != 2:
        raise UsageError(
            f"kernel {kernel_spec!r} is a bank of {weights.shape[0]} kernels; "
            "pick one (e.g. sobel-x instead of sobel)"
        )
    return weights, f"kernel {kernel_spec}"


def detect_command(
    inputs: list[str] = typer.Argument(
        ..., help="Image files, quoted globs, directories, or - for stdin.", show_default=False
    ),
    template: str | None = typer.Option(
        None, "--template", "-t", help="Template image file.", show_default=False
    ),
    kernel: str | None = typer.Option(
        None,
        "--kernel",
        "-k",
        help="Use a kernel's weights as the template (see `convtool kernels`).",
        show_default=False,
        autocompletion=_complete.kernel_names,
    ),
    method: str = typer.Option(
        "zncc",
        "--method",
        "-m",
        help="zncc, cosine or sqdiff.",
        autocompletion=_complete.detect_methods,
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Minimum score (sqdiff: maximum). Default: zncc 0.8, cosine 0.98, sqdiff 0.04.",
        show_default=False,
    ),
    max_n: int | None = typer.Option(
        None, "--max", "-n", help="At most N detections per image, best first.", show_default=False
    ),
    nms_iou: float = typer.Option(
        0.3, "--nms-iou", help="Drop a box overlapping a better one by more than this IoU."
    ),
    min_distance: float | None = typer.Option(
        None,
        "--min-distance",
        help="Instead of --nms-iou: drop a peak within this many pixels (x and y) of a better one.",
        show_default=False,
    ),
    scales: str | None = typer.Option(
        None,
        "--scales",
        help="Template scales: lo:hi:n (n geometric steps, e.g. 0.5:2:7) or 0.8,1,1.25.",
        show_default=False,
    ),
    gray: bool = typer.Option(False, "--gray", "-g", help="Convert image and template to gray."),
    fmt: str = typer.Option(
        "auto", "--format", "-f", help="auto (table on a terminal, else json), table, json, csv."
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Annotated image(s): a file (one input), DIR/, or 'out/{stem}_det.png'.",
        show_default=False,
    ),
    heatmap: str | None = typer.Option(
        None,
        "--heatmap",
        help="Score map(s): .png colour-mapped, .npy/.tif raw float32; DIR/ or {stem} as -o.",
        show_default=False,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No output; only the exit code."),
    threads: int | None = typer.Option(
        None, "--threads", help="Worker threads (default: all cores).", show_default=False
    ),
) -> None:
    """Find where images look like a template; exit 0 found, 1 nothing, 2 error."""
    code = _run(
        inputs,
        template,
        kernel,
        method,
        threshold,
        max_n,
        nms_iou,
        min_distance,
        scales,
        gray,
        fmt,
        output,
        heatmap,
        quiet,
        threads,
    )
    raise typer.Exit(code)


def _run(
    inputs, template, kernel_spec, method, threshold, max_n, nms_iou, min_distance, scales,
    gray, fmt, output, heatmap, quiet, threads,
) -> int:  # fmt: skip
    import csv
    import json

    from .. import detection as det
    from ..batch import expand_inputs, plan_outputs
    from ..errors import ConvtoolError, UsageError
    from ..io import check_not_input, luminance, read_image, write_image
    from ._common import print_error, set_threads

    # option errors before any work (search would repeat them for every image)
    method, _, _ = det.check_search_options(method, threshold, max_n, nms_iou, min_distance, scales)
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: use table, json or csv")
    if fmt == "auto":
        fmt = "table" if sys.stdout.isatty() else "json"
    set_threads(threads)
    paths = expand_inputs(inputs)
    tmpl, tmpl_name = _load_template(template, kernel_spec, gray)
    annotated = plan_outputs(paths, output, command="detect") if output else None
    heat_ext = None
    heat_jobs = None
    if heatmap:
        from pathlib import Path

        heat_ext = (
            Path(heatmap.rstrip("/")).suffix.lower().lstrip(".")
            if not (heatmap.endswith("/") or Path(heatmap).is_dir())
            else "png"
        )
        heat_jobs = plan_outputs(paths, heatmap, command="heatmap", ext=heat_ext or "png")
    if template is not None:
        outs = [j.output for j in (annotated or []) + (heat_jobs or [])]
        check_not_input(outs, [template])
    if annotated and heat_jobs:
        clash = {j.output for j in annotated} & {j.output for j in heat_jobs}
        if clash:
            raise UsageError(
                f"-o and --heatmap both write {sorted(clash)[0]}; give different names"
            )

    from rich.console import Console

    console = Console()
    writer = None
    if fmt == "csv" and not quiet:
        writer = csv.DictWriter(sys.stdout, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        sys.stdout.flush()

    progress = None
    task = None
    if len(paths) > 1 and sys.stderr.isatty() and not quiet:
        from rich.progress import Progress

        progress = Progress(console=Console(stderr=True), transient=True)
        progress.start()
        task = progress.add_task(f"detect {tmpl_name}", total=len(paths))

    found_any = False
    failed = False
    try:
        for i, path in enumerate(paths):
            try:
                img = read_image(path, gray=gray)
                t = tmpl
                if img.data.ndim == 2 and t.ndim == 3:
                    t = luminance(t)  # a gray image can only be matched in gray
                result = det.search(
                    img.data,
                    t,
                    method,
                    threshold=threshold,
                    max_detections=max_n,
                    nms_iou=nms_iou,
                    min_distance=min_distance,
                    scales=scales,
                    threads=threads,
                    keep_maps=heat_jobs is not None,
                )
                records = _records(img.name, result.detections)
                found_any = found_any or bool(records)
                if annotated is not None:
                    rgb = det.annotate(img.data, result.detections, value_max=_value_max(img))
                    write_image(annotated[i].output, rgb.astype("float32"), depth=8)
                if heat_jobs is not None:
                    full = result.heatmap()
                    if heat_ext in ("npy", "tif", "tiff"):
                        write_image(heat_jobs[i].output, full)
                    else:
                        rgb = det.heatmap_rgb(full, method)
                        write_image(heat_jobs[i].output, rgb.astype("float32"), depth=8)
            except ConvtoolError as exc:
                failed = True
                print_error(str(exc))
                continue
            finally:
                if progress is not None:
                    progress.advance(task)
            if quiet:
                continue
            if fmt == "json":
                for rec in records:
                    sys.stdout.write(json.dumps(rec) + "\n")
                sys.stdout.flush()
            elif fmt == "csv":
                for rec in records:
                    writer.writerow(rec)
                sys.stdout.flush()
            else:
                _print_table(console, img.name, records, method)
    finally:
        if progress is not None:
            progress.stop()
    if failed:
        return 2
    return 0 if found_any else 1


def _value_max(img) -> float:
    """The white level of an image read by convtool.io (for drawing)."""
    if img.depth == 16:
        return 65535.0
    if img.depth == 32:
        import numpy as np

        hi = float(np.max(img.data)) if img.data.size else 1.0
        return hi if hi > 0 else 1.0
    return 255.0


def register(app: typer.Typer) -> None:
    """Add ``detect`` to the app."""
    app.command(
        "detect",
        help=HELP,
        short_help="Find where images look like a template (a neuron as a detector).",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )(cli_errors(detect_command, exit_code=2))  # every error is exit 2, as grep does
