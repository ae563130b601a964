"""Shell completion: --install-completion exists and option values complete.

The shell calls ``convtool`` with ``_CONVTOOL_COMPLETE`` set and the words
typed so far; these tests speak that protocol (bash's form) in-process, and
once in a fresh interpreter to check that completing a kernel name imports
the kernel registry but never Numba.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from convtool.cli import app
from convtool.commands import _complete
from convtool.modes import PAD_MODES


def _bash_complete(words: str) -> list[str]:
    """What bash would offer after ``words`` (the last word may be partial)."""
    parts = words.split(" ")
    env = {
        "_CONVTOOL_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    result = CliRunner().invoke(app, [], env=env, prog_name="convtool")
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_help_offers_completion_install():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert "--install-completion" in result.output
    assert "--show-completion" in result.output


def test_kernel_names_complete_with_their_variants():
    assert _bash_complete("convtool convolve in.png -k sob") == ["sobel", "sobel-x", "sobel-y"]
    assert "kirsch-ne" in _bash_complete("convtool convolve in.png -k kirsch")
    assert _bash_complete("convtool detect in.png -k lap") == [
        "laplacian",
        "laplacian4",
        "laplacian8",
    ]
    assert "gabor" in _bash_complete("convtool visualize in.png -k g")
    names = [name for name, _help in _complete.kernel_names("")]
    assert names[:3] == ["identity", "box", "gaussian"] and "line-d2" in names


def test_pad_pool_detect_scale_combine_values_complete():
    assert set(PAD_MODES) <= set(_bash_complete("convtool convolve in.png --pad "))
    assert _bash_complete("convtool pool in.png --pad w") == ["wrap"]
    assert _bash_complete("convtool pool in.png --mode s") == ["stochastic"]
    assert _bash_complete("convtool pool in.png -m ") == [
        "max",
        "avg",
        "min",
        "lp",
        "topleft",
        "stochastic",
        "fractional",
    ]
    assert _bash_complete("convtool detect in.png --method ") == ["zncc", "cosine", "sqdiff"]
    assert _bash_complete("convtool convolve in.png --scale robust") == [
        "robust-normalize",
        "robust-offset",
    ]
    assert _bash_complete("convtool convolve in.png --combine m") == ["magnitude", "max"]


@pytest.mark.parametrize(
    "func, typed, expected",
    [
        (_complete.pad_modes, "RE", ["replicate", "reflect", "reflect101"]),
        (_complete.pool_modes, "x", []),
        (_complete.scales, "r", ["robust-normalize", "robust-offset", "raw"]),
    ],
)
def test_callbacks_match_prefixes(func, typed, expected):
    assert func(typed) == expected


_PROBE = r"""
import json, os, sys
os.environ.update({"_CONVTOOL_COMPLETE": "complete_bash",
                   "COMP_WORDS": "convtool convolve a.png -k gau", "COMP_CWORD": "4"})
from convtool.cli import main
try:
    main()
except SystemExit:
    pass
sys.__stderr__.write("\nPROBE " + json.dumps(sorted(
    m for m in ("numba", "convtool.kernels", "convtool.core") if m in sys.modules)) + "\n")
"""


def test_completing_a_kernel_never_imports_numba():
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split() == ["gaussian"], proc.stdout + proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("PROBE ")][-1]
    loaded = json.loads(line[len("PROBE ") :])
    assert "convtool.kernels" in loaded  # imported when the shell asked, not before
    assert "numba" not in loaded and "convtool.core" not in loaded
