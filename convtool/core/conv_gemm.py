"""Multi-channel convolution as an implicit matrix product with register tiles.

``out[m, n] = bias[m] + sum_k w[m, k] * patches[k, n]`` where ``k`` runs over
(input channel, kernel row, kernel column) and ``n`` over output pixels. The
patch matrix is never built: the caller lays the padded input out so that
every row of it is a contiguous run of one flat array, starting at
``offsets[k]`` (see :func:`convtool.conv2d._conv_gemm`: for a stride-1 layer
the padded input itself, with the output computed on the padded width; for
stride s the input split into its s x s phases).

:func:`gemm_offsets` walks (output-channel block x pixel block) work items;
the work itself is :func:`_micro`, a micro-kernel written in LLVM IR that
keeps an MR x NR tile of outputs in vector registers for the whole run of
taps (MR output channels, NR pixels: 8 x 32 with AVX-512, 6 x 16 with AVX2)
and per tap loads NR pixel values and multiplies them by MR broadcast
weights. Numba's loop vectoriser cannot keep such a tile in registers (its
accumulators live in memory), and the tile is what makes the product run at
the machine's multiply-add rate: 128-133 GMAC/s on one AVX-512 core against
85-105 for the dot-product loops it replaces (benchmarks/bench_network.py).

Weights are packed once per weight array (:func:`pack_weights`) so that each
tap's MR weights are adjacent and a work item reads them in one stream.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic

from .spin import fetch_add


def _has_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512 (its target, not only the host)."""
    if config.CPU_FEATURES:
        return "+avx512f" in config.CPU_FEATURES
    if config.CPU_NAME not in (None, "host"):
        return False
    import llvmlite.binding as llvm

    try:
        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except RuntimeError:  # pragma: no cover - feature query unavailable
        return False


#: Tile shape: MR output channels x NV vectors of VW pixels. 8 x 2 x 16 fills 16 of
#: AVX-512's 32 registers (8 x 32 measured 128-133 GMAC/s one core, 16 x 16 105-119,
#: 12 x 32 114-126); AVX2 has 16 registers, so 6 x 2 x 8 (12 accumulators).
MR, NV, VW = (8, 2, 16) if _has_avx512() else (6, 2, 8)
#: Pixels per tile.
NR = NV * VW
#: Taps per pass over a tile (the weights of a block of panels stay in L2 between passes).
KC = 256

_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, VW)
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


@intrinsic
def _micro(typingctx, wp, w_off, flat, offsets, k0, kc, n0, out, o_off, ldo, bias, m0, first):
    """out[m0 + i, n] (+)= sum_k wp[w_off + k*MR + i] * flat[offsets[k0 + k] + n0 + l].

    For i < MR, pixels n = n0 + l (l < NR) stored at out's flat index
    ``o_off + i*ldo + l``; ``first``: the tile starts from the bias, else from
    what ``out`` holds (a later run of taps).
    """
    sig = types.void(wp, w_off, flat, offsets, k0, kc, n0, out, o_off, ldo, bias, m0, first)

    def codegen(context, builder, signature, args):
        wp_v, w_off_v, flat_v, off_v, k0_v, kc_v, n0_v, out_v, o_off_v, ldo_v, b_v, m0_v, f_v = args
        tys = signature.args

        def data(i, value):
            return context.make_array(tys[i])(context, builder, value).data

        w_base = builder.gep(data(0, wp_v), [w_off_v])
        f_base = builder.gep(data(2, flat_v), [n0_v])
        k_base = builder.gep(data(3, off_v), [k0_v])
        o_base = builder.gep(data(7, out_v), [o_off_v])
        b_base = builder.gep(data(10, b_v), [m0_v])
        zero = ir.Constant(_VEC, [0.0] * VW)
        undef = ir.Constant(_VEC, ir.Undefined)
        lane0 = ir.Constant(ir.VectorType(_I32, VW), [0] * VW)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [_VEC, _VEC, _VEC]), f"llvm.fma.v{VW}f32"
        )

        def splat(value):
            one = builder.insert_element(undef, value, ir.Constant(_I32, 0))
            return builder.shuffle_vector(one, undef, lane0)

        def at(base, index):
            return builder.gep(base, [ir.Constant(_I64, index)])

        entry = builder.basic_block
        loop = builder.append_basic_block("tile_taps")
        done = builder.append_basic_block("tile_store")
        builder.branch(loop)
        builder.position_at_end(loop)
        k = builder.phi(_I64)
        k.add_incoming(ir.Constant(_I64, 0), entry)
        acc = [[builder.phi(_VEC) for _ in range(NV)] for _ in range(MR)]
        for row in acc:
            for phi in row:
                phi.add_incoming(zero, entry)
        src = builder.gep(f_base, [builder.load(builder.gep(k_base, [k]), align=8)])
        pixels = [
            builder.load(builder.bitcast(at(src, VW * v), _VEC.as_pointer()), align=4)
            for v in range(NV)
        ]
        w_k = builder.gep(w_base, [builder.mul(k, ir.Constant(_I64, MR))])
        new = []
        for i in range(MR):
            weight = splat(builder.load(at(w_k, i), align=4))
            new.append([builder.call(fma, [weight, pixels[v], acc[i][v]]) for v in range(NV)])
        k_next = builder.add(k, ir.Constant(_I64, 1))
        body_end = builder.basic_block
        k.add_incoming(k_next, body_end)
        for i in range(MR):
            for v in range(NV):
                acc[i][v].add_incoming(new[i][v], body_end)
        builder.cbranch(builder.icmp_signed("<", k_next, kc_v), loop, done)

        builder.position_at_end(done)
        is_first = builder.icmp_signed("!=", f_v, ir.Constant(f_v.type, 0))
        for i in range(MR):
            start = splat(builder.load(at(b_base, i), align=4))
            row = builder.gep(o_base, [builder.mul(ir.Constant(_I64, i), ldo_v)])
            for v in range(NV):
                ptr = builder.bitcast(at(row, VW * v), _VEC.as_pointer())
                old = builder.load(ptr, align=4)
                total = builder.fadd(builder.select(is_first, start, old), new[i][v])
                builder.store(total, ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def gemm_offsets(wp, flat, offsets, bias, out, m_block, n_block, final, rows, ow, wq, relu,
                 claimed):  # fmt: skip
    """out = packed weights x implicit patch matrix, for the work items this thread claims.

    Every thread of the job calls this once; each takes the next unclaimed
    item (``claimed[0]``, an atomic counter) until none is left, so the
    items balance over the threads without a return to Python (and its
    GIL) per item.

    ``wp``: the packed weights (:func:`pack_weights`); ``flat``: the
    laid-out input, patch row k being ``flat[offsets[k] : offsets[k] + N]``
    (readable up to NR values past the last pixel); ``bias``: (P*MR,);
    ``out``: (P*MR, N), N a multiple of NR (only its width is read when
    cropping). Item t covers ``m_block`` panels of MR output channels times
    ``n_block`` panels of NR pixels; the taps go by KC at a time, each run
    over every tile of the item, so the block's weights for those taps stay
    in cache.

    With ``rows`` > 0 each finished item copies its product to ``final``
    (rows x oh*ow) while it is in cache: the first ``rows`` output channels,
    pixels taken as an (oh, wq) grid of which the first ``ow`` columns are
    kept; and, when ``relu`` has rows, their ReLU to ``relu`` (the network's
    next map, written while the values are in cache).
    """
    taps = offsets.shape[0]
    panels = wp.shape[0] // (taps * MR)
    n_panels = out.shape[1] // NR
    n_blocks = (n_panels + n_block - 1) // n_block
    pixels = final.shape[1] // ow * wq
    items = ((panels + m_block - 1) // m_block) * n_blocks
    crop = rows > 0
    # cropping: each item's product goes to this thread's own block-sized buffer, which
    # stays in L2 until it is copied out (a shared product array would be written back
    # to memory: 13 MB for VGG's first layer)
    tile = np.empty((m_block * MR, n_block * NR), np.float32) if crop else out
    ld = tile.shape[1]
    while True:
        t = fetch_add(claimed, 0, 1)
        if t >= items:
            break
        bm = t // n_blocks
        bn = t - bm * n_blocks
        p0 = bm * m_block
        p1 = min(panels, p0 + m_block)
        q0 = bn * n_block
        q1 = min(n_panels, q0 + n_block)
        # where panel p0, pixel panel q0 sits in ``tile``
        corner = 0 if crop else p0 * MR * ld + q0 * NR
        for k0 in range(0, taps, KC):
            kc = min(KC, taps - k0)
            for q in range(q0, q1):
                for p in range(p0, p1):
                    at = corner + (p - p0) * MR * ld + (q - q0) * NR
                    _micro(wp, (k0 * panels + p * kc) * MR, flat, offsets, k0, kc, q * NR,
                           tile, at, ld, bias, p * MR, k0 == 0)  # fmt: skip
        if crop:
            _crop(tile, final, relu, p0 * MR, min(rows, p1 * MR), q0 * NR,
                  min(q1 * NR, pixels), ow, wq)  # fmt: skip


@njit(cache=True, nogil=True)
def _crop(tile, final, relu, m0, m1, a0, a1, ow, wq):
    """final[m, y*ow + q] = product[m, y*wq + q] for q < ow, m0 <= m < m1, pixels
    a0 <= y*wq + q < a1, the product's block starting at (m0, a0) in ``tile``
    (and relu[m, ...] = max(that, 0), NaN kept, when ``relu`` has rows)."""
    with_relu = relu.shape[0] > 0
    zero = np.float32(0.0)
    for m in range(m0, m1):
        src = tile[m - m0]
        dst = final[m]
        a = a0
        y = a // wq
        while a < a1:
            end = min(a1, (y + 1) * wq)
            q = a - y * wq
            stop = min(end - y * wq, ow)
            if stop > q:
                d = dst[y * ow + q : y * ow + stop]
                s = src[a - a0 : a - a0 + stop - q]
                for i in range(stop - q):
                    d[i] = s[i]
                if with_relu:
                    r = relu[m, y * ow + q : y * ow + stop]
                    for i in range(stop - q):
                        r[i] = zero if s[i] < zero else s[i]
            a = end
            y += 1


def pack_weights(w: np.ndarray) -> np.ndarray:
    """(M, K) weights packed for :func:`gemm_offsets`, rows past M zero.

    For each run of KC taps, every panel of MR output channels as (taps, MR):
    a work item's weights for one run are one contiguous stretch.

    Examples
    --------
    >>> pack_weights(np.ones((3, 5), np.float32)).size % 5
    0
    """
    m, k = w.shape
    panels = -(-m // MR)
    padded = np.zeros((panels * MR, k), np.float32)
    padded[:m] = w
    packed = np.empty(panels * MR * k, np.float32)
    for k0 in range(0, k, KC):
        kc = min(KC, k - k0)
        part = padded[:, k0 : k0 + kc].reshape(panels, MR, kc).transpose(0, 2, 1)
        packed[k0 * panels * MR : (k0 + kc) * panels * MR] = part.ravel()
    return packed
