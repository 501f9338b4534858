"""Emitters of the warp-wide tensor-core ops: `ldmatrix` and `mma`, through inline PTX.

`ldmatrix` -> `lpir_ldmatrix<count, transpose>(lanes, row address)`, the PTX
`ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16`; in swizzled shared memory the row's
strided offset goes through the swizzle (which keeps the 16-byte row whole).

`mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32`: lanes 2r and 2r + 1 of a
and b form the operand's register r (the PTX fragment order, which is also the order of the
thread-IR lanes, see `lpir.interpreter.thread.mma_fragments`); c and d hold 4 f32 lanes.
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
    element = op.operands[0].type.dtype.name
    result = emitter.array(op.result)
    emitter.w.line(
        f"lpir_mma_{op.shape}_{element}({result.address(0)}, {a.address(0)}, "
        f"{b.address(0)}, {c.address(0)});"
    )
