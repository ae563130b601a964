"""Start-up hygiene: light commands never import Numba; the Numba cache always has a home.

No timing assertions here (a shared CI machine makes them flaky); the times
themselves are measured by benchmarks/bench_cli.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import convtool.core as core

# Runs the CLI's main() with the given argv in a fresh interpreter, then reports
# which heavy modules ended up imported and how the CLI exited.
_PROBE = r"""
import json, sys
sys.argv = ["convtool", *json.loads(sys.argv[1])]
from convtool.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
heavy = sorted(m for m in ("numba", "llvmlite", "convtool.filtering", "convtool.pooling",
                           "convtool.core", "scipy", "cv2") if m in sys.modules)
sys.__stderr__.write("\nPROBE " + json.dumps({"code": code, "heavy": heavy}) + "\n")
"""


def _probe(args: list[str], env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("PROBE ")]
    assert lines, f"probe did not finish: rc={proc.returncode}\n{proc.stderr[-2000:]}"
    result = json.loads(lines[-1][len("PROBE ") :])
    result["stdout"] = proc.stdout
    return result


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["kernels"],
        ["convolve", "--help"],
        ["pool", "--help"],
        ["warmup", "--help"],
    ],
    ids=lambda a: " ".join(a),
)
def test_light_commands_do_not_import_numba(args: list[str]) -> None:
    result = _probe(args)
    assert result["code"] == 0, result
    assert "numba" not in result["heavy"], f"`convtool {' '.join(args)}` imported {result}"
    assert "convtool.core" not in result["heavy"]
    assert result["stdout"].strip(), "the command printed nothing"


def test_help_lists_warmup() -> None:
    result = _probe(["--help"])
    assert "warmup" in result["stdout"]


# ---------------------------------------------------------------- cache location


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A fake package dir, user cache dir and temp dir; writability is decided by a set."""
    pkg = tmp_path / "site-packages" / "convtool" / "core"
    pkg.mkdir(parents=True)
    xdg = tmp_path / "xdg"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setattr(core, "__file__", str(pkg / "__init__.py"))
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp))
    read_only: set[Path] = set()
    real_writable = core._writable

    def writable(path: Path) -> bool:
        # root ignores permission bits, so a chmod'ed directory cannot stand in for a
        # read-only site-packages here; refuse writes under the chosen roots instead.
        if any(path == ro or ro in path.parents for ro in read_only):
            return False
        return real_writable(path)

    monkeypatch.setattr(core, "_writable", writable)
    return {"pkg": pkg, "xdg": xdg, "tmp": tmp, "read_only": read_only}


def test_user_setting_wins(fake_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(fake_env["tmp"] / "mine"))
    fake_env["read_only"].add(fake_env["pkg"])
    assert core.choose_cache_dir() is None  # keep the user's NUMBA_CACHE_DIR as it is


def test_writable_package_dir_keeps_numba_default(fake_env) -> None:
    assert core.choose_cache_dir() is None
    assert (fake_env["pkg"] / "__pycache__").is_dir()


def test_read_only_package_dir_falls_back_to_user_cache(fake_env) -> None:
    fake_env["read_only"].add(fake_env["pkg"])
    chosen = core.choose_cache_dir()
    assert chosen == str(fake_env["xdg"] / "convtool" / "numba")
    assert Path(chosen).is_dir()
    assert os.access(chosen, os.W_OK)


def test_without_xdg_uses_home_cache(fake_env, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fake_env["read_only"].add(fake_env["pkg"])
    assert core.choose_cache_dir() == str(tmp_path / "home" / ".cache" / "convtool" / "numba")


def test_then_the_temp_dir(fake_env) -> None:
    fake_env["read_only"].update({fake_env["pkg"], fake_env["xdg"]})
    assert core.choose_cache_dir() == str(fake_env["tmp"] / "convtool-numba")


def test_nothing_writable_leaves_numba_alone(fake_env) -> None:
    fake_env["read_only"].update({fake_env["pkg"], fake_env["xdg"], fake_env["tmp"]})
    assert core.choose_cache_dir() is None


def test_writable_probe_on_real_filesystem(tmp_path: Path) -> None:
    assert core._writable(tmp_path / "a" / "b")
    assert not list((tmp_path / "a" / "b").iterdir()), "the probe file was left behind"
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert not core._writable(blocker / "cache")  # fails even for root


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores chmod")
def test_writable_probe_refuses_read_only_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert not core._writable(ro)
        assert not core._writable(ro / "sub")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("user_dir", [True, False], ids=["user-set", "unset"])
def test_numba_sees_the_chosen_dir(tmp_path: Path, user_dir: bool) -> None:
    """End to end: convtool.core runs before numba reads its config, so they agree."""
    code = (
        "import os, json, convtool.core\n"
        "import numba.core.config as cfg\n"
        "print(json.dumps([os.environ.get('NUMBA_CACHE_DIR', ''), cfg.CACHE_DIR]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    if user_dir:
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    env_value, numba_value = json.loads(out.stdout)
    assert env_value == numba_value
    if user_dir:
        assert numba_value == str(tmp_path / "numba-cache")


# ---------------------------------------------------------------- convtool warmup


def test_warmup_command_calls_each_warmup_and_names_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Present warmups run once each, absent modules/functions are skipped and named."""
    import types

    from typer.testing import CliRunner

    from convtool.cli import app
    from convtool.commands import warmup as warmup_cmd

    calls: list[str] = []
    present = types.ModuleType("convtool_fake_present")
    present.warmup = lambda: calls.append("present")  # type: ignore[attr-defined]
    no_func = types.ModuleType("convtool_fake_nofunc")
    monkeypatch.setitem(sys.modules, "convtool_fake_present", present)
    monkeypatch.setitem(sys.modules, "convtool_fake_nofunc", no_func)
    monkeypatch.setattr(
        warmup_cmd,
        "_STEPS",
        (
            ("present", "convtool_fake_present", "warmup"),
            ("nofunc", "convtool_fake_nofunc", "warmup"),
            ("absent", "convtool_fake_absent_module", "warmup"),
        ),
    )
    cache = tmp_path / "cache"
    (cache / "sub").mkdir(parents=True)
    (cache / "sub" / "f-1.py311.nbi").write_bytes(b"")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    result = CliRunner().invoke(app, ["warmup", "--quiet", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert calls == ["present"]
    assert str(cache) in result.output
    assert "1 cached functions" in result.output
    assert "not present: nofunc, absent" in result.output


def test_warmup_does_not_hide_a_broken_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A module that exists but fails to import is a bug: it must not be reported as absent."""
    from convtool.commands import warmup as warmup_cmd

    (tmp_path / "convtool_fake_broken.py").write_text("import convtool_fake_missing_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "convtool_fake_broken", raising=False)
    monkeypatch.setattr(warmup_cmd, "_STEPS", (("broken", "convtool_fake_broken", "warmup"),))
    with pytest.raises(ModuleNotFoundError, match="convtool_fake_missing_dep"):
        warmup_cmd.run_warmup(quiet=True, jobs=1)
    broken = ("broken", "convtool_fake_broken", "warmup")
    monkeypatch.setattr(warmup_cmd, "_STEPS", (broken, broken))
    with pytest.raises(RuntimeError, match="convtool_fake_missing_dep"):  # in workers too
        warmup_cmd.run_warmup(quiet=True, jobs=2)


def test_warmup_workers_run_every_step_once_and_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Steps spread over worker processes: each runs once, in a process of its own
    group, with its arguments; every worker has exited when run_warmup returns."""
    code = (
        "import os\n"
        "def warmup(tag='none'):\n"
        "    name = tag + '-' + str(os.getpid())\n"
        "    open(os.path.join(os.path.dirname(__file__), name), 'w').close()\n"
    )
    (tmp_path / "convtool_fake_steps.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    from convtool.commands import warmup as warmup_cmd

    steps = tuple(("fake", "convtool_fake_steps", "warmup", (t,)) for t in "abc")
    steps += (("gone", "convtool_fake_absent_module", "warmup"),)
    monkeypatch.setattr(warmup_cmd, "_STEPS", steps)
    done = warmup_cmd.run_warmup(quiet=True, jobs=2)
    assert [label for label, _ in done] == ["fake", "gone"]
    assert done[0][1] is not None and done[1][1] is None
    marks = sorted(p.name for p in tmp_path.iterdir() if "-" in p.name)
    assert [m.split("-")[0] for m in marks] == ["a", "b", "c"]
    pids = {int(m.split("-")[1]) for m in marks}
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, not this process
    for pid in pids:  # both have exited (and were reaped)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize("user_value", [None, "active"])
def test_openmp_wait_policy_defaults_to_passive(user_value: str | None) -> None:
    """convtool.core sets OMP_WAIT_POLICY=passive before numba loads OpenMP, unless set."""
    code = "import os, convtool.core; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_value is not None:
        env["OMP_WAIT_POLICY"] = user_value
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (user_value or "passive")


def test_threads_option_sets_the_compute_threads_without_numba() -> None:
    """--threads and threads= set convtool's own thread count; neither imports Numba,
    and neither does the FFT path (numpy only)."""
    code = (
        "import sys, numpy as np\n"
        "from convtool.commands._common import set_threads\n"
        "from convtool import filtering, parallel\n"
        "set_threads(1)\n"
        "assert parallel.get_threads() == 1\n"
        "img = np.ones((64, 64), np.float32)\n"
        "filtering.convolve(img, np.ones((31, 31)), method='fft', threads=2)\n"
        "filtering.convolve(img, 'box:3', threads=2)\n"
        "assert 'numba' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
