"""Multi-channel 2-D convolution with PyTorch ``conv2d`` semantics.

The layer-level convolution that networks (TOML specs and ONNX models) run:
(C, H, W) in, (M, H', W') out, groups, stride, dilation and padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UsageError
from .modes import NUMPY_PAD_MODE, check_positive_int, normalize_pad


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding: int | tuple[int, int, int, int] = 0,
    pad_mode: str = "constant",
    pad_value: float = 0.0,
    method: str = "auto",
) -> np.ndarray:
    """Multi-channel 2-D convolution with PyTorch ``conv2d`` semantics.

    Parameters
    ----------
    x : (C, H, W) array
    weight : (M, C/groups, KH, KW) array
    bias : (M,) array or None
    stride, dilation : int or (int, int)
        One value for both axes, or (rows, columns) as PyTorch and ONNX take them.
    groups : int
    padding : int or (top, bottom, left, right)
    pad_mode : str
        Pad mode of the padding (any name :func:`convtool.modes.normalize_pad`
        accepts; ``constant`` fills with ``pad_value``).
    pad_value : float
    method : ``auto``, ``winograd``, ``gemm``, ``bank`` or ``matmul`` (see Notes)

    Returns
    -------
    numpy.ndarray
        float32 (M, H', W').

    Raises
    ------
    UsageError
        Shapes that do not fit, a stride, dilation or groups below 1, negative
        padding, an output smaller than 1x1, ``winograd`` for a kernel other
        than 3x3 stride 1 dilation 1.

    Notes
    -----
    Cross-correlation, as CNN layers compute it, on the padded input. Four
    ways, the same numbers within float32 round-off (the tests hold each to
    1e-4 of the largest value of a float64 reference):

    ``winograd``
        3x3, stride 1, dilation 1 only: Winograd's F(4x4, 3x3) (Lavin and
        Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016)
        computes each 4x4 block of output from the 6x6 input patch under it
        with 36 multiplies per (output, input) channel pair instead of 144,
        as 36 small matrix products fused with the input and output
        transforms in blocks of tiles that stay in cache
        (:mod:`convtool.core.conv_winograd`). A NaN or infinity in the input
        spreads over the whole 4x4 tile it falls in.
    ``gemm``
        im2col: the (C/groups * KH * KW, pixels) patch matrix, built in blocks
        of output rows of at most ~32 MB (a 1x1 stride-1 layer uses the input
        itself), times the (M/groups, C/groups * KH * KW) weight matrix, by
        Numba kernels (:mod:`convtool.core.conv_gemm`). Any kernel, stride
        and dilation.
    ``bank``
        :func:`convtool.filtering.convolve` (``pad="valid"``,
        ``correlate=True``, ``combine="stack"``) filters each input channel
        with the stack of its M/groups filter slices, and the stacks are
        summed over the group's channels. It picks direct, separable or FFT
        loops itself, so it wins for one channel per group (first layers,
        depthwise) and for large kernels.
    ``matmul``
        The im2col product with numpy's matmul (BLAS). ``auto`` takes it
        instead of ``winograd`` or ``gemm`` while Numba is not loaded and the
        layer costs less than loading it (:mod:`convtool.rentbuy`), so a small
        network never pays Numba's start-up or a first compile.

    ``auto`` takes ``winograd`` for 3x3 stride-1 layers with at least 8 input
    and output channels per group where its products cost at most two thirds
    of im2col's (maps of about 28x28 and larger), else ``bank`` for a kernel
    side >= 9 or at most 24 (output, input) channel pairs per group (equal
    strides), else ``gemm``. The ``winograd`` and ``gemm`` kernels are serial,
    release the GIL and are spread over :func:`convtool.parallel.get_threads`
    Python threads (``--threads``), so they compile quickly and never compete
    with a BLAS thread pool for the cores.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((2, 4, 4), np.float32)
    >>> conv2d(x, np.ones((1, 2, 3, 3), np.float32), np.array([1.0], np.float32))[0, 0].tolist()
    [19.0, 19.0]
    """
    x = np.asarray(x, dtype=np.float32)
    weight = np.asarray(weight, dtype=np.float32)
    if x.ndim != 3 or weight.ndim != 4:
        raise UsageError(
            "conv2d needs x of shape (C, H, W) and weight of shape (M, C/groups, KH, KW)"
        )
    sh, sw = _pair("stride", stride)
    dh, dw = _pair("dilation", dilation)
    groups = check_positive_int("groups", groups)
    c = x.shape[0]
    m, cg, kh, kw = weight.shape
    if c % groups or cg * groups != c or m % groups or min(m, kh, kw) < 1:
        raise UsageError(
            f"weight shape {weight.shape} does not fit {c} channels in {groups} groups"
        )
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float32)
        if bias.shape != (m,):
            raise UsageError(f"bias shape {bias.shape} does not fit {m} output channels")
    padding = _padding(padding)
    top, bottom, left, right = padding
    pad_mode = normalize_pad(pad_mode)
    if pad_mode == "valid" and any(padding):
        raise UsageError(f"pad mode 'valid' adds no padding, but padding {padding} was given")
    h, w = x.shape[1] + top + bottom, x.shape[2] + left + right
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (w - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise UsageError(
            f"conv2d output would be {oh}x{ow}: the padded input {h}x{w} is smaller than the "
            f"kernel's reach {dh * (kh - 1) + 1}x{dw * (kw - 1) + 1}"
        )
    mg = m // groups
    winograd_ok = (kh, kw, sh, sw, dh, dw) == (3, 3, 1, 1, 1, 1)
    if method == "auto":
        if winograd_ok and _winograd_pays(cg, mg, oh, ow):
            method = "winograd"
        elif (max(kh, kw) >= 9 or mg * cg <= 24) and sh == sw:
            method = "bank"
        else:
            method = "gemm"
        if method != "bank" and _matmul_for_now(method, m, cg * kh * kw, oh * ow):
            method = "matmul"
    elif method not in METHODS:
        raise UsageError(f"unknown conv2d method {method!r}: use {', '.join(METHODS)}")
    elif method == "winograd" and not winograd_ok:
        raise UsageError("method 'winograd' needs a 3x3 kernel with stride 1 and dilation 1")
    if method == "winograd":
        return _conv_winograd(x, weight, bias, groups, padding, pad_mode, pad_value)
    if any(padding):
        x = _pad(x, padding, pad_mode, pad_value)
    if method == "gemm":
        return _conv_gemm(x, weight, bias, groups, (sh, sw), (dh, dw), (oh, ow))
    out = np.empty((m, oh, ow), dtype=np.float32)
    for g in range(groups):
        xg = x[g * cg : (g + 1) * cg]
        wg = weight[g * mg : (g + 1) * mg]
        og = out[g * mg : (g + 1) * mg]
        if method == "bank":
            _conv_bank(xg, wg, og, (sh, sw), (dh, dw))
        else:
            _conv_matmul(xg, wg, og, (sh, sw), (dh, dw))
    if bias is not None:
        out += bias[:, None, None]
    return out


#: Taps per output value (C/groups * KH * KW) from which the im2col product runs as
#: dot products along the taps. Measured on one core, dot vs tiles: 4608 taps x 512
#: channels x 49 pixels (ResNet-18's 7x7 layers) 1.8 vs 5.1 ms; 576 x 128 x 3136
#: 2.5 vs 4.9 ms; 27 x 64 x 50176 (a 3-channel first layer) 5.6 vs 2.7 ms.
GEMM_DOT_MIN_TAPS = 256

#: Tiles per unit of Winograd work (measured: longer product loops win up to ~200).
WINOGRAD_BLOCK_TILES = 192

#: The algorithms ``method`` accepts.
METHODS = ("auto", "bank", "gemm", "matmul", "winograd")


def warmup() -> None:
    """Compile (or load from the cache) the Numba kernels of the fast paths.

    One float32 signature each: the Winograd kernel and its weight
    transform, the two gathers (im2col, im2row) and their products.

    Examples
    --------
    >>> warmup()
    """
    x = np.zeros((32, 10, 10), np.float32)
    w = np.zeros((8, 32, 3, 3), np.float32)
    conv2d(x, w, method="winograd")
    conv2d(x, w, method="gemm")  # 288 taps: im2row and dot products
    conv2d(x[:8], w[:, :8], method="gemm")  # 72 taps: im2col and tiles


#: numpy im2col + BLAS (``matmul``), estimated ns per patch value gathered and
#: per multiply-add of the product.
MATMUL_GATHER_NS = 1.0
MATMUL_MAC_NS = 0.05


def _matmul_for_now(method: str, m: int, taps: int, pixels: int) -> bool:
    """Rent or buy (:mod:`convtool.rentbuy`): while Numba is not loaded, a layer
    that costs numpy less than loading Numba (and compiling the kernel, if it
    is not cached) runs as ``matmul``."""
    from . import rentbuy

    if method == "winograd":
        kernels = ["conv_winograd.winograd_f43", "conv_winograd.weight_transform"]
    elif taps >= GEMM_DOT_MIN_TAPS:
        kernels = ["conv_gemm.gemm_dot", "conv_gemm.im2row"]
    else:
        kernels = ["conv_gemm.gemm_bias", "conv_gemm.im2col"]
    cost = MATMUL_GATHER_NS * taps * pixels + MATMUL_MAC_NS * m * taps * pixels
    return rentbuy.prefer_numpy(cost, kernels)


def _winograd_blocks(th: int, tw: int, m: int, threads: int) -> tuple[int, int]:
    """(tile rows per block, output-channel parts) for a th x tw grid of 4x4 tiles.

    Blocks of about WINOGRAD_BLOCK_TILES tiles (long vector loops in the
    products); when that leaves fewer work items than threads the blocks
    are halved down to about 48 tiles until there is one per thread,
    and the output channels are split when that is not enough. One work item
    per thread measured faster than two on 56x56 and 28x28 maps (64 and 128
    channels: 0.91 -> 0.78 ms and 1.18 -> 0.91 ms, 2 threads): shorter blocks
    pad more tiles to whole vectors, and each item re-reads its inputs.
    """
    rows = max(1, min(th, -(-WINOGRAD_BLOCK_TILES // tw)))
    while -(-th // rows) < threads and rows * tw >= 96:
        rows = -(-rows // 2)
    blocks = -(-th // rows)
    m_parts = max(1, min(-(-threads // blocks), m // 16))
    return rows, m_parts


def _winograd_pays(c: int, m: int, oh: int, ow: int) -> bool:
    """Whether Winograd F(4x4, 3x3) beats the im2col product for this layer.

    Per (output, input) channel pair its products cost 36 multiply-adds per
    vector lane (tiles padded to whole vectors in each block) plus the weight
    transform, measured at about 1000 multiply-adds' worth; im2col costs 9 per
    output pixel. Winograd needs a third less, and enough channels for the
    transforms to pay off (measured: benchmarks/bench_network.py). So 3x3
    layers on 28x28 maps and larger take it, 14x14 and smaller do not.
    """
    if c < 8 or m < 8:
        return False
    th, tw = -(-oh // 4), -(-ow // 4)
    rows, _ = _winograd_blocks(th, tw, m, _threads())
    blocks = -(-th // rows)
    lanes = blocks * (-(-rows * tw // 16) * 16)
    return 36 * lanes + 1000 <= 0.67 * 9 * oh * ow


def _conv_winograd(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    groups: int,
    padding: tuple[int, int, int, int],
    pad_mode: str,
    pad_value: float,
) -> np.ndarray:
    """3x3 stride-1 correlation by Winograd F(4x4, 3x3), one call per group.

    Constant padding is never built: the kernel reads the input through a
    frame of whole 4x4 output tiles and fills what lies outside (the extra
    rows and columns only feed outputs that are cut off). Other pad modes pad
    a copy with numpy first.
    """
    from .core.conv_winograd import winograd_f43

    top, bottom, left, right = padding
    c, h, wd = x.shape
    m = w.shape[0]
    oh, ow = h + top + bottom - 2, wd + left + right - 2
    th, tw = -(-oh // 4), -(-ow // 4)
    fill = np.float32(pad_value if pad_mode == "constant" else 0.0)
    if pad_mode != "constant" and any(padding):
        x = _pad(x, padding, pad_mode, pad_value)
        top = left = 0
    x = np.ascontiguousarray(x)
    out = np.empty((m, 4 * th, 4 * tw), np.float32)
    b = np.zeros(m, np.float32) if bias is None else np.ascontiguousarray(bias)
    # Tile rows per unit of work: about WINOGRAD_BLOCK_TILES tiles (long vector loops in
    # the products), but at least two units per thread when the map allows it.
    threads = _threads()
    rows, m_parts = _winograd_blocks(th, tw, m // groups, threads)
    items = -(-th // rows) * m_parts
    cg, mg = c // groups, m // groups
    us = _winograd_weights(w, groups, threads)
    for g, u in enumerate(us):
        args = (x[g * cg : (g + 1) * cg], top, left, fill, u, b[g * mg : (g + 1) * mg],
                out[g * mg : (g + 1) * mg], rows, m_parts)  # fmt: skip
        _spread(winograd_f43, args, items, threads, 36.0 * mg * cg * th * tw)
    if (4 * th, 4 * tw) != (oh, ow):
        out = np.ascontiguousarray(out[:, :oh, :ow])
    return out


_WINOGRAD_CACHE: dict[int, tuple[Any, np.ndarray, int, list[np.ndarray]]] = {}
_WINOGRAD_CACHE_MAX = 64


def _winograd_weights(w: np.ndarray, groups: int, threads: int) -> list[np.ndarray]:
    """The transformed weights (36, m/groups, c/groups) of each group of ``w``.

    A network runs the same weight arrays on every image, so the transform is
    kept per array: keyed by ``id(w)``, alive only while ``w`` is (a weak
    reference), and used only if ``w`` still holds the values it was made
    from (compared with a copy, which reads 9 values per channel pair instead
    of computing 36 from them), so a weight changed in place is transformed
    again.
    """
    import weakref

    from .core.conv_winograd import weight_transform

    key = id(w)
    hit = _WINOGRAD_CACHE.get(key)
    if hit is not None:
        ref, copy, g0, us = hit
        if ref() is w and g0 == groups and copy.shape == w.shape and np.array_equal(copy, w):
            return us
    m, c = w.shape[:2]
    mg = m // groups
    us = []
    for g in range(groups):
        wg = np.ascontiguousarray(w[g * mg : (g + 1) * mg], dtype=np.float32)
        u = np.empty((36, mg, c), np.float32)
        _spread(weight_transform, (wg, u), mg, threads, 200.0 * mg * c)
        us.append(u)
    try:
        ref = weakref.ref(w)
    except TypeError:  # pragma: no cover - plain ndarrays take weak references
        return us
    if len(_WINOGRAD_CACHE) >= _WINOGRAD_CACHE_MAX:
        _WINOGRAD_CACHE.pop(next(iter(_WINOGRAD_CACHE)))
    _WINOGRAD_CACHE[key] = (ref, np.array(w, np.float32), groups, us)
    weakref.finalize(w, _WINOGRAD_CACHE.pop, key, None)
    return us


def _conv_gemm(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    groups: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_size: tuple[int, int],
    budget: int = 1 << 25,
) -> np.ndarray:
    """im2col + matrix product by the Numba kernels of core.conv_gemm, per group.

    The patch matrix is built for blocks of output rows of at most ``budget``
    bytes; a 1x1 stride-1 convolution uses the input itself as the patch matrix.
    """
    from .core.conv_gemm import gemm_bias, gemm_dot, gemm_tiles, im2col, im2row

    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_size
    c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    mg = m // groups
    taps = cg * kh * kw
    x = np.ascontiguousarray(x)
    out = np.empty((m, oh * ow), np.float32)
    b = np.zeros(m, np.float32) if bias is None else np.ascontiguousarray(bias)
    threads = _threads()
    direct = (kh, kw, sh, sw) == (1, 1, 1, 1) and (oh, ow) == (h, wd)
    # long rows of taps: dot products (rows per pixel, a few MB at a time); else im2col tiles
    dot = taps >= GEMM_DOT_MIN_TAPS and not direct
    if dot:
        budget = min(budget, 1 << 22)
    rows = max(1, min(oh, budget // (4 * taps * ow)))
    patches = None
    if not direct:
        patches = np.empty((rows * ow, taps) if dot else (taps, rows * ow), np.float32)
    for g in range(groups):
        xg = x[g * cg : (g + 1) * cg]
        wg = np.ascontiguousarray(w[g * mg : (g + 1) * mg].reshape(mg, taps))
        bg = b[g * mg : (g + 1) * mg]
        og = out[g * mg : (g + 1) * mg]
        if direct:
            part = xg.reshape(cg, h * wd)
            work = float(mg) * taps * h * wd
            _spread(gemm_bias, (wg, part, bg, og, 0), gemm_tiles(mg, h * wd), threads, work)
            continue
        for y0 in range(0, oh, rows):
            y1 = min(oh, y0 + rows)
            n = (y1 - y0) * ow
            if dot:
                part = patches if y1 - y0 == rows else np.empty((n, taps), np.float32)
                args = (xg, kh, kw, sh, sw, dh, dw, y0, ow, part)
                _spread(im2row, args, n, threads, float(n) * taps)
                args = (wg, part, bg, og, y0 * ow)
                _spread(gemm_dot, args, -(-mg // 4), threads, float(mg) * taps * n)
            else:
                part = patches if y1 - y0 == rows else np.empty((taps, n), np.float32)
                args = (xg, kh, kw, sh, sw, dh, dw, y0, y1, ow, part)
                _spread(im2col, args, taps, threads, float(n) * taps)
                args = (wg, part, bg, og, y0 * ow)
                _spread(gemm_bias, args, gemm_tiles(mg, n), threads, float(mg) * taps * n)
    return out.reshape(m, oh, ow)


def _threads() -> int:
    """The compute threads (``--threads``, :func:`convtool.parallel.set_threads`)."""
    from .parallel import get_threads

    return get_threads()


def _spread(kernel: Any, args: tuple, items: int, threads: int, work: float) -> None:
    """Run ``kernel(*args, lo, hi)`` over ``range(items)`` on the compute threads.

    The kernels release the GIL; :func:`convtool.parallel.run_blocks` hands
    out blocks of the range to its pool (the calling thread included) as
    threads come free, and keeps small jobs (``work``: multiply-adds or
    values moved) on the calling thread.
    """
    from .parallel import run_blocks

    run_blocks(lambda lo, hi: kernel(*args, lo, hi), items, work=work, nthreads=threads)


def _pad(
    x: np.ndarray, padding: tuple[int, int, int, int], pad_mode: str, pad_value: float
) -> np.ndarray:
    top, bottom, left, right = padding
    widths = ((0, 0), (top, bottom), (left, right))
    if pad_mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=pad_value)
    return np.pad(x, widths, mode=NUMPY_PAD_MODE[pad_mode])


def _pair(name: str, value: int | tuple[int, int]) -> tuple[int, int]:
    """``value`` as a (rows, columns) pair of whole numbers >= 1."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise UsageError(f"{name} must be one number or a (rows, columns) pair, got {value!r}")
        return check_positive_int(name, value[0]), check_positive_int(name, value[1])
    n = check_positive_int(name, value)
    return n, n


def _padding(padding: int | tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``padding`` as (top, bottom, left, right) whole numbers >= 0."""
    sides = (padding,) * 4 if not isinstance(padding, (tuple, list)) else tuple(padding)
    if len(sides) != 4:
        raise UsageError(
            f"padding must be one number or (top, bottom, left, right), got {padding!r}"
        )
    for p in sides:
        if isinstance(p, bool) or int(p) != p or p < 0:
            raise UsageError(f"padding must be whole numbers >= 0, got {padding!r}")
    return tuple(int(p) for p in sides)  # type: ignore[return-value]


def _conv_bank(
    x: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> None:
    """out[m] = sum_c correlate_valid(x[c], w[m, c]) via filtering.convolve stacks.

    filtering.convolve takes one stride and one dilation for both axes; unequal
    ones are reached by spelling the dilation out in the kernel (zeros between
    the taps) and by taking every row / column of a stride-1 result.
    """
    from .filtering import convolve

    (sh, sw), (dh, dw) = stride, dilation
    if dh != dw:
        m, c, kh, kw = w.shape
        wide = np.zeros((m, c, dh * (kh - 1) + 1, dw * (kw - 1) + 1), np.float32)
        wide[:, :, ::dh, ::dw] = w
        w, dh = wide, 1
    one = sh if sh == sw else 1
    for c in range(x.shape[0]):
        resp = convolve(
            x[c],
            np.ascontiguousarray(w[:, c]),
            pad="valid",
            stride=one,
            dilation=dh,
            correlate=True,
            combine="stack",
        )
        if one != sh or one != sw:
            resp = resp[:, ::sh, ::sw]
        resp = resp.reshape(out.shape)
        if c == 0:
            out[...] = resp
        else:
            out += resp


def _conv_matmul(
    x: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    budget: int = 1 << 25,
) -> None:
    """out = W @ im2col(x), in blocks of output rows so the patch matrix stays small."""
    (sh, sw), (dh, dw) = stride, dilation
    cg, kh, kw = w.shape[1:]
    mg, oh, ow = out.shape
    taps = cg * kh * kw
    wmat = w.reshape(mg, taps)
    block = max(1, budget // (4 * taps * ow))
    span = sw * (ow - 1) + 1
    for r0 in range(0, oh, block):
        r1 = min(oh, r0 + block)
        nr = r1 - r0
        cols = np.empty((cg, kh, kw, nr, ow), dtype=np.float32)
        for i in range(kh):
            top = r0 * sh + i * dh
            rows = x[:, top : top + sh * (nr - 1) + 1 : sh]
            for j in range(kw):
                left = j * dw
                cols[:, i, j] = rows[:, :, left : left + span : sw]
        res = wmat @ cols.reshape(taps, nr * ow)
        out[:, r0:r1] = res.reshape(mg, nr, ow)
