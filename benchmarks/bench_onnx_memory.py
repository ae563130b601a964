"""Peak memory of an ONNX model's weights and maps, run by hand (needs onnx).

    python benchmarks/bench_onnx_memory.py

Builds the ResNet-18-shaped model of tests/test_onnx_models.py (onnx helper
API, 46.8 MB of float32 weights, BatchNormalization kept) into a temporary
file, then in a fresh process each: the growth of the peak resident set
(ru_maxrss, after numpy, onnx and convtool are imported) while
``load_net(path)`` runs, and while ``feature_maps(224x224x3, path)`` runs
(every map kept), and the resident set left after ``load_net``. Linux.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import gc, resource, sys
import numpy as np, onnx, convtool
from convtool.network import load_net

def rss():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

path, what = sys.argv[1], sys.argv[2]
img = np.random.default_rng(0).random((224, 224, 3), dtype=np.float32)
base_peak, base_rss = peak(), rss()
if what == "load":
    net = load_net(path)
    gc.collect()
    print(f"{peak() - base_peak:.0f} {rss() - base_rss:.0f}")
else:
    maps = convtool.feature_maps(img, path)
    print(f"{peak() - base_peak:.0f}")
"""


BUILD = """
import sys
sys.path.insert(0, sys.argv[2])
import onnx, test_onnx_models
onnx.save(test_onnx_models._resnet18(), sys.argv[1])
"""


def main() -> None:
    # every step in its own process, this one staying small: a child starts
    # with its parent's ru_maxrss (Linux keeps it across fork and exec)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"

        def child(script: str, *args: str) -> list[str]:
            out = subprocess.run(
                [sys.executable, "-c", script, str(path), *args],
                check=True,
                capture_output=True,
                text=True,
                cwd=tmp,
            )
            return out.stdout.split()

        child(BUILD, str(REPO / "tests"))
        size = path.stat().st_size / (1 << 20)
        load_peak, load_left = child(CHILD, "load")
        maps_peak = child(CHILD, "maps")[0]
    print(f"ResNet-18-shaped model, {size:.1f} MiB file; growth over the baseline, MiB:")
    print(f"  load_net:       peak +{load_peak}, resident after +{load_left}")
    print(f"  feature_maps:   peak +{maps_peak} (224x224x3, every map kept)")


if __name__ == "__main__":
    main()
