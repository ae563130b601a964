"""convtool.parallel: blocks cover a job exactly once on the team or the pool."""

from __future__ import annotations

import threading
import time

import numba  # noqa: F401  (loaded: jobs go to the spinning team)
import pytest

from convtool import parallel
from convtool.parallel import run_blocks, threads


def blocks_of(n: int, nthreads: int) -> list[tuple[int, int, int]]:
    seen: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def func(i0: int, i1: int) -> None:
        time.sleep(0.0005)  # long enough for every thread to take a block
        with lock:
            seen.append((i0, i1, threading.get_ident()))

    run_blocks(func, n, work=1e12, nthreads=nthreads)
    return seen


@pytest.mark.parametrize("n, nthreads", [(1, 2), (7, 2), (64, 2), (13, 3), (100, 4)])
def test_blocks_cover_the_range_once(n, nthreads):
    seen = blocks_of(n, nthreads)
    covered = sorted(i for i0, i1, _ in seen for i in range(i0, i1))
    assert covered == list(range(n))
    assert len({ident for *_, ident in seen}) <= nthreads


def test_a_team_bigger_than_the_job_lends_only_what_is_asked():
    blocks_of(40, 4)  # a team of three helpers
    assert parallel._team is not None and parallel._team.size >= 3
    for _ in range(5):
        assert len({ident for *_, ident in blocks_of(40, 2)}) <= 2


def test_errors_reach_the_caller_and_the_team_keeps_working():
    def boom(i0: int, i1: int) -> None:
        if i0 > 0:
            raise ValueError("block failed")

    with pytest.raises(ValueError, match="block failed"):
        run_blocks(boom, 16, work=1e12, nthreads=2)
    assert sorted(i for i0, i1, _ in blocks_of(16, 2) for i in range(i0, i1)) == list(range(16))


def test_sleeping_helpers_wake_for_the_next_job():
    blocks_of(8, 2)
    time.sleep(0.05)  # longer than the spin: the helpers sleep on the condition
    seen = blocks_of(8, 2)
    assert sorted(i for i0, i1, _ in seen for i in range(i0, i1)) == list(range(8))


def test_concurrent_callers_each_get_their_whole_job():
    """Two threads start jobs at once: one gets the team, the other the pool."""
    results: dict[int, list[int]] = {}

    def caller(k: int) -> None:
        with threads(2):
            out: list[int] = []
            for _ in range(20):
                out = sorted(i for i0, i1, _ in blocks_of(12, 2) for i in range(i0, i1))
                if out != list(range(12)):
                    break
            results[k] = out

    workers = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == {k: list(range(12)) for k in range(3)}
