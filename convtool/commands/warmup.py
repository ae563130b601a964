"""`convtool warmup`: compile every Numba specialisation ahead of time.

The first run after an install compiles the Numba kernels it needs (seconds);
later runs load them from the cache (milliseconds). Running ``convtool warmup``
once, e.g. right after ``pip install`` or while building a container image,
pays that cost up front for every command.
"""

from __future__ import annotations

import typer

from ._common import cli_errors

# (label, module, function); a module or function that does not exist is skipped,
# so the command keeps working while parts of convtool are optional or missing.
_STEPS = (
    ("filtering", "convtool.filtering", "warmup"),
    ("pooling", "convtool.pooling", "warmup"),
    ("detection", "convtool.detection", "warmup"),
    ("png", "convtool.png", "warmup"),
    ("conv2d", "convtool.conv2d", "warmup"),
)  # network layers run on conv2d, filtering and pooling


def _cache_location() -> str:
    """Where Numba writes its cache for convtool's kernels (after convtool.core chose it)."""
    import os
    from pathlib import Path

    import convtool.core

    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return env
    return str(Path(convtool.core.__file__).resolve().parent / "__pycache__")


def _count_cache_files(root: str) -> int:
    """Number of Numba index files (one per cached function) under ``root``."""
    import os

    total = 0
    for _dirpath, _dirs, files in os.walk(root):
        total += sum(1 for f in files if f.endswith(".nbi"))
    return total


def run_warmup(*, quiet: bool = False) -> list[tuple[str, float | None]]:
    """Call each module's ``warmup()``; return (label, seconds or None if absent)."""
    import importlib
    import time

    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    done: list[tuple[str, float | None]] = []
    for label, module_name, func_name in _STEPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # a real missing dependency inside the module: a bug, keep it loud
            done.append((label, None))
            continue
        func = getattr(module, func_name, None)
        if not callable(func):
            done.append((label, None))
            continue
        with console.status(f"compiling {label} kernels (cached after the first time) ..."):
            t0 = time.perf_counter()
            func()
            seconds = time.perf_counter() - t0
        console.print(f"  {label:<10} {seconds:6.2f} s")
        done.append((label, seconds))
    return done


def register(app: typer.Typer) -> None:
    @app.command("warmup", short_help="Compile every Numba kernel now; later runs load the cache.")
    @cli_errors
    def warmup(
        quiet: bool = typer.Option(
            False, "--quiet", "-q", help="No progress on stderr; only the summary line."
        ),
    ) -> None:
        """Compile every Numba kernel now, so later runs load them from the cache.

        Run it once after installing (or when building a container image). It
        prints where the cache lives and how long compiling or loading took; a
        second run only loads the cache and finishes in well under a second.
        Set NUMBA_CACHE_DIR to put the cache elsewhere.
        """
        import time

        t0 = time.perf_counter()
        steps = run_warmup(quiet=quiet)
        total = time.perf_counter() - t0
        cache = _cache_location()
        ran = [label for label, seconds in steps if seconds is not None]
        skipped = [label for label, seconds in steps if seconds is None]
        line = (
            f"warmed up {', '.join(ran) or 'nothing'} in {total:.2f} s; "
            f"cache: {cache} ({_count_cache_files(cache)} cached functions)"
        )
        if skipped:
            line += f"; not present: {', '.join(skipped)}"
        typer.echo(line)
