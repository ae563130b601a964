"""PNG encoding: zlib level 0..9, Pillow's encoder against convtool.io.encode_png.

The measurements behind convtool's default PNG level (``convtool.io.DEFAULT_PNG_LEVEL``).
Images are real filter outputs at the sizes the issue names: a 4096x4096 gray
Gaussian blur and Sobel magnitude of the cameraman, a 2048x2048 RGB sharpen
of the astronaut. Prints median encode time and file size per level.

    python benchmarks/bench_png.py            # levels 0..9, 3 runs (1 above level 6)
    python benchmarks/bench_png.py --levels 1 6 --runs 5
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from convtool.io import encode_png

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _images() -> dict[str, np.ndarray]:
    from scipy import ndimage

    with Image.open(SAMPLES / "camera.png") as im:
        cam = np.asarray(im.resize((4096, 4096), Image.BICUBIC), np.float32)
    with Image.open(SAMPLES / "astronaut.png") as im:
        ast = np.asarray(im.resize((2048, 2048), Image.BICUBIC), np.float32)
    mag = np.hypot(ndimage.sobel(cam, 1), ndimage.sobel(cam, 0))
    sharp = ast * 2 - ndimage.uniform_filter(ast, (3, 3, 1))
    blur = ndimage.gaussian_filter(cam, 2)
    return {
        "gray 4096 blur": np.clip(np.rint(blur), 0, 255).astype(np.uint8),
        "gray 4096 sobel": np.rint(mag * 255 / mag.max()).astype(np.uint8),
        "rgb 2048 sharpen": np.clip(np.rint(sharp), 0, 255).astype(np.uint8),
    }


def _median(fn, runs: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        size = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"{'image':18} {'level':>5} {'Pillow ms':>10} {'MiB':>6} {'convtool ms':>12} {'MiB':>6}")
    for name, px in _images().items():
        pil = Image.fromarray(px)
        for level in args.levels:
            runs = args.runs if level <= 6 else 1

            def with_pillow(level=level, pil=pil) -> int:
                buf = io.BytesIO()
                pil.save(buf, "PNG", compress_level=level)
                return buf.tell()

            def with_convtool(level=level, px=px) -> int:
                return len(encode_png(px, level))

            tp, sp = _median(with_pillow, runs)
            tc, sc = _median(with_convtool, runs)
            print(
                f"{name:18} {level:>5} {tp * 1e3:>10.0f} {sp / 2**20:>6.2f} "
                f"{tc * 1e3:>12.0f} {sc / 2**20:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
