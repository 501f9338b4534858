"""Emitter of `shfl_xor`, the warp shuffle of butterfly reductions.

Each lane of the value goes through `lpir_shfl_xor<mask, members>` (`__shfl_xor_sync` on its
bits); `members` is the full warp, or the block's threads when it has fewer than 32.
"""

from __future__ import annotations

from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits

from lpir.ir.ops import WarpShuffleOp
from lpir.ir.ops.thread import WARP_SIZE
from lpir.ir.types import VectorType


def member_mask(threads: int) -> str:
    """The lanes of a warp that a block of `threads` threads has, as a C constant."""
    return "0xffffffffu" if threads >= WARP_SIZE else f"{(1 << threads) - 1:#x}u"


@emits(WarpShuffleOp)
def emit_shfl_xor(emitter: KernelEmitter, op: WarpShuffleOp) -> None:
    source = emitter.value(op.operands[0])
    call = f"lpir_shfl_xor<{op.mask}, {member_mask(emitter.kernel.threads)}>"
    if not isinstance(op.result.type, VectorType):
        emitter.scalar(op.result, f"{call}({source.text})")
        return
    if source.kind == "splat":  # every lane the same: one shuffle
        name = emitter.fresh("shuffled")
        emitter.w.line(f"const {source.ctype} {name} = {call}({source.text});")
        emitter.bind(op.result, CValue("splat", name, source.dtype, source.lanes))
        return
    emitter.lanewise(op.result, lambda lane: f"{call}({source.lane(lane)})")
