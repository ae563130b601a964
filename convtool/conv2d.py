"""Multi-channel 2-D convolution with PyTorch ``conv2d`` semantics.

The layer-level convolution that networks (TOML specs and ONNX models) run:
(C, H, W) in, (M, H', W') out, groups, stride, dilation and padding.
"""

from __future__ import annotations

import functools
import threading
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

    (:func:`conv2d_relu` gives the ReLU of the result as well.)

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
        The (M/groups, C/groups * KH * KW) weight matrix times the patch
        matrix, without building the patch matrix: the padded input is laid
        out once (split into its stride phases) so that each tap's row of
        patches is a contiguous run of it, and a micro-kernel keeps an 8 x 32
        tile of outputs in vector registers over all the taps
        (:mod:`convtool.core.conv_gemm`; 6 x 16 without AVX-512). Any kernel,
        stride and dilation. The weights are packed once per array and kept
        while it lives (checked against a copy on every call unless the array
        is read-only, as the network loaders leave theirs).
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

    ``auto`` takes ``winograd`` for 3x3 stride-1 layers with 32 or more input
    and output channels per group on maps of 64x64 and larger (128 or more
    channels from 56x56), else ``bank`` for a kernel
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
    options = dict(stride=stride, dilation=dilation, groups=groups, padding=padding,
                   pad_mode=pad_mode, pad_value=pad_value, method=method)  # fmt: skip
    return _conv2d(x, weight, bias, relu=False, **options)[0]


def conv2d_relu(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`conv2d` and the ReLU of its result: (y, max(y, 0)).

    A network keeps both maps; the ``gemm`` path writes the ReLU while each
    tile of the product is in cache, instead of reading the map again.
    ``options`` are :func:`conv2d`'s.

    Examples
    --------
    >>> y, r = conv2d_relu(np.ones((1, 3, 3), np.float32), -np.ones((2, 1, 1, 1), np.float32))
    >>> float(y.min()), float(r.max())
    (-1.0, 0.0)
    """
    return _conv2d(x, weight, bias, relu=True, **options)  # type: ignore[return-value]


def _conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    relu: bool,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding: int | tuple[int, int, int, int] = 0,
    pad_mode: str = "constant",
    pad_value: float = 0.0,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray | None]:
    """conv2d's validation and dispatch; (y, its ReLU if ``relu`` else None)."""
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
    if method == "gemm":
        geometry = ((sh, sw), (dh, dw), padding, pad_mode, pad_value, (oh, ow))
        return _conv_gemm(x, weight, bias, groups, *geometry, relu=relu)
    if method == "winograd":
        out = _conv_winograd(x, weight, bias, groups, padding, pad_mode, pad_value)
    else:
        if any(padding):
            x = _pad(x, padding, pad_mode, pad_value)
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
    return out, (np.maximum(out, np.float32(0)) if relu else None)


#: Tiles per unit of Winograd work (measured: longer product loops win up to ~200).
WINOGRAD_BLOCK_TILES = 192

#: The algorithms ``method`` accepts.
METHODS = ("auto", "bank", "gemm", "matmul", "winograd")


def warmup() -> None:
    """Compile (or load from the cache) the Numba kernels of the fast paths.

    One float32 signature each: the Winograd kernel and its weight
    transform, the tiled product of ``gemm``, and the waits of the compute
    threads' team (:mod:`convtool.core.spin`).

    Examples
    --------
    >>> warmup()
    """
    from .core.spin import wait_all, wait_change

    x = np.zeros((32, 10, 10), np.float32)
    w = np.zeros((8, 32, 3, 3), np.float32)
    conv2d(x, w, method="winograd")
    conv2d(x, w, method="gemm")
    state = np.zeros(3, np.int64)
    wait_change(state, 0, 1, 0)
    wait_all(state, 1, 2, 0, 0)


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
    else:
        kernels = ["conv_gemm.gemm_offsets"]
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
    """Whether Winograd F(4x4, 3x3) beats the tiled product (``gemm``) for this layer.

    Winograd needs a quarter of the multiply-adds but runs them at a third
    of the tiled product's rate, and its weight transform and tile padding
    cost per channel pair; it wins on large maps with enough channels.
    Measured (two threads, 3x3 stride 1, gemm / winograd time): 64 channels
    at 224x224 1.3-1.5, 112x112 1.05-1.25, 80x80 1.2, 56x56 0.94-0.98; 256
    channels at 56x56 1.1-1.2; 128 at 28x28 0.81-0.86, 256 at 14x14 0.5,
    512 at 7x7 0.2-0.3; 16 channels at 128x128 0.66.
    """
    pixels = oh * ow
    return min(c, m) >= 32 and pixels >= 4096 or min(c, m) >= 128 and pixels >= 3136


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


_WINOGRAD_CACHE: dict[int, tuple[Any, np.ndarray | None, int, list[np.ndarray]]] = {}
_WINOGRAD_CACHE_MAX = 64


def _winograd_weights(w: np.ndarray, groups: int, threads: int) -> list[np.ndarray]:
    """The transformed weights (36, m/groups, c/groups) of each group of ``w``.

    Kept per weight array as :func:`_packed_weights` keeps its panels.
    """
    from .core.conv_winograd import weight_transform

    def transform(wg: np.ndarray) -> np.ndarray:
        mg, c = wg.shape[:2]
        u = np.empty((36, mg, c), np.float32)
        _spread(weight_transform, (wg, u), mg, threads, 200.0 * mg * c)
        return u

    return _cached_transform(_WINOGRAD_CACHE, _WINOGRAD_CACHE_MAX, w, groups, transform)


def _conv_gemm(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    groups: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int, int, int],
    pad_mode: str,
    pad_value: float,
    out_size: tuple[int, int],
    relu: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Implicit im2col and register-tiled product (:mod:`convtool.core.conv_gemm`), per group.

    The padded input is laid out once so that every row of the patch matrix
    is a contiguous run of one flat array: the input is split into its
    ``sh x sw`` phases (``phase[c, a, b] = padded[c, a::sh, b::sw]``, the
    input itself when the stride is 1), and output pixel ``(y, q)`` of tap
    ``(c, i, j)`` reads phase ``(i*dh % sh, j*dw % sw)`` of channel c at row
    ``y + i*dh // sh``, column ``q + j*dw // sw``. With the output computed on
    the phases' full width ``wq`` (``oh * wq`` pixels, the last ``wq - ow``
    columns of each row thrown away), tap k's row starts at ``offsets[k]``.
    The extra columns cost ``(wq - ow) / wq`` more work (3% on 56x56 maps, 22%
    on 7x7), against a patch matrix of ``taps`` times the input's size.
    """
    from .core.conv_gemm import MR, NR, gemm_offsets

    (sh, sw), (dh, dw) = stride, dilation
    fill = np.float32(pad_value if pad_mode == "constant" else 0.0)
    if pad_mode != "constant" and any(padding):
        x = _pad(x, padding, pad_mode, pad_value)
        padding = (0, 0, 0, 0)
    top, bottom, left, right = padding
    c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    mg = m // groups
    taps = cg * kh * kw
    hp, wpd = h + top + bottom, wd + left + right
    oh, ow = out_size
    hq, wq = -(-hp // sh), -(-wpd // sw)
    plane = hq * wq
    pixels = oh * wq
    width = -(-pixels // NR) * NR
    flat = _scratch("flat", c * sh * sw * plane + width + NR)
    phases = flat[: c * sh * sw * plane].reshape(c, sh, sw, hq, wq)
    flat[c * sh * sw * plane :] = fill  # the slack the last tiles read past the end
    for a in range(sh):
        for b in range(sw):
            # phase rows r hold padded row a + r*sh, i.e. input row a + r*sh - top
            r0, r1 = max(0, -(-(top - a) // sh)), min(hq, (top + h - 1 - a) // sh + 1)
            s0, s1 = max(0, -(-(left - b) // sw)), min(wq, (left + wd - 1 - b) // sw + 1)
            r1, s1 = max(r0, r1), max(s0, s1)
            phase = phases[:, a, b]
            phase[:, :r0] = fill  # the border: only what the input does not cover
            phase[:, r1:] = fill
            phase[:, r0:r1, :s0] = fill
            phase[:, r0:r1, s1:] = fill
            if r1 > r0 and s1 > s0:
                phase[:, r0:r1, s0:s1] = x[
                    :,
                    r0 * sh + a - top : (r1 - 1) * sh + a - top + 1 : sh,
                    s0 * sw + b - left : (s1 - 1) * sw + b - left + 1 : sw,
                ]
    offsets = _tap_offsets(cg, kh, kw, sh, sw, dh, dw, hq, wq)
    packed = _packed_weights(w, groups)
    panels = packed[0].size // (taps * MR)
    b = np.zeros(m, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    threads = _threads()
    m_block, n_block = _gemm_blocks(
        panels, width // NR, threads, 4 * panels * MR * taps, 4 * cg * sh * sw * plane
    )
    items = -(-panels // m_block) * -(-(width // NR) // n_block)
    direct = groups == 1 and mg == panels * MR and (width, wq) == (pixels, ow)
    out = np.empty((m, oh, ow), np.float32)
    group_size = cg * sh * sw * plane
    rectified = np.empty((m, oh, ow), np.float32) if relu and not direct else None
    no_relu = np.empty((0, 0), np.float32)
    for g in range(groups):
        bg = np.zeros(panels * MR, np.float32)
        bg[:mg] = b[g * mg : (g + 1) * mg]
        relu_part = no_relu
        if direct:  # the product is the result
            res = out.reshape(m, width)
            final, rows = res, 0
        else:  # each work item copies its block of the product out (cropped)
            res = np.empty((0, width), np.float32)  # each thread keeps its own block
            final, rows = out[g * mg : (g + 1) * mg].reshape(mg, oh * ow), mg
            if rectified is not None:
                relu_part = rectified[g * mg : (g + 1) * mg].reshape(mg, oh * ow)
        args = (packed[g], flat[g * group_size :], offsets, bg, res, m_block, n_block,
                final, rows, ow, wq, relu_part)  # fmt: skip
        _spread_claimed(gemm_offsets, args, items, threads, float(mg) * taps * pixels)
    if relu and rectified is None:
        rectified = np.maximum(out, np.float32(0))
    return out, rectified


_SCRATCH = threading.local()
#: Largest scratch array kept between calls (floats: 64 MiB).
SCRATCH_KEEP = 1 << 24


def _scratch(name: str, size: int) -> np.ndarray:
    """A float32 work array of ``size`` values, reused by this thread's later calls.

    Fresh arrays of a megabyte or more come from mmap, and the kernel zeroes
    every page on first touch: 800-1600 page faults per call on 56x56 to
    80x80 maps, which cost more than the product itself with two threads
    faulting at once (a 56x56 layer: 3.2 ms instead of 0.7).
    """
    pool = getattr(_SCRATCH, "arrays", None)
    if pool is None:
        pool = _SCRATCH.arrays = {}
    arr = pool.get(name)
    if arr is None or arr.size < size:
        arr = np.empty(size, np.float32)
        if size <= SCRATCH_KEEP:
            pool[name] = arr
    return arr[:size]


@functools.lru_cache(maxsize=256)
def _gemm_blocks(
    panels: int, n_panels: int, threads: int, weight_bytes: int, input_bytes: int
) -> tuple[int, int]:
    """(weight panels, pixel panels) per work item of :func:`gemm_offsets`.

    At most 32 panels of weights (their KC taps, 256 KiB, stay in L2 while
    the item's pixel tiles pass) and 8 of pixels (the item's outputs stay in
    cache from one run of taps to the next). Among the splits that give
    every thread two items (or as many as there are tiles) and none more than
    15% over an even share of the tiles, the one that moves least: each
    pixel block reads all the weights of its item and each weight block the
    input, so deep layers (ResNet's 7x7 maps: 9.4 MB of
    weights, 166 KB of input) split the channels and shallow ones the pixels
    (measured on 512->512 at 7x7, two threads: 1.6 ms splitting pixels, 0.8
    splitting channels).
    """

    def splits(count: int, cap: int) -> set[int]:
        least = -(-count // cap)
        return {-(-count // k) for k in range(least, min(count, least + 4 * threads) + 1)}

    tiles = panels * n_panels
    best: tuple = ()
    for mb in splits(panels, 32):
        for nb in splits(n_panels, 8):
            rows, cols = -(-panels // mb), -(-n_panels // nb)
            short = rows * cols < min(2 * threads, tiles)
            # the busiest thread's tiles against an even share (items are whole)
            uneven = -(-rows * cols // threads) * mb * nb * threads / tiles > 1.15
            moved = cols * weight_bytes + rows * input_bytes
            key = (short, uneven, moved, -rows * cols, mb, nb)
            best = min(best, key) if best else key
    return best[4], best[5]


@functools.lru_cache(maxsize=256)
def _tap_offsets(
    cg: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, hq: int, wq: int
) -> np.ndarray:
    """Where tap (c, i, j)'s patch row starts in the phase layout of :func:`_conv_gemm`."""
    c, i, j = np.meshgrid(np.arange(cg), np.arange(kh) * dh, np.arange(kw) * dw, indexing="ij")
    phase = (c * sh + i % sh) * sw + j % sw
    offsets = (phase * (hq * wq) + (i // sh) * wq + j // sw).ravel().astype(np.int64)
    offsets.setflags(write=False)
    return offsets


_PACKED_CACHE: dict[int, tuple[Any, np.ndarray | None, int, list[np.ndarray]]] = {}
_PACKED_CACHE_MAX = 128


def _packed_weights(w: np.ndarray, groups: int) -> list[np.ndarray]:
    """The weights of each group as MR-channel panels (:func:`conv_gemm.pack_weights`).

    A network runs the same weight arrays on every image, so the panels are
    kept per array (keyed by ``id(w)``, alive only while ``w`` is): a
    read-only array whose memory nobody can write (its bases read-only too,
    as the network loaders leave their weights) is trusted; a writeable one
    is compared with a copy first, so a weight changed in place is packed
    again.
    """
    from .core.conv_gemm import pack_weights

    return _cached_transform(
        _PACKED_CACHE,
        _PACKED_CACHE_MAX,
        w,
        groups,
        lambda wg: pack_weights(wg.reshape(wg.shape[0], -1)),
    )


def _frozen(a: np.ndarray) -> bool:
    """Whether nothing can change ``a``'s values: read-only all the way down its bases."""
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    return a is None or isinstance(a, bytes)


def _cached_transform(
    cache: dict, limit: int, w: np.ndarray, groups: int, transform: Any
) -> list[np.ndarray]:
    """``transform`` of each group of ``w``, kept per weight array (see :func:`_packed_weights`)."""
    import weakref

    key = id(w)
    hit = cache.get(key)
    if hit is not None:
        ref, copy, g0, result = hit
        if ref() is w and g0 == groups:
            if copy is None and _frozen(w):
                return result
            if copy is not None and copy.shape == w.shape and np.array_equal(copy, w):
                return result
    mg = w.shape[0] // groups
    result = [
        transform(np.ascontiguousarray(w[g * mg : (g + 1) * mg], dtype=np.float32))
        for g in range(groups)
    ]
    try:
        ref = weakref.ref(w)
    except TypeError:  # pragma: no cover - plain ndarrays take weak references
        return result
    if len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = (ref, None if _frozen(w) else np.array(w, np.float32), groups, result)
    weakref.finalize(w, cache.pop, key, None)
    return result


def _threads() -> int:
    """The compute threads (``--threads``, :func:`convtool.parallel.set_threads`)."""
    from .parallel import get_threads

    return get_threads()


def _spread_claimed(kernel: Any, args: tuple, items: int, threads: int, work: float) -> None:
    """Run ``kernel(*args, claimed)`` once on each of up to ``threads`` compute threads;
    the kernel claims its work items from the shared counter ``claimed``."""
    from .parallel import run_blocks

    claimed = np.zeros(1, np.int64)
    run_blocks(lambda lo, hi: kernel(*args, claimed), min(items, threads), work=work,
               nthreads=threads)  # fmt: skip


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
