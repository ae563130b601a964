"""``--scheduler ADDRESS``: a batch's files, and a big image's bands, on a Dask cluster.

Without ``--scheduler`` (and without ``CONVTOOL_SCHEDULER``) nothing here is
imported and everything runs locally, as before. With it:

- each file of a batch is read here, its bytes are sent to a worker, which
  decodes, computes and encodes it with the same code as a local run, and the
  encoded bytes come back and are written here (atomically): no shared file
  system is needed, and the output files are byte for byte those of a local
  run;
- a streamed image (see :mod:`convtool.streaming`) is computed band by band
  on the cluster; its input windows are read here and travel with the tasks.

An unreachable scheduler is a usage error (exit 2) after at most
:data:`CONNECT_TIMEOUT` seconds.

Start a cluster with ``dask scheduler`` (prints its address, e.g.
``tcp://10.0.0.5:8786``) and ``dask worker tcp://10.0.0.5:8786 --nthreads 1``
on each machine, then ``convtool convolve 'shots/*.jpg' -k sobel -o out/
--scheduler tcp://10.0.0.5:8786``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConvtoolError, InputError, UsageError

__all__ = ["CONNECT_TIMEOUT", "ENV", "scheduler_address", "connect", "remote_item", "read_bytes"]

#: Environment variable read when ``--scheduler`` is not given.
ENV = "CONVTOOL_SCHEDULER"

#: Seconds to wait for the scheduler before giving up.
CONNECT_TIMEOUT = 3.0


def scheduler_address(option: str | None) -> str | None:
    """``--scheduler`` if given, else ``$CONVTOOL_SCHEDULER``, else None (run locally).

    Examples
    --------
    >>> scheduler_address("tcp://127.0.0.1:8786")
    'tcp://127.0.0.1:8786'
    """
    address = option if option is not None else os.environ.get(ENV)
    address = (address or "").strip()
    return address or None


def connect(address: str) -> Any:
    """A ``distributed.Client`` for ``address``, or a UsageError within a few seconds."""
    import logging

    try:
        from distributed import Client
    except ImportError:
        raise UsageError(
            "--scheduler needs dask.distributed: pip install 'convtool[dask]'"
        ) from None
    try:
        from distributed.comm import parse_address
        from distributed.comm.registry import get_backend

        get_backend(parse_address(address)[0])
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"--scheduler {address!r} is not a scheduler address ({exc}); "
            "give one like tcp://HOST:8786"
        ) from None
    quiet = [logging.getLogger(n) for n in ("distributed", "distributed.client", "tornado")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot reach the dask scheduler at {address} ({detail[:120]}); start one with "
            f"`dask scheduler` and workers with `dask worker ADDRESS`, or drop --scheduler/{ENV}"
        ) from None
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def cluster_threads(client: Any) -> int:
    """Worker threads in the cluster (at least 1)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - a guess is fine for sizing the window
        return 1


def threads_by_worker(client: Any) -> dict[str, int]:
    """Numba threads per task on each worker: its machine's cores / worker threads there.

    Two workers of one thread each on a 2-core machine get one Numba thread
    per task, so workers x threads never exceeds the cores.
    """
    try:
        workers = client.scheduler_info()["workers"]
        cpus = client.run(os.cpu_count)
    except Exception:  # noqa: BLE001 - fall back to one thread per task
        return {}
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + int(info.get("nthreads", 1))
    return {
        addr: max(1, int(cpus.get(addr) or 1) // max(1, per_host[info["host"]]))
        for addr, info in workers.items()
    }


def _limit_threads(threads: dict[str, int]) -> None:
    """On a worker: cap the compute threads of this process's tasks."""
    try:
        from distributed import get_worker

        n = threads.get(get_worker().address, 1)
    except (ImportError, ValueError):
        n = 1
    from .parallel import set_threads

    set_threads(max(1, n))


def read_bytes(path: str) -> bytes:
    """The input's bytes, read here (the worker may not see this file system)."""
    if path == "-":
        import sys

        data = sys.stdin.buffer.read()
        if not data:
            raise InputError("-: standard input is empty (0 bytes): pipe an image into it")
        return data
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(
            f"{path}: is a directory, not an image (pass the files or a glob)"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def remote_item(
    data: bytes,
    name: str,
    gray: bool,
    compute: Any,
    encode: Any,
    threads: dict | None = None,
    choice: str | None = None,
) -> tuple:
    """On a worker: decode ``data``, ``compute`` it, ``encode`` it; return (bytes, record).

    The bytes are decoded from a temporary file named like the input, and
    errors name the input as the user gave it. ``choice`` is the batch's
    numpy-or-Numba decision (:func:`convtool.rentbuy.pin`), so the worker
    computes what a local run computes, whatever ran on it before.
    """
    from . import rentbuy
    from .io import read_image

    base = os.path.basename(name) if name != "-" else "stdin"
    with tempfile.TemporaryDirectory(prefix="convtool-") as tmp:
        path = os.path.join(tmp, base)
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            image = read_image(path, gray=gray)
        except ConvtoolError as exc:
            exc.args = (str(exc).replace(path, name),)
            raise
    image.name = name
    _limit_threads(threads or {})
    with rentbuy.pin(choice):
        result, alpha = compute(image)
    return encode(image, result, alpha)
