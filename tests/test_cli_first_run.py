"""A run that had to compile (cold Numba cache) says so once, and points at warmup."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image


def run_pool(tmp_path, cache_dir):
    src = tmp_path / "in.png"
    if not src.exists():
        Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)).save(src)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    return subprocess.run(
        [sys.executable, "-m", "convtool", "pool", str(src), "-o", str(tmp_path / "out.png")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )


def test_cold_cache_run_says_it_compiled_and_warm_run_is_silent(tmp_path):
    cache = tmp_path / "numba-cache"
    first = run_pool(tmp_path, cache)
    assert "compiled" in first.stderr and "convtool warmup" in first.stderr
    second = run_pool(tmp_path, cache)
    assert "compiled" not in second.stderr
