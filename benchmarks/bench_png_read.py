"""Reading 16-bit colour PNGs: convtool's decoder against Pillow (8-bit, lossy) and OpenCV.

A 2048x2048 16-bit RGB picture (the astronaut, enlarged, x257, plus noise in
the low byte) is encoded four ways: convtool's encoder (every row "up"),
OpenCV's default (libpng's adaptive choice) and OpenCV with every row Paeth
or average, the filters that need convtool's Numba kernel. Each file is
decoded by convtool.png.decode_png, by Pillow (which keeps only the high
byte) and by cv2.imdecode (exact, the reference). Prints median and min ms.
Also times whole processes reading one file, where Numba's import and cache
load show.

    python benchmarks/bench_png_read.py --repeat 5
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from convtool.io import encode_png
from convtool.png import decode_png

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _picture() -> np.ndarray:
    with Image.open(SAMPLES / "astronaut.png") as im:
        rgb = np.asarray(im.convert("RGB").resize((2048, 2048), Image.BICUBIC), np.uint16)
    noise = np.random.default_rng(0).integers(0, 256, size=rgb.shape, dtype=np.uint16)
    return rgb * 256 + noise


def _files(px: np.ndarray) -> dict[str, bytes]:
    bgr = np.ascontiguousarray(px[..., ::-1])
    out = {"convtool (up)": encode_png(px, 6)}
    for label, flt in (
        ("cv2 default", None),
        ("cv2 paeth", cv2.IMWRITE_PNG_FILTER_PAETH),
        ("cv2 average", cv2.IMWRITE_PNG_FILTER_AVG),
    ):
        params = [] if flt is None else [cv2.IMWRITE_PNG_FILTER, flt]
        ok, buf = cv2.imencode(".png", bgr, params)
        assert ok
        out[label] = buf.tobytes()
    return out


def _time(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up: loads the Numba cache (or compiles) once
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, min(times) * 1e3


def _pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    px = _picture()
    files = _files(px)
    print("| file | MiB | filters | convtool ms (median / min) | Pillow 8-bit ms | cv2 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, data in files.items():
        ours, _ = decode_png(data)
        assert np.array_equal(ours, px), label
        cv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]
        assert np.array_equal(cv, px), label
        lines = _row_filters(data)
        t_ours = _time(lambda d=data: decode_png(d), args.repeat)
        t_pil = _time(lambda d=data: _pillow(d), args.repeat)
        t_cv = _time(
            lambda d=data: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_UNCHANGED),
            args.repeat,
        )
        print(
            f"| {label} | {len(data) / 2**20:.1f} | {lines} | {t_ours[0]:.0f} / {t_ours[1]:.0f} "
            f"| {t_pil[0]:.0f} | {t_cv[0]:.0f} |"
        )
    small = np.ascontiguousarray(px[:512, :512, ::-1])
    ok, buf = cv2.imencode(".png", small, [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH])
    files["cv2 paeth 512x512"] = buf.tobytes()
    _processes(files, args.repeat)


def _row_filters(data: bytes) -> str:
    import zlib

    from convtool.png import _chunks

    raw = zlib.decompress(b"".join(p for k, p in _chunks(data) if k == b"IDAT"))
    types = np.frombuffer(raw, np.uint8)[:: 2048 * 6 + 1]
    counts = np.bincount(types, minlength=5)
    names = ("none", "sub", "up", "avg", "paeth")
    return ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True) if c)


def _processes(files: dict[str, bytes], repeat: int) -> None:
    """Whole processes: read one file with convtool.io.read_image vs Pillow only.

    The 512x512 Paeth file is small enough for the numpy path (no Numba).
    """
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for i, label in enumerate(("convtool (up)", "cv2 paeth", "cv2 paeth 512x512")):
            paths[label] = Path(d) / f"{i}.png"
            paths[label].write_bytes(files[label])
        print("\n| process | median s | min s |\n| --- | --- | --- |")
        for label, path in paths.items():
            for who, code in (
                ("read_image", f"from convtool.io import read_image; read_image({str(path)!r})"),
                ("Pillow", f"from PIL import Image; Image.open({str(path)!r}).load()"),
            ):
                times = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    subprocess.run([sys.executable, "-c", code], check=True)
                    times.append(time.perf_counter() - t)
                print(f"| {who}, {label} | {statistics.median(times):.2f} | {min(times):.2f} |")


if __name__ == "__main__":
    main()
