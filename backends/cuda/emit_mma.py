"""Emitters of the warp-wide tensor-core ops: `ldmatrix` and `mma`, through inline PTX.

`ldmatrix` -> `lpir_ldmatrix<count, transpose>(lanes, row address)`, the PTX
`ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16`; in swizzled shared memory the row's
strided offset goes through the swizzle (which keeps the 16-byte row whole).

`mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32`: lanes 2r and 2r + 1 of a
and b form the operand's register r (the PTX fragment order, which is also the order of the
thread-IR lanes, see `lpir.interpreter.thread.mma_fragments`); c and d hold 4 f32 lanes ->
`lpir_mma_m16n8k16_f16(d, a, b, c)`.

`mma.sync.aligned.m16n8k32.row.col.s32.{s8,u8}.{s8,u8}.s32` (8-bit integers, each operand
signed or not): lanes 4r .. 4r + 3 of a and b form register r, lowest byte first; c and d
hold 4 i32 lanes -> `lpir_mma_m16n8k32(d, a, b, c)`, whose template picks `.s8` or `.u8` for
each operand from its C type (`signed char`, `unsigned char`).
"""

from __future__ import annotations

from lpir.backends.cuda.emit_memory import swizzled
from lpir.backends.cuda.emitter import KernelEmitter, emits

from lpir.ir.ops import LoadMatrixOp, MmaOp
from lpir.ir.types import as_memory


@emits(LoadMatrixOp)
def emit_ldmatrix(emitter: KernelEmitter, op: LoadMatrixOp) -> None:
    memory = emitter.value(op.memory)
    row = emitter.value(op.row).text
    swizzle = as_memory(op.memory.type).swizzle
    offset = row if swizzle is None else swizzled(swizzle, row)
    result = emitter.array(op.result)
    transpose = "true" if op.transpose else "false"
    emitter.w.line(
        f"lpir_ldmatrix<{op.count}, {transpose}>({result.address(0)}, {memory.text} + {offset});"
    )


@emits(MmaOp)
def emit_mma(emitter: KernelEmitter, op: MmaOp) -> None:
    a, b, c = (emitter.materialize(v) for v in op.operands)
    # (m16n8k32: integers, the template tells signed from unsigned by the arrays' C types)
    element = "" if op.shape == "m16n8k32" else "_" + op.operands[0].type.dtype.name
    result = emitter.array(op.result)
    emitter.w.line(
        f"lpir_mma_{op.shape}{element}({result.address(0)}, {a.address(0)}, "
        f"{b.address(0)}, {c.address(0)});"
    )
