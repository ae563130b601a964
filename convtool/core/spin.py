"""Short busy-waits for :mod:`convtool.parallel`'s team of compute threads.

Waking a sleeping thread costs 50-100 us on the 2-core virtual machine the
benchmarks run on (the idle virtual CPU is halted and must be woken by the
host), which is a sixth of a ResNet layer. Between the layers of a network
the team's threads therefore watch a shared counter for a little while
instead of sleeping; these loops release the GIL and read the counter with
atomic loads so the compiler cannot keep it in a register.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@intrinsic
def _load_acquire(typingctx, arr, index):
    """``arr[index]`` (int64) read with an atomic acquire load."""
    sig = types.int64(arr, index)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.load_atomic(builder.gep(data, [args[1]]), "acquire", 8)

    return sig, codegen


@intrinsic
def _pause(typingctx):
    """The x86 ``pause`` hint inside a spin loop (nothing elsewhere)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause"
            )
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def wait_change(state, index, seen, spins):
    """Spin until ``state[index] != seen``: the new value, or ``seen`` after ``spins`` tries."""
    for _ in range(spins + 1):
        value = _load_acquire(state, index)
        if value != seen:
            return value
        _pause()
    return seen


@njit(cache=True, nogil=True)
def wait_all(state, first, count, value, spins):
    """Spin until ``state[first : first + count]`` all equal ``value`` (False: gave up)."""
    for _ in range(spins + 1):
        done = True
        for i in range(first, first + count):
            if _load_acquire(state, i) != value:
                done = False
                break
        if done:
            return True
        _pause()
    return False


@intrinsic
def fetch_add(typingctx, arr, index, value):
    """Atomically add ``value`` to ``arr[index]`` (int64) and return what it held before."""
    sig = types.int64(arr, index, value)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", builder.gep(data, [args[1]]), args[2], "monotonic")

    return sig, codegen
