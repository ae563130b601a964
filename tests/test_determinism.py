"""A batch's output bytes do not depend on --jobs, on the process's history or on
where it runs: the batch decides numpy or Numba once (convtool.rentbuy.pin).

The numpy and compiled paths differ by float32 round-off, which flips a few
8-bit pixels for a non-integer kernel such as gaussian:1.3; before the pin a
fresh process ran the first files of a batch on numpy and a process that had
loaded Numba ran them compiled. The cluster side is in tests/test_cluster.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from convtool import filtering, rentbuy
from convtool.cli import app

SAMPLES = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coins.png", "text.png")


def _outputs(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_batch_bytes_same_for_jobs_1_fresh_and_jobs_2_warm(tmp_path, samples_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in SAMPLES:
        shutil.copy(samples_dir / name, inputs / name)
    args = ["convolve", str(inputs), "-k", "gaussian:1.3", "-q"]
    # a fresh process (Numba not loaded), one file at a time
    proc = subprocess.run(
        [sys.executable, "-m", "convtool", *args, "-o", f"{tmp_path}/fresh/", "--jobs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    # this process with Numba loaded (a warmed worker), two files at a time
    import numba  # noqa: F401

    res = CliRunner().invoke(app, [*args, "-o", f"{tmp_path}/warm/", "--jobs", "2"])
    assert res.exit_code == 0, res.stderr
    fresh, warm = _outputs(tmp_path / "fresh"), _outputs(tmp_path / "warm")
    assert sorted(fresh) == sorted(warm) and len(fresh) == len(SAMPLES)
    for name in fresh:
        assert fresh[name] == warm[name], name


def test_batch_choice_from_pixel_counts():
    assert rentbuy.batch_choice([]) == "numpy"
    assert rentbuy.batch_choice([rentbuy.RENT_PIXELS]) == "numpy"
    assert rentbuy.batch_choice([rentbuy.RENT_PIXELS // 2, rentbuy.RENT_PIXELS // 2 + 1]) == (
        "compiled"
    )
    assert rentbuy.batch_choice([512 * 512] * 6) == "numpy"  # the samples: rent


def test_batch_choice_reads_headers_before_any_file(tmp_path, samples_dir, monkeypatch):
    from convtool.batch import Job, _batch_choice

    plan = [Job(i, str(samples_dir / n), str(tmp_path / n)) for i, n in enumerate(SAMPLES)]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    plan.append(Job(9, str(broken), str(tmp_path / "o.png")))
    assert _batch_choice(plan, set()) == "numpy"
    # 512x512 (astronaut) + 512x512 (brick) + ... : one more pixel over the sum buys Numba
    total = sum(512 * 512 for _ in ("astronaut", "brick", "camera")) + 451 * 300 + 384 * 303
    total += 448 * 172
    monkeypatch.setattr(rentbuy, "RENT_PIXELS", total)
    assert _batch_choice(plan, set()) == "numpy"
    monkeypatch.setattr(rentbuy, "RENT_PIXELS", total - 1)
    assert _batch_choice(plan, set()) == "compiled"


def test_pin_overrides_the_per_job_rule():
    import numba  # noqa: F401 - loaded: the per-job rule would always say compiled

    assert rentbuy.pinned() is None
    assert not rentbuy.prefer_numpy(1.0, ["conv.direct"])
    spent = rentbuy._spent_ns
    with rentbuy.pin("numpy"):
        assert rentbuy.prefer_numpy(1e15, ["conv.direct"])
        with rentbuy.pin("numpy"):  # a second task of the same batch
            pass
        assert rentbuy.pinned() == "numpy"  # still held by the first
        with rentbuy.pin("compiled"):  # two batches disagree: neither holds
            assert rentbuy.pinned() is None
    assert rentbuy._spent_ns == spent  # a pinned job is not counted
    with rentbuy.pin("compiled"):
        assert not rentbuy.prefer_numpy(0.0, [])
    with rentbuy.pin(None):
        assert rentbuy.pinned() is None
    with pytest.raises(ValueError, match="numpy"):
        with rentbuy.pin("fast"):
            pass
    assert rentbuy.pinned() is None


@pytest.mark.parametrize("separable", [True, False])
def test_pinned_numpy_picks_a_numpy_path_with_numba_loaded(separable):
    import numba  # noqa: F401

    img = np.zeros((64, 64), np.float32)
    factors = (np.ones(5), np.ones(5)) if separable else None
    args = (img, (64, 64, 1), (5, 5), 1, 1, "reflect", factors, "auto")
    compiled = filtering._choose(*args)
    assert compiled in ("direct", "separable")
    with rentbuy.pin("numpy"):
        assert filtering._choose(*args) in ("numpy", "numpy-separable", "fft")
    with rentbuy.pin("compiled"):
        assert filtering._choose(*args) == compiled


def test_a_2048_photo_runs_on_numpy_in_a_fresh_process(tmp_path):
    """The first-run case of issue 10 (a 2048x2048 PNG, gaussian:3) never loads Numba.

    A batch of one is pinned like any batch; its threshold must leave a photo on
    numpy, or its first run on an empty cache pays a compile of several seconds.
    """
    from PIL import Image

    src = tmp_path / "photo.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (2048, 2048), dtype=np.uint8)).save(src)
    code = (
        "import sys\n"
        "from convtool.cli import main\n"
        f"sys.argv = ['convtool', 'convolve', {str(src)!r}, '-k', 'gaussian:3', "
        f"'-o', {str(tmp_path / 'out.png')!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "print('numba' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert proc.stdout.strip() == "False", proc.stderr
    assert (tmp_path / "out.png").stat().st_size > 0
