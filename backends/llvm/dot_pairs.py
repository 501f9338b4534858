"""`dot_pairs`: an f32 accumulator plus the products of pairs of bf16 lanes.

On hosts with AVX512-BF16 each register of 16 accumulator lanes is one `vdpbf16ps` (32
products, twice an f32 FMA's; the 256- and 128-bit forms take 8 and 4 lanes), which adds the
odd product and then the even one, rounding each, and flushes subnormal inputs and results to
zero. Elsewhere, and for lanes left over, each pair is widened (a bf16 is the high half of its
f32: the odd lane of an i32 is already in place, the even one shifts up) and added by two FMAs
in the same order, the products being exact: the same bits but for subnormals.
"""

from __future__ import annotations

from llvmlite import ir
from lpir.backends.llvm.intrinsics import Intrinsics
from lpir.backends.llvm.types import BFLOAT, F32, I32, constant
from lpir.backends.llvm.vectors import Vectors

# (accumulator lanes, bits): the widths of vdpbf16ps, widest first
INSTRUCTION_LANES = ((16, 512), (8, 256), (4, 128))


class DotPairs:
    """Emits dot_pairs on an IRBuilder, given the host's CPU features."""

    def __init__(
        self, builder: ir.IRBuilder, intrinsics: Intrinsics, vectors: Vectors, features: str
    ):
        self.b = builder
        self.intrinsics = intrinsics
        self.vectors = vectors
        self.native = "+avx512bf16" in features.split(",")

    def emit(self, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        """acc: <n x float>; a, b: <2n x i16> (bf16 bit patterns)."""
        lanes = acc.type.count
        pieces, start = [], 0
        while start < lanes:
            width = self._instruction_width(lanes - start)
            chunk = width or lanes - start
            part_acc = self.vectors.pick(acc, list(range(start, start + chunk)))
            part_a, part_b = (
                self.vectors.pick(v, list(range(2 * start, 2 * (start + chunk)))) for v in (a, b)
            )
            if width:
                pieces.append(self._instruction(part_acc, part_a, part_b))
            else:
                pieces.append(self._fmas(part_acc, part_a, part_b))
            start += chunk
        return pieces[0] if len(pieces) == 1 else self.vectors.concat(pieces)

    def _instruction_width(self, remaining: int) -> int:
        """The widest vdpbf16ps that fits `remaining` lanes, or 0 (none: two FMAs instead)."""
        if not self.native:
            return 0
        return next((lanes for lanes, _ in INSTRUCTION_LANES if lanes <= remaining), 0)

    def _instruction(self, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        lanes = acc.type.count
        bits = dict(INSTRUCTION_LANES)[lanes]
        pairs = ir.VectorType(BFLOAT, 2 * lanes)
        function = self.intrinsics.declare(
            f"llvm.x86.avx512bf16.dpbf16ps.{bits}",
            ir.FunctionType(acc.type, [acc.type, pairs, pairs]),
        )
        return self.b.call(function, [acc, self.b.bitcast(a, pairs), self.b.bitcast(b, pairs)])

    def _fmas(self, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        odd_a, even_a = self._widened(a)
        odd_b, even_b = self._widened(b)
        fma = self.intrinsics.get("llvm.fma", acc.type)
        return self.b.call(fma, [even_a, even_b, self.b.call(fma, [odd_a, odd_b, acc])])

    def _widened(self, pairs: ir.Value) -> tuple[ir.Value, ir.Value]:
        """The odd and even bf16 lanes of `pairs` as f32 (each pair one i32, little-endian)."""
        words = self.b.bitcast(pairs, ir.VectorType(I32, pairs.type.count // 2))
        odd = self.b.and_(words, constant(words, I32, 0xFFFF0000 - (1 << 32)))
        even = self.b.shl(words, constant(words, I32, 16))
        floats = ir.VectorType(F32, words.type.count)
        return self.b.bitcast(odd, floats), self.b.bitcast(even, floats)
