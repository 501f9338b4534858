"""Emitter of `mma`: one warp-wide tensor-core matrix multiply through inline PTX.

`mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32`: lanes 2r and 2r + 1 of a
and b form the operand's register r (the PTX fragment order, which is also the order of the
thread-IR lanes, see `lpir.interpreter.thread.mma_fragments`); c and d hold 4 f32 lanes.
"""

from __future__ import annotations

from lpir.backends.cuda.emitter import KernelEmitter, emits

from lpir.ir.ops import MmaOp


@emits(MmaOp)
def emit_mma(emitter: KernelEmitter, op: MmaOp) -> None:
    a, b, c = (emitter.materialize(v) for v in op.operands)
    element = op.operands[0].type.dtype.name  # type: ignore[attr-defined]
    result = emitter.array(op.result)
    emitter.w.line(
        f"lpir_mma_{op.shape}_{element}({result.address(0)}, {a.address(0)}, "
        f"{b.address(0)}, {c.address(0)});"
    )
