"""convtool.match against cv2.matchTemplate and skimage.feature.match_template.

Run:  python benchmarks/bench_detect.py [--repeat 5] [--size 2048] [--no-memory]

For each template size (32x32 and 128x128) on the same float32 image (2048x2048
by default: samples/camera.png tiled 4x4 with a little noise, so every tile
differs), in one process:

* time: median of --repeat runs (>= 5, interleaved round-robin across the
  methods so that load changes hit all alike) after one warm-up run, for
  convtool.match(method="zncc"), cv2.matchTemplate(TM_CCOEFF_NORMED) and
  skimage.feature.match_template (the same valid-placement output); the
  ratios convtool/cv2 and convtool/skimage (targets: <= 1.0 and <= 0.5);
* agreement: the largest difference from cv2, and from an independent
  float64 computation (skimage works in float32 for float32 input);
* memory: each method runs in a fresh subprocess that first warms up on a
  small image (so Numba's compiler is not counted), then records the growth
  of the peak resident set (VmHWM, reset just before the call) over one
  call on the big image, in multiples of the image's float32 size (target for
  convtool: < 4x, the output itself being ~1x); for the numpy-based ones the
  tracemalloc peak of numpy allocations is shown as well.

Threads: every library uses all cores it sees (cv2's own pool, convtool's
thread pool and Numba's), which is what a user gets by default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "camera.png"
TEMPLATES = (32, 128)
#: convtool-fft32 is match(..., algorithm="fft32"): a float32 FFT, faster, OpenCV-like rounding
NAMES = ("convtool", "convtool-fft32", "cv2", "skimage")


def make_image(size: int) -> np.ndarray:
    from PIL import Image

    base = np.asarray(Image.open(SAMPLE), dtype=np.float32)
    reps = -(-size // base.shape[0])
    big = np.tile(base, (reps, reps))[:size, :size]
    rng = np.random.default_rng(0)
    return (big + rng.normal(0, 2, big.shape)).astype(np.float32)


def template_of(img: np.ndarray, k: int) -> np.ndarray:
    y, x = 700, 900  # the cameraman's head and camera in the second tile row
    return np.ascontiguousarray(img[y : y + k, x : x + k])


def exact_zncc(img: np.ndarray, t: np.ndarray) -> np.ndarray:
    """An independent float64 zncc: numpy FFT correlation plus float64 summed-area tables."""
    a = img.astype(np.float64)
    a -= a.mean()
    t0 = t.astype(np.float64) - t.mean()
    h, w = t.shape
    shape = (a.shape[0] + h - 1, a.shape[1] + w - 1)
    corr = np.fft.irfft2(np.fft.rfft2(a, shape) * np.conj(np.fft.rfft2(t0, shape)), shape)
    corr = corr[: a.shape[0] - h + 1, : a.shape[1] - w + 1]

    def box(v):
        sat = np.zeros((v.shape[0] + 1, v.shape[1] + 1))
        sat[1:, 1:] = v.cumsum(0).cumsum(1)
        return sat[h:, w:] - sat[:-h, w:] - sat[h:, :-w] + sat[:-h, :-w]

    var = box(a * a) - box(a) ** 2 / (h * w)
    return corr / np.sqrt(np.maximum(var, 1e-300) * (t0 * t0).sum())


def runner(name: str):
    if name == "convtool":
        import convtool

        return lambda img, t: convtool.match(img, t, "zncc")
    if name == "convtool-fft32":
        import convtool

        return lambda img, t: convtool.match(img, t, "zncc", algorithm="fft32")
    if name == "cv2":
        import cv2

        return lambda img, t: cv2.matchTemplate(img, t, cv2.TM_CCOEFF_NORMED)
    if name == "skimage":
        from skimage.feature import match_template

        return lambda img, t: match_template(img, t)
    raise ValueError(name)


def timed_round_robin(fns: dict, img, t, repeat: int) -> dict:
    """Median seconds and output of each function, the runs interleaved.

    One untimed warm-up call each (Numba cache load, FFT plan caches), then
    ``repeat`` rounds of one call per function, so that a change in machine
    load affects every method alike (the ratios are what this reports).
    """
    outs = {name: fn(img, t) for name, fn in fns.items()}
    times: dict = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            outs[name] = fn(img, t)
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), outs[name]) for name in fns}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def memory_child(name: str, path: str, k: int) -> None:
    """In a subprocess: peak-RSS growth (and numpy tracemalloc peak) of one call.

    The peak (VmHWM) is reset just before the call (``echo 5 >
    /proc/self/clear_refs``), so imports and compilation do not hide it; where
    that is not possible, ``ru_maxrss`` is used and the growth may read 0.
    """
    import resource
    import tracemalloc

    img = np.load(path)  # no temporaries: the baseline is the image itself
    t = template_of(img, k)
    fn = runner(name)
    small = img[:256, :256].copy()
    fn(small, t[: min(k, 64), : min(k, 64)].copy())  # compile / load caches on a small image
    fn(small, t[: min(k, 64), : min(k, 64)].copy())
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _status_kib("VmRSS") * 1024
        peak = lambda: _status_kib("VmHWM") * 1024  # noqa: E731
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # noqa: E731
    tracemalloc.start()
    out = fn(img, t)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = peak()
    del out
    print(json.dumps({"rss": after - before, "traced": traced}))


def memory(name: str, path: str, k: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--memory-child", name, "--image", path, "--k", str(k)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        return {"rss": float("nan"), "traced": float("nan"), "error": proc.stderr.strip()[-200:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--image", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.image, args.k)
        return
    repeat = max(5, args.repeat)

    import tempfile

    import cv2
    import numba

    img = make_image(args.size)
    image_bytes = img.nbytes
    tmpdir = tempfile.TemporaryDirectory()
    image_path = str(Path(tmpdir.name) / "image.npy")
    np.save(image_path, img)
    print(
        f"image {args.size}x{args.size} float32 ({image_bytes / 2**20:.0f} MiB), "
        f"median of {repeat} runs; cv2 threads {cv2.getNumThreads()}, "
        f"numba threads {numba.get_num_threads()}"
    )
    header = (
        f"{'template':>9} {'method':>14} {'median ms':>10} {'vs cv2':>7} {'vs skimage':>10} "
        f"{'max|diff| cv2':>14} {'max|diff| f64':>14} {'peak RSS':>9} {'numpy peak':>10}"
    )
    print(header)
    print("-" * len(header))
    for k in TEMPLATES:
        t = template_of(img, k)
        results = timed_round_robin({name: runner(name) for name in NAMES}, img, t, repeat)
        exact = exact_zncc(img, t)
        for name in NAMES:
            sec, out = results[name]
            diff_cv2 = float(np.abs(out.astype(np.float64) - results["cv2"][1]).max())
            diff = float(np.abs(out.astype(np.float64) - exact).max())
            mem = (
                memory(name, image_path, k)
                if not args.no_memory
                else {"rss": float("nan"), "traced": float("nan")}
            )
            rss = mem["rss"] / image_bytes
            traced = mem["traced"] / image_bytes if name != "cv2" else float("nan")
            print(
                f"{k:>4}x{k:<4} {name:>14} {sec * 1e3:>10.1f} "
                f"{sec / results['cv2'][0]:>7.2f} {sec / results['skimage'][0]:>10.2f} "
                f"{diff_cv2:>14.2e} {diff:>14.2e} {rss:>8.2f}x {traced:>9.2f}x"
            )
            if "error" in mem:
                print(f"    memory run failed: {mem['error']}")
    tmpdir.cleanup()
    print(
        "\nmax|diff| f64: against a float64 zncc (FFT correlation of float64 data, float64 "
        "summed-area tables) on the same image."
    )
    print(
        "memory: growth of the peak resident set over one call, and the tracemalloc peak "
        "of numpy allocations, in multiples of the image's float32 size (cv2's allocations "
        "are not numpy's, so only its RSS is shown)."
    )


if __name__ == "__main__":
    main()
