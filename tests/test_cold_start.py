"""A new user's first run: every command on an empty Numba cache gives the warm run's output.

Each command runs as a real process, first with NUMBA_CACHE_DIR pointed at an
empty directory (cold), then again on the same directory (warm), and
everything it wrote (files and stdout) must be identical. Then four processes
start at once on one empty cache, compile the same kernel side by side, and
must all succeed with identical outputs. Correctness only: the times are
measured by ``benchmarks/bench_cli.py --cold``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _run(args: list[str], cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "convtool", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def _digest(out: Path, stdout: str) -> dict[str, str]:
    """Every file under ``out`` (by name) and stdout, hashed."""
    found = {"stdout": hashlib.sha256(stdout.encode()).hexdigest()}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        found[path.relative_to(out).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cold-inputs")
    with Image.open(SAMPLES / "astronaut.png") as im:
        photo = np.asarray(im.convert("RGB"))[::2, ::2]  # 256x256 colour
    Image.fromarray(photo).save(d / "photo.png")
    Image.fromarray(photo[90:120, 100:130]).save(d / "tmpl.png")
    with Image.open(SAMPLES / "camera.png") as im:
        Image.fromarray(np.asarray(im.convert("L"))[::2, ::2]).save(d / "gray.png")
    return d


# (name, command line; {out} is the output directory, {in} the inputs)
COMMANDS = [
    ("convolve-gaussian", "convolve {in}/gray.png -k gaussian:3 -o {out}/a.png"),
    ("convolve-bank", "convolve {in}/photo.png -k sobel -k laplacian -o {out}/b.png"),
    ("pool-avg", "pool {in}/photo.png --mode avg --size 3 --stride 2 -o {out}/p.png"),
    # stochastic pooling has no numpy path: this one compiles on the cold run
    ("pool-stochastic", "pool {in}/photo.png --mode stochastic --seed 3 -o {out}/s.png"),
    (
        "detect",
        "detect {in}/photo.png -t {in}/tmpl.png --format json -o {out}/boxes.png"
        " --heatmap {out}/heat.npy",
    ),
    (
        "visualize",
        "visualize {in}/photo.png -o {out}/layers/"
        " --layers 'conv(random:4,size=3) relu pool(max,2) conv(random:4,size=3)'",
    ),
    ("summary", "summary 'conv(random:4,size=3) relu pool(max,2)' --input 64x64x3"),
    ("kernels", "kernels"),
]


@pytest.mark.parametrize("name,args", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_cold_run_equals_warm_run(tmp_path: Path, inputs: Path, name: str, args: str):
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    results = []
    for run in ("cold", "warm"):
        out = tmp_path / run
        out.mkdir()
        argv = [
            a.replace("{out}", str(out)).replace("{in}", str(inputs)) for a in shlex.split(args)
        ]
        proc = _run(argv, cache, tmp_path)
        assert proc.returncode == 0, f"{run}: {proc.stderr[-2000:]}"
        results.append(_digest(out, proc.stdout.replace(str(out), "OUT")))
    assert results[0] == results[1], name
    assert len(results[0]) > 1 or results[0]["stdout"], "the command produced nothing"


def test_four_processes_on_one_empty_cache(tmp_path: Path, inputs: Path):
    """Four first runs at once share an empty cache: all compile, all write it,
    all succeed with the same output; a fifth run then compiles nothing."""
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    procs = []
    for k in range(4):
        out = tmp_path / f"out{k}.png"
        argv = ["pool", str(inputs / "photo.png"), "--mode", "stochastic", "--seed", "7"]
        argv += ["-o", str(out)]
        procs.append(
            (
                out,
                subprocess.Popen(
                    [sys.executable, "-m", "convtool", *argv],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                ),
            )
        )
    digests = set()
    for out, proc in procs:
        _stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1
    assert any(cache.rglob("pool.stochastic-*.nbi")), "nothing was cached"
    code = (
        "import json, numpy as np\n"
        "from convtool import pooling\n"
        "from convtool.core import pool as core\n"
        "pooling.pool(np.ones((40, 40), np.float32), 'stochastic', seed=1)\n"
        "print(sum(core.stochastic.stats.cache_misses.values()))\n"
    )
    fifth = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert fifth.returncode == 0, fifth.stderr[-2000:]
    assert fifth.stdout.strip() == "0"  # loaded from the cache the four wrote
