"""How convtool.convolve scales with image side and kernel side, and where auto switches to FFT.

Run:  python benchmarks/bench_scaling.py [--threads 2] [--repeat 5] [--budget 1.5] [--json]

Table 1: a 3x3 random kernel on float32 images of side 512..8192, against
cv2.filter2D and a plain copy (time per pixel should stay flat once the image
leaves the cache).

Table 2: random (non-separable) KxK kernels, K = 3..63, on a 2048x2048 image,
with ``method="direct"`` and ``method="fft"`` forced and with ``method="auto"``,
plus cv2.filter2D (which itself switches to a DFT for large kernels). The
script reports the smallest K from which FFT stays faster than direct (the
measured cross-over) and the smallest K for which auto picks FFT; the two
should agree to within one step of the K list.

Slow combinations are skipped, not run: a forced direct run whose predicted
time (last measured time x (K / K_last)^2) exceeds ``--budget`` seconds per
call is printed as "skipped" and its predicted time is used to decide which
method is faster at that K. FFT and auto are always run. The whole script
takes about 1-2 minutes on 2 idle cores.
"""

from __future__ import annotations

import sys
from typing import Any

import common

SIDES = (512, 1024, 2048, 4096, 8192)
KSIDES = (3, 5, 7, 9, 15, 21, 31, 45, 63)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=1.5, help="max predicted s per forced call")
    p.add_argument("--kside-image", type=int, default=2048, help="image side for table 2")
    p.set_defaults(repeat=5)
    args = p.parse_args(argv)

    import cv2
    import numpy as np

    import convtool
    from convtool.errors import ConvtoolError

    common.set_threads(args.threads)
    rng = np.random.default_rng(0)
    reflect = cv2.BORDER_REFLECT_101
    repeat = max(args.repeat, 5)

    def log(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    # ---- table 1: image side, 3x3
    w3 = rng.standard_normal((3, 3)).astype(np.float32)
    side_rows = []
    for side in SIDES:
        log(f"side {side} ...")
        img = (rng.random((side, side), dtype=np.float32) * 255).astype(np.float32)
        t, tp = common.timeit_pair(
            lambda img=img: convtool.convolve(img, w3, pad="reflect", correlate=True),
            lambda img=img: cv2.filter2D(img, -1, w3, borderType=reflect),
            repeat=repeat,
        )
        tc = common.timeit(img.copy, repeat=repeat)
        diff = common.check_agree(f"3x3 side {side}", t.result, tp.result)
        side_rows.append(
            {
                "side": side,
                "convtool_ms": t.median_ms,
                "cv2_ms": tp.median_ms,
                "copy_ms": tc.median_ms,
                "ratio": t.median / tp.median,
                "x_copy": t.median / tc.median,
                "ns_per_px": t.median / side**2 * 1e9,
                "max_abs_diff": diff,
            }
        )
        del img, t, tp

    # ---- table 2: kernel side at 2048
    n = args.kside_image
    img = (rng.random((n, n), dtype=np.float32) * 255).astype(np.float32)
    k_rows = []
    last: dict[str, tuple[int, float]] = {}
    for k in KSIDES:
        w = rng.standard_normal((k, k)).astype(np.float32)
        row: dict[str, Any] = {"k": k}
        log(f"kernel {k}x{k} ...")
        tp = common.timeit(lambda w=w: cv2.filter2D(img, -1, w, borderType=reflect), repeat=repeat)
        row["cv2_ms"] = tp.median_ms
        for method in ("direct", "fft", "auto"):
            prev = last.get(method)
            if method == "direct" and prev is not None:
                # direct costs ~K^2: skip it once it is predicted to be slow (fft and
                # auto are always run: the FFT time hardly depends on K)
                predicted = prev[1] * (k / prev[0]) ** 2
                if predicted > args.budget:
                    row["direct_ms"] = None
                    row["direct_predicted_ms"] = predicted * 1e3
                    row["direct_note"] = f"skipped (predicted {predicted:.1f} s)"
                    continue
            try:
                t = common.timeit(
                    lambda w=w, method=method: convtool.convolve(
                        img, w, pad="reflect", correlate=True, method=method
                    ),
                    repeat=repeat,
                )
            except ConvtoolError as exc:
                row[f"{method}_ms"] = None
                row[f"{method}_note"] = f"n/a: {exc}"
                continue
            row[f"{method}_ms"] = t.median_ms
            row[f"{method}_diff"] = common.check_agree(
                f"{k}x{k} {method}", t.result, tp.result, rtol=2e-4
            )
            last[method] = (k, t.median)
            del t
        choice = common.auto_pick(img.shape, w)
        how = "filtering.choose_method" if choice else "inferred from time"
        if choice is None and row.get("auto_ms") is not None:
            timed = {m: row.get(f"{m}_ms") for m in ("direct", "fft")}
            timed = {m: v for m, v in timed.items() if v is not None}
            if timed:
                choice = min(timed, key=lambda m: abs(timed[m] - row["auto_ms"]))
        row["auto_picks"] = choice
        row["auto_picks_how"] = how
        d = row.get("direct_ms") or row.get("direct_predicted_ms")
        f = row.get("fft_ms")
        row["faster"] = None if d is None or f is None else ("fft" if f < d else "direct")
        k_rows.append(row)

    # cross-over: smallest K from which fft is faster for every larger K measured
    crossover = None
    for i, row in enumerate(k_rows):
        if all(r["faster"] == "fft" for r in k_rows[i:] if r["faster"] is not None):
            crossover = row["k"]
            break
    auto_switch = next((r["k"] for r in k_rows if r["auto_picks"] == "fft"), None)
    ks = list(KSIDES)
    if crossover is None or auto_switch is None:
        agree = crossover == auto_switch
    else:
        agree = abs(ks.index(crossover) - ks.index(auto_switch)) <= 1

    info = common.machine()
    if args.json:
        common.dump_json(
            args.json,
            {
                "benchmark": "scaling",
                "threads": args.threads,
                "machine": info,
                "sides": side_rows,
                "kernel_sides": k_rows,
                "kernel_image_side": n,
                "crossover_k": crossover,
                "auto_switch_k": auto_switch,
                "switch_matches_crossover": agree,
            },
        )
        if args.json == "-":
            return 0
    print(common.machine_text(info))
    print(f"\n3x3 random kernel, pad reflect, {args.threads} threads, median of >= {repeat} runs")
    print(
        common.markdown_table(
            ["side", "convtool ms", "cv2 ms", "ratio", "copy ms", "x copy", "ns/px"],
            [
                [
                    r["side"],
                    r["convtool_ms"],
                    r["cv2_ms"],
                    r["ratio"],
                    r["copy_ms"],
                    r["x_copy"],
                    r["ns_per_px"],
                ]
                for r in side_rows
            ],
        )
    )
    print(f"\nKxK random kernel on {n}x{n}, pad reflect (times in ms)")
    table = []
    for r in k_rows:
        table.append(
            [
                r["k"],
                r.get("direct_note") or r["direct_ms"],
                r.get("fft_note") or r["fft_ms"],
                r.get("auto_note") or r["auto_ms"],
                r["cv2_ms"],
                (r["faster"] or "-") + (" (vs predicted)" if r.get("direct_predicted_ms") else ""),
                r["auto_picks"] or "-",
            ]
        )
    print(
        common.markdown_table(
            ["K", "direct", "fft", "auto", "cv2.filter2D", "faster", "auto picks"], table
        )
    )
    how = k_rows[0]["auto_picks_how"] if k_rows else "-"
    print(
        f"measured cross-over (fft faster from here on): K = {crossover}; "
        f"auto switches to fft at K = {auto_switch} ({how}); "
        f"{'match' if agree else 'MISMATCH'} (within one step of the K list)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
