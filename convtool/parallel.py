"""Compute threads: one setting for every kernel, and row blocks run on Python threads.

The Numba kernels in :mod:`convtool.core` are serial and release the GIL
(``nogil=True``); this module splits a job's output rows into blocks and runs
them on a small pool of Python threads. Compared with Numba's ``prange`` this
compiles several times faster (no parallel-loop lowering, no threading layer
to load) and the thread count is ours: :func:`set_threads` sets it for the
process without importing Numba, :func:`threads` overrides it for the calling
thread (a Dask task, a test).

Nothing here imports Numba: the FFT paths (numpy releases the GIL too) use
the same thread count. Once something else has loaded Numba, jobs go to a
team of threads that busy-wait about a millisecond for the next job before
they sleep (:mod:`convtool.core.spin`), as onnxruntime's and OpenMP's do: on
a virtual machine waking a sleeping thread costs 50-100 us, a sixth of a
ResNet layer.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
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


#: Spin iterations a team thread watches for the next job before it sleeps, and the
#: caller for the team to finish before it polls (each iteration a pause hint,
#: about 25 ns on the benchmark machine: 1 ms). A network starts its next layer
#: well within that; a thread woken from sleep instead costs 50-100 us there.
SPIN = 40_000


class _Team:
    """Helper threads that run the blocks of one job at a time alongside its caller.

    Used once Numba is loaded (the waits are compiled loops that release the
    GIL): helper i watches ``state[0]`` (the job number), runs ``job(i)``
    when it changes and then writes the number to ``state[2 + i]``, which
    the caller watches. After SPIN iterations without a job a helper sleeps
    on a condition until the next one.
    """

    def __init__(self, size: int) -> None:
        import numpy as np

        self.size = size
        self.state = np.zeros(2 + size, np.int64)
        self.job: Callable[[int], object] | None = None
        self.busy = threading.Lock()
        self.cond = threading.Condition()
        self.stop = False
        for i in range(size):
            threading.Thread(
                target=self._serve, args=(i,), daemon=True, name=f"convtool-team-{i}"
            ).start()

    def _serve(self, i: int) -> None:
        from .core.spin import wait_change

        seen = 0
        while True:
            number = int(wait_change(self.state, 0, seen, SPIN))
            if number == seen:
                with self.cond:
                    while int(self.state[0]) == seen and not self.stop:
                        self.cond.wait()
                    number = int(self.state[0])
            if self.stop:
                return
            seen = number
            job = self.job
            try:
                if job is not None:
                    job(i)
            finally:
                self.state[2 + i] = number

    def run(self, job: Callable[[int], object]) -> None:
        """Run ``job(i)`` on every helper and ``job(-1)`` here; return when all are done."""
        from .core.spin import wait_all

        self.job = job
        with self.cond:
            number = int(self.state[0]) + 1
            self.state[0] = number
            self.cond.notify_all()
        try:
            job(-1)
        finally:
            while not wait_all(self.state, 2, self.size, number, SPIN):
                time.sleep(50e-6)

    def close(self) -> None:
        with self.cond:
            self.stop = True
            self.state[0] += 1
            self.cond.notify_all()


_team: _Team | None = None


def _claim_team(helpers: int) -> _Team | None:
    """The team with at least ``helpers`` helpers, locked for one job; None when
    Numba is not loaded or another thread's job holds the team."""
    global _team
    if "numba" not in sys.modules:
        return None
    with _pool_lock:
        if _team is None or _team.size < helpers:
            if _team is not None:
                if not _team.busy.acquire(blocking=False):
                    return None
                _team.close()
            _team = _Team(helpers)
        team = _team
    return team if team.busy.acquire(blocking=False) else None


def _forget_team() -> None:  # a forked child has none of the parent's threads
    global _team, _pool, _pool_size
    _team, _pool, _pool_size = None, None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_team)


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

    team = _claim_team(nt - 1)
    if team is not None:
        try:
            team.run(lambda i: worker() if i < nt - 1 else None)
        finally:
            team.busy.release()
        if failed:
            raise failed[0]
        return
    pool = _executor(nt - 1)
    futures = [pool.submit(worker) for _ in range(nt - 1)]
    worker()  # the calling thread takes blocks too
    for f in futures:
        if not f.cancel():  # not started yet (the pool was busy): nothing left for it
            f.result()  # else wait: it writes into the caller's arrays
    if failed:
        raise failed[0]
