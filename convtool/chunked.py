"""Lazy Dask versions of :func:`convolve`, :func:`filter_bank`, :func:`pool` and :func:`match`.

``convtool.convolve(x, ...)`` with a ``dask.array.Array`` ``x`` of shape
(H, W) or (H, W, C) lands here and returns a lazy ``dask.array.Array``
whose computed value equals the in-memory result. Nothing in this module
imports Dask until such an array is given.

How a chunk is computed
-----------------------
One helper, :class:`Reach`, describes where the outputs of one axis read:
output ``o`` reads the padded positions ``o*stride - before + dilation*t``
for ``t`` in ``[0, taps)`` (``before`` is the kernel's anchor, or the pooling
padding). Its :meth:`Reach.source` turns a range of outputs into the source
index of every position they read, through the same index maps
(:func:`convtool.core.indexing.index_map`) as the in-memory path, so reflect,
symmetric and wrap are built at the true image border exactly as in memory
(a wrap at the top border reads the bottom rows; dask's own boundary names
are not used). :func:`plan_axis` cuts those source indices into runs inside
input chunks; each output block is one task that copies its runs into one
buffer (the block plus its halo, which is ``before`` and ``span - 1 - before``
positions wide), fills the constant padding, and runs the in-memory kernel
on it with ``pad="valid"``. Output chunks follow the input chunks, divided by
the stride (output ``o`` goes with the input chunk holding position
``o*stride``), so a stride never splits an output between two tasks.

Threads: each task runs its Numba kernel on ``cores // tasks at once``
threads (one when there are more chunks than cores); the Numba drivers
release the GIL, so Dask's threads run side by side.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .core.indexing import index_map
from .errors import UsageError

__all__ = ["Reach", "is_dask", "plan_axis", "convolve", "filter_bank", "pool", "match"]

#: Source index of a constant-padding position (``index_map``'s -1).
FILL = -1
#: Source index past the end of a ceil-mode pooling window (not read at all).
SKIP = -2


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a Dask collection (checked without importing Dask).

    Examples
    --------
    >>> import numpy as np
    >>> is_dask(np.zeros(3))
    False
    """
    return type(x).__module__.split(".")[0] == "dask"


@dataclass(frozen=True)
class Reach:
    """Where the outputs of one axis read (kernel, stride, dilation, pad, anchor).

    Output ``o`` reads positions ``o*stride - before + dilation*t``,
    ``t = 0 .. taps-1``, of an axis of length ``n``; positions outside
    ``[0, n)`` are folded back by the pad ``code`` (``PAD_CODE``), and
    positions at or past ``limit`` (a ceil-mode pooling overhang) are skipped.

    Examples
    --------
    >>> from convtool.modes import PAD_CODE
    >>> r = Reach(n=6, taps=3, stride=1, dilation=1, before=1, code=PAD_CODE["reflect"], n_out=6)
    >>> r.halo, r.source(0, 2).tolist()
    ((1, 1), [1, 0, 1, 2])
    """

    n: int
    taps: int
    stride: int
    dilation: int
    before: int
    code: int
    n_out: int
    limit: int | None = None

    @property
    def span(self) -> int:
        """Positions one output reads, first to last."""
        return self.dilation * (self.taps - 1) + 1

    @property
    def halo(self) -> tuple[int, int]:
        """Depth read before and after an output's own position (stride 1)."""
        return self.before, self.span - 1 - self.before

    def source(self, o0: int, o1: int) -> np.ndarray:
        """Source index of every position outputs ``[o0, o1)`` read (FILL, SKIP)."""
        start = o0 * self.stride - self.before
        count = (o1 - o0 - 1) * self.stride + self.span
        src = index_map(self.n, start, 1, count, 1, 1, self.code)[:, 0]
        if self.limit is not None:
            src[start + np.arange(count) >= self.limit] = SKIP
        return src

    def out_chunks(self, in_chunks: Sequence[int]) -> tuple[int, ...]:
        """Output chunks aligned to the input chunks and the stride (no empty ones)."""
        bounds = np.cumsum(np.asarray(in_chunks, dtype=np.int64))
        ob = np.minimum(self.n_out, -(-bounds // self.stride))
        ob[-1] = self.n_out
        sizes = np.diff(np.concatenate(([0], ob)))
        return tuple(int(s) for s in sizes if s > 0)


@dataclass(frozen=True)
class AxisPlan:
    """What one output block reads along one axis, as runs copied straight into its buffer.

    ``runs``: ``(dest, k, start, length, step)``: buffer positions
    ``dest .. dest+length-1`` come from the ``k``-th input chunk of ``chunks``,
    from ``start`` on by ``step`` (+1, or -1 where a reflection runs backwards);
    ``k = -1`` is constant padding (the fill value).
    """

    size: int  # buffer length along the axis
    chunks: tuple[int, ...]  # the input chunks read, in the order the task receives them
    runs: tuple[tuple[int, int, int, int, int], ...]

    @property
    def fills(self) -> bool:
        return any(k < 0 for _, k, _, _, _ in self.runs)


def plan_axis(src: np.ndarray, in_chunks: Sequence[int]) -> AxisPlan:
    """Cut the source indices ``src`` (one per buffer position) into copyable runs.

    A run is a stretch of consecutive source indices (rising or falling by 1)
    inside one input chunk, or a stretch of constant padding (FILL). SKIP
    positions (only ever at the end) are dropped.

    Examples
    --------
    >>> p = plan_axis(np.array([4, 5, 0, 1]), [3, 3])  # wrap at the end of a length-6 axis
    >>> p.chunks, p.runs
    ((1, 0), ((0, 0, 1, 2, 1), (2, 1, 0, 2, 1)))
    >>> plan_axis(np.array([2, 1, 0, 1, 2]), [6]).runs  # reflect at the start
    ((0, 0, 2, 3, -1), (3, 0, 1, 2, 1))
    """
    src = np.asarray(src, dtype=np.int64)
    src = src[src != SKIP]
    n = src.size
    starts = np.concatenate(([0], np.cumsum(np.asarray(in_chunks, dtype=np.int64))))
    chunk = np.where(src >= 0, np.searchsorted(starts, np.maximum(src, 0), side="right") - 1, -1)
    d = np.diff(src)
    cut = (chunk[1:] != chunk[:-1]) | ((src[1:] < 0) != (src[:-1] < 0))
    cut |= (src[1:] >= 0) & (np.abs(d) != 1)
    # a reflection turns: the run before the turn ends there (only where it was a run)
    cut[1:] |= (src[2:] >= 0) & (d[1:] != d[:-1]) & ~cut[:-1]
    edges = np.concatenate(([0], np.flatnonzero(cut) + 1, [n]))
    order: list[int] = []
    runs = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        a, b = int(a), int(b)
        c = int(chunk[a])
        if c < 0:
            runs.append((a, -1, 0, b - a, 1))
            continue
        if c not in order:
            order.append(c)
        step = int(src[a + 1] - src[a]) if b - a > 1 else 1
        runs.append((a, order.index(c), int(src[a] - starts[c]), b - a, step))
    return AxisPlan(n, tuple(order), tuple(runs))


def _span(start: int, length: int, step: int) -> slice:
    if step > 0:
        return slice(start, start + length)
    stop = start - length
    return slice(start, stop if stop >= 0 else None, -1)


def _assemble(
    blocks: list, rplan: AxisPlan, cplan: AxisPlan, fill: float, dtype: np.dtype
) -> np.ndarray:
    """One buffer: every run of rows x every run of columns, copied once; padding filled."""
    tail = blocks[0][0].shape[2:] if blocks and blocks[0] else ()
    if dtype == np.uint8 and (rplan.fills or cplan.fills):
        dtype = np.dtype(np.float32)  # the fill value need not be a byte
    buf = np.empty((rplan.size, cplan.size) + tuple(tail), dtype)
    for rd, rk, r0, rn, rs in rplan.runs:
        if rk < 0:
            buf[rd : rd + rn] = fill
            continue
        rsl = _span(r0, rn, rs)
        for cd, ck, c0, cn, cs in cplan.runs:
            if ck < 0:
                buf[rd : rd + rn, cd : cd + cn] = fill
            else:
                buf[rd : rd + rn, cd : cd + cn] = blocks[rk][ck][rsl, _span(c0, cn, cs)]
    return buf


def _prepare(x: Any, what: str) -> Any:
    """Check a dask image: 2-D or 3-D, real, not empty; channels in one chunk."""
    if x.ndim not in (2, 3):
        raise UsageError(
            f"{what} needs a 2-D (H, W) or 3-D (H, W, C) dask array, got shape {x.shape}"
        )
    if any(np.isnan(s) for s in x.shape):
        raise UsageError(
            f"{what} needs a dask array of known shape; call .compute_chunk_sizes() first"
        )
    if x.size == 0:
        raise UsageError(f"{what} needs a non-empty image, got shape {x.shape}")
    kind = np.dtype(x.dtype).kind
    if kind not in "biuf":
        raise UsageError(f"{what} needs a real-valued image, got dtype {x.dtype}")
    if x.ndim == 3 and len(x.chunks[2]) > 1:
        x = x.rechunk({2: -1})  # channels chunked apart are filtered together
    return x


def task_threads(nblocks: int) -> int:
    """Compute threads per task so that tasks x threads does not exceed the cores."""
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(nblocks, cores)))


def _graph(
    x: Any,
    rows: Reach,
    cols: Reach,
    func: Any,
    prefix: str,
    token: Any,
    dtype: Any,
    out_tail: tuple[int, ...] | None = None,
    extra: Any = None,
) -> Any:
    """A lazy array of output blocks: block (i, j) is ``func(chunks[, extra], plans, spans)``."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    rchunks, cchunks = rows.out_chunks(x.chunks[0]), cols.out_chunks(x.chunks[1])
    rb = np.concatenate(([0], np.cumsum(rchunks)))
    cb = np.concatenate(([0], np.cumsum(cchunks)))
    rplans = [plan_axis(rows.source(rb[i], rb[i + 1]), x.chunks[0]) for i in range(len(rchunks))]
    cplans = [plan_axis(cols.source(cb[j], cb[j + 1]), x.chunks[1]) for j in range(len(cchunks))]
    name = f"convtool-{prefix}-" + tokenize(x, token)
    tail_key = (0,) if x.ndim == 3 else ()
    layer: dict = {}
    for i, rp in enumerate(rplans):
        for j, cp in enumerate(cplans):
            keys = [[(x.name, ri, cj, *tail_key) for cj in cp.chunks] for ri in rp.chunks]
            call = functools.partial(
                func, rplan=rp, cplan=cp, rspan=(int(rb[i]), int(rb[i + 1])),
                cspan=(int(cb[j]), int(cb[j + 1])),
            )  # fmt: skip
            key = (name, i, j) + ((0,) if out_tail else ())
            layer[key] = (call, keys) if extra is None else (call, keys, extra.key)
    deps = [x] if extra is None else [x, extra]
    graph = HighLevelGraph.from_collections(name, layer, dependencies=deps)
    chunks = (rchunks, cchunks) + ((out_tail,) if out_tail else ())
    meta = np.empty((0,) * (2 + (1 if out_tail else 0)), dtype=dtype)
    return da.Array(graph, name, chunks, meta=meta)


# --------------------------------------------------------------------------- convolve


def _conv_block(
    blocks, *, rplan, cplan, rspan, cspan, wc, cval, stride, dilation, method, dtype, threads
):
    from .filtering import _correlate

    buf = _assemble(blocks, rplan, cplan, cval, dtype)
    if buf.dtype not in (np.float32, np.uint8):
        buf = buf.astype(np.float32)
    return _correlate(
        buf,
        wc,
        mode="valid",
        cval=cval,
        stride=stride,
        dilation=dilation,
        correlate=True,
        method=method,
        threads=threads,
    )


def _one_kernel(x, w, mode, cval, stride, dilation, correlate, method, threads):
    from .filtering import choose_method
    from .modes import PAD_CODE, conv_output_size, pad_before_after

    h, wd = x.shape[0], x.shape[1]
    kh, kw = w.shape
    oh = conv_output_size(h, kh, stride=stride, dilation=dilation, pad=mode, axis="height")
    ow = conv_output_size(wd, kw, stride=stride, dilation=dilation, pad=mode, axis="width")
    rpad, cpad = pad_before_after(kh, dilation), pad_before_after(kw, dilation)
    if correlate:
        wc = w
    else:
        wc = np.ascontiguousarray(w[::-1, ::-1])
        rpad, cpad = rpad[::-1], cpad[::-1]
    if mode == "valid":
        rpad = cpad = (0, 0)
    code = PAD_CODE[mode]
    rows = Reach(h, kh, stride, dilation, rpad[0], code, oh)
    cols = Reach(wd, kw, stride, dilation, cpad[0], code, ow)
    if method == "auto":
        # the algorithm the in-memory call would pick for the whole image
        from .filtering import _rank1

        method = choose_method(
            x.shape, (kh, kw), stride=stride, dilation=dilation, pad=mode,
            separable=_rank1(wc) is not None,
        )  # fmt: skip
    dtype = np.dtype(np.uint8) if x.dtype == np.uint8 else np.dtype(np.float32)
    func = functools.partial(
        _conv_block, wc=wc, cval=cval, stride=stride, dilation=dilation, method=method,
        dtype=dtype, threads=threads,
    )  # fmt: skip
    token = ("convolve", wc.tobytes(), wc.shape, mode, cval, stride, dilation, method)
    tail = (x.shape[2],) if x.ndim == 3 else None
    return _graph(x, rows, cols, func, "convolve", token, np.float32, tail)


def _combine(responses: list, how: str) -> Any:
    import dask.array as da

    if how == "single" or (len(responses) == 1 and how != "stack"):
        return responses[0]
    if how == "stack":
        return da.stack(responses, axis=0)
    if how == "magnitude":
        acc = responses[0] * responses[0]
        for r in responses[1:]:
            acc = acc + r * r
        return da.sqrt(acc)
    if how == "max":
        acc = responses[0]
        for r in responses[1:]:
            acc = da.maximum(acc, r)
        return acc
    acc = responses[0]
    for r in responses[1:]:
        acc = acc + r
    return acc


def _conv_args(image, pad, pad_value, stride, dilation, method):
    from .filtering import _check_args

    x = _prepare(image, "convolve")
    return (x, *_check_args(pad, pad_value, stride, dilation, method))


def _task_threads(x: Any, threads: int | None) -> int:
    from .modes import check_positive_int

    if threads is not None:
        return check_positive_int("threads", threads)
    return task_threads(len(x.chunks[0]) * len(x.chunks[1]))


def convolve(
    image: Any,
    kernel: Any,
    *,
    pad: str = "reflect",
    pad_value: float = 0.0,
    stride: int = 1,
    dilation: int = 1,
    correlate: bool = False,
    combine: str | None = None,
    method: str = "auto",
    threads: int | None = None,
) -> Any:
    """:func:`convtool.convolve` on a dask array: a lazy dask array, equal when computed.

    Same arguments as :func:`convtool.convolve`; ``threads`` is the Numba
    thread count of each task (default: cores divided by the tasks that can
    run at once). ``method="auto"`` picks the algorithm the in-memory call
    would pick for the whole image. Results are the same to the bit away from
    the true image border; at the border (where the in-memory kernel runs a
    scalar loop that rounds in another order) and for the FFT they agree
    within float32 rounding.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> img = np.arange(48, dtype=np.float32).reshape(6, 8)
    >>> lazy = convolve(da.from_array(img, chunks=(4, 3)), "box:3", pad="wrap")
    >>> lazy.chunks
    ((4, 2), (3, 3, 2))
    >>> bool(np.allclose(lazy.compute(), convolve_in_memory(img, "box:3", pad="wrap")))
    True
    """
    from .filtering import _check_combine, _resolve_kernel

    weights, default_combine = _resolve_kernel(kernel)
    how = _check_combine(combine) or default_combine
    x, mode, stride, dilation, method, cval = _conv_args(
        image, pad, pad_value, stride, dilation, method
    )
    nthreads = _task_threads(x, threads)
    responses = [
        _one_kernel(x, w, mode, cval, stride, dilation, correlate, method, nthreads)
        for w in weights
    ]
    if len({r.shape for r in responses}) > 1 and how != "single":
        raise UsageError(
            "kernels of different sizes give outputs of different sizes with pad 'valid' "
            "or stride > 1; use kernels of one size or a padded mode"
        )
    return _combine(responses, how)


def convolve_in_memory(image: Any, kernel: Any, **options: Any) -> np.ndarray:
    """The in-memory :func:`convtool.convolve` (for comparisons and doctests)."""
    from .filtering import convolve as conv

    return conv(np.asarray(image), kernel, **options)


def filter_bank(
    image: Any,
    kernels: Sequence[Any],
    *,
    combine: str = "stack",
    pad: str = "reflect",
    pad_value: float = 0.0,
    stride: int = 1,
    dilation: int = 1,
    correlate: bool = False,
    method: str = "auto",
    threads: int | None = None,
) -> Any:
    """:func:`convtool.filter_bank` on a dask array (lazy; same arguments).

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> img = da.zeros((6, 6), chunks=3)
    >>> filter_bank(img, ["sobel", "box:3"]).shape
    (2, 6, 6)
    """
    from .filtering import _bank_kernels

    how, kernels = _bank_kernels(kernels, combine)
    responses = [
        convolve(
            image, k, pad=pad, pad_value=pad_value, stride=stride, dilation=dilation,
            correlate=correlate, method=method, threads=threads,
        )
        for k in kernels
    ]  # fmt: skip
    if len({r.shape for r in responses}) > 1:
        raise UsageError(
            "the kernels give outputs of different sizes (pad 'valid' or stride > 1 with "
            "kernels of different sizes); use one size or a padded mode"
        )
    return _combine(responses, how)


# --------------------------------------------------------------------------- pool


def _uniforms(seed: int, nplanes: int, oh: int, ow: int, rspan, cspan) -> np.ndarray:
    """``default_rng(seed).random((nplanes, oh, ow))[:, r0:r1, c0:c1]`` without the rest.

    PCG64 gives one 64-bit draw per double, so a block starts ``advance`` steps in.
    """
    (r0, r1), (c0, c1) = rspan, cspan
    out = np.empty((nplanes, r1 - r0, c1 - c0))
    for c in range(nplanes):
        if c0 == 0 and c1 == ow:
            bg = np.random.PCG64(seed)
            bg.advance(c * oh * ow + r0 * ow)
            out[c] = np.random.Generator(bg).random((r1 - r0, ow))
            continue
        for i in range(r0, r1):
            bg = np.random.PCG64(seed)
            bg.advance(c * oh * ow + i * ow + c0)
            out[c, i - r0] = np.random.Generator(bg).random(c1 - c0)
    return out


def _pool_block(blocks, *, rplan, cplan, rspan, cspan, mode, size, stride, ceil, fill, opts,
                seed, nplanes, oh, ow, threads):  # fmt: skip
    from . import parallel, pooling
    from .core import pool as core

    buf = _assemble(blocks, rplan, cplan, fill, np.dtype(np.float32))
    want = (rspan[1] - rspan[0], cspan[1] - cspan[0])
    if mode == "stochastic" and float(buf.min()) < 0:
        raise UsageError(
            f"stochastic pooling needs non-negative activations, the image has "
            f"{float(buf.min()):g}; apply a ReLU (clip at 0) first"
        )
    evaluate = bool(opts.get("eval", False))
    u = None
    if mode == "stochastic" and not evaluate:
        u = _uniforms(seed, nplanes, oh, ow, rspan, cspan)
    # the block's own geometry: no padding (it is in the buffer), and a ceil-mode
    # overhang past the buffer's end is skipped as in memory (pooling._axis)
    rows = pooling._axis(core, buf.shape[0], want[0], size, stride, 0, "valid")
    cols = pooling._axis(core, buf.shape[1], want[1], size, stride, 0, "valid")
    outs = []
    with parallel.threads(threads):  # this task's share of the cores
        for c, plane in enumerate(pooling._planes(buf)):
            out = np.empty(want, dtype=np.float32)
            if mode == "topleft":
                r = rows.map[: (want[0] - 1) * stride + 1 : stride]
                k = cols.map[: (want[1] - 1) * stride + 1 : stride]
                out[...] = plane[np.ix_(r, k)]
            elif mode == "stochastic":
                uc = np.zeros((1, 1)) if u is None else u[c]
                args = (plane, out, uc, rows.map, cols.map, fill, size, stride, evaluate)
                core.stochastic(*args, 0, want[0])
            elif mode == "lp":
                p = pooling._check_p(opts.get("p", 2.0))
                out[...] = pooling._lp(core, plane, p, size, stride, 0, rows, cols, fill)
            else:
                op = {"max": core.OP_MAX, "min": core.OP_MIN, "avg": core.OP_SUM}[mode]
                pooling._reduce(core, plane, out, op, size, stride, 0, rows, cols, fill)
            outs.append(out)
    return pooling._stack(outs, buf.ndim)


def _fractional_block(blocks, *, rplan, cplan, rspan, cspan, rb, cb, overlapping):
    from . import pooling
    from .core import pool as core

    buf = _assemble(blocks, rplan, cplan, 0.0, np.dtype(np.float32))
    (r0, r1), (c0, c1) = rspan, cspan
    rows = np.ascontiguousarray(rb[r0 : r1 + 1] - rb[r0])
    cols = np.ascontiguousarray(cb[c0 : c1 + 1] - cb[c0])
    outs = []
    for plane in pooling._planes(buf):
        out = np.empty((r1 - r0, c1 - c0), dtype=np.float32)
        core.fractional_max(plane, out, rows, cols, overlapping, 0, r1 - r0)
        outs.append(out)
    return pooling._stack(outs, buf.ndim)


def _fractional(x, seed, options, size, stride, pad, ceil):
    from . import pooling

    pooling._check_fractional_window(size, stride, pad, ceil)
    pooling._rng(seed)  # a bad seed is named before a bad option, as before
    rb, cb, overlapping = pooling._fractional_regions(
        x.shape, seed, options, size, stride, pad, ceil
    )
    h, w = x.shape[:2]
    oh, ow = len(rb) - 1, len(cb) - 1
    rows = _BoundsReach(h, 1, 1, 1, 0, 5, oh, bounds=tuple(rb.tolist()), overlap=overlapping)
    cols = _BoundsReach(w, 1, 1, 1, 0, 5, ow, bounds=tuple(cb.tolist()), overlap=overlapping)
    func = functools.partial(_fractional_block, rb=rb, cb=cb, overlapping=overlapping)
    token = ("fractional", rb.tobytes(), cb.tobytes(), overlapping)
    tail = (x.shape[2],) if x.ndim == 3 else None
    return _graph(x, rows, cols, func, "pool", token, np.float32, tail)


@dataclass(frozen=True)
class _BoundsReach(Reach):
    """Outputs that read the regions ``[bounds[o], bounds[o+1])`` (one more if ``overlap``)."""

    bounds: tuple[int, ...] = ()
    overlap: bool = False

    def source(self, o0: int, o1: int) -> np.ndarray:
        stop = min(self.n, self.bounds[o1] + (1 if self.overlap else 0))
        return np.arange(self.bounds[o0], stop, dtype=np.int64)

    def out_chunks(self, in_chunks: Sequence[int]) -> tuple[int, ...]:
        edges = np.cumsum(np.asarray(in_chunks, dtype=np.int64))
        ob = np.searchsorted(np.asarray(self.bounds[:-1]), edges, side="left")
        ob = np.minimum(ob, self.n_out)
        ob[-1] = self.n_out
        sizes = np.diff(np.concatenate(([0], ob)))
        return tuple(int(s) for s in sizes if s > 0)


def pool(
    image: Any,
    mode: str = "max",
    size: int = 2,
    stride: int | None = None,
    pad: str = "valid",
    ceil: bool = False,
    seed: int | None = None,
    **mode_options: Any,
) -> Any:
    """:func:`convtool.pool` on a dask array: a lazy dask array, equal when computed.

    Stochastic pooling gives the same values as in memory for the same
    integer seed (each block draws its own part of the in-memory uniforms);
    a ``numpy.random.Generator`` seed is refused there, since a lazy graph
    cannot draw from the caller's generator in order. Fractional pooling
    draws its regions when the graph is built, as in memory, so any seed
    works. ``lp`` pooling with ``p`` other than 1 and 2 scales each block by
    its own maximum: equal within float32 rounding.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> x = np.arange(36, dtype=np.float32).reshape(6, 6)
    >>> pool(da.from_array(x, chunks=4), "max").compute().tolist()[0]
    [7.0, 9.0, 11.0]
    """
    from . import pooling
    from .modes import PAD_CODE, normalize_pad

    mode = pooling.normalize_mode(mode)
    pooling._check_options(mode, mode_options)
    x = _prepare(image, "pool")
    pad = normalize_pad(pad)
    if seed is not None and mode not in ("stochastic", "fractional"):
        raise UsageError(f"seed is used only by stochastic and fractional pooling, not {mode}")
    nthreads = _task_threads(x, None)
    if mode == "fractional":
        return _fractional(x, seed, mode_options, size, stride, pad, bool(ceil))
    h, w = x.shape[:2]
    f, s, padding, pad_value, oh, ow = pooling._geometry(
        h, w, size, stride, pad, ceil, mode_options
    )
    opts = {k: v for k, v in mode_options.items() if k not in ("padding", "pad_value")}
    if mode == "lp":
        pooling._check_p(opts.get("p", 2.0))
    if mode == "stochastic":
        evaluate = bool(opts.get("eval", False))
        if evaluate and seed is not None:
            raise UsageError(
                "seed has no effect with eval=True (the test-time rule is deterministic)"
            )
        if not evaluate:
            if seed is None:
                seed = int(np.random.SeedSequence().entropy % (1 << 63))
            elif isinstance(seed, np.random.Generator) or not isinstance(seed, (int, np.integer)):
                raise UsageError(
                    "stochastic pooling of a dask array needs an integer seed (or none): "
                    "a Generator cannot be drawn from in order by a lazy graph"
                )
            seed = int(seed)
            if seed < 0:
                raise UsageError(f"seed must be a whole number >= 0, got {seed!r}")
    fill = pooling._fill(mode, pad_value)
    code = PAD_CODE[pad]
    limit = h + padding if ceil else None
    rows = Reach(h, f, s, 1, padding, code, oh, limit=limit)
    cols = Reach(w, f, s, 1, padding, code, ow, limit=None if limit is None else w + padding)
    nplanes = 1 if x.ndim == 2 else x.shape[2]
    func = functools.partial(
        _pool_block, mode=mode, size=f, stride=s, ceil=bool(ceil), fill=fill, opts=opts,
        seed=seed, nplanes=nplanes, oh=oh, ow=ow, threads=nthreads,
    )  # fmt: skip
    token = ("pool", mode, f, s, padding, code, bool(ceil), fill, sorted(opts.items()), seed)
    tail = (x.shape[2],) if x.ndim == 3 else None
    return _graph(x, rows, cols, func, "pool", token, np.float32, tail)


# --------------------------------------------------------------------------- match


def _block_stats(block: np.ndarray) -> tuple:
    from .core import match as core
    from .detection import _as_planes

    planes = _as_planes(block, "image")  # float32 (C, H, W), checked finite as in memory
    lo, hi, integral, mean = core.value_stats(planes)
    return lo, hi, integral, mean, planes[0].size


def _merge_stats(parts: list) -> tuple:
    lo = np.min([p[0] for p in parts], axis=0)
    hi = np.max([p[1] for p in parts], axis=0)
    integral = all(p[2] for p in parts)
    n = np.array([p[4] for p in parts], dtype=np.float64)
    mean = (np.array([p[3] for p in parts]) * n[:, None]).sum(axis=0) / n.sum()
    return lo, hi, integral, mean


def _match_block(blocks, stats, *, rplan, cplan, rspan, cspan, tmpl, method, algorithm, threads):
    from .detection import _match_planes

    buf = _assemble(blocks, rplan, cplan, 0.0, np.dtype(np.float32))
    planes = buf[np.newaxis] if buf.ndim == 2 else np.moveaxis(buf, -1, 0)
    planes = np.ascontiguousarray(planes, dtype=np.float32)
    return _match_planes(planes, tmpl, method, threads, algorithm, stats=stats)


def match(
    image: Any,
    template: Any,
    method: str = "zncc",
    *,
    threads: int | None = None,
    algorithm: str = "auto",
) -> Any:
    """:func:`convtool.match` on a dask array: lazy scores, equal when computed.

    The image's value range and mean (which centre the window sums, as in
    memory) are one lazy reduction over the chunks that every block waits for.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> img = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    >>> s = match(da.from_array(img, chunks=16), img[10:18, 20:26]).compute()
    >>> np.unravel_index(int(s.argmax()), s.shape)
    (np.int64(10), np.int64(20))
    """
    import dask

    from .detection import _as_planes, _check_pair, normalize_method

    method = normalize_method(method)
    x = _prepare(image, "match")
    if x.dtype == bool:
        raise UsageError(f"the image must be a real-valued array, got dtype {x.dtype}")
    tmpl = _as_planes(template, "template")
    nch = 1 if x.ndim == 2 else x.shape[2]
    tmpl = _check_pair((nch, x.shape[0], x.shape[1]), tmpl)
    h, w = tmpl.shape[1:]
    nthreads = _task_threads(x, threads)
    from .modes import PAD_CODE

    parts = [dask.delayed(_block_stats)(b) for b in x.to_delayed().ravel()]
    stats = dask.delayed(_merge_stats)(parts)
    rows = Reach(x.shape[0], h, 1, 1, 0, PAD_CODE["valid"], x.shape[0] - h + 1)
    cols = Reach(x.shape[1], w, 1, 1, 0, PAD_CODE["valid"], x.shape[1] - w + 1)
    func = functools.partial(
        _match_block, tmpl=tmpl, method=method, algorithm=algorithm, threads=nthreads
    )
    token = ("match", tmpl.tobytes(), tmpl.shape, method, algorithm)
    return _graph(x, rows, cols, func, "match", token, np.float32, None, extra=stats)
