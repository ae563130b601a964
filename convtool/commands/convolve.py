"""`convtool convolve`: filter images with a kernel or a bank of kernels.

Only Typer and the standard library at module level: numpy, Numba and Pillow
are imported when the command runs, so ``convtool convolve --help`` is fast.
"""

from __future__ import annotations

import typer

from . import _complete
from ._common import (
    CHUNKS_OPTION,
    COMPRESS_OPTION,
    DEPTH_OPTION,
    FORMAT_OPTION,
    GRAY_OPTION,
    JOBS_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    QUIET_OPTION,
    SCHEDULER_OPTION,
    THREADS_OPTION,
    cli_errors,
)

COMBINES = ("magnitude", "max", "sum", "stack")

HELP = """\
Convolve images with a kernel (true convolution, as scipy.ndimage.convolve;
--correlate for what a CNN layer computes). Several -k make a filter bank.

[bold]Examples[/bold]

  convtool convolve photo.png -k sobel -o edges.png

  convtool convolve 'shots/*.jpg' -k gaussian:sigma=2 -o out/

  convtool convolve a.png b.png -k sharpen -o 'out/{stem}_sharp.png'

  convtool convolve scan.tif -k "1 0 -1; 2 0 -2; 1 0 -1" --pad valid --scale abs -o gx.png

  convtool convolve img.png -k sobel-x -k sobel-y -k laplacian --combine stack -o maps.tif

  cat a.png | convtool convolve - -k box:5 -o - | display

[bold]Kernels[/bold] (-k SPEC): NAME, NAME:VALUE, NAME:key=value,..., an inline matrix
"1 0 -1; 2 0 -2; 1 0 -1", or @file (.txt, .csv, .npy). `convtool kernels` lists
the names; `convtool kernels show SPEC` prints the weights.

[bold]Pad modes[/bold] (--pad, row abcd): zero/constant 00|abcd|00 (--pad-value V),
replicate (edge, nearest) aa|abcd|dd, reflect (default) cb|abcd|cb,
symmetric ba|abcd|dc, wrap (circular) cd|abcd|ab, valid: no padding, the
output shrinks by (K-1)*D.

[bold]Scale[/bold]: values are computed in float on the image's scale (0..255, 0..65535).
--scale auto uses the kernel's own choice (`convtool kernels` lists it); for
several -k: clip when every kernel is a clip kernel and --combine max, else
normalize. Under auto, normalize and offset are robust: their range ignores the
0.5% most extreme values (robust-normalize, robust-offset), so a few strong
responses do not turn the rest grey. .npy and .tif/.tiff outputs hold the raw
float32 result.

[bold]Alpha[/bold] is carried through untouched; when stride or valid padding shrinks
the output, it is sampled at each output pixel's anchor (kernel centre).

[bold]Outputs[/bold]: without -o, <stem>_convolve.png next to each input (stdout for -);
-o DIR/ writes DIR/<stem>.png; templates take {stem} {name} {ext} {parent}
{index}. Exit codes: 0 ok, 1 some inputs failed, 2 usage error.
"""


def _bank_scale(specs, combine: str) -> str:
    """``--scale auto`` for several kernels (a bank)."""
    if combine == "stack":
        return "raw"
    if combine == "max" and all(s.scale == "clip" for s in specs):
        return "clip"
    return "normalize"


def _alpha_sample(alpha, out_shape, *, stride: int, dilation: int, valid: bool, kshape, flip):
    """Alpha at each output pixel's anchor, or the alpha itself when sizes match."""
    if alpha is None:
        return None
    oh, ow = out_shape[:2]
    if alpha.shape == (oh, ow):
        return alpha
    offsets = []
    for k in kshape:
        anchor = (k - 1) // 2 if flip else k // 2
        offsets.append(dilation * anchor if valid else 0)
    oy, ox = offsets
    return alpha[oy : oy + (oh - 1) * stride + 1 : stride, ox : ox + (ow - 1) * stride + 1 : stride]


def convolve_command(
    inputs: list[str] = typer.Argument(
        ..., help="Image files, quoted globs, directories, or - for stdin.", show_default=False
    ),
    kernel: list[str] = typer.Option(
        ...,
        "-k",
        "--kernel",
        help="Kernel spec; repeat for a filter bank. See `convtool kernels`.",
        show_default=False,
        autocompletion=_complete.kernel_names,
    ),
    pad: str = typer.Option(
        "reflect",
        "--pad",
        help="Border: zero|constant, replicate|edge, reflect, symmetric, wrap, valid.",
        autocompletion=_complete.pad_modes,
    ),
    pad_value: float = typer.Option(0.0, "--pad-value", help="Fill value for --pad constant."),
    stride: int = typer.Option(1, "--stride", "-s", help="Step between output pixels."),
    dilation: int = typer.Option(1, "--dilation", "-d", help="Spacing of kernel taps."),
    correlate: bool = typer.Option(
        False, "--correlate", help="Correlation (no kernel flip), as CNN layers compute."
    ),
    combine: str | None = typer.Option(
        None,
        "--combine",
        "-c",
        help="Merge several responses: magnitude|max|sum|stack. Default: the kernel's own "
        "(sobel: magnitude, kirsch: max); magnitude for several -k.",
        show_default=False,
        autocompletion=_complete.combines,
    ),
    scale: str = typer.Option(
        "auto",
        "--scale",
        help="To 8/16 bits: auto|clip|abs|normalize|offset|robust-normalize|robust-offset|raw.",
        autocompletion=_complete.scales,
    ),
    gray: bool = GRAY_OPTION,
    depth: int | None = DEPTH_OPTION,
    output: str | None = OUTPUT_OPTION,
    fmt: str | None = FORMAT_OPTION,
    compress: int | None = COMPRESS_OPTION,
    jobs: int | None = JOBS_OPTION,
    chunks: int | None = CHUNKS_OPTION,
    scheduler: str | None = SCHEDULER_OPTION,
    threads: int | None = THREADS_OPTION,
    quiet: bool = QUIET_OPTION,
    json_lines: bool = JSON_OPTION,
) -> None:
    code = run_convolve(
        inputs,
        kernel,
        pad=pad,
        pad_value=pad_value,
        stride=stride,
        dilation=dilation,
        correlate=correlate,
        combine=combine,
        scale=scale,
        gray=gray,
        depth=depth,
        output=output,
        fmt=fmt,
        compress=compress,
        jobs=jobs,
        chunks=chunks,
        scheduler=scheduler,
        threads=threads,
        quiet=quiet,
        json_lines=json_lines,
    )
    if code:
        raise typer.Exit(code)


def run_convolve(
    inputs,
    kernel_specs,
    *,
    pad="reflect",
    pad_value=0.0,
    stride=1,
    dilation=1,
    correlate=False,
    combine=None,
    scale="auto",
    gray=False,
    depth=None,
    output=None,
    fmt=None,
    compress=None,
    jobs=None,
    chunks=None,
    scheduler=None,
    threads=None,
    quiet=False,
    json_lines=False,
) -> int:
    """Validate everything that needs no pixels, then run the batch; return the exit code."""
    from ..batch import image_batch
    from ..errors import UsageError
    from ..kernels import resolve
    from ..modes import check_positive_int, normalize_pad
    from ..scaling import AUTO
    from ._common import check_scale, set_threads

    pad = normalize_pad(pad)
    stride = check_positive_int("--stride", stride)
    dilation = check_positive_int("--dilation", dilation)
    if combine is not None and combine not in COMBINES:
        raise UsageError(f"unknown --combine {combine!r}: use {', '.join(COMBINES)}")
    check_scale(scale)
    specs = [resolve(k) for k in kernel_specs]
    if not specs:
        raise UsageError("give a kernel with -k (e.g. -k sobel); `convtool kernels` lists them")
    set_threads(threads)

    # One kernel spec runs as itself (its own combine rule: sobel's magnitude,
    # kirsch's max) unless --combine overrides a spec that has several weights;
    # everything else is a bank of all the weights.
    weights = [w for s in specs for w in s.weights]
    single = len(specs) == 1 and (combine is None or (len(weights) == 1 and combine != "stack"))
    spec = specs[0]
    bank_combine = combine or "magnitude"
    is_stack = not single and bank_combine == "stack"
    auto_scale = spec.scale if single else _bank_scale(specs, bank_combine)
    used_scale = AUTO[auto_scale] if scale == "auto" else scale
    kshape = tuple(max(w.shape[i] for s in specs for w in s.weights) for i in (0, 1))
    options = dict(
        pad=pad,
        pad_value=pad_value,
        stride=stride,
        dilation=dilation,
        correlate=correlate,
        threads=threads,
    )

    def compute(image):
        from .. import filtering

        if single:
            result = filtering.convolve(image.data, spec, **options)
        else:
            result = filtering.filter_bank(image.data, weights, combine=bank_combine, **options)
        out_shape = result.shape[1:] if is_stack else result.shape
        alpha = _alpha_sample(
            image.alpha,
            out_shape,
            stride=stride,
            dilation=dilation,
            valid=pad == "valid",
            kshape=kshape,
            flip=not correlate,
        )
        return result, alpha

    return image_batch(
        command="convolve",
        inputs=inputs,
        output=output,
        compute=compute,
        gray=gray,
        depth=depth,
        fmt=fmt,
        compress=compress,
        jobs=jobs,
        chunks=chunks,
        scheduler=scheduler,
        quiet=quiet,
        json_lines=json_lines,
        stack=is_stack,
        scale=used_scale,
    )


def register(app: typer.Typer) -> None:
    """Add ``convolve`` to the app."""
    app.command(
        "convolve",
        help=HELP,
        short_help="Filter images with a kernel or a bank of kernels.",
        no_args_is_help=True,
    )(cli_errors(convolve_command))
