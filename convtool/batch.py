"""Batches: expand inputs, name outputs, and run read -> compute -> write over many files.

Shared by every command that turns images into images (convolve, pool, and
later detect and visualize).

Inputs (:func:`expand_inputs`)
    Files as given; a quoted glob (``'shots/*.jpg'``, ``**`` allowed) is
    expanded by convtool, sorted; a directory stands for the image files
    directly inside it (by extension, sorted, not recursive); ``-`` is stdin
    and may appear once. A repeated file is processed once. A glob with no
    match, or a directory with no images, is an error before any work.

Outputs (:func:`plan_outputs`)
    =========================  ===============================================
    ``-o`` omitted             ``<stem>_<command>.<ext>`` next to each input
                               (stdin input -> stdout)
    ``-o out.png``             one input only
    ``-o -``                   stdout, one input only
    ``-o DIR/``                (trailing slash, or an existing directory)
                               ``DIR/<stem>.<ext>``; DIR is created
    ``-o 'out/{stem}_e.png'``  a template: ``{stem}``, ``{name}``, ``{ext}``
                               (input's, no dot), ``{parent}`` (input's
                               directory name), ``{index}`` (1-based, format
                               specs allowed: ``{index:04d}``)
    =========================  ===============================================

    ``<ext>`` is ``--format`` if given, else png (tif for a stack of maps).
    Parent directories are created. Two inputs that map to one output, or an
    output that is one of the inputs, is a usage error before any work.

Running (:func:`run_batch`)
    Items run on a small thread pool (``--jobs``): decoding and encoding
    release the GIL inside zlib and the codecs, so they overlap with the
    compute step, which holds a lock (Numba's parallel loops already use every
    core, and some threading layers must not be entered twice at once).
    A failing item prints one line on stderr and the others go on; the exit
    code is 0 if all succeeded, 2 if a failure was a usage error (such as a
    kernel larger than one of the images with ``valid``), else 1.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import rentbuy
from .errors import EXIT_INPUT_FAILED, EXIT_OK, EXIT_USAGE, ConvtoolError, InputError, UsageError

#: File extensions a directory input is scanned for.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pbm", ".pgm", ".ppm"}
)

_GLOB_CHARS = set("*?[")
_TEMPLATE_KEYS = ("stem", "name", "ext", "index", "parent")


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in _GLOB_CHARS)


def expand_inputs(args: Sequence[str]) -> list[str]:
    """Expand globs and directories into a list of input paths.

    Parameters
    ----------
    args : sequence of str
        What the user typed: paths, quoted globs, directories, ``-``.

    Returns
    -------
    list of str
        Paths in the order given (each glob's and directory's matches
        sorted), duplicates removed, ``-`` kept as is.

    Raises
    ------
    UsageError
        No inputs, or ``-`` more than once.
    InputError
        A glob that matches nothing, or a directory without images.

    Examples
    --------
    >>> expand_inputs(["samples/c*.png"])
    ['samples/camera.png', 'samples/chelsea.png', 'samples/coins.png']
    """
    if not args:
        raise UsageError("no input: give one or more image files, a quoted glob, or - for stdin")
    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = path if path == "-" else os.path.normpath(path)
        if key in seen:
            return
        seen.add(key)
        out.append(path)

    stdin_count = 0
    for arg in args:
        arg = os.fspath(arg)
        if arg == "-":
            stdin_count += 1
            if stdin_count > 1:
                raise UsageError("- (stdin) can be given only once")
            add("-")
        elif os.path.isdir(arg) and not _is_zarr(arg):
            found = sorted(
                os.path.join(arg, n)
                for n in os.listdir(arg)
                if Path(n).suffix.lower() in IMAGE_EXTENSIONS
                and os.path.isfile(os.path.join(arg, n))
            )
            if not found:
                raise InputError(f"{arg}: directory has no image files (png, jpg, tif, ...)")
            for p in found:
                add(p)
        elif _has_glob(arg) and not os.path.exists(arg):
            found = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not found:
                raise InputError(f"{arg}: no file matches this pattern")
            for p in found:
                add(p)
        else:
            add(arg)  # a missing file is reported when it is read; the others go on
    return out


def _is_zarr(path: str) -> bool:
    """A zarr store (a directory named *.zarr) is one image, not a folder of images."""
    return path.rstrip("/" + os.sep).lower().endswith(".zarr")


@dataclass
class Job:
    """One input and where its result goes."""

    index: int
    input: str
    output: str


def _names(inp: str, index: int) -> dict[str, Any]:
    if inp == "-":
        return {"stem": "stdin", "name": "stdin", "ext": "", "index": index, "parent": ""}
    p = Path(inp)
    parent = p.resolve().parent.name if p.parent == Path(".") else p.parent.name
    return {
        "stem": p.stem,
        "name": p.name,
        "ext": p.suffix.lstrip("."),
        "index": index,
        "parent": parent,
    }


def _render(template: str, inp: str, index: int) -> str:
    try:
        return template.format(**_names(inp, index))
    except (KeyError, IndexError) as exc:
        keys = ", ".join("{" + k + "}" for k in _TEMPLATE_KEYS)
        raise UsageError(f"unknown field {exc} in -o {template!r}: use {keys}") from None
    except ValueError as exc:
        raise UsageError(f"bad -o template {template!r}: {exc}") from None


def plan_outputs(
    inputs: Sequence[str],
    output: str | None,
    *,
    command: str,
    ext: str = "png",
) -> list[Job]:
    """Decide every output path before any work, and check them.

    Parameters
    ----------
    inputs : sequence of str
        From :func:`expand_inputs`.
    output : str or None
        The ``-o`` value (file, ``-``, ``DIR/``, template) or None.
    command : str
        Used in default names (``<stem>_<command>.<ext>``).
    ext : str
        Extension for generated names (no dot).

    Returns
    -------
    list of Job

    Raises
    ------
    UsageError
        ``-o FILE`` or ``-o -`` with several inputs, two inputs mapping to one
        output, an output equal to an input, an output directory that cannot
        be created or written.

    Examples
    --------
    >>> [j.output for j in plan_outputs(["a/x.jpg", "b/y.png"], "out/{parent}_{stem}.png",
    ...                                 command="convolve")]
    ['out/a_x.png', 'out/b_y.png']
    >>> [j.output for j in plan_outputs(["a/x.jpg"], None, command="pool")]
    ['a/x_pool.png']
    """
    from .io import check_not_input

    n = len(inputs)
    outs: list[str] = []
    if output is None:
        for inp in inputs:
            if inp == "-":
                outs.append("-")
            else:
                p = Path(inp)
                outs.append(os.fspath(p.with_name(f"{p.stem}_{command}.{ext}")))
    elif output == "-":
        if n > 1:
            raise UsageError(f"-o - (stdout) takes one input, got {n}; use -o DIR/ or a template")
        outs = ["-"]
    elif "{" in output:
        outs = [_render(output, inp, i) for i, inp in enumerate(inputs, start=1)]
    elif (output.endswith(("/", os.sep)) or os.path.isdir(output)) and not _is_zarr(output):
        outs = [
            os.path.join(output, f"{_names(inp, i)['stem']}.{ext}")
            for i, inp in enumerate(inputs, start=1)
        ]
    else:
        if n > 1:
            raise UsageError(
                f"-o {output} names one file but there are {n} inputs: "
                "use -o DIR/ or a template such as -o 'out/{stem}_x.png'"
            )
        outs = [output]

    first: dict[str, str] = {}
    for inp, out in zip(inputs, outs, strict=True):
        if out == "-":
            continue
        key = os.path.normcase(os.path.abspath(out))
        if key in first:
            raise UsageError(
                f"{first[key]} and {inp} would both be written to {out}: "
                "use a template with {stem}, {parent} or {index}"
            )
        first[key] = inp
    check_not_input(outs, inputs)
    _prepare_dirs(outs)
    pairs = zip(inputs, outs, strict=True)
    return [Job(i, inp, out) for i, (inp, out) in enumerate(pairs, start=1)]


def _prepare_dirs(outputs: Sequence[str]) -> None:
    dirs = {os.path.dirname(os.path.abspath(o)) for o in outputs if o != "-"}
    for d in sorted(dirs):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot create output directory {d} ({exc.strerror or exc}); choose another -o"
            ) from None
        if not os.access(d, os.W_OK):
            raise UsageError(f"output directory {d} is not writable; choose another -o")


# --------------------------------------------------------------------------- running


@dataclass
class BatchResult:
    """What a batch did: per-item records and failures."""

    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    exit_code: int = EXIT_OK


def default_jobs(n_items: int) -> int:
    """Worker threads for ``n_items``: enough to overlap decode, compute and encode."""
    return max(1, min(n_items, 3, (os.cpu_count() or 1) + 1))


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    return progress


def _interrupt_on_sigterm():
    """Make SIGTERM stop a batch like Ctrl-C (temporary files are removed).

    Returns the previous handler to restore, or None when not on the main
    thread (where signal handlers cannot be set).
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return None


def run_batch(
    jobs: Sequence[Job],
    read: Callable[[Job], Any],
    compute: Callable[[Job, Any], Any],
    write: Callable[[Job, Any], dict[str, Any]],
    *,
    workers: int | None = None,
    quiet: bool = False,
    json_lines: bool = False,
    label: str = "",
) -> BatchResult:
    """Run read -> compute -> write for every job, overlapping items on threads.

    Parameters
    ----------
    jobs : sequence of Job
        From :func:`plan_outputs`.
    read, compute, write : callables
        ``read(job) -> a``, ``compute(job, a) -> b`` (run under a lock, one at
        a time), ``write(job, b) -> record`` (a dict with shape, dtype, min,
        max, ...; input, output and seconds are added here).
    workers : int, optional
        Threads (``--jobs``); default :func:`default_jobs`.
    quiet : bool
        No progress bar and no summary line.
    json_lines : bool
        Print one JSON object per output on stdout, in input order.
    label : str
        Progress-bar text.

    Returns
    -------
    BatchResult
        Records, failures ``(input, message)`` and the exit code.

    Examples
    --------
    >>> jobs = [Job(1, "a", "a.out"), Job(2, "b", "b.out")]
    >>> def read(job):
    ...     if job.input == "b":
    ...         raise InputError("b: not an image")
    ...     return 1
    >>> res = run_batch(jobs, read, lambda j, a: a + 1, lambda j, b: {"value": b},
    ...                 quiet=True)
    >>> res.exit_code, res.failures, res.records[0]["value"]
    (1, [('b', 'b: not an image')], 2)
    """
    from .commands._common import print_error

    total = len(jobs)
    if workers is None:
        workers = default_jobs(total)
    if workers < 1:
        raise UsageError(f"--jobs must be >= 1, got {workers}")
    lock = threading.Lock()
    result = BatchResult()

    def one(job: Job) -> tuple[dict[str, Any] | None, ConvtoolError | BaseException | None, str]:
        t0 = time.perf_counter()
        try:
            a = read(job)
            with lock:
                b = compute(job, a)
            del a
            record = write(job, b)
        except ConvtoolError as exc:
            return None, exc, ""
        except Exception as exc:  # a bug: keep its traceback, but let the batch go on
            return None, exc, traceback.format_exc()
        record = {
            "input": job.input,
            "output": job.output,
            **record,
            "seconds": round(time.perf_counter() - t0, 6),
        }
        return record, None, ""

    old_term = _interrupt_on_sigterm()
    show = (not quiet) and sys.stderr.isatty()
    progress = _progress(show)
    task = None
    if progress is not None:
        progress.start()
        task = progress.add_task(label or "working", total=total)

    def handle(job: Job, outcome) -> None:
        record, exc, tb = outcome
        if exc is None:
            result.records.append(record)
            if json_lines:
                sys.stdout.write(json.dumps(record) + "\n")
                sys.stdout.flush()
        else:
            message = (
                str(exc)
                if isinstance(exc, ConvtoolError)
                else (f"{job.input}: internal error {type(exc).__name__}: {exc}")
            )
            if tb:
                sys.stderr.write(tb)
            if progress is not None:
                progress.console.print(f"convtool: error: {message}", markup=False, highlight=False)
            else:
                print_error(message)
            result.failures.append((job.input, message))
            code = EXIT_USAGE if isinstance(exc, UsageError) else EXIT_INPUT_FAILED
            result.exit_code = max(result.exit_code, code)
        if progress is not None:
            progress.advance(task)

    try:
        if workers == 1 or total == 1:
            for job in jobs:
                handle(job, one(job))
        else:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convtool")
            try:
                # a bounded window keeps memory flat on big batches
                window = workers * 2
                pending: list = []
                for job in jobs:
                    pending.append((job, pool.submit(one, job)))
                    if len(pending) >= window:
                        j, fut = pending.pop(0)
                        handle(j, fut.result())
                for j, fut in pending:
                    handle(j, fut.result())
            finally:
                # on Ctrl-C, items not started yet are dropped; running ones finish
                # (their writes are atomic, so nothing half-written is left)
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if progress is not None:
            progress.stop()
        if old_term is not None:
            import signal

            signal.signal(signal.SIGTERM, old_term)

    if result.failures and total > 1:
        names = ", ".join(inp for inp, _ in result.failures)
        sys.stderr.write(f"convtool: {len(result.failures)} of {total} inputs failed: {names}\n")
        sys.stderr.flush()
    return result


# --------------------------------------------------------------------------- image commands


def _finite_or_none(value: float) -> float | None:
    import math

    return value if math.isfinite(value) else None


def result_record(result: Any, file_dtype: str) -> dict[str, Any]:
    """shape, dtype, min, max (NaN-safe) of a float result, for ``--json``."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = float(np.nanmin(result)) if result.size else float("nan")
        hi = float(np.nanmax(result)) if result.size else float("nan")
    return {
        "shape": list(result.shape),
        "dtype": str(result.dtype),
        "min": _finite_or_none(lo),
        "max": _finite_or_none(hi),
        "file_dtype": file_dtype,
    }


def format_extension(fmt: str | None, stack: bool = False) -> str:
    """Extension (no dot) for generated output names."""
    if fmt:
        from .io import output_format

        kind = output_format("x", fmt)
        return {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind)
    return "tif" if stack else "png"


def image_batch(
    *,
    command: str,
    inputs: Sequence[str],
    output: str | None,
    compute: Callable[[Any], tuple[Any, Any]],
    gray: bool = False,
    depth: int | None = None,
    fmt: str | None = None,
    compress: int | None = None,
    jobs: int | None = None,
    quiet: bool = False,
    json_lines: bool = False,
    stack: bool = False,
    scale: str | None = None,
    chunks: int | None = None,
    scheduler: str | None = None,
) -> int:
    """Run an image -> image command over a batch; return the exit code.

    ``compute(image) -> (result, alpha_or_None)`` gets a
    :class:`convtool.io.Image` and returns the float result and the alpha to
    write with it; ``scale`` is the resolved ``--scale`` and ``stack`` says
    whether the result is a stack of maps.
    Every check that needs no pixels (output names, formats, depth, compress)
    runs before the first file is read.

    ``chunks`` (``--chunks N``) streams TIFF/.npy/zarr inputs in N x N windows
    (they also stream by themselves above a size: :mod:`convtool.streaming`);
    then ``image.data`` is a lazy Dask array, ``compute`` returns a lazy
    result and it is written band by band. ``scheduler`` (``--scheduler``)
    runs the files, and the streamed bands, on a dask.distributed cluster
    (:mod:`convtool.cluster`).
    """
    from .io import EIGHT_BIT_FORMATS, RAW_FORMATS, output_format, read_image

    if depth is not None and depth not in (8, 16):
        raise UsageError(f"--depth must be 8 or 16, got {depth}")
    if compress is not None and not 0 <= compress <= 9:
        raise UsageError(f"--compress must be a zlib level 0..9, got {compress}")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    paths = expand_inputs(inputs)
    if json_lines and output == "-":
        raise UsageError("--json and -o - both write to stdout: write the image to a file")
    if json_lines and output is None and "-" in paths:
        raise UsageError("--json with stdin input: give -o FILE (stdout carries the JSON)")
    plan = plan_outputs(paths, output, command=command, ext=format_extension(fmt, stack))
    kinds = {
        job.output: "zarr" if _is_zarr(job.output) and not fmt else output_format(job.output, fmt)
        for job in plan
    }
    RAW_FORMATS = RAW_FORMATS | {"zarr"}  # noqa: N806 - zarr holds raw float32 too
    if stack:
        bad = [o for o, k in kinds.items() if k not in RAW_FORMATS]
        if bad:
            raise UsageError(
                f"--combine stack gives one map per kernel, which {bad[0]} cannot hold: "
                "write a .tif/.tiff (one page per map) or .npy file"
            )
    if scale == "raw":
        bad = [o for o, k in kinds.items() if k not in RAW_FORMATS]
        if bad:
            raise UsageError(
                f"--scale raw keeps exact float values, which {bad[0]} cannot hold: "
                "write a .npy or .tif/.tiff file, or choose another --scale"
            )
    if depth == 16:
        bad = [o for o, k in kinds.items() if k in EIGHT_BIT_FORMATS]
        if bad:
            raise UsageError(f"{bad[0]}: this format holds 8 bits; use .png for --depth 16")

    if chunks is not None and chunks < 1:
        raise UsageError(f"--chunks must be >= 1, got {chunks}")
    streamed = _streamed_inputs(plan, chunks)
    client = None
    from .cluster import scheduler_address

    address = scheduler_address(scheduler)
    if address is not None:
        from .cluster import connect

        client = connect(address)
    worker_threads: dict[str, int] = {}
    if client is not None:
        from .cluster import threads_by_worker

        worker_threads = threads_by_worker(client)

    def encode(image, result, alpha, kind):
        """The output file's bytes and the --json record (locally and on a worker)."""
        from .io import encode_image

        src = image.depth if image.depth in (8, 16) else None
        out_depth = depth if depth is not None else (src or 8)
        if kind in EIGHT_BIT_FORMATS:
            out_depth = 8
        payload = encode_image(
            result,
            fmt=kind,
            alpha=alpha,
            depth=out_depth,
            scale=scale,
            compress=compress,
            stack=stack,
            source_depth=src,
        )
        file_dtype = "float32" if kind in RAW_FORMATS else f"uint{out_depth}"
        return payload, result_record(result, file_dtype)

    def read(job: Job):
        if job.input in streamed:
            from .streaming import open_lazy

            return open_lazy(job.input, gray=gray, chunks=chunks)
        if client is not None:
            from .cluster import read_bytes

            return read_bytes(job.input)
        return read_image(job.input, gray=gray)

    def run(job: Job, image):
        if isinstance(image, bytes):  # computed on the cluster, in write
            return image, None, None
        return (image, *compute(image))

    def write(job: Job, payload) -> dict[str, Any]:
        image, result, alpha = payload
        kind = kinds[job.output]
        if isinstance(image, bytes):
            import functools

            from .cluster import remote_item

            future = client.submit(
                remote_item,
                image,
                job.input,
                gray,
                compute,
                functools.partial(encode, kind=kind),
                worker_threads,
                choice,
                pure=False,
            )
            data, record = future.result()
            _put(job.output, data)
            return record
        if job.input in streamed:
            return _write_streamed(job, image, result, alpha, kind, encode)
        if kind == "zarr":
            from .streaming import write_array

            return write_array(job.output, result)
        data, record = encode(image, result, alpha, kind)
        _put(job.output, data)
        return record

    def _write_streamed(job, image, result, alpha, kind, encode):
        from .chunked import is_dask
        from .io import _max_pixels
        from .parallel import get_threads
        from .streaming import STREAM_OUTPUTS, Bands, compute_whole, progress_bar, write_lazy

        threads = get_threads()  # --threads, when given, caps the local pool too
        bands = Bands(image.source, image.window, client=client, threads=threads)
        if kind in STREAM_OUTPUTS and is_dask(result):
            bar = progress_bar(f"{command} {job.input}", not quiet and len(plan) == 1)
            if bar is None:
                return write_lazy(job.output, kind, result, bands, stack=stack)
            with bar:
                task = bar.add_task(command, total=None)

                def tick(done, total):
                    bar.update(task, completed=done, total=total)

                return write_lazy(job.output, kind, result, bands, stack=stack, progress=tick)
        if kind == "zarr":
            from .streaming import write_array

            return write_array(job.output, compute_whole(result, bands, job.output, None))
        limit = _max_pixels()
        if is_dask(result):
            result = compute_whole(result, bands, job.output, limit)
        if is_dask(alpha):
            alpha = compute_whole(alpha, bands, job.output, limit)
        data, record = encode(image, result, alpha, kind)
        _put(job.output, data)
        return record

    if streamed:
        jobs = 1  # one huge image at a time: memory follows the windows, not the batch
    elif client is not None and jobs is None:
        from .cluster import cluster_threads

        jobs = max(1, min(len(plan), 2 * cluster_threads(client)))
    choice = _batch_choice(plan, streamed)
    try:
        with rentbuy.pin(choice):
            res = run_batch(
                plan,
                read,
                run,
                write,
                workers=jobs,
                quiet=quiet or (len(plan) == 1 and bool(streamed)),
                json_lines=json_lines,
                label=command,
            )
    finally:
        if client is not None:
            client.close()
    return res.exit_code


def _batch_choice(plan: Sequence[Job], streamed: set[str]) -> str:
    """numpy or Numba for every file of the batch, decided before any file runs.

    From the pixel counts in the headers (:func:`convtool.rentbuy.batch_choice`),
    so the output bytes do not depend on the order files run in, on ``--jobs``
    or on where they run (a cluster worker gets the same choice).
    """
    from .io import _peek_size

    pixels = []
    for job in plan:
        if job.input == "-" or job.input in streamed:
            continue  # unknown before reading / computed by the lazy path
        size = _peek_size(job.input)
        if size is not None:
            pixels.append(size[0] * size[1])
    return rentbuy.batch_choice(pixels)


def _put(dest: str, data: bytes) -> None:
    """Write encoded bytes to ``dest`` atomically, or to stdout for ``-``."""
    from .io import atomic_write

    if dest == "-":
        out = sys.stdout.buffer
        out.write(data)
        out.flush()
        return
    atomic_write(dest, lambda fh: fh.write(data))


def _streamed_inputs(plan: Sequence[Job], chunks: int | None) -> set[str]:
    """Inputs read window by window (TIFF/.npy/zarr, big or with --chunks)."""
    from .streaming import input_kind, should_stream

    if not any(input_kind(job.input) for job in plan):
        return set()
    try:
        return {job.input for job in plan if should_stream(job.input, chunks)}
    except ImportError as exc:
        if chunks is None:
            return set()  # no tifffile/dask: the in-memory reader handles what it can
        raise UsageError(
            f"--chunks needs the optional dependencies ({exc.name}): pip install 'convtool[dask]'"
        ) from None
