"""``--scheduler``: a real distributed.LocalCluster, 2 worker processes on loopback.

One cluster for the module (starting one takes seconds). The batch is run
without a shared file system in mind: convtool ships the bytes, and the
outputs must be the same files, byte for byte, as a local run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")
tifffile = pytest.importorskip("tifffile")

from convtool.cli import app  # noqa: E402


def run(*args, env=None):
    return CliRunner().invoke(app, [*map(str, args)], env=env)


@pytest.fixture(scope="module")
def scheduler():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_batch_on_cluster_is_byte_identical_to_local(tmp_path, samples_dir, scheduler):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("camera.png", "coins.png", "astronaut.png", "chelsea.png"):
        shutil.copy(samples_dir / name, inputs / name)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for cmd in (["convolve", "-k", "sobel"], ["pool", "--mode", "avg", "--size", "3"]):
        local = run(*cmd[:1], inputs, *cmd[1:], "-o", f"{tmp_path}/local/", "-q")
        remote = run(*cmd[:1], inputs, *cmd[1:], "-o", f"{tmp_path}/remote/", "-q", "--scheduler",
                     scheduler)  # fmt: skip
        assert local.exit_code == remote.exit_code == 1  # the broken file, named in both
        assert "broken.png" in remote.stderr and "Traceback" not in remote.stderr
        assert str(tmp_path / "in") in remote.stderr  # the name the user gave, not a temp path
        names = sorted(p.name for p in (tmp_path / "local").iterdir())
        assert names == sorted(p.name for p in (tmp_path / "remote").iterdir())
        assert len(names) == 4
        for name in names:
            assert (tmp_path / "remote" / name).read_bytes() == (
                tmp_path / "local" / name
            ).read_bytes(), name
        shutil.rmtree(tmp_path / "local")
        shutil.rmtree(tmp_path / "remote")


def test_gaussian_batch_on_cluster_is_byte_identical_to_a_fresh_local_run(
    tmp_path, samples_dir, scheduler
):
    # gaussian:1.3 is not integer: numpy and Numba differ by round-off in a few
    # 8-bit pixels. The local run is a fresh process (Numba not loaded) and the
    # workers have loaded Numba (as after a big batch): the outputs agree only because the batch
    # pins one path for every file and ships it (convtool.rentbuy.pin).
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "text.png"):
        shutil.copy(samples_dir / name, inputs / name)
    with distributed.Client(scheduler, timeout=10) as client:  # warm workers: Numba loaded
        client.run(lambda: __import__("numba") and None)
    args = ["convolve", str(inputs), "-k", "gaussian:1.3", "-q"]
    proc = subprocess.run(
        [sys.executable, "-m", "convtool", *args, "-o", f"{tmp_path}/local/"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    remote = run(*args, "-o", f"{tmp_path}/remote/", "--scheduler", scheduler)
    assert remote.exit_code == 0, remote.stderr
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "remote").iterdir())
    assert len(names) == 5
    for name in names:
        assert (tmp_path / "remote" / name).read_bytes() == (
            tmp_path / "local" / name
        ).read_bytes(), name


def test_streamed_image_on_cluster_equals_local(tmp_path, scheduler):
    img = (np.random.default_rng(5).random((700, 650)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "img.tif", img, tile=(128, 128), compression="zlib")
    args = ["convolve", tmp_path / "img.tif", "-k", "gaussian:2", "--pad", "symmetric",
            "--chunks", 200, "-q"]  # fmt: skip
    assert run(*args, "-o", tmp_path / "local.npy").exit_code == 0
    env = {"CONVTOOL_SCHEDULER": scheduler}  # the environment variable, this time
    res = run(*args, "-o", tmp_path / "remote.npy", env=env)
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "remote.npy").read_bytes() == (tmp_path / "local.npy").read_bytes()


def test_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, samples_dir):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    res = run("convolve", samples_dir / "camera.png", "-k", "box:3", "-o", tmp_path / "o.png",
              "--scheduler", f"tcp://127.0.0.1:{port}")  # fmt: skip
    elapsed = time.monotonic() - t0
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "dask scheduler" in lines[0], res.stderr
    assert elapsed < 15
    assert not (tmp_path / "o.png").exists()
