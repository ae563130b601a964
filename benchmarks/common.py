"""Shared helpers for the benchmark scripts: timing, threads, machine description, tables.

Every script in this directory imports this module by plain ``import common``
(Python puts the script's own directory on ``sys.path``), so the scripts run
as ``python benchmarks/bench_xxx.py`` from anywhere, without installing them.

Timing rule used everywhere: one warm-up call (it compiles or loads the Numba
cache, and faults in the output pages of the allocator), then at least
``repeat`` timed calls; we report the median (the headline number) and the
minimum (the least disturbed run). The machine is shared, so the median is
the honest figure and the min says how much noise there was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

DEFAULT_THREADS = 2


@dataclass
class Timing:
    """Wall-clock times of one benchmarked call, in seconds."""

    median: float
    min: float
    runs: list[float] = field(default_factory=list)
    first: float = float("nan")  # the warm-up call (compile / cache load included)

    @property
    def median_ms(self) -> float:
        return self.median * 1e3

    @property
    def min_ms(self) -> float:
        return self.min * 1e3


def timeit(
    fn: Callable[[], Any],
    *,
    repeat: int = 7,
    min_repeat: int = 5,
    slow_seconds: float = 1.0,
    budget: float | None = None,
) -> Timing:
    """Time ``fn()``: one warm-up call, then ``repeat`` runs (median and min).

    When the warm-up call takes longer than ``slow_seconds`` the number of
    runs drops to ``min_repeat`` (5 unless told), so one slow combination does
    not dominate the whole benchmark. The warm-up's result is kept on
    ``timing.result`` (not serialised) so callers can check it against a peer
    without paying for one more call.

    With ``budget``, a warm-up call slower than ``budget`` seconds is the only
    run (``len(timing.runs) == 1``): a forced slow path is shown, not dwelt on.
    """
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    if budget is not None and first > budget:
        timing = Timing(first, first, [first], first)
        timing.result = result  # type: ignore[attr-defined]
        return timing
    if first > slow_seconds:
        repeat = min(repeat, min_repeat)
    runs = []
    for _ in range(max(repeat, min_repeat)):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    timing = Timing(statistics.median(runs), min(runs), runs, first)
    timing.result = result  # type: ignore[attr-defined]
    return timing


def timeit_pair(
    fn: Callable[[], Any],
    peer_fn: Callable[[], Any],
    *,
    repeat: int = 7,
    min_repeat: int = 5,
    slow_seconds: float = 1.0,
    budget: float | None = None,
) -> tuple[Timing, Timing]:
    """Time ``fn`` and ``peer_fn`` interleaved (a, b, a, b, ...) after one warm-up each.

    On a shared machine the load drifts during a run; interleaving makes both
    sides see the same drift, so their ratio stays meaningful. Same rules as
    :func:`timeit` (the warm-up results are kept on ``.result``); when ``fn``'s
    warm-up exceeds ``budget`` it is not run again and the peer is timed alone.
    """
    results = []
    firsts = []
    for f in (fn, peer_fn):
        t0 = time.perf_counter()
        results.append(f())
        firsts.append(time.perf_counter() - t0)
    if budget is not None and firsts[0] > budget:
        ours = Timing(firsts[0], firsts[0], [firsts[0]], firsts[0])
        peer = timeit(peer_fn, repeat=repeat, min_repeat=min_repeat, slow_seconds=slow_seconds)
        peer.first = firsts[1]
        ours.result = results[0]  # type: ignore[attr-defined]
        peer.result = results[1]  # type: ignore[attr-defined]
        return ours, peer
    if max(firsts) > slow_seconds:
        repeat = min(repeat, min_repeat)
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(repeat, min_repeat)):
        for f, bucket in ((fn, runs[0]), (peer_fn, runs[1])):
            t0 = time.perf_counter()
            f()
            bucket.append(time.perf_counter() - t0)
    out = []
    for bucket, first, result in zip(runs, firsts, results, strict=True):
        t = Timing(statistics.median(bucket), min(bucket), bucket, first)
        t.result = result  # type: ignore[attr-defined]
        out.append(t)
    return out[0], out[1]


def set_threads(n: int) -> None:
    """Give Numba and OpenCV the same thread count (both default to every core).

    convtool.core is imported first, as the CLI does: it sets the Numba cache
    location and OMP_WAIT_POLICY before numba starts its OpenMP threads.
    """
    import importlib

    importlib.import_module("convtool.core")
    try:  # convtool's own thread setting (its kernels run on Python threads)
        importlib.import_module("convtool.parallel").set_threads(n)
    except ImportError:  # an older convtool: Numba's threads only
        pass
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover - cv2 is a bench dependency
        pass


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The SIMD level the CPU reports (it decides what a vectorised loop can reach)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
            else:
                return "?"
    except OSError:
        return "?"
    for level in ("avx512f", "avx2", "avx", "sse4_2"):  # best first
        if level in flags:
            return level
    return "baseline"


def machine() -> dict[str, Any]:
    """A description of where the numbers came from (printed above every table)."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "simd": cpu_flags(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    try:
        info["affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        pass
    try:
        info["loadavg"] = round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        pass
    info["env"] = {
        k: os.environ[k]
        for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_THREADING_LAYER", "NUMBA_CACHE_DIR")
        if k in os.environ
    }
    if "numba" in sys.modules:
        import numba

        info["numba_threads"] = numba.get_num_threads()
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel function has run yet
            info["numba_threading_layer"] = "not yet chosen"
    if "cv2" in sys.modules:
        import cv2

        info["cv2_threads"] = cv2.getNumThreads()
    for dist, key in (
        ("numpy", "numpy"),
        ("numba", "numba"),
        ("opencv-python-headless", "cv2"),
        ("scipy", "scipy"),
        ("scikit-image", "skimage"),
        ("pillow", "pillow"),
        ("convtool", "convtool"),
    ):
        info[key] = _version(dist)
    return info


def machine_text(info: dict[str, Any]) -> str:
    threads = ""
    if "numba_threads" in info:
        threads = (
            f"threads: numba {info['numba_threads']} ({info.get('numba_threading_layer')}),"
            f" cv2 {info.get('cv2_threads', '?')}\n"
        )
    return (
        f"machine: {info['cpu']} ({info['simd']}), {info['cores']} cores"
        f" (affinity {info.get('affinity', '?')}), load avg {info.get('loadavg', '?')}"
        f" [shared machine: numbers are noisy]\n"
        f"{threads}"
        f"env: {' '.join(f'{k}={v}' for k, v in info.get('env', {}).items()) or '-'}\n"
        f"versions: python {info['python']}, numpy {info['numpy']}, numba {info['numba']},"
        f" cv2 {info['cv2']}, scipy {info['scipy']}, convtool {info['convtool']}\n"
        f"date: {info['date_utc']} UTC"
    )


def parser(description: str, *, threads: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the options every script shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="also write the results as JSON to FILE; bare --json prints only JSON on stdout",
    )
    p.add_argument("--repeat", type=int, default=7, help="timed runs per case (min 5)")
    if threads:
        p.add_argument(
            "--threads",
            type=int,
            default=DEFAULT_THREADS,
            help=f"numba and cv2 threads (default {DEFAULT_THREADS})",
        )
    return p


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference, after checking the shapes agree."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def check_agree(name: str, ours: Any, ref: Any, *, rtol: float = 1e-4) -> float:
    """Max abs diff of ours vs the peer; abort when they disagree beyond float32 rounding.

    The tolerance is relative to the largest magnitude in the reference (a
    float32 sum of K*K products loses a few ulps of its largest term).
    """
    import numpy as np

    diff = max_abs_diff(ours, ref)
    scale = float(np.max(np.abs(ref))) if np.size(ref) else 1.0
    if not diff <= rtol * max(scale, 1.0):
        raise SystemExit(
            f"{name}: convtool disagrees with the peer (max abs diff {diff:.3g}, "
            f"tolerance {rtol:g} x {scale:.3g}); refusing to benchmark a wrong answer"
        )
    return diff


def auto_pick(image_shape: tuple[int, ...], kernel: Any) -> str | None:
    """The method ``convolve(method="auto")`` picks, asked from convtool.filtering.

    Uses ``choose_method(shape, kshape, separable=...)`` when the API exposes
    it (rank 1 judged by SVD with the API's own ``RANK1_RTOL`` when present);
    returns None when it cannot be asked, so callers infer it from the times.
    """
    import numpy as np

    try:
        from convtool import filtering
    except ImportError:
        return None
    choose = getattr(filtering, "choose_method", None)
    if not callable(choose):
        return None
    w = np.asarray(kernel, dtype=np.float64)
    s = np.linalg.svd(w, compute_uv=False)
    rtol = getattr(filtering, "RANK1_RTOL", 1e-5)
    separable = min(w.shape) > 1 and s[0] > 0 and s[1] <= rtol * s[0]
    for call in (
        lambda: choose(tuple(image_shape), w.shape, separable=separable),
        lambda: choose(tuple(image_shape), w.shape),
    ):
        try:
            got = call()
        except TypeError:  # another signature: try the next one
            continue
        return getattr(got, "method", got) if isinstance(getattr(got, "method", got), str) else None
    return None


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pastes straight into README), columns padded for the terminal."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(headers), "| " + " | ".join("-" * w for w in widths) + " |"]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def dump_json(dest: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` as JSON to ``dest`` ("-" = stdout)."""

    def default(o: Any) -> Any:
        if isinstance(o, Timing):
            return asdict(o)  # the kept warm-up result is not a field
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)

    text = json.dumps(doc, indent=2, default=default) + "\n"
    if dest == "-":
        sys.stdout.write(text)
    else:
        with open(dest, "w", encoding="utf-8") as fh:
            fh.write(text)


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "-"
    return "pass" if ok else "MISS"
