"""Numba kernels over plain float32 arrays: no I/O, no Typer, no Pillow.

Importing this package picks a writable Numba cache location *before* numba
is imported, because ``@njit(cache=True)`` raises at import time when none is
writable (a read-only site-packages, a locked-down container). Order of
preference: the user's ``NUMBA_CACHE_DIR``; the package directory itself
(Numba's default); the user cache directory (``$XDG_CACHE_HOME/convtool/numba``
or ``~/.cache/convtool/numba``); a temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".convtool-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def choose_cache_dir() -> str | None:
    """Return the directory to export as NUMBA_CACHE_DIR, or None for Numba's default."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if _writable(Path(__file__).resolve().parent / "__pycache__"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for candidate in (
        Path(base) / "convtool" / "numba",
        Path(tempfile.gettempdir()) / "convtool-numba",
    ):
        if _writable(candidate):
            return str(candidate)
    return None


_cache_dir = choose_cache_dir()
if _cache_dir is not None:
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir

# Numba's OpenMP threading layer inherits libgomp's default spin-wait: on a small or
# shared machine every short parallel region then stalls for a scheduler slice (measured
# on 2 vCPUs: a 3x3 convolve of 1024x1024 took 16 ms instead of 0.8 ms; benchmarks/).
# Passive waiting costs microseconds per region. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
