"""Estimated against measured peak memory of feature_maps (every map kept), run by hand.

    python benchmarks/bench_memory.py "conv(random:64,size=3,pad=zero) relu pool(max,2)"

Prints convtool.network.memory_estimate for a 1024x1024x3 image and the growth
of the process's peak resident set while feature_maps runs (ru_maxrss, after
numpy and Numba are loaded). Linux (ru_maxrss in KiB).
"""

from __future__ import annotations

import resource
import sys

import numpy as np

import convtool.core.pool  # noqa: F401  (the baseline includes Numba and the kernels)
from convtool.network import feature_maps, memory_estimate, plan


def main(spec: str, side: int = 1024) -> None:
    img = np.random.default_rng(0).random((side, side, 3)).astype(np.float32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    layers = plan(spec, (3, side, side))
    mem = memory_estimate(layers, (3, side, side))
    feature_maps(img, spec, layers=layers)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    mib = 1 << 20
    print(
        f"estimate {mem.total / mib:.0f} MiB (maps {mem.maps / mib:.0f}, scratch "
        f"{mem.work / mib:.0f}); measured peak above baseline {(peak - base) / mib:.0f} MiB"
    )


if __name__ == "__main__":
    main(sys.argv[1])
