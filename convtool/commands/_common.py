"""Helpers every command shares: error reporting and thread count."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..errors import ConvtoolError

F = TypeVar("F", bound=Callable[..., Any])


def print_error(message: str) -> None:
    """One line on stderr, never wrapped (so scripts can grep it)."""
    sys.stderr.write(f"convtool: error: {message}\n")
    sys.stderr.flush()


def cli_errors(func: F, *, exit_code: int | None = None) -> F:
    """Turn a user error into one line on stderr and its exit code.

    A :class:`ConvtoolError` (and only that) is reported without a traceback;
    anything else is a bug and keeps its traceback. The exit code is the
    error's own (1 input, 2 usage) unless ``exit_code`` overrides it
    (``detect`` exits 2 on every error, as grep does).
    """

    tell_about_compiles = not func.__module__.endswith(".warmup")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        compiled_before = compiled_this_run() if tell_about_compiles else 0
        try:
            result = func(*args, **kwargs)
        except ConvtoolError as exc:
            print_error(str(exc))
            raise typer.Exit(exc.exit_code if exit_code is None else exit_code) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(130) from None
        except typer.Exit:
            if tell_about_compiles:
                _note_first_compile(compiled_before)
            raise
        if tell_about_compiles:
            _note_first_compile(compiled_before)
        return result

    return wrapper  # type: ignore[return-value]


def compiled_this_run() -> int:
    """How many convtool kernel specialisations Numba compiled (cache misses) in this process."""
    if "numba" not in sys.modules:
        return 0
    from numba.core.registry import CPUDispatcher

    misses = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("convtool.core.") and module is not None:
            for obj in vars(module).values():
                if isinstance(obj, CPUDispatcher):
                    misses += sum(obj.stats.cache_misses.values())
    return misses


def _note_first_compile(compiled_before: int) -> None:
    """After a run that had to compile (a cold cache), say why it was slow.

    Counts only what this command compiled (the counters are per process, and
    tests run many commands in one process). Only on a terminal, like the
    progress bar: scripts reading stderr get nothing they did not ask for."""
    n = compiled_this_run() - compiled_before
    if n > 0 and sys.stderr.isatty():
        sys.stderr.write(
            f"convtool: note: compiled {n} kernel specialisation(s) for this machine; later "
            "runs load them from the cache. `convtool warmup` compiles all of them ahead of time.\n"
        )


#: ``--scale`` choices of the image commands (``auto`` is resolved per command).
SCALES = (
    "auto",
    "clip",
    "abs",
    "normalize",
    "offset",
    "robust-normalize",
    "robust-offset",
    "raw",
)


def check_scale(scale: str) -> str:
    """Reject an unknown ``--scale`` before any pixel is read."""
    if scale not in SCALES:
        from ..errors import UsageError

        raise UsageError(f"unknown --scale {scale!r}: use {', '.join(SCALES)}")
    return scale


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (:func:`convtool.parallel.set_threads`; Numba is not imported)."""
    if threads is None:
        return
    if threads < 1:
        from ..errors import UsageError

        raise UsageError(f"--threads must be >= 1, got {threads}")
    from ..parallel import set_threads as set_compute_threads

    set_compute_threads(threads)


# Options shared by every command that turns images into images (convolve,
# pool): one definition, so their names, letters and help read the same.
GRAY_OPTION = typer.Option(False, "--gray", "-g", help="Convert to luminance first.")
DEPTH_OPTION = typer.Option(
    None,
    "--depth",
    help="Output bits per sample, 8 or 16 (PNG). Default: the input's.",
    show_default=False,
)
OUTPUT_OPTION = typer.Option(
    None, "-o", "--output", help="Output file, -, DIR/ or template.", show_default=False
)
FORMAT_OPTION = typer.Option(
    None,
    "--format",
    "-f",
    help="Output format (png, jpg, tif, bmp, webp, npy); default from the extension.",
    show_default=False,
)
COMPRESS_OPTION = typer.Option(
    None,
    "--compress",
    help="PNG zlib level 0..9 (default 1: fast, files a little larger).",
    show_default=False,
)
JOBS_OPTION = typer.Option(
    None, "--jobs", "-j", help="Files in flight at once.", show_default=False
)
THREADS_OPTION = typer.Option(
    None, "--threads", "-t", help="Compute threads (Numba).", show_default=False
)
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bar.")
JSON_OPTION = typer.Option(False, "--json", help="One JSON object per output on stdout.")
CHUNKS_OPTION = typer.Option(
    None,
    "--chunks",
    help="Stream TIFF/.npy/.zarr inputs in N x N windows (automatic above 50 Mpx).",
    show_default=False,
)
SCHEDULER_OPTION = typer.Option(
    None,
    "--scheduler",
    help="Run on a dask.distributed cluster at ADDRESS (default: $CONVTOOL_SCHEDULER).",
    show_default=False,
)
