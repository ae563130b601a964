"""Rent or buy: whether a job should run on numpy or load the Numba kernels.

Importing Numba and loading its cached kernels costs about a second per
process; compiling a kernel the cache does not hold yet costs seconds more.
Plain numpy needs neither, so for a small job it is the cheaper way to the
answer. The rule (ski rental): while Numba is not loaded, jobs run on numpy
("rent") as long as the numpy time this process has spent, this job
included, stays below what loading Numba would cost ("buy"): its start-up,
plus the compile time of every kernel the job needs that is not in the cache
yet. Past that, Numba is loaded and used from then on. No choice costs more
than about twice the better one in hindsight; a single command on a photo
never pays for Numba, a batch pays once, early.

Whether a kernel is cached is read from Numba's index files (one
``<module>.<function>-<line>.pyXY.nbi`` per function in the cache directory
:mod:`convtool.core` chose), without importing Numba. The estimate can be
wrong (another Numba version's index, a signature not compiled yet); that
only changes which path runs, never a result.

A batch does not use the rule per file: the two paths differ by float32
round-off (a few 8-bit pixels for non-integer kernels), so which files ran on
numpy would depend on the process's history and, with ``--jobs 2``, on thread
timing. A batch decides once, before any file runs, from the pixel counts in
the files' headers (:func:`batch_choice`), and :func:`pin` holds that choice
for every file; a cluster batch ships the same choice to its workers.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = [
    "COMPILE_NS",
    "NUMBA_START_NS",
    "RENT_PIXELS",
    "batch_choice",
    "cached",
    "numba_loaded",
    "pin",
    "pinned",
    "prefer_numpy",
]

#: Importing Numba and loading its cached kernels, once per process (ns).
NUMBA_START_NS = 1.1e9

#: CPU time to compile each kernel (all the signatures one job needs, with the
#: tap loops it inlines) on a cold cache, ns; measured on the 2-core machine
#: the README's benchmarks ran on (``benchmarks/bench_cli.py --cold``).
COMPILE_NS: dict[str, float] = {
    "conv.direct": 6e9,
    "conv.separable": 4e9,
    "pool.reduce_table": 2e9,
    "pool.reduce_table_separable": 2e9,
    "pool.max_2x2_s2": 0.5e9,
    "pool.avg_2x2_s2": 0.5e9,
    "pool.max_3x3_s2": 0.7e9,
    "match.value_stats": 0.3e9,
    "match.normalize_block": 1.0e9,
    "match.correlate_direct": 1.0e9,
    "match.find_peaks": 0.7e9,
    "match.greedy_suppress": 0.4e9,
    "conv_winograd.winograd_f43": 3e9,
    "conv_winograd.weight_transform": 0.5e9,
    "conv_gemm.gemm_offsets": 0.5e9,
    "png.unfilter": 0.5e9,
}

_spent_ns = 0.0
_lock = threading.Lock()
_known: dict[str, bool] = {}


def numba_loaded() -> bool:
    """Whether this process has imported Numba already (then it costs nothing more)."""
    return "numba" in sys.modules


def _cache_dir() -> str:
    """Where Numba keeps convtool.core's cache (its own locator rules, no import)."""
    import convtool.core as core  # chooses NUMBA_CACHE_DIR first, as for the kernels

    source_dir = os.path.dirname(os.path.abspath(core.__file__))
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        digest = hashlib.sha1(source_dir.encode()).hexdigest()
        return os.path.join(env, f"{os.path.basename(source_dir)}_{digest}")
    return os.path.join(source_dir, "__pycache__")


def cached(kernels: Iterable[str]) -> bool:
    """Whether Numba's cache has an up-to-date index for every ``"module.function"``.

    Examples
    --------
    >>> cached([])
    True
    """
    kernels = list(kernels)
    missing = [k for k in kernels if not _known.get(k)]
    if not missing:
        return True
    import convtool.core as core

    directory = glob.escape(_cache_dir())
    source_dir = os.path.dirname(os.path.abspath(core.__file__))
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    for kernel in missing:
        module = kernel.split(".", 1)[0]
        try:
            source_time = os.stat(os.path.join(source_dir, module + ".py")).st_mtime
        except OSError:
            return False
        hits = glob.glob(os.path.join(directory, f"{kernel}-*.{tag}.nbi"))
        if not any(os.stat(h).st_mtime >= source_time for h in hits):
            return False
        _known[kernel] = True
    return True


def buy_ns(kernels: Iterable[str]) -> float:
    """What loading Numba for these kernels would cost now: start-up plus compiles."""
    kernels = list(kernels)
    if cached(kernels):
        return NUMBA_START_NS
    return NUMBA_START_NS + sum(COMPILE_NS.get(k, 1e9) for k in kernels if not _known.get(k))


def prefer_numpy(numpy_ns: float, kernels: Iterable[str]) -> bool:
    """Whether to run a job on numpy (estimated ``numpy_ns``) rather than on ``kernels``.

    True while Numba is not loaded and this process's numpy time, this job
    included, stays within :func:`buy_ns`; the job's time is then counted.

    Examples
    --------
    >>> prefer_numpy(1e15, ["conv.direct"])  # far more than loading Numba costs
    False
    """
    global _spent_ns
    choice = pinned()
    if choice is not None:
        return choice == "numpy"
    if numba_loaded():
        return False
    buy = buy_ns(kernels)
    with _lock:
        if _spent_ns + numpy_ns > buy:
            return False
        _spent_ns += numpy_ns
    return True


# ---------------------------------------------------------------------------
# A batch's choice, decided once and pinned (deterministic output bytes)

#: A batch whose images hold at most this many pixels in all runs on numpy,
#: larger ones load Numba for every file. At 25-75 ms per megapixel for a 3x3
#: to 9x9 separable kernel on colour (the cost model of
#: :mod:`convtool.filtering`), 16 Mpx is 0.4-1.2 s of numpy: about what
#: loading cached kernels costs (:data:`NUMBA_START_NS`), and well below a
#: cold compile (seconds), so a photo's first run never compiles (the
#: 2048x2048 first-run case of ``benchmarks/bench_cli.py --cold`` stays on
#: numpy). Deliberately independent of the machine (cache state, Numba
#: already loaded): the same batch makes the same choice locally and on a
#: cluster, cold or warm.
RENT_PIXELS = 16_000_000

_pins = {"numpy": 0, "compiled": 0}


def batch_choice(pixels: Iterable[int]) -> str:
    """``"numpy"`` or ``"compiled"`` for a whole batch, from its images' pixel counts.

    Unknown sizes (standard input, a header Pillow cannot read) count as 0.

    Examples
    --------
    >>> batch_choice([512 * 512, 451 * 300])
    'numpy'
    >>> batch_choice([6000 * 4000])
    'compiled'
    """
    return "numpy" if sum(pixels) <= RENT_PIXELS else "compiled"


def pinned() -> str | None:
    """The choice every job in this process follows now, or None (the per-job rule).

    Two batches pinned to different choices at once in one process (two
    clients sharing a cluster worker) cannot both hold: then None.
    """
    numpy, compiled = _pins["numpy"], _pins["compiled"]
    if numpy and not compiled:
        return "numpy"
    if compiled and not numpy:
        return "compiled"
    return None


@contextmanager
def pin(choice: str | None) -> Iterator[None]:
    """Run every job inside on numpy (``"numpy"``) or on the Numba kernels (``"compiled"``).

    Process-wide (a batch's threads all see it); nested or concurrent pins
    of the same choice are counted, so one task finishing does not unpin
    another. ``None`` pins nothing.

    Examples
    --------
    >>> with pin("numpy"):
    ...     prefer_numpy(1e15, ["conv.direct"])
    True
    >>> pinned() is None
    True
    """
    if choice is None:
        yield
        return
    if choice not in _pins:
        raise ValueError(f"pin: choice must be 'numpy' or 'compiled', got {choice!r}")
    with _lock:
        _pins[choice] += 1
    try:
        yield
    finally:
        with _lock:
            _pins[choice] -= 1
