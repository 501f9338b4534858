"""Integer dots two steps of k at a time: `vpmaddwd` (`vpdpwssd` with AVX512-VNNI) on x86.

lower-to-threads writes each step of a CPU dot of narrow integers into i32 as
`acc = add(acc, mul(cast<i32>(a), cast<i32>(b)))`, the operands shuffled or splatted into the
accumulator's lanes. Emitted as it stands that is one `vpmulld` a step (two micro-ops, ten
cycles' latency on Zen 4) and the loop ran at half the speed of the same dot cast to f32.

Where two such steps follow each other (the first's sum used only by the second) and every
operand is an integer of at most 16 bits (unsigned: 15), the second is emitted as
`acc + pmaddwd(a pairs, b pairs)`: the operands extended to i16, lane i's operands of the two
steps side by side in lanes 2i and 2i + 1, multiplied into i32 and each pair's products added.
Every product is exact in i32 and i32 arithmetic wraps (docs/language.md), so the result is
the two steps' bits, whatever the order of the additions (the one sum past i32, four times
-32768, wraps to -2^31 either way). The first step's own code is then dead and LLVM drops it.
With AVX512-VNNI LLVM folds the addition into `vpdpwssd`.

The instruction's widths follow the host (as `dot_pairs` does): 16 accumulator lanes with
AVX512BW, 8 with AVX2, 4 with SSE2 (every x86-64). Lanes left over are multiplied in i32;
accumulators narrower than every width, and hosts without the instruction, keep the steps as
they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llvmlite import ir
from lpir.backends.llvm.types import I16, I32

from lpir.dtypes import DType
from lpir.ir.core import Kernel, Operation, Value
from lpir.ir.types import VectorType

if TYPE_CHECKING:
    from lpir.backends.llvm.kernel import KernelEmitter

# (CPU feature, accumulator lanes, intrinsic), widest first
INSTRUCTIONS = (
    ("+avx512bw", 16, "llvm.x86.avx512.pmaddw.d.512"),
    ("+avx2", 8, "llvm.x86.avx2.pmadd.wd"),
    ("+sse2", 4, "llvm.x86.sse2.pmadd.wd"),
)


@dataclass(frozen=True)
class Factor:
    """An i32 operand of a step's multiply: lane i is `source[indices[i]]` extended (a scalar
    source is lane 0)."""

    source: Value
    indices: tuple[int, ...]

    @property
    def dtype(self) -> DType:
        return self.source.type.dtype


@dataclass(frozen=True)
class Step:
    """`add(acc, mul(lhs, rhs))` in i32 lanes, the factors extended from narrow integers."""

    op: Operation
    acc: Value
    lhs: Factor
    rhs: Factor


def fits_in_i16(dt: DType) -> bool:
    """Whether every value of `dt` is an i16 (sign- or zero-extended from its register)."""
    return (dt.kind == "int" and dt.nbits <= 16) or (dt.kind == "uint" and dt.nbits <= 15)


def _lanes(value: Value) -> int:
    return value.type.size if isinstance(value.type, VectorType) else 1


class IntegerPairs:
    """Finds the pairs of dot steps of one kernel and emits the second step of each pair."""

    def __init__(self, e: KernelEmitter, kernel: Kernel, features: str):
        self.e = e
        enabled = set(features.split(","))
        self.instructions = [(lanes, name) for flag, lanes, name in INSTRUCTIONS if flag in enabled]
        self.pairs: dict[int, tuple[Step, Step]] = {}  # id(second add) -> (first, second)
        if self.instructions:
            self._find_pairs(kernel)

    # ---- analysis ---------------------------------------------------------------------------
    def _find_pairs(self, kernel: Kernel) -> None:
        uses: dict[int, int] = {}
        for op in kernel.walk():
            for operand in op.operands:
                uses[id(operand)] = uses.get(id(operand), 0) + 1
        steps: dict[int, Step] = {}  # id(result) -> the step that makes it
        seconds: set[int] = set()
        narrowest = self.instructions[-1][0]
        for op in kernel.walk():
            step = self._step(op)
            if step is None or _lanes(op.result) < narrowest:
                continue
            steps[id(op.result)] = step
            first = steps.get(id(step.acc))
            if first is None or id(first.op) in seconds or uses.get(id(step.acc)) != 1:
                continue
            seconds.add(id(op))
            self.pairs[id(op)] = (first, step)

    def _step(self, op: Operation) -> Step | None:
        if op.name != "add" or not _is_int32(op.result):
            return None
        for acc, product in (op.operands, reversed(op.operands)):
            multiply = self.e.producer(product)
            if multiply is None or multiply.name != "mul":
                continue
            lhs, rhs = (self._factor(v) for v in multiply.operands)
            if lhs is not None and rhs is not None:
                return Step(op, acc, lhs, rhs)
        return None

    def _factor(self, value: Value) -> Factor | None:
        """`value` as lanes of a narrow integer through shuffles, splats and one cast to i32."""
        indices = list(range(_lanes(value)))
        widened = False
        while (op := self.e.producer(value)) is not None:
            if op.name == "shuffle" and len(op.operands) == 1:
                inner = op.attributes["indices"]
                indices = [inner[i] for i in indices]
            elif op.name == "splat" and _lanes(op.operands[0]) == 1:
                indices = [0] * len(indices)
            elif op.name == "cast" and not widened and fits_in_i16(op.operands[0].type.dtype):
                widened = True
            else:
                break
            value = op.operands[0]
        return Factor(value, tuple(indices)) if widened else None

    # ---- emission ---------------------------------------------------------------------------
    def emit(self, op: Operation) -> ir.Value | None:
        """The value of `op` as the second step of a pair, or None where it is not one."""
        pair = self.pairs.get(id(op))
        if pair is None:
            return None
        first, second = pair
        factors = (first.lhs, first.rhs, second.lhs, second.rhs)
        if not self.e.has(first.acc) or not all(self.e.has(f.source) for f in factors):
            return None
        return self._multiply_add(self.e.get(first.acc), first, second)

    def _interleaved(self, first: Factor, second: Factor, lanes: range) -> ir.Value:
        """<2n x i16> for the accumulator's `lanes`: lane 2i is the first factor's lane i, lane
        2i + 1 the second's. Built per instruction: the two halves of a broadcast operand
        are then the same shuffle, which LLVM computes once."""
        sources = [first.source] if first.source is second.source else [first.source, second.source]
        later = 0 if len(sources) == 1 else _lanes(sources[0])
        indices = []
        for lane in lanes:
            indices += [first.indices[lane], later + second.indices[lane]]
        values = [self._vector(s) for s in sources]
        if len({(v.type, _signed(s)) for v, s in zip(values, sources)}) == 1:
            # shuffle the narrow lanes, then extend only those
            return self._extended(self.e.vectors.shuffle(values, indices), _signed(sources[0]))
        extended = [self._extended(v, _signed(s)) for v, s in zip(values, sources)]
        return self.e.vectors.shuffle(extended, indices)

    def _vector(self, source: Value) -> ir.Value:
        value = self.e.get(source)
        if isinstance(value.type, ir.VectorType):
            return value
        single = ir.Constant(ir.VectorType(value.type, 1), ir.Undefined)
        return self.e.b.insert_element(single, value, ir.Constant(I32, 0))

    def _extended(self, vector: ir.Value, signed: bool) -> ir.Value:
        target = ir.VectorType(I16, vector.type.count)
        if vector.type == target:
            return vector
        return self.e.b.sext(vector, target) if signed else self.e.b.zext(vector, target)

    def _multiply_add(self, acc: ir.Value, first: Step, second: Step) -> ir.Value:
        """acc + both steps' products, by instruction where one fits the lanes left, else in
        i32."""
        total = acc.type.count
        pieces, start = [], 0
        while start < total:
            width, name = next(
                ((w, n) for w, n in self.instructions if w <= total - start), (0, "")
            )
            lanes = range(start, start + (width or total - start))
            lhs = self._interleaved(first.lhs, second.lhs, lanes)
            rhs = self._interleaved(first.rhs, second.rhs, lanes)
            if width:
                products = self._instruction(name, lhs, rhs)
            else:
                products = self._products(lhs, rhs)
            pieces.append(self.e.b.add(self.e.vectors.pick(acc, list(lanes)), products))
            start = lanes.stop
        return pieces[0] if len(pieces) == 1 else self.e.vectors.concat(pieces)

    def _instruction(self, name: str, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
        result = ir.VectorType(I32, lhs.type.count // 2)
        function = self.e.intrinsics.declare(name, ir.FunctionType(result, [lhs.type, lhs.type]))
        return self.e.b.call(function, [lhs, rhs])

    def _products(self, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
        b, vectors = self.e.b, self.e.vectors
        count = lhs.type.count // 2
        sums = []
        for parity in (0, 1):
            lanes = [2 * i + parity for i in range(count)]
            wide = ir.VectorType(I32, count)
            x, y = (b.sext(vectors.pick(v, lanes), wide) for v in (lhs, rhs))
            sums.append(b.mul(x, y))
        return b.add(sums[0], sums[1])


def _is_int32(value: Value) -> bool:
    dt = value.type.dtype
    return isinstance(value.type, VectorType) and dt.kind in ("int", "uint") and dt.nbits == 32


def _signed(source: Value) -> bool:
    return source.type.dtype.kind == "int"


__all__ = ["IntegerPairs", "fits_in_i16"]
