"""A run that had to compile (cold Numba cache) says so once, and points at warmup."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image


def run_pool(tmp_path, cache_dir, *, terminal=True):
    """Run `convtool pool` in a new process; stderr on a pseudo-terminal if asked."""
    src = tmp_path / "in.png"
    if not src.exists():
        Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)).save(src)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    # stochastic pooling has no numpy path: it always runs (and first compiles) its kernel
    argv = [sys.executable, "-m", "convtool", "pool", str(src), "-o", str(tmp_path / "out.png")]
    argv += ["--mode", "stochastic", "--seed", "1"]
    if not terminal:
        return subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stderr
    master, slave = os.openpty()
    try:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=slave, env=env, check=True)
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal is drained and closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode()


def test_cold_cache_run_says_it_compiled_and_warm_run_is_silent(tmp_path):
    cache = tmp_path / "numba-cache"
    first = run_pool(tmp_path, cache)
    assert "compiled" in first and "convtool warmup" in first
    second = run_pool(tmp_path, cache)
    assert "compiled" not in second


def test_no_note_when_stderr_is_not_a_terminal(tmp_path):
    assert "compiled" not in run_pool(tmp_path, tmp_path / "cold", terminal=False)
