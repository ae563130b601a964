"""Big images and clusters: the three targets of issue 9, ratios in one run, 2 threads each.

1. API: a 5x5 filter on an 8192x8192 float32 dask array in 2048x2048 chunks,
   ``convtool.convolve`` (lazy) against ``dask_image.ndfilters.convolve`` on the
   same array and against convtool in memory on the numpy array. Targets:
   <= 0.2x dask-image, <= 1.3x in memory. The lazy results are materialised
   with ``da.store`` into one preallocated array (what a pipeline writing its
   output does); ``.compute()`` (which concatenates the blocks once more) is
   shown too. The four calls run in interleaved rounds; times are medians and
   each ratio is the median of the per-round ratios (a slow spell on the shared
   machine hits a whole round).
2. CLI streaming: a generated ~600 MB 8-bit tiled BigTIFF through
   ``convtool convolve big.tif -k gaussian:2 -o out.tif``; peak RSS of the
   whole process (its own getrusage, from a wrapper process) against the 1 GB
   target, and Mpx/s against the in-memory path on an 8192x8192 TIFF that fits.
3. Cluster: a batch of PNGs on a 2-worker ``LocalCluster`` (1 thread each,
   loopback) against a local ``--jobs 2`` batch; overhead per file, and the
   outputs checked byte for byte.

Run: ``python benchmarks/bench_scale.py`` (about 2-4 minutes; needs
``pip install -e '.[bench]'``). ``--quick`` uses a 4096 array, a 150 MB TIFF
and 12 files; ``--dir DIR`` puts the generated files there (default a
temporary directory, removed at the end; ~3.5 GB free space needed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, set_threads  # noqa: E402

THREADS = 2

# runs a command and prints its peak RSS (KiB on Linux) as the last line
_RSS_WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t0 = time.perf_counter()\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "dt = time.perf_counter() - t0\n"
    "print(code, dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measured(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one command, in a fresh wrapper process."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, *cmd], capture_output=True, text=True, check=True
    )
    code, seconds, kib = out.stdout.split()[-3:]
    if int(code) != 0:
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}\n{out.stderr}")
    return float(seconds), int(kib) / 1024


def bench_api(side: int, chunk: int, repeat: int) -> list[dict]:
    import dask
    import dask.array as da
    from dask_image import ndfilters

    import convtool

    rng = np.random.default_rng(0)
    img = rng.random((side, side), dtype=np.float32) * 255
    w = rng.random((5, 5)).astype(np.float32)
    x = da.from_array(img, chunks=chunk)
    out = np.empty_like(img)
    rows = []
    with dask.config.set(scheduler="threads", num_workers=THREADS):
        lazy = convtool.convolve(x, w)
        peer = ndfilters.convolve(x, w, mode="mirror")  # scipy mirror = convtool reflect
        want = convtool.convolve(img, w)
        da.store(lazy, out, lock=False)
        diff_mem = float(np.abs(out - want).max())
        diff_peer = float(np.abs(out - peer.compute()).max())
        # interleaved rounds (the machine is shared: a slow spell hits every column
        # of its round alike), after one warm-up of each; ratios are per round
        calls = {
            "mem": lambda: convtool.convolve(img, w, threads=THREADS),
            "store": lambda: da.store(convtool.convolve(x, w), out, lock=False),
            "compute": lambda: convtool.convolve(x, w).compute(),
            "peer": lambda: da.store(ndfilters.convolve(x, w, mode="mirror"), out, lock=False),
        }
        for fn in calls.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(repeat):
            for k, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    t_mem, t_store, t_compute, t_peer = (float(np.median(times[k])) for k in calls)

    def ratio(a: str, b: str) -> float:
        return float(np.median([x / y for x, y in zip(times[a], times[b], strict=True)]))

    case = f"5x5 on {side}x{side} float32, {chunk}x{chunk} chunks"
    rows.append(dict(case=case, what="convtool in memory (numpy)", ms=t_mem * 1e3))
    rows.append(
        dict(
            case=case,
            what="convtool lazy, da.store",
            ms=t_store * 1e3,
            vs_memory=ratio("store", "mem"),
            vs_dask_image=ratio("store", "peer"),
            max_diff_memory=diff_mem,
            max_diff_dask_image=diff_peer,
        )
    )
    rows.append(
        dict(
            case=case,
            what="convtool lazy, .compute()",
            ms=t_compute * 1e3,
            vs_memory=ratio("compute", "mem"),
            vs_dask_image=ratio("compute", "peer"),
        )
    )
    rows.append(dict(case=case, what="dask-image ndfilters.convolve, da.store", ms=t_peer * 1e3))
    return rows


def _tiled_tiff(path: Path, side: int, tile: int = 256) -> None:
    """An 8-bit tiled BigTIFF written tile by tile (never whole in memory)."""
    import tifffile

    base = (np.random.default_rng(1).random((4 * tile, 4 * tile)) * 255).astype(np.uint8)

    def tiles():
        for i in range(-(-side // tile)):
            for j in range(-(-side // tile)):
                yield base[(i % 4) * tile : (i % 4 + 1) * tile, (j % 4) * tile : (j % 4 + 1) * tile]

    tifffile.imwrite(path, tiles(), shape=(side, side), dtype=np.uint8, tile=(tile, tile),
                     bigtiff=True)  # fmt: skip


def bench_stream(work: Path, big_side: int, fit_side: int) -> list[dict]:
    big, fit = work / "big.tif", work / "fit.tif"
    _tiled_tiff(big, big_side)
    _tiled_tiff(fit, fit_side)
    conv = [sys.executable, "-m", "convtool", "convolve"]
    common = ["-k", "gaussian:2", "--threads", str(THREADS), "-q"]
    rows = []
    for label, src, extra in (
        (f"in memory (Pillow), {fit_side}x{fit_side}", fit, []),
        (f"streamed (--chunks 1024), {fit_side}x{fit_side}", fit, ["--chunks", "1024"]),
        (f"streamed (automatic), {big_side}x{big_side}", big, []),
    ):
        out = work / "out.tif"
        seconds, rss = measured([*conv, str(src), *common, *extra, "-o", str(out)])
        mpx = (src.stat().st_size and (big_side if src == big else fit_side) ** 2) / 1e6
        rows.append(
            dict(
                case="convtool convolve X.tif -k gaussian:2 -o out.tif",
                what=label,
                input_mb=round(src.stat().st_size / 1e6, 1),
                seconds=seconds,
                mpx_per_s=mpx / seconds,
                peak_rss_mb=rss,
            )
        )
        out.unlink()
    big.unlink()
    return rows


def bench_cluster(work: Path, nfiles: int) -> list[dict]:
    from distributed import LocalCluster
    from PIL import Image

    src = work / "batch"
    src.mkdir()
    rng = np.random.default_rng(2)
    for i in range(nfiles):
        Image.fromarray((rng.random((768, 1024, 3)) * 255).astype(np.uint8)).save(
            src / f"f{i:03d}.png", compress_level=1
        )
    conv = [sys.executable, "-m", "convtool", "convolve", str(src), "-k", "sobel", "-q"]
    # warm the Numba cache once, so neither side pays a compile
    one = [sys.executable, "-m", "convtool", "convolve", str(src / "f000.png"), "-k", "sobel"]
    subprocess.run([*one, "-q", "-o", str(work / "w.png")], check=True)
    t_local, _ = measured([*conv, "--jobs", "2", "--threads", "1", "-o", f"{work}/local/"])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster:  # fmt: skip
        address = cluster.scheduler_address
        subprocess.run([*conv, "--scheduler", address, "-o", f"{work}/warm/"], check=True)
        t_cluster, _ = measured([*conv, "--scheduler", address, "-o", f"{work}/remote/"])
    same = all(
        (work / "local" / p.name).read_bytes() == p.read_bytes()
        for p in (work / "remote").iterdir()
    )
    return [
        dict(
            case=f"{nfiles} PNGs 1024x768 RGB, convolve -k sobel",
            what="local --jobs 2 --threads 1",
            seconds=t_local,
            per_file_ms=t_local / nfiles * 1e3,
        ),
        dict(
            case=f"{nfiles} PNGs 1024x768 RGB, convolve -k sobel",
            what="LocalCluster 2 workers x 1 thread (--scheduler)",
            seconds=t_cluster,
            per_file_ms=t_cluster / nfiles * 1e3,
            overhead_per_file_ms=(t_cluster - t_local) / nfiles * 1e3,
            byte_identical=same,
        ),
    ]


def table(rows: list[dict]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k, "")
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    ap.add_argument("--dir", help="where to put the generated files (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=7, help="interleaved timed rounds (API)")
    ap.add_argument("--only", choices=("api", "stream", "cluster"), help="run one part")
    ap.add_argument("--json", metavar="FILE", help="also write every number as JSON")
    args = ap.parse_args()
    set_threads(THREADS)
    side, big, fit, nfiles = (4096, 12288, 4096, 12) if args.quick else (8192, 24576, 8192, 24)
    work = Path(args.dir or tempfile.mkdtemp(prefix="convtool-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    try:
        if args.only in (None, "api"):
            results["api"] = bench_api(side, 2048, args.repeat)
            print(table(results["api"]), "\n", flush=True)
        if args.only in (None, "stream"):
            results["stream"] = bench_stream(work, big, fit)
            print(table(results["stream"]), "\n", flush=True)
        if args.only in (None, "cluster"):
            results["cluster"] = bench_cluster(work, nfiles)
            print(table(results["cluster"]), "\n", flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    info = machine()
    print(f"machine: {info['cpu']} ({info['simd']}), {info['cores']} cores, "
          f"load {info.get('loadavg')}, {THREADS} threads each")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, **results}, indent=1))


if __name__ == "__main__":
    main()
