"""Images larger than memory from the CLI: TIFF, .npy and zarr read and written window by window.

A TIFF (BigTIFF or not, tiled or striped, compressed or not, 8/16-bit,
integer or float; read with tifffile), a ``.npy`` file (memory-mapped) or a
zarr array is opened as a lazy Dask array (:func:`open_lazy`) whose chunks
are windows of the file. The command's usual compute step runs on it
unchanged (``convtool.convolve`` and ``convtool.pool`` build lazy results,
see :mod:`convtool.chunked`), and :func:`write_lazy` computes the result one
band of output rows at a time, in order, and writes each band as it comes:

- ``.tif`` / ``.tiff``: a tiled BigTIFF of float32 (the raw result, as the
  in-memory path writes float32 TIFFs), 256x256 tiles; a stack of maps is
  one page per map; colour is one page with the channels interleaved;
- ``.npy``: the header, then the rows, in order (float32);
- ``.zarr``: a zarr array (float32), band by band.

Every output is written under a temporary name next to the destination and
renamed when complete, so an interrupted run leaves nothing behind.

Memory: the input windows one band needs (the band's rows plus the halo,
across the full width), the band's output, and the blocks being computed;
never the whole image. PNG, JPEG, BMP and WebP outputs are encoded whole,
with the same ``--scale`` / ``--depth`` rules as the in-memory path; such an
output larger than the pixel limit is refused with a message that suggests
``.tif``. ``--scale`` does not apply to ``.tif``, ``.npy`` and ``.zarr`` (raw
float32, as in memory), so no scaling needs a global pass.

When convtool streams: inputs ``.tif``/``.tiff``/``.npy``/``.zarr`` above
:data:`STREAM_PIXELS` pixels (``CONVTOOL_STREAM_PIXELS`` overrides it), or any
of them with ``--chunks N`` (window side N). PNG and JPEG are decoded whole
and keep the decompression-bomb limit.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, UsageError

__all__ = [
    "STREAM_PIXELS",
    "DEFAULT_CHUNK",
    "TILE",
    "input_kind",
    "should_stream",
    "open_lazy",
    "write_lazy",
]

#: Inputs with more pixels than this are streamed (``CONVTOOL_STREAM_PIXELS`` overrides).
STREAM_PIXELS = 50_000_000
_STREAM_ENV = "CONVTOOL_STREAM_PIXELS"

#: Window side (rows and columns) of a streamed input, unless ``--chunks N``.
DEFAULT_CHUNK = 1024

#: Tile side of streamed TIFF outputs.
TILE = 256

#: Output formats written window by window.
STREAM_OUTPUTS = ("tiff", "npy", "zarr")

_KINDS = {".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".zarr": "zarr"}


def input_kind(path: str) -> str | None:
    """``tiff``, ``npy`` or ``zarr`` for a file convtool can stream, else None.

    Examples
    --------
    >>> input_kind("scan.TIF"), input_kind("a.png"), input_kind("store.zarr/")
    ('tiff', None, 'zarr')
    """
    if path == "-":
        return None
    return _KINDS.get(Path(path.rstrip("/\\")).suffix.lower())


def stream_threshold() -> int:
    """Pixels above which an input is streamed."""
    value = os.environ.get(_STREAM_ENV)
    if value:
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"{_STREAM_ENV} must be a whole number, got {value!r}") from None
    return STREAM_PIXELS


def should_stream(path: str, chunks: int | None) -> bool:
    """Whether ``path`` is read window by window (``--chunks`` given, or above the size)."""
    kind = input_kind(path)
    if kind is None:
        return False
    if kind == "zarr" or chunks is not None:
        return True
    try:
        shape = Window(path, kind).shape
    except InputError:
        return False  # the in-memory reader words the error
    return shape[0] * shape[1] > stream_threshold()


# --------------------------------------------------------------------------- reading


class Window:
    """A file read window by window: ``window[r0:r1, c0:c1]`` decodes only that.

    Picklable (path and kind only); opened lazily in each process.
    """

    def __init__(self, path: str, kind: str) -> None:
        self.path = os.fspath(path)
        self.kind = kind
        self._lock = threading.Lock()
        self._array: Any = None
        self._handle: Any = None
        arr = self._open()
        self.shape = tuple(int(s) for s in arr.shape)
        self.dtype = np.dtype(arr.dtype)
        self.ndim = len(self.shape)
        if self.ndim not in (2, 3) or self.dtype.kind not in "uif" or 0 in self.shape:
            raise InputError(
                f"{self.path}: array of shape {self.shape} and dtype {self.dtype} is not an image "
                "(need a real (H,W) or (H,W,C) array)"
            )

    def __getstate__(self) -> dict:
        return {"path": self.path, "kind": self.kind, "shape": self.shape, "dtype": self.dtype}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.ndim = len(self.shape)
        self._lock = threading.Lock()
        self._array = None
        self._handle = None

    def _open(self) -> Any:
        if self._array is not None:
            return self._array
        name = self.path
        if not os.path.exists(name):
            raise InputError(f"{name}: no such file")
        try:
            if self.kind == "npy":
                arr = np.load(name, mmap_mode="r", allow_pickle=False)
            elif self.kind == "zarr":
                import zarr

                arr = zarr.open_array(name, mode="r")
            else:
                arr = self._open_tiff(name)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - every reader failure is one line
            detail = str(exc).strip() or type(exc).__name__
            raise InputError(f"{name}: unreadable {self.kind} file ({detail})") from None
        self._array = arr
        return arr

    def _open_tiff(self, name: str) -> Any:
        import tifffile
        import zarr

        handle = tifffile.TiffFile(name)
        series = handle.series[0]
        axes = series.axes
        if axes not in ("YX", "YXS"):
            handle.close()
            raise InputError(
                f"{name}: TIFF series with axes {axes!r} and shape {series.shape}: convtool "
                "streams one 2-D image (axes YX, or YXS for colour); extract it first"
            )
        store = series.aszarr()
        self._handle = handle
        return zarr.open_array(store, mode="r")

    def __getitem__(self, key: Any) -> np.ndarray:
        with self._lock:
            arr = self._open()
            return np.asarray(arr[key])


def open_lazy(path: str, *, gray: bool = False, chunks: int | None = None) -> Any:
    """A streamed input as a :class:`convtool.io.Image` whose data is a lazy Dask array.

    Colour channels stay together in each window; RGBA/LA alpha is split off
    as in memory, and ``gray`` takes the luminance with the same float32
    weights, in the same order, as :func:`convtool.io.luminance`.
    """
    import dask.array as da
    from dask.base import tokenize

    from .io import _LUMA, Image

    kind = input_kind(path)
    if kind is None:
        raise UsageError(f"{path}: only .tif, .tiff, .npy and .zarr inputs are streamed")
    window = Window(path, kind)
    side = int(chunks) if chunks else DEFAULT_CHUNK
    if side < 1:
        raise UsageError(f"--chunks must be >= 1, got {chunks}")
    shape = window.shape
    bchunks: tuple = (side, side) + ((shape[2],) if len(shape) == 3 else ())
    stat = os.stat(path)
    name = "convtool-read-" + tokenize(os.path.abspath(path), stat.st_mtime_ns, stat.st_size, side)
    x = da.from_array(
        window,
        chunks=bchunks,
        name=name,
        asarray=False,
        lock=False,
        meta=np.empty((0,) * len(shape), window.dtype),
    )
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(window.dtype, 32)
    alpha = None
    data = x
    if x.ndim == 3:
        c = x.shape[2]
        if c in (2, 4):
            data, alpha = x[..., : c - 1], x[..., c - 1].astype(np.float32)
        if data.shape[2] == 1:
            data = data[..., 0]
        elif gray and data.shape[2] == 3:
            rgb = data.astype(np.float32)
            data = rgb[..., 0] * _LUMA[0]
            data = data + rgb[..., 1] * _LUMA[1]
            data = data + rgb[..., 2] * _LUMA[2]
    image = Image(data=data, alpha=alpha, depth=depth, mode=kind, name=path)
    image.source = x  # type: ignore[attr-defined]  # the raw windows, for write_lazy
    image.window = window  # type: ignore[attr-defined]
    return image


# --------------------------------------------------------------------------- computing


class Bands:
    """Compute a lazy array one block row at a time, reading the input windows here.

    The windows a band needs are read in this process (kept while the next
    band needs them too) and put into the band's graph as data, so a
    cluster's workers never open the file: the bytes travel with the tasks.
    ``client``: a ``distributed.Client`` or None (Dask's local threads).
    """

    def __init__(self, source: Any, window: Window, client: Any = None, threads: int = 1):
        self.source = source
        self.window = window
        self.client = client
        self.threads = max(1, threads)
        self._cache: dict = {}

    def _read(self, key: tuple) -> np.ndarray:
        idx = key[1:]
        sl = []
        for axis, i in enumerate(idx):
            bounds = np.cumsum((0,) + self.source.chunks[axis])
            sl.append(slice(int(bounds[i]), int(bounds[i + 1])))
        return self.window[tuple(sl)]

    def parts(self, arr: Any) -> Any:
        """The computed blocks of ``arr`` (nested lists as its keys), input windows read here."""
        import dask.threaded
        from dask.core import flatten
        from dask.optimization import cull

        keys = list(flatten(arr.__dask_keys__()))
        graph, _ = cull(dict(arr.__dask_graph__()), keys)
        name = self.source.name
        need = {k for k in graph if isinstance(k, tuple) and k and k[0] == name}
        for k in list(self._cache):
            if k not in need:
                del self._cache[k]
        for k in sorted(need):
            if k not in self._cache:
                self._cache[k] = self._read(k)
            graph[k] = self._cache[k]
        graph, _ = cull(graph, keys)
        if self.client is not None:
            return self.client.get(graph, arr.__dask_keys__(), sync=True)
        return dask.threaded.get(graph, arr.__dask_keys__(), num_workers=self.threads)

    def compute(self, arr: Any) -> np.ndarray:
        """``arr.compute()`` with the input windows read here."""
        from dask.array.core import concatenate3

        return np.asarray(concatenate3(self.parts(arr)))

    def rows(self, arr: Any) -> Iterator[list[np.ndarray]]:
        """The block rows of ``arr`` (axis 0), in order, each a list of its column blocks."""
        for i in range(len(arr.chunks[0])):
            part = list(self.parts(arr.blocks[i])[0])
            while part and isinstance(part[0], (list, tuple)):  # (H, W, C): one channel block
                part = [p[0] for p in part]
            yield part


def _passes(result: Any, stack: bool) -> list:
    """The arrays written one after the other: each map of a stack, or the result."""
    return [result[m] for m in range(result.shape[0])] if stack else [result]


def _track(record: dict, blocks: list[np.ndarray]) -> None:
    for block in blocks:
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanmin(block), np.nanmax(block)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            finite = block[np.isfinite(block)]
            if not finite.size:
                continue
            lo, hi = finite.min(), finite.max()
        record["min"] = min(record["min"], float(lo))
        record["max"] = max(record["max"], float(hi))


def _tiles(bands: Iterator[list[np.ndarray]], width: int) -> Iterator[np.ndarray]:
    """Block rows -> TILE x TILE tiles in row-major order (edge tiles smaller).

    Blocks whose sides are multiples of TILE are cut into tiles in place (no
    copy); otherwise rows are carried over until a row of tiles is complete.
    """
    carry: np.ndarray | None = None
    for blocks in bands:
        rows = blocks[0].shape[0]
        if carry is None and rows % TILE == 0 and all(b.shape[1] % TILE == 0 for b in blocks[:-1]):
            for r in range(0, rows, TILE):
                for b in blocks:
                    for c in range(0, b.shape[1], TILE):
                        yield b[r : r + TILE, c : c + TILE]
            del blocks
            continue
        band = np.concatenate(blocks, axis=1)
        del blocks
        carry = band if carry is None else np.concatenate([carry, band])
        del band
        full = carry.shape[0] // TILE * TILE
        for r in range(0, full, TILE):
            for j in range(0, width, TILE):
                yield carry[r : r + TILE, j : j + TILE]
        carry = carry[full:] if full < carry.shape[0] else None
    if carry is not None:
        for j in range(0, width, TILE):
            yield carry[:, j : j + TILE]


def _temp_name(dest: str) -> str:
    from .io import temp_path

    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise InputError(f"{dest}: output directory {parent} does not exist")
    return os.fspath(temp_path(os.path.abspath(dest.rstrip("/"))))


def _atomic_file(dest: str, fill: Callable[[str], None]) -> None:
    """``fill(tmpfile)`` next to ``dest``, then rename it; nothing left on failure."""
    tmp = _temp_name(dest)
    try:
        fill(tmp)
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise InputError(f"{dest}: cannot write it ({exc.strerror or exc})") from None
        raise


def _atomic_dir(dest: str, fill: Callable[[str], None]) -> None:
    """``fill(tmpdir)`` next to ``dest``, then swap it in; nothing left on failure."""
    tmp = _temp_name(dest)
    try:
        fill(tmp)
        if os.path.isdir(dest):
            old = tmp + ".old"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_lazy(
    dest: str,
    kind: str,
    result: Any,
    bands: Bands,
    *,
    stack: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Compute ``result`` band by band and write it to ``dest`` (tiff, npy or zarr).

    Returns the ``--json`` record: shape, dtype, min and max over the finite
    values, file dtype.
    """
    if kind not in STREAM_OUTPUTS:
        raise UsageError(f"{dest}: {kind} outputs are not written window by window")
    result = result.astype(np.float32)
    arrays = _passes(result, stack)
    total = sum(len(a.chunks[0]) for a in arrays)
    done = [0]
    record: dict[str, Any] = {"min": float("inf"), "max": float("-inf")}
    if progress is not None:
        progress(0, total)

    def counted(arr: Any) -> Iterator[list[np.ndarray]]:
        for blocks in bands.rows(arr):
            _track(record, blocks)
            done[0] += 1
            if progress is not None:
                progress(done[0], total)
            yield blocks
            del blocks

    if kind == "tiff":

        def write(path: str) -> None:
            import tifffile

            with tifffile.TiffWriter(path, bigtiff=True) as tw:
                for arr in arrays:
                    colour = arr.ndim == 3 and arr.shape[2] == 3
                    tw.write(
                        _tiles(counted(arr), arr.shape[1]),
                        shape=arr.shape,
                        dtype=np.float32,
                        tile=(TILE, TILE),
                        photometric="rgb" if colour else "minisblack",
                        planarconfig="contig" if arr.ndim == 3 else None,
                        metadata=None,
                    )

        _atomic_file(dest, write)
    elif kind == "npy":

        def write(path: str) -> None:
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                "fortran_order": False,
                "shape": tuple(result.shape),
            }
            with open(path, "xb") as fh:
                np.lib.format.write_array_header_2_0(fh, header)
                for arr in arrays:
                    for blocks in counted(arr):
                        for r in range(0, blocks[0].shape[0], 64):  # rows, a few MiB at once
                            rows = np.concatenate([b[r : r + 64] for b in blocks], axis=1)
                            fh.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())

        _atomic_file(dest, write)
    else:

        def fill(tmp: str) -> None:
            import zarr

            rows = max(1, max(arrays[0].chunks[0]))
            chunks = (rows,) + tuple(min(s, 1024) for s in result.shape[1:])
            if stack:
                chunks = (1,) + (rows,) + tuple(min(s, 1024) for s in result.shape[2:])
            z = zarr.open_array(tmp, mode="w", shape=result.shape, chunks=chunks, dtype="f4")
            for m, arr in enumerate(arrays):
                r = 0
                for blocks in counted(arr):
                    band = np.concatenate(blocks, axis=1)
                    if stack:
                        z[m, r : r + band.shape[0]] = band
                    else:
                        z[r : r + band.shape[0]] = band
                    r += band.shape[0]

        _atomic_dir(dest, fill)
    lo, hi = record["min"], record["max"]
    return {
        "shape": list(result.shape),
        "dtype": "float32",
        "min": lo if np.isfinite(lo) else None,
        "max": hi if np.isfinite(hi) else None,
        "file_dtype": "float32",
    }


def write_array(dest: str, result: np.ndarray) -> dict[str, Any]:
    """An in-memory result to a zarr store (float32), atomically; returns the record."""
    from .batch import result_record

    values = np.asarray(result, dtype=np.float32)

    def fill(tmp: str) -> None:
        import zarr

        z = zarr.open_array(tmp, mode="w", shape=values.shape, dtype="f4")
        z[...] = values

    _atomic_dir(dest, fill)
    return result_record(values, "float32")


def compute_whole(arr: Any, bands: Bands, what: str, limit: int | None) -> np.ndarray:
    """A lazy result small enough to encode whole (PNG, JPEG, ...), band by band."""
    pixels = int(np.prod(arr.shape[:2]))
    if limit and pixels > limit:
        raise UsageError(
            f"{what}: a {arr.shape[1]}x{arr.shape[0]} result is above the {limit:,}-pixel limit "
            "of formats encoded whole; write a .tif, .npy or .zarr (written window by window)"
        )
    return np.concatenate([np.concatenate(b, axis=1) for b in bands.rows(arr)], axis=0)


def progress_bar(label: str, enabled: bool) -> Any:
    """A rich progress bar over bands on a terminal, or None."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bands"),
        console=Console(file=sys.stderr),
        transient=True,
    )
