"""widen-dot-operands: a CPU matmul's f16 (and bf16) operands are cast to f32 before the dot.

Requires: tile IR (before layout-selection). Guarantees: the same values:

    dot(a, b, acc)  ->  dot(cast<f32>(a), cast<f32>(b), acc)

for a dot of f16 (or bf16, below) operands into an f32 accumulator that the CPU computes in
register blocks (`layout_rules.blocked_dot`: each thread holds rows of whole registers). A
product of two f16 numbers is exact in f32 and the interpreter sums a dot exactly, so the
casts change nothing. The CPU multiplies f16 in f32 (x86 has no f16 dot product into f32):
lower-to-threads casts each thread's share of the operands, and in a matmul every element of
an operand is held by several threads (b's rows by every thread of a column of the
accumulator). Cast in the tile, each element is widened once, before layout-selection decides
who holds it; where the operand is computed and converted through shared memory (a matmul's
decoded weights) the conversion moves f32, which the FMAs then read straight from memory.

On a CPU with AVX512-BF16 (`Target.bf16_dot_pairs`) bf16 operands stay bf16: lower-to-threads
multiplies them two steps of k at a time (`dot_pairs`, `vdpbf16ps`, 32 products an instruction
where an f32 FMA does 16), and their conversion through shared memory moves half the bytes;
elsewhere they are widened like f16. Dots the GPU runs on tensor cores take f16 or bf16; the
GPU pipeline does not run this pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from lpir.passes import layout_rules as rules
from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Module, Operation, Value
from lpir.ir.ops import CastOp, DotOp
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import as_tile
from lpir.targets import get_target


class _WidenDotOperands(Rewriter):
    def __init__(self, target: str):
        super().__init__()
        self.target = get_target(target)

    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        if isinstance(op, DotOp) and self.widens(op):
            a, b, acc = self.map_all(op.operands)
            wide_a, wide_b = (self.builder.add(CastOp.create(v, "f32")) for v in (a, b))
            return [self.builder.add(DotOp.create(wide_a, wide_b, acc, op.result.name_hint))]
        return self.copy(op).results

    def widens(self, op: DotOp) -> bool:
        a, _, acc = op.operands
        m, n = as_tile(acc.type).shape
        threads = self.kernel.threads
        narrow = ("f16",) if self.target.bf16_dot_pairs else ("f16", "bf16")
        return (
            a.type.dtype.name in narrow
            and acc.type.dtype.name == "f32"
            and rules.blocked_dot(m, n, threads, self.target) is not None
        )


@register_pass
class WidenDotOperandsPass(Pass):
    name = "widen-dot-operands"
    stage = "tile"

    def run(self, module: Module) -> Module:
        return _WidenDotOperands(self.target).run(module)
