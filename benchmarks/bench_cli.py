"""Whole-process times of the convtool command line, and where its start-up time goes.

Run:  python benchmarks/bench_cli.py [--repeat 10] [--batch 200] [--separate 20] [--json]
      python benchmarks/bench_cli.py --cold [--repeat 3] [--signatures]

Measures, each as a separate process (wall clock, what a user waits for):

1. baselines: ``python -c pass``, ``import numpy``, ``import numba``;
2. ``convtool --help`` and ``convtool kernels`` (median of --repeat runs, 10 by default);
3. a warm-cache ``convtool convolve`` of one 512x512 PNG (the Numba cache is filled
   by an untimed first run);
4. a batch of --batch 512x512 PNGs in one invocation against separate invocations:
   only --separate of them (20 by default) are run one by one and the total is
   extrapolated linearly to --batch files (stated in the output);
5. ``python -X importtime`` of ``convtool --help`` and of ``import convtool.filtering``:
   the modules with the largest cumulative import time;
6. the first jitted call with a cold Numba cache (NUMBA_CACHE_DIR pointed at a fresh
   temporary directory) against a warm one (the same directory, second process), and
   with --with-warmup also ``convtool warmup`` cold and warm (minutes when cold).

The images are generated from samples/camera.png (shifted copies, so no two files
are identical) in a temporary directory that is removed at the end.

``--cold`` measures only the first run of a new user instead (issue 10): each of
``convolve`` (a 2048x2048 8-bit PNG, ``-k gaussian:3``), ``pool`` (the astronaut
photo, ``--mode avg --size 3 --stride 2``), ``detect`` (a 60x60 template cut from
the photo) and ``visualize`` (a 4-layer conv/relu/pool/conv net on the photo) is
run once with NUMBA_CACHE_DIR pointed at a fresh empty directory (cold), then
--repeat times on that same directory (warm, median); the cold and warm outputs
must be identical (checked). Then ``convtool warmup`` cold and warm, again in a
fresh directory. With NUMBA_CACHE_DIR set Numba never reads the package's own
``__pycache__``; the table says how many index files each cold run wrote.
``--signatures`` also runs each command cold once more in-process with a Numba
compile listener and lists every signature compiled, with its compile seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "camera.png"


def convtool_cmd() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m convtool``."""
    script = Path(sys.executable).parent / "convtool"
    if script.exists():
        return [str(script)]
    found = shutil.which("convtool")
    return [found] if found else [sys.executable, "-m", "convtool"]


def run_timed(
    cmd: list[str], *, repeat: int, warmup: bool = True, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Median/min wall time of running ``cmd`` as a process; stops at the first failure."""
    times = []
    for i in range(repeat + (1 if warmup else 0)):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            return {
                "error": f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}"
            }
        if warmup and i == 0:
            continue
        times.append(elapsed)
    return {"median": statistics.median(times), "min": min(times), "runs": times}


HELP_STATEMENT = (
    "import sys; sys.argv = ['convtool', '--help']\n"
    "from convtool.cli import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass"
)


def importtime_top(statement: str, top: int, label: str | None = None) -> dict[str, Any]:
    """Run ``python -X importtime -c statement`` (twice; the second, disk-warm run counts)."""
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True
        )
    entries = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        head, cum_us, raw = line.split("|", 2)
        self_us = int(head.split(":", 1)[1])
        depth = (len(raw) - len(raw.lstrip(" ")) - 1) // 2
        entries.append(
            {
                "module": raw.strip(),
                "depth": depth,
                "self_ms": self_us / 1e3,
                "cumulative_ms": int(cum_us) / 1e3,
            }
        )
    # everything imported after the interpreter's own start-up (site and its children)
    total = sum(e["cumulative_ms"] for e in entries if e["depth"] == 0 and e["module"] != "site")
    ranked = sorted(entries, key=lambda e: e["cumulative_ms"], reverse=True)
    return {
        "statement": label or statement,
        "total_ms": total,
        "top": ranked[:top],
        "top_self": sorted(entries, key=lambda e: e["self_ms"], reverse=True)[:top],
    }


_FIRST_CALL = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import numba
t2 = time.perf_counter()
import convtool
from convtool import filtering, pooling
t3 = time.perf_counter()
img = np.random.default_rng(0).random((512, 512), dtype=np.float32)
k = np.full((3, 3), 1 / 9, np.float32)
convtool.convolve(img, k)
t4 = time.perf_counter()
convtool.convolve(img, k)
t5 = time.perf_counter()
convtool.pool(img, "max", size=2)
t6 = time.perf_counter()
convtool.pool(img, "max", size=2)
t7 = time.perf_counter()
print(json.dumps({"import_numpy_s": t1 - t0, "import_numba_s": t2 - t1,
                  "import_api_s": t3 - t2, "first_convolve_s": t4 - t3,
                  "second_convolve_s": t5 - t4, "first_pool_s": t6 - t5,
                  "second_pool_s": t7 - t6}))
"""


def first_call(env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


_COLD_LISTENER = r"""
import builtins, json, sys, time
stack, rows, state = [], [], {"on": False}


def install():
    # register the compile listener only once convtool itself has imported Numba:
    # importing it here first would change what the command does (rent or buy)
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append([time.perf_counter(), 0.0])

        def on_end(self, ev):
            t0, child = stack.pop()
            dt = time.perf_counter() - t0
            if stack:
                stack[-1][1] += dt
            f = ev.data["dispatcher"].py_func
            rows.append({"function": f.__module__ + "." + f.__qualname__, "depth": len(stack),
                         "signature": str(ev.data["args"]), "seconds": dt,
                         "self_seconds": dt - child})

    event.register("numba:compile", Listener())


real_import = builtins.__import__


def watching_import(name, *args, **kwargs):
    module = real_import(name, *args, **kwargs)
    if not state["on"] and hasattr(sys.modules.get("numba"), "njit"):
        state["on"] = True
        install()
    return module


builtins.__import__ = watching_import
sys.argv = ["convtool", *json.loads(sys.argv[1])]
from convtool.cli import main
try:
    main()
except SystemExit:
    pass
sys.__stderr__.write("\nSIGNATURES " + json.dumps(rows) + "\n")
"""


def cold_inputs(directory: Path) -> dict[str, list[str]]:
    """The four commands of issue 10 and their input files (written to ``directory``)."""
    import numpy as np
    from PIL import Image

    samples = REPO / "samples"
    with Image.open(samples / "camera.png") as im:
        im.convert("L").resize((2048, 2048), Image.Resampling.BICUBIC).save(
            directory / "big.png", compress_level=1
        )
    with Image.open(samples / "astronaut.png") as im:
        photo = np.asarray(im.convert("RGB"))
    Image.fromarray(photo[180:240, 200:260]).save(directory / "template60.png")
    astro = str(samples / "astronaut.png")
    net = "conv(random:8,size=3) relu pool(max,2) conv(random:8,size=3)"
    return {
        "convolve 2048x2048 PNG -k gaussian:3": [
            "convolve",
            str(directory / "big.png"),
            "-k",
            "gaussian:3",
            "-o",
            "{out}/conv.png",
        ],
        "pool photo --mode avg --size 3 --stride 2": [
            "pool",
            astro,
            "--mode",
            "avg",
            "--size",
            "3",
            "--stride",
            "2",
            "-o",
            "{out}/pool.png",
        ],
        "detect 60x60 template in photo": [
            "detect",
            astro,
            "-t",
            str(directory / "template60.png"),
            "-o",
            "{out}/boxes.png",
        ],
        "visualize 4-layer conv/relu/pool/conv": [
            "visualize",
            astro,
            "--layers",
            net,
            "-o",
            "{out}/layers/",
        ],
    }


def _outputs_digest(out: Path, stdout: str) -> str:
    """One hash of everything a run produced: its files and its stdout."""
    import hashlib

    h = hashlib.sha256(stdout.encode())
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        h.update(path.relative_to(out).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _timed_run(cmd: list[str], env: dict[str, str], out: Path) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    argv = [a.replace("{out}", str(out)) for a in cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and argv[1] != "detect"):
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return {"seconds": elapsed, "digest": _outputs_digest(out, proc.stdout)}


def _index_files(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.nbi")) if root.exists() else 0


def cold_runs(tmp: Path, ct: list[str], repeat: int, signatures: bool) -> dict[str, Any]:
    """Cold (fresh NUMBA_CACHE_DIR) and warm times of each command, and of warmup."""
    import convtool.core

    package_cache = Path(convtool.core.__file__).resolve().parent / "__pycache__"
    package_before = _index_files(package_cache)
    cases = cold_inputs(tmp)
    rows = []
    for k, (name, cmd) in enumerate(cases.items()):
        log = f"  {name} ..."
        print(log, file=sys.stderr, flush=True)
        cache = tmp / f"cache{k}"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        cold = _timed_run([*ct, *cmd], env, tmp / "out")
        row: dict[str, Any] = {"case": name, "cold": cold, "index_files": _index_files(cache)}
        warm = [_timed_run([*ct, *cmd], env, tmp / "out") for _ in range(repeat)]
        errors = [r["error"] for r in [cold, *warm] if "error" in r]
        if errors:
            row["error"] = errors[0]
        else:
            row["cold_s"] = cold["seconds"]
            row["warm_s"] = statistics.median(r["seconds"] for r in warm)
            row["warm_runs"] = [r["seconds"] for r in warm]
            row["same_output"] = all(r["digest"] == cold["digest"] for r in warm)
        if signatures:
            sig_env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / f"sigcache{k}")}
            (tmp / "out").mkdir(exist_ok=True)
            argv = [a.replace("{out}", str(tmp / "out")) for a in cmd]
            proc = subprocess.run(  # cwd: not the repository, whose convtool would win
                [sys.executable, "-c", _COLD_LISTENER, json.dumps(argv)],
                capture_output=True,
                text=True,
                env=sig_env,
                cwd=tmp,
            )
            lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("SIGNATURES ")]
            row["signatures"] = json.loads(lines[-1][len("SIGNATURES ") :]) if lines else []
            if not lines:
                row["signatures_error"] = f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
        rows.append(row)
    print("  convtool warmup ...", file=sys.stderr, flush=True)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "cache-warmup")}
    warmup_cold = run_timed([*ct, "warmup", "-q"], repeat=1, warmup=False, env=env)
    warmup_warm = run_timed([*ct, "warmup", "-q"], repeat=1, warmup=False, env=env)
    return {
        "commands": rows,
        "warmup": {"cold": warmup_cold, "warm": warmup_warm},
        "package_cache_new_index_files": _index_files(package_cache) - package_before,
    }


def print_cold(doc: dict[str, Any], repeat: int) -> None:
    print(
        f"\nfirst run of each command on an empty Numba cache (fresh NUMBA_CACHE_DIR), then"
        f" warm (median of {repeat}); load average {doc['load_before']} before,"
        f" {doc['load_after']} after"
    )
    rows = []
    for r in doc["commands"]:
        if "error" in r:
            rows.append([r["case"], "failed", r["error"][:60], "", ""])
            continue
        rows.append(
            [
                r["case"],
                f"{r['cold_s']:.2f}",
                f"{r['warm_s']:.2f}",
                "yes" if r["same_output"] else "**NO**",
                r["index_files"],
            ]
        )
    for label in ("cold", "warm"):
        w = doc["warmup"][label]
        shown = f"{w['median']:.2f}" if "median" in w else "failed: " + w["error"][:50]
        rows.append([f"convtool warmup ({label} cache)", shown, "", "", ""])
    print(
        common.markdown_table(
            ["command", "cold s", "warm s", "cold output = warm", "index files written"], rows
        )
    )
    print(
        "index files written to the package's own __pycache__ meanwhile:"
        f" {doc['package_cache_new_index_files']} (cold runs must not use it)"
    )
    for r in doc["commands"]:
        sigs = r.get("signatures")
        if sigs is None:
            continue
        top = [s for s in sigs if s["depth"] == 0]
        total = sum(s["self_seconds"] for s in sigs)
        print(f"\n{r['case']}: {len(sigs)} signatures compiled, {total:.2f} s compiling")
        if "signatures_error" in r:
            print(f"  (the listener run failed: {r['signatures_error']})")
        for s in sorted(sigs, key=lambda s: -s["self_seconds"])[:12]:
            print(f"  {s['self_seconds']:6.2f} s  {s['function']} {s['signature'][:90]}")
        if not top:
            print("  (none: the command ran without compiling anything)")


def make_images(directory: Path, count: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    with Image.open(SAMPLE) as im:
        base = np.asarray(im.convert("L"))
    paths = []
    for i in range(count):
        path = directory / f"img{i:03d}.png"
        Image.fromarray(np.roll(base, i, axis=1)).save(path, compress_level=1)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0], threads=False)
    p.set_defaults(repeat=10)
    p.add_argument("--batch", type=int, default=200, help="files in the batch (default 200)")
    p.add_argument("--separate", type=int, default=20, help="separate runs actually made")
    p.add_argument("--kernel", default="sobel", help="kernel spec for the convolve runs")
    p.add_argument("--top", type=int, default=10, help="modules shown per import profile")
    p.add_argument(
        "--with-warmup",
        action="store_true",
        help="also time `convtool warmup` with a cold and a warm cache (minutes when cold)",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="only the first-run table: each command cold (fresh cache) and warm, and warmup",
    )
    p.add_argument(
        "--signatures",
        action="store_true",
        help="with --cold: list every signature each cold command compiles",
    )
    args = p.parse_args(argv)
    ct = convtool_cmd()
    log = lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)  # noqa: E731
    if args.cold:
        repeat = max(1, args.repeat if args.repeat != 10 else 3)
        tmp = Path(tempfile.mkdtemp(prefix="convtool-bench-cold-"))
        try:
            load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
            doc = cold_runs(tmp, ct, repeat, args.signatures)
            doc["load_before"] = load_before
            doc["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        doc.update({"benchmark": "cli-cold", "machine": common.machine(), "convtool": ct})
        if args.json:
            common.dump_json(args.json, doc)
            if args.json == "-":
                return 0
        print(common.machine_text(doc["machine"]))
        import convtool

        print(f"convtool from {Path(convtool.__file__).parent}")
        print_cold(doc, repeat)
        return 0
    repeat = max(args.repeat, 5)

    commands: list[dict[str, Any]] = []

    def cmd_row(name: str, cmd: list[str], target: float | None = None, **kw: Any) -> dict:
        log(f"{name} ...")
        r = run_timed(cmd, repeat=kw.pop("repeat", repeat), **kw)
        r["case"] = name
        r["target_s"] = target
        if "median" in r and target is not None:
            r["result"] = common.verdict(r["median"] < target)
        commands.append(r)
        return r

    py = sys.executable
    cmd_row("python -c pass", [py, "-c", "pass"])
    cmd_row("python -c 'import numpy'", [py, "-c", "import numpy"])
    cmd_row("python -c 'import numba'", [py, "-c", "import numba"])
    cmd_row("convtool --help", [*ct, "--help"], 0.3)
    cmd_row("convtool kernels", [*ct, "kernels"])

    tmp = Path(tempfile.mkdtemp(prefix="convtool-bench-cli-"))
    try:
        log(f"writing {args.batch} PNGs to {tmp} ...")
        (tmp / "in").mkdir()
        inputs = make_images(tmp / "in", args.batch)
        out = tmp / "out"
        out.mkdir()
        one = [*ct, "convolve", str(inputs[0]), "-k", args.kernel, "-o", str(out / "one.png")]
        cmd_row("convtool convolve 512x512 PNG (warm cache)", one, 0.7)

        log(f"batch of {args.batch} in one invocation ...")
        batch_cmd = [*ct, "convolve", *map(str, inputs), "-k", args.kernel, "-o", f"{out}/"]
        batch = run_timed(batch_cmd, repeat=5, warmup=False)
        log(f"{args.separate} separate invocations ...")
        sep_times = []
        sep_error = None
        for path in inputs[: args.separate]:
            cmd = [*ct, "convolve", str(path), "-k", args.kernel, "-o", str(out / path.name)]
            r = run_timed(cmd, repeat=1, warmup=False)
            if "error" in r:
                sep_error = r["error"]
                break
            sep_times.append(r["median"])
        batch_doc: dict[str, Any] = {"files": args.batch, "separate_measured": len(sep_times)}
        if "error" in batch:
            batch_doc["error"] = batch["error"]
        elif sep_error:
            batch_doc["error"] = sep_error
        else:
            extrapolated = sum(sep_times) * args.batch / len(sep_times)
            batch_doc.update(
                {
                    "one_invocation_s": batch["median"],
                    "one_invocation_min_s": batch["min"],
                    "separate_extrapolated_s": extrapolated,
                    "separate_median_each_s": statistics.median(sep_times),
                    "speedup": extrapolated / batch["median"],
                    "per_file_ms": batch["median"] / args.batch * 1e3,
                }
            )
            batch_doc["result"] = common.verdict(batch_doc["speedup"] >= 10)

        log("import profiles ...")
        profiles = [
            importtime_top(HELP_STATEMENT, args.top, label="convtool --help"),
            importtime_top("import convtool.filtering", args.top),
        ]

        log("first jitted call, cold and warm Numba cache ...")
        cache = tmp / "numba-cache"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        cold = first_call(env)
        warm = first_call(env)
        warmup_cold = warmup_warm = {"error": "not run (use --with-warmup)"}
        if args.with_warmup:
            env2 = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "numba-cache-warmup")}
            log("convtool warmup, cold and warm (slow: compiles everything) ...")
            warmup_cold = run_timed([*ct, "warmup", "-q"], repeat=1, warmup=False, env=env2)
            warmup_warm = run_timed([*ct, "warmup", "-q"], repeat=1, warmup=False, env=env2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    doc = {
        "benchmark": "cli",
        "machine": common.machine(),
        "convtool": ct,
        "kernel": args.kernel,
        "commands": commands,
        "batch": batch_doc,
        "import_profiles": profiles,
        "first_call": {"cold_cache": cold, "warm_cache": warm},
        "warmup_command": {"cold_cache": warmup_cold, "warm_cache": warmup_warm},
    }
    if args.json:
        common.dump_json(args.json, doc)
        if args.json == "-":
            return 0

    print(common.machine_text(doc["machine"]))
    print(f"\nwhole-process wall time, median of {repeat} runs after one untimed run")
    rows = []
    for r in commands:
        if "error" in r:
            rows.append([r["case"], "failed", r["error"][:60], "", "", ""])
            continue
        target = f"< {r['target_s']:g} s" if r["target_s"] is not None else "-"
        rows.append(
            [
                r["case"],
                f"{r['median']:.3f}",
                f"{r['min']:.3f}",
                len(r["runs"]),
                target,
                r.get("result", "-"),
            ]
        )
    print(common.markdown_table(["case", "median s", "min s", "runs", "target", "result"], rows))

    print(f"\nbatch: {args.batch} 512x512 PNGs, -k {args.kernel}")
    if "error" in batch_doc:
        print(f"failed: {batch_doc['error']}")
    else:
        print(
            common.markdown_table(
                ["case", "seconds", "per file ms"],
                [
                    [
                        "one invocation (median of 5)",
                        f"{batch_doc['one_invocation_s']:.2f}",
                        f"{batch_doc['per_file_ms']:.1f}",
                    ],
                    [
                        f"{args.batch} separate invocations (extrapolated from "
                        f"{batch_doc['separate_measured']})",
                        f"{batch_doc['separate_extrapolated_s']:.2f}",
                        f"{batch_doc['separate_median_each_s'] * 1e3:.1f}",
                    ],
                ],
            )
        )
        print(f"speedup {batch_doc['speedup']:.1f}x (target >= 10x): {batch_doc['result']}")

    for prof in profiles:
        print(
            f"\nimport profile of `{prof['statement']}` (python -X importtime): "
            f"{prof['total_ms']:.0f} ms of imports after interpreter start-up"
        )
        print(
            common.markdown_table(
                ["module (indent = nesting)", "cumulative ms", "self ms"],
                [
                    ["  " * e["depth"] + e["module"], e["cumulative_ms"], e["self_ms"]]
                    for e in prof["top"]
                ],
            )
        )

    print("\nfirst jitted call (512x512, 3x3 convolve and 2x2 max pool), NUMBA_CACHE_DIR=fresh dir")
    fc_rows = []
    for label, r in (("cold cache (compile)", cold), ("warm cache (load)", warm)):
        if "error" in r:
            fc_rows.append([label, "failed: " + r["error"][:60], "", "", "", "", "", ""])
            continue
        fc_rows.append(
            [
                label,
                r["import_numpy_s"],
                r["import_numba_s"],
                r["import_api_s"],
                r["first_convolve_s"],
                r["second_convolve_s"],
                r["first_pool_s"],
                r["second_pool_s"],
            ]
        )
    print(
        common.markdown_table(
            [
                "cache",
                "import numpy s",
                "import numba s",
                "import API s",
                "1st convolve s",
                "2nd convolve s",
                "1st pool s",
                "2nd pool s",
            ],
            [[c if isinstance(c, str) else f"{c:.3f}" for c in row] for row in fc_rows],
        )
    )
    print(
        "the 1st call in a process also pays Numba's one-time target set-up (typing registries"
        " loaded on the first dispatch), so the 1st pool after a convolve is cheap"
    )
    for label, r in (("cold", warmup_cold), ("warm", warmup_warm)):
        shown = r.get("error") or f"{r['median']:.2f} s"
        print(f"convtool warmup, {label} cache: {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
