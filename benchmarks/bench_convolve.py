"""convtool.convolve against OpenCV and scipy.ndimage on one 4096x4096 float32 image.

Run:  python benchmarks/bench_convolve.py [--threads 2] [--repeat 7] [--size 4096] [--json]

Everything runs in this one process, on the same arrays, with Numba and OpenCV
given the same thread count. Each row times convtool (median and min of >= 5
runs after a warm-up call) and a peer on the same input, interleaved (ours,
peer, ours, peer, ...) so load drift on a shared machine hits both alike, checks that both give
the same answer (max abs diff printed; the script stops if they disagree), and
relates convtool's time to the peer and to a plain copy of the image (the
memory floor). Rows marked "forced" call one algorithm (``method=``) so the
cost model behind ``method="auto"`` is visible.

cv2.filter2D computes correlation, so convtool runs with ``correlate=True``
(true convolution costs the same: it is correlation with the flipped kernel;
one row shows it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import common


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096, help="image side (default 4096)")
    p.add_argument("--crop", type=int, default=1024, help="image side for the scipy rows")
    p.add_argument("--only", default="", help="run only cases whose name contains this")
    p.add_argument(
        "--budget",
        type=float,
        default=3.0,
        help="a forced-method call slower than this (s) is run once, not 5 times",
    )
    args = p.parse_args(argv)

    import cv2
    import numpy as np
    import scipy.ndimage as ndi

    import convtool
    from convtool.errors import ConvtoolError

    common.set_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.size
    img = (rng.random((n, n), dtype=np.float32) * 255).astype(np.float32)
    rgb8 = rng.integers(0, 256, size=(n, n, 3), dtype=np.uint8)
    reflect = cv2.BORDER_REFLECT_101
    repeat = max(args.repeat, 5)

    def random_kernel(k: int) -> np.ndarray:
        w = rng.standard_normal((k, k)).astype(np.float32)
        s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
        assert s[1] > 0.1 * s[0], "random kernel came out (nearly) separable"
        return w

    kernels = {k: random_kernel(k) for k in (3, 5, 9, 31)}
    g1 = cv2.getGaussianKernel(9, 2.0, ktype=cv2.CV_32F)
    gauss9 = (g1 @ g1.T).astype(np.float32)

    floors = {
        "copy f32": common.timeit(lambda: img.copy(), repeat=repeat),
        "u8->f32": common.timeit(lambda: rgb8.astype(np.float32), repeat=repeat),
    }
    rows: list[dict[str, Any]] = []

    def ours(
        image: np.ndarray, k: np.ndarray, method: str = "auto", correlate: bool = True
    ) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            return convtool.convolve(image, k, pad="reflect", correlate=correlate, method=method)

        run.job = (image.shape, k)  # type: ignore[attr-defined]  # for auto_pick
        return run

    def case(
        name: str,
        method: str,
        fn: Callable[[], Any],
        peer: str,
        peer_fn: Callable[[], Any],
        *,
        floor: str = "copy f32",
        target: tuple[str, Callable[[float, float], bool]] | None = None,
        rtol: float = 1e-4,
    ) -> None:
        if args.only and args.only not in name:
            return
        label = f"{name} {method}" if method == "auto" else f"{name} {method} (forced)"
        print(f"  timing {label} ...", file=sys.stderr, flush=True)
        try:
            t, tp = common.timeit_pair(
                fn, peer_fn, repeat=repeat, budget=None if method == "auto" else args.budget
            )
        except ConvtoolError as exc:
            rows.append({"case": label, "note": f"n/a: {exc}"})
            return
        diff = common.check_agree(label, t.result, tp.result, rtol=rtol)
        t.result = tp.result = None  # type: ignore[attr-defined]
        ratio = t.median / tp.median
        x_floor = t.median / floors[floor].median
        ok = target[1](ratio, x_floor) if target else None
        picks = common.auto_pick(*fn.job) if method == "auto" else method  # type: ignore
        rows.append(
            {
                "case": label,
                "convtool_ms": t.median_ms,
                "convtool_min_ms": t.min_ms,
                "first_call_ms": t.first * 1e3,
                "peer": peer,
                "peer_ms": tp.median_ms,
                "ratio": ratio,
                "floor": floor,
                "x_floor": x_floor,
                "target": target[0] if target else "-",
                "result": common.verdict(ok),
                "max_abs_diff": diff,
                "runs": len(t.runs),
                "method": picks,
            }
        )

    def le(limit: float) -> tuple[str, Callable[[float, float], bool]]:
        return (f"<= {limit:g} x peer", lambda r, _f: r <= limit)

    # --- random non-separable kernels against cv2.filter2D (reflect = REFLECT_101)
    for k, methods, target in (
        (3, ("direct", "fft"), ("<= 1 x peer, <= 2 x copy", lambda r, f: r <= 1.0 and f <= 2.0)),
        (5, ("direct", "fft"), le(1.0)),
        (9, ("direct", "fft"), le(1.0)),
        (31, ("direct", "fft"), le(1.2)),
    ):
        w = kernels[k]
        name = f"{k}x{k} random"

        def peer_fn(w: np.ndarray = w) -> np.ndarray:
            return cv2.filter2D(img, -1, w, borderType=reflect)

        case(name, "auto", ours(img, w), "cv2.filter2D", peer_fn, target=target)
        for m in methods:
            case(name, m, ours(img, w, m), "cv2.filter2D", peer_fn, rtol=2e-4)
    # true convolution: same cost as correlation with the flipped kernel
    w3 = kernels[3]
    case(
        "3x3 random convolve",
        "auto",
        ours(img, w3, correlate=False),
        "cv2.filter2D",
        lambda: cv2.filter2D(img, -1, w3[::-1, ::-1].copy(), borderType=reflect),
    )

    # --- separable: 9x9 Gaussian against cv2.GaussianBlur
    def blur() -> np.ndarray:
        return cv2.GaussianBlur(img, (9, 9), 2.0, borderType=reflect)

    case("9x9 gaussian", "auto", ours(img, gauss9), "cv2.GaussianBlur", blur, target=le(1.0))
    for m in ("separable", "direct", "fft"):
        case("9x9 gaussian", m, ours(img, gauss9, m), "cv2.GaussianBlur", blur, rtol=2e-4)

    # --- uint8 RGB end to end in memory: uint8 in, float32 result out
    case(
        "uint8 RGB 3x3",
        "auto",
        ours(rgb8, w3),
        "cv2.filter2D CV_32F",
        lambda: cv2.filter2D(rgb8, cv2.CV_32F, w3, borderType=reflect),
        floor="u8->f32",
        target=le(1.0),
    )

    # --- scipy.ndimage on a crop (it is 20-90x slower than OpenCV)
    c = args.crop
    crop = np.ascontiguousarray(img[:c, :c])
    crop_copy = common.timeit(lambda: crop.copy(), repeat=repeat)
    floors[f"copy {c}"] = crop_copy
    for k in (3, 5, 9):
        w = kernels[k]
        case(
            f"{k}x{k} random @{c}",
            "auto",
            ours(crop, w),
            "scipy.ndimage.correlate",
            lambda w=w: ndi.correlate(crop, w, mode="mirror"),
            floor=f"copy {c}",
        )

    info = common.machine()
    if args.json:
        common.dump_json(
            args.json,
            {
                "benchmark": "convolve",
                "size": n,
                "threads": args.threads,
                "machine": info,
                "floors_ms": {k: v.median_ms for k, v in floors.items()},
                "rows": rows,
            },
        )
        if args.json == "-":
            return 0
    print(common.machine_text(info))
    print(
        f"image {n}x{n} float32 (uint8 RGB for its row), pad reflect (cv2 BORDER_REFLECT_101),"
        f" {args.threads} threads, median of >= {repeat} runs (5 for calls slower than 1 s)"
    )
    print(
        "floors: "
        + ", ".join(f"{k} {v.median_ms:.2f} ms (min {v.min_ms:.2f})" for k, v in floors.items())
    )
    headers = [
        "case",
        "picks",
        "convtool ms",
        "min ms",
        "peer",
        "peer ms",
        "ratio",
        "x floor",
        "target",
        "result",
        "max abs diff",
    ]
    table = []
    for r in rows:
        if "note" in r:
            table.append([r["case"], "-", r["note"], "", "", "", "", "", "", "", ""])
            continue
        table.append(
            [
                r["case"],
                r["method"] or "?",
                r["convtool_ms"],
                r["convtool_min_ms"] if r["runs"] > 1 else "(1 run)",
                r["peer"],
                r["peer_ms"],
                r["ratio"],
                f"{r['x_floor']:.2f} ({r['floor']})",
                r["target"],
                r["result"],
                f"{r['max_abs_diff']:.2g}",
            ]
        )
    print(common.markdown_table(headers, table))
    print(
        f"scipy rows use a {c}x{c} crop of the same image (scipy is too slow for 4096x4096);"
        " their ratio is convtool on that crop / scipy on that crop."
    )
    print(
        f"forced-method calls slower than {args.budget:g} s are timed once ('(1 run)' in min ms);"
        " first-call times (compile or cache load) are in --json FILE as first_call_ms."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
