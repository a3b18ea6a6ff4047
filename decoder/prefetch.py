"""A CPU cache prefetch of one row of a 2-D table, for numba kernels that probe hash tables.

Random probes into a table of tens of megabytes miss every cache level; asking for the row
of the probe a few keys ahead lets the memory fetches overlap. The hint changes no result.
Used by decoder/_token_kernels.py (the verified-token cache), decoder/_locate_kernels.py
(the next rows of a frame to scan) and tracing/kernels.py (the head's key table); it
lives in decoder, the package everything else builds on.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _prefetch_intrinsic(write: int, doc: str):
    """An intrinsic `f(table, row)` that prefetches table[row, 0] (LLVM's llvm.prefetch:
    `write` 0 for a read, 1 for a write; kept in all cache levels; data)."""

    @intrinsic
    def prefetch(typingctx, table, row):
        def codegen(context, builder, signature, args):
            table_type = signature.args[0]
            array = context.make_array(table_type)(context, builder, args[0])
            pointer = cgutils.get_item_pointer(
                context, builder, table_type, array,
                [args[1], context.get_constant(types.intp, 0)], wraparound=False)
            if str(pointer.type) == "ptr":  # LLVM with opaque pointers
                name = "llvm.prefetch.p0"
            else:
                pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
                name = "llvm.prefetch.p0i8"
            i32 = ir.IntType(32)
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]),
                name)
            builder.call(function, [pointer, ir.Constant(i32, write), ir.Constant(i32, 3),
                                    ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.void(table, row), codegen

    prefetch.__doc__ = doc
    return prefetch


prefetch_read = _prefetch_intrinsic(0, "Prefetch table[row, 0] to read it.")
prefetch_write = _prefetch_intrinsic(1, "Prefetch table[row, 0] to write it.")
