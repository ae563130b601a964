"""`convtool warmup`: compile every Numba specialisation ahead of time.

The first run after an install compiles the Numba kernels it needs (seconds);
later runs load them from the cache (milliseconds). Running ``convtool warmup``
once, e.g. right after ``pip install`` or while building a container image,
pays that cost up front for every command.

Compiling is single-threaded, so the steps run in one worker process per CPU
(``--jobs``), each step's kernels in one process (two processes never write
the same function's cache index at once), shared out by their measured
compile time; every worker is waited for, and stopped if the command is
interrupted.
"""

from __future__ import annotations

import typer

from ._common import cli_errors

# (label, module, function); a module or function that does not exist is skipped,
# so the command keeps working while parts of convtool are optional or missing.
_STEPS: tuple[tuple, ...] = (
    ("filtering", "convtool.filtering", "warmup"),
    ("pooling", "convtool.pooling", "warmup"),
    ("detection", "convtool.detection", "warmup"),
    ("png", "convtool.png", "warmup"),
    ("conv2d", "convtool.conv2d", "warmup"),
)  # network layers run on conv2d, filtering and pooling

#: Compile CPU seconds of each step on a cold cache (benchmarks/bench_cli.py
#: --cold --signatures), to share the steps out evenly; unknown steps count 1 s.
#: filtering is one step: its two drivers share the tap loops, which two
#: processes would each compile.
_COST = {"filtering": 18.5, "conv2d": 5.0, "pooling": 5.0, "detection": 3.1, "png": 0.6}


def _share(steps: list[tuple], jobs: int) -> list[list[tuple]]:
    """Longest first, each to the least loaded of ``jobs`` groups (none empty)."""
    groups: list[list[tuple]] = [[] for _ in range(jobs)]
    load = [0.0] * jobs
    for step in sorted(steps, key=lambda st: -_COST.get(st[0], 1.0)):
        k = load.index(min(load))
        groups[k].append(step)
        load[k] += _COST.get(step[0], 1.0)
    return [g for g in groups if g]


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


def _resolve(step: tuple):
    """The step's function and arguments, or None if its module or function is absent."""
    import importlib

    label, module_name, func_name = step[:3]
    args = step[3] if len(step) > 3 else ()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # a real missing dependency inside the module: a bug, keep it loud
        return None
    func = getattr(module, func_name, None)
    return (func, args) if callable(func) else None


def run_steps(steps: list) -> list[float | None]:
    """Run the given steps in this process; return seconds (None if absent) for each."""
    import time

    done: list[float | None] = []
    for step in steps:
        found = _resolve(step)
        if found is None:
            done.append(None)
            continue
        func, args = found
        t0 = time.perf_counter()
        func(*args)
        done.append(time.perf_counter() - t0)
    return done


_WORKER = """
import json, sys
from convtool.commands.warmup import run_steps
print(json.dumps(run_steps(json.loads(sys.argv[1]))))
"""


def _run_workers(groups: list[list[tuple]]) -> list[list[float | None]]:
    """One process per group of steps, all at once; wait for every one."""
    import json
    import os
    import subprocess
    import sys

    import convtool.core  # noqa: F401  (chooses NUMBA_CACHE_DIR: the workers inherit it)

    # the workers import exactly the modules this process would (same convtool, same path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, json.dumps(group)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for group in groups
    ]
    results: list[list[float | None]] = []
    try:
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"a warmup worker failed:\n{err.strip()[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:  # interrupted or failed: no worker outlives the command
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def _default_jobs() -> int:
    from ..parallel import get_threads

    return get_threads()


def run_warmup(*, quiet: bool = False, jobs: int | None = None) -> list[tuple[str, float | None]]:
    """Run every step (in ``jobs`` worker processes, default one per CPU); return
    (label, seconds or None if absent) per label, seconds summed over its steps."""
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    jobs = max(1, min(jobs or _default_jobs(), len(_STEPS)))
    labels = list(dict.fromkeys(step[0] for step in _STEPS))
    steps = list(_STEPS)
    groups = _share(steps, jobs)
    status = f"compiling kernels in {jobs} process(es) (cached after the first time) ..."
    with console.status(status):
        results = [run_steps(steps)] if len(groups) == 1 else _run_workers(groups)
    seconds: dict[str, float | None] = {}
    for group, times in zip(groups, results, strict=True):
        for step, t in zip(group, times, strict=True):
            label = step[0]
            if t is not None:
                seconds[label] = (seconds.get(label) or 0.0) + t
            else:
                seconds.setdefault(label, None)
    done = [(label, seconds.get(label)) for label in labels]
    for label, t in done:
        if t is not None:
            console.print(f"  {label:<10} {t:6.2f} s")
    return done


def register(app: typer.Typer) -> None:
    @app.command("warmup", short_help="Compile every Numba kernel now; later runs load the cache.")
    @cli_errors
    def warmup(
        quiet: bool = typer.Option(
            False, "--quiet", "-q", help="No progress on stderr; only the summary line."
        ),
        jobs: int | None = typer.Option(
            None,
            "--jobs",
            "-j",
            min=1,
            help="Worker processes compiling at once (default: one per CPU).",
            show_default=False,
        ),
    ) -> None:
        """Compile every Numba kernel now, so later runs load them from the cache.

        Run it once after installing (or when building a container image). It
        prints where the cache lives and how long compiling or loading took
        (per module, summed over the worker processes); a second run only
        loads the cache and finishes in about a second. Set NUMBA_CACHE_DIR to
        put the cache elsewhere.
        """
        import time

        t0 = time.perf_counter()
        steps = run_warmup(quiet=quiet, jobs=jobs)
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
