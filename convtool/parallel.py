"""Compute threads: one setting for every kernel, and row blocks run on Python threads.

The Numba kernels in :mod:`convtool.core` are serial and release the GIL
(``nogil=True``); this module splits a job's output rows into blocks and runs
them on a small pool of Python threads. Compared with Numba's ``prange`` this
compiles several times faster (no parallel-loop lowering, no threading layer
to load) and the thread count is ours: :func:`set_threads` sets it for the
process without importing Numba, :func:`threads` overrides it for the calling
thread (a Dask task, a test).

Nothing here imports Numba: the FFT paths (numpy releases the GIL too) use
the same thread count.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from .modes import check_positive_int

__all__ = ["check_threads", "get_threads", "run_blocks", "set_threads", "threads"]

_default: int | None = None
_local = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _machine_threads() -> int:
    """Threads the process may use: ``NUMBA_NUM_THREADS`` if set, else its CPUs."""
    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def check_threads(n: int) -> int:
    """``n`` as an int if it is a whole number >= 1, else UsageError."""
    return check_positive_int("threads", n)


def set_threads(n: int | None) -> None:
    """Set the compute threads of this process (``None``: keep the current setting).

    Examples
    --------
    >>> set_threads(None)  # no change
    """
    global _default
    if n is None:
        return
    _default = check_threads(n)


def get_threads() -> int:
    """The compute threads for a job started on the calling thread.

    Examples
    --------
    >>> with threads(1):
    ...     get_threads()
    1
    """
    local = getattr(_local, "n", None)
    if local is not None:
        return local
    return _default if _default is not None else _machine_threads()


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Use ``n`` compute threads for jobs started on this thread inside the block."""
    if n is None:
        yield
        return
    old = getattr(_local, "n", None)
    _local.n = check_threads(n)
    try:
        yield
    finally:
        _local.n = old


def _executor(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < size:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="convtool")
            _pool_size = size
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def run_blocks(
    func: Callable[[int, int], object], n: int, *, work: float, nthreads: int | None = None
) -> None:
    """Call ``func(i0, i1)`` over blocks covering ``range(n)``, on the compute threads.

    ``work`` is the job's size in elementary operations (multiply-adds, reads):
    below about a million the blocks run on the calling thread, where waking
    other threads would cost more than it saves. The calling thread takes
    blocks too; there are 4 per thread, handed out in order as threads come
    free (a busy core then delays a quarter of its share, not all of it).
    """
    nt = nthreads or get_threads()
    nt = max(1, min(nt, n, int(work // 500_000) or 1))
    if nt == 1:
        func(0, n)
        return
    nblocks = min(n, 4 * nt)
    bounds = [n * b // nblocks for b in range(nblocks + 1)]
    counter = itertools.count()  # next() is atomic: each block is taken once
    failed: list[BaseException] = []

    def worker() -> None:
        for b in iter(lambda: next(counter), None):
            if b >= nblocks or failed:
                return
            try:
                func(bounds[b], bounds[b + 1])
            except BaseException as exc:
                failed.append(exc)
                return

    pool = _executor(nt - 1)
    futures = [pool.submit(worker) for _ in range(nt - 1)]
    worker()  # the calling thread takes blocks too
    for f in futures:
        if not f.cancel():  # not started yet (the pool was busy): nothing left for it
            f.result()  # else wait: it writes into the caller's arrays
    if failed:
        raise failed[0]
