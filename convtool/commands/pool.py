"""`convtool pool`: subsample images with a pooling window.

Only Typer and the standard library at module level: numpy, Numba and Pillow
are imported when the command runs.
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

HELP = """\
Pool (subsample) images with an F x F window and stride S, channel by channel:
output size W2 = floor((W1 - F)/S) + 1 (--ceil rounds up, as PyTorch's ceil_mode).

[bold]Examples[/bold]

  convtool pool photo.png -o half.png                   (2x2 max, stride 2)

  convtool pool photo.png --mode avg --size 3 --stride 2 --pad replicate -o p.png

  convtool pool 'maps/*.png' --mode stochastic --seed 7 -o 'out/{stem}_s.png'

  convtool pool photo.png --mode fractional --ratio 1.5 --seed 1 -o f.png

  convtool pool photo.png --mode lp --p 3 -o lp.png

[bold]Modes[/bold]: max, avg (PyTorch count_include_pad=True), min, lp (--p; a sum,
as lp_pool2d), topleft (x[::S, ::S]), stochastic (Zeiler & Fergus; needs
non-negative values; --seed), fractional (Graham 2014; --ratio, default
sqrt 2, or --output-size; --seed).

[bold]Padding[/bold]: --pad valid (default, none), or zero/constant, replicate, reflect,
symmetric, wrap with --padding P on every side (default F//2, at most F//2).

[bold]Alpha[/bold] is pooled with the same window and mode as the colour channels
(average for lp). Values stay on the image's scale; --scale auto is clip
(normalize for lp, whose window sums exceed the input range).

[bold]Outputs[/bold]: without -o, <stem>_pool.png next to each input (stdout for -);
-o DIR/ writes DIR/<stem>.png; templates take {stem} {name} {ext} {parent}
{index}. Exit codes: 0 ok, 1 some inputs failed, 2 usage error.
"""


def pool_command(
    inputs: list[str] = typer.Argument(
        ..., help="Image files, quoted globs, directories, or - for stdin.", show_default=False
    ),
    mode: str = typer.Option(
        "max",
        "--mode",
        "-m",
        help="max|avg|min|lp|topleft|stochastic|fractional.",
        autocompletion=_complete.pool_modes,
    ),
    size: int = typer.Option(2, "--size", "-F", help="Window side F."),
    stride: int | None = typer.Option(
        None, "--stride", "-S", help="Step S between windows. Default: F.", show_default=False
    ),
    pad: str = typer.Option(
        "valid",
        "--pad",
        help="valid (none), zero|constant, replicate|edge, reflect, symmetric, wrap.",
        autocompletion=_complete.pad_modes,
    ),
    padding: int | None = typer.Option(
        None,
        "--padding",
        help="Padding P on every side for a padded --pad (default F//2).",
        show_default=False,
    ),
    ceil: bool = typer.Option(False, "--ceil", help="Round the output size up (ceil_mode)."),
    p: float | None = typer.Option(
        None, "--p", help="Exponent for --mode lp (default 2).", show_default=False
    ),
    ratio: float | None = typer.Option(
        None,
        "--ratio",
        help="Fractional: input/output size ratio, 1 < R < 2 (default sqrt 2).",
        show_default=False,
    ),
    output_size: str | None = typer.Option(
        None,
        "--output-size",
        help="Fractional: output size N or HxW (instead of --ratio).",
        show_default=False,
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Random seed for stochastic and fractional.", show_default=False
    ),
    scale: str = typer.Option(
        "auto",
        "--scale",
        help="To 8/16 bits: auto (clip; lp: normalize)|clip|abs|normalize|offset|raw.",
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
    code = run_pool(
        inputs,
        mode=mode,
        size=size,
        stride=stride,
        pad=pad,
        padding=padding,
        ceil=ceil,
        p=p,
        ratio=ratio,
        output_size=output_size,
        seed=seed,
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


def _parse_size(text: str):
    from ..errors import UsageError

    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(v) for v in parts]
    except ValueError:
        raise UsageError(f"--output-size must be N or HxW, got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return tuple(values)
    raise UsageError(f"--output-size must be N or HxW, got {text!r}")


def run_pool(
    inputs,
    *,
    mode="max",
    size=2,
    stride=None,
    pad="valid",
    padding=None,
    ceil=False,
    p=None,
    ratio=None,
    output_size=None,
    seed=None,
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
    """Validate the options, then pool every input; return the exit code."""
    from ..batch import image_batch
    from ..errors import UsageError
    from ..modes import check_positive_int, normalize_pad
    from ..pooling import normalize_mode
    from ._common import check_scale, set_threads

    mode = normalize_mode(mode)
    pad = normalize_pad(pad)
    size = check_positive_int("--size", size)
    if stride is not None:
        stride = check_positive_int("--stride", stride)
    check_scale(scale)
    options: dict = {}
    if padding is not None:
        options["padding"] = padding
    if p is not None:
        if mode != "lp":
            raise UsageError(f"--p applies to --mode lp, not {mode}")
        options["p"] = p
    if ratio is not None or output_size is not None:
        if mode != "fractional":
            raise UsageError(f"--ratio and --output-size apply to --mode fractional, not {mode}")
        if ratio is not None and output_size is not None:
            raise UsageError("give --ratio or --output-size, not both")
        if ratio is not None:
            options["ratio"] = ratio
        else:
            options["output_size"] = _parse_size(output_size)
    if seed is not None and mode not in ("stochastic", "fractional"):
        raise UsageError(f"--seed applies to stochastic and fractional pooling, not {mode}")
    set_threads(threads)
    # lp is a sum over the window (up to F*F**(1/p) x the input range): stretch it
    used_scale = ("normalize" if mode == "lp" else "clip") if scale == "auto" else scale
    kwargs = dict(mode=mode, size=size, stride=stride, pad=pad, ceil=ceil, **options)

    def compute(image):
        import numpy as np

        from .. import pooling

        data, alpha = image.data, image.alpha
        if alpha is None:
            return pooling.pool(data, seed=seed, **kwargs), None
        if mode == "lp":
            result = pooling.pool(data, seed=seed, **kwargs)
            alpha_kwargs = {k: v for k, v in kwargs.items() if k != "p"}
            alpha_kwargs["mode"] = "avg"
            return result, pooling.pool(alpha, **alpha_kwargs)
        # one call: the alpha channel gets the same windows (and fractional regions)
        stacked = np.dstack([data, alpha])
        out = pooling.pool(stacked, seed=seed, **kwargs)
        colour = out[..., 0] if data.ndim == 2 else out[..., :-1]
        if type(colour).__module__.startswith("dask"):  # streamed: stays lazy
            return colour, out[..., -1]
        return np.ascontiguousarray(colour), out[..., -1]

    return image_batch(
        command="pool",
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
        scale=used_scale,
    )


def register(app: typer.Typer) -> None:
    """Add ``pool`` to the app."""
    app.command(
        "pool",
        help=HELP,
        short_help="Subsample images by pooling: max, avg, stochastic, fractional.",
        no_args_is_help=True,
    )(cli_errors(pool_command))
