"""A 512x512 image through samples/nets/lenet.toml: feature maps, grids, whole command.

Run:  python benchmarks/bench_visualize.py [--threads 2] [--repeat 7] [--image PATH] [--json]

Target (issue 5): the whole visualisation (read the PNG, run the net, draw one
grid per layer plus the overview, write 12 PNGs) under 2 s warm on 2 cores.

Rows, each the median and min of >= 5 warm runs after one untimed call:

1. ``plan``: parse the TOML, make the random weights, check every shape;
2. each conv layer alone through ``conv2d`` with both methods (``matmul``:
   im2col + BLAS; ``bank``: convtool.filtering.convolve stacks), to show why
   ``auto`` picks what it picks;
3. ``feature_maps``: the whole stack (11 layers);
4. ``feature_maps + grids``: and every layer's grid and the overview, in memory;
5. ``visualize command``: ``convtool visualize IMAGE --net lenet.toml -o DIR/``
   in-process (what the target is about), PNG reading and writing included;
6. one whole-process run of the same command (Python start-up and imports
   included), for reference.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

REPO = Path(__file__).resolve().parent.parent
NET = REPO / "samples" / "nets" / "lenet.toml"


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--image", default=str(REPO / "samples" / "astronaut.png"))
    args = p.parse_args(argv)
    common.set_threads(args.threads)

    import numpy as np
    from typer.testing import CliRunner

    from convtool.cli import app
    from convtool.grid import grid, overview
    from convtool.io import read_image
    from convtool.network import conv2d, feature_maps, load_net, plan

    img = read_image(args.image).data
    net = load_net(NET)
    shape = (1,) + img.shape if img.ndim == 2 else (img.shape[2],) + img.shape[:2]
    rows: list[tuple[str, common.Timing]] = []

    rows.append(
        (
            "plan (parse, weights, shapes)",
            common.timeit(lambda: plan(net, shape), repeat=args.repeat),
        )
    )

    results = feature_maps(img, net)
    x = np.moveaxis(img, -1, 0) * np.float32(net.input_scale) if img.ndim == 3 else img[None] / 255
    inputs = [x.astype(np.float32)] + [out for _, out in results[:-1]]
    for (layer, _), xin in zip(results, inputs, strict=True):
        if layer.kind != "conv":
            continue
        a = layer.attrs
        pairs = layer.weight.shape[0] * layer.weight.shape[1]
        # the bank path makes one filtering call per (input, output) channel pair: skip
        # it where that is thousands of calls (tens of seconds, it never wins there)
        for method in ("matmul", "bank") if pairs <= 200 else ("matmul",):
            t = common.timeit(
                lambda layer=layer, xin=xin, method=method, a=a: conv2d(
                    xin, layer.weight, layer.bias, stride=a["stride"], dilation=a["dilation"],
                    groups=a["groups"], padding=a["padding"], pad_mode=a["pad_mode"],
                    method=method,
                ),
                repeat=args.repeat,
            )  # fmt: skip
            c, h, w = layer.in_shape
            m, k = layer.weight.shape[0], layer.weight.shape[-1]
            rows.append((f"  {layer.name}: {c}x{h}x{w} -> {m} {k}x{k}, {method}", t))

    rows.append(
        (
            "feature_maps (11 layers)",
            common.timeit(lambda: feature_maps(img, net), repeat=args.repeat),
        )
    )

    def maps_and_grids():
        res = feature_maps(img, net)
        for layer, maps in res:
            grid(maps, layer.labels, input_image=img, title=layer.title, max_tile=256, clip=0.5)
        overview([(layer.title, maps) for layer, maps in res], input_image=img, clip=0.5)

    rows.append(
        ("feature_maps + 12 grids (memory)", common.timeit(maps_and_grids, repeat=args.repeat))
    )

    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        cli_args = ["visualize", args.image, "--net", str(NET), "-o", f"{tmp}/out/"]
        if args.threads:
            cli_args += ["--threads", str(args.threads)]

        def command():
            res = runner.invoke(app, cli_args)
            if res.exit_code != 0:
                raise SystemExit(res.output)

        rows.append(("visualize command, in-process", common.timeit(command, repeat=args.repeat)))
        n_png = len(list(Path(tmp, "out").glob("*.png")))
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "convtool", *cli_args], check=True, capture_output=True
        )
        whole = time.perf_counter() - t0

    info = common.machine()
    if args.json != "-":
        print(common.machine_text(info))
        print(f"image {args.image} ({'x'.join(map(str, img.shape))}), net {NET.name}, "
              f"threads {args.threads}, {n_png} PNGs written per run\n")  # fmt: skip
        width = max(len(name) for name, _ in rows)
        print(f"{'case':<{width}}  {'median ms':>10}  {'min ms':>8}  {'first ms':>9}")
        for name, t in rows:
            print(f"{name:<{width}}  {t.median_ms:>10.1f}  {t.min_ms:>8.1f}  {t.first * 1e3:>9.1f}")
        print(f"{'whole process (1 run, warm cache)':<{width}}  {whole * 1e3:>10.1f}")
        target = dict(rows)["visualize command, in-process"].median
        print(f"\ntarget: visualize command < 2000 ms warm -> {target * 1e3:.0f} ms "
              f"({'met' if target < 2 else 'MISSED'})")  # fmt: skip
    if args.json:
        import json

        doc = {
            "machine": info,
            "rows": [
                {"case": n, "median_s": t.median, "min_s": t.min, "first_s": t.first}
                for n, t in rows
            ],  # fmt: skip
            "whole_process_s": whole,
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
