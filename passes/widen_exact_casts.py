"""widen-exact-casts: integer arithmetic done in a narrow float is done in f32 instead (CPU).

Requires: thread IR. Guarantees: bit-identical values:

    cast<f32>(cast<f16>(q) - c)  ->  cast<f32>(q) - c    (c a splat of an integer constant)
    cast<bf16>(q) - c            ->  odd lanes of view<bf16>(cast<f32>(q) - c)

where every value of the narrow float chain is an integer the narrow format holds exactly
(f16: |v| <= 2048, bf16: |v| <= 256, from the integer type's range and the constants): the
narrow chain then rounds nowhere, and f32 (exact below 2^24) computes the same numbers. The
chain is a cast from an integer type and additions or subtractions of such constants.

A kernel written for tensor cores dequantizes to f16 (`cast<f16>(w) - ZERO`, skinny_wq,
gemv_tc), and a CPU dot casts its f16 operands to f32: for weights of more than 5 bits (no
code table, `backends/llvm/code_tables.py`) each register of 16 weights went int -> f32 ->
f16 -> f32 (`vcvtps2ph` and `vcvtph2ps`) for nothing. The GPU pipeline does not run this pass
(an mma takes the f16 values).

A bf16 chain that stays bf16 (the CPU's bf16 dots take bf16 operands: `dot_pairs`) is computed
in f32 too and cut to bf16 by keeping each f32's high half (the odd bf16 lanes of its bits):
bf16 is f32 with the low 16 bits of the mantissa dropped, and an exact value has them zero. A
bf16 add or cast rounds in integer code on the CPU (~8 operations a register) and each add
decodes its operand again: skinny_wq's u8 weights, `cast<bf16>(w) - 128`, took 20 operations
a register of weights, now 5 (a zero-extension, the OR into 2^23 and subtraction of
`fusion.py`, a shift and a narrowing). Chains from codes of at most 5 bits (u4 weights) stay
bf16: the backend computes them as a table of 32 bf16 entries, one `vpermw` a register of 32
lanes (`code_tables.py`), where f32 lanes take two lookups and a narrowing.
"""

from __future__ import annotations

from collections.abc import Sequence

from lpir.passes.base import Pass, register_pass
from lpir.passes.canonicalize import splat_constant

from lpir.dtypes import DType, dtype
from lpir.ir.core import Module, Operation, Value
from lpir.ir.ops import BinaryOp, CastOp, ConstantOp, ShuffleOp, SplatOp, ViewOp
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import VectorType, as_vector

F32 = dtype("f32")
BF16 = dtype("bf16")
# codes the CPU backend looks up in tables (backends/llvm/code_tables.py MAX_CODE_BITS)
TABLE_CODE_BITS = 5


def exact_integers(dt: DType) -> int:
    """The largest integer magnitude below which a float format holds every integer."""
    return 1 << (dt.mantissa_bits + 1)


def integer_range(value: Value) -> tuple[int, int] | None:
    """[lo, hi] of the integers an (old) narrow-float vector holds, where it is a cast from an
    integer type plus or minus integer constants, every step exact in its format; else None."""
    dt = value.type.dtype
    owner = value.owner
    if isinstance(owner, CastOp):
        source = owner.operands[0].type.dtype
        if source.is_float or source.is_bool:
            return None
        found = (int(source.min), int(source.max))
    elif isinstance(owner, BinaryOp) and owner.name in ("add", "sub"):
        left, right = owner.operands
        constant = _integer_constant(right)
        if constant is None:
            return None
        inner = integer_range(left)
        if inner is None:
            return None
        sign = 1 if owner.name == "add" else -1
        found = (inner[0] + sign * constant, inner[1] + sign * constant)
        found = (min(found), max(found))
    else:
        return None
    limit = exact_integers(dt)
    return found if -limit <= found[0] and found[1] <= limit else None


def _integer_constant(value: Value) -> int | None:
    constant = splat_constant(value)
    if isinstance(constant, float) and constant.is_integer():
        return int(constant)
    return None


class _WidenExactCasts(Rewriter):
    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        if isinstance(op, CastOp):
            widened = self.widened_cast(op)
            if widened is not None:
                return [widened]
        if isinstance(op, CastOp | BinaryOp) and _exact_bf16(op.results[0]):
            return [self.truncated(op.results[0])]
        return self.copy(op).results

    def truncated(self, value: Value) -> Value:
        """An (old) exact bf16 chain's value: its f32 computation's high halves."""
        halves = self.builder.add(ViewOp.create(self.in_f32(value), BF16))
        odd = [2 * lane + 1 for lane in range(as_vector(value.type).size)]
        return self.builder.add(ShuffleOp.create([halves], odd))

    def widened_cast(self, op: CastOp) -> Value | None:
        source = op.operands[0]
        narrow = source.type.dtype
        if op.result.type.dtype != F32 or narrow.name not in ("f16", "bf16"):
            return None
        if not isinstance(source.type, VectorType) or integer_range(source) is None:
            return None
        return self.in_f32(source)

    def in_f32(self, value: Value) -> Value:
        """The (old) exact narrow chain rebuilt in f32 from mapped operands."""
        owner = value.owner
        if isinstance(owner, CastOp):
            return self.builder.add(CastOp.create(self.map(owner.operands[0]), F32))
        # Else an add or sub of an integer constant (integer_range accepted the chain).
        assert isinstance(owner, BinaryOp) and isinstance(value.type, VectorType)
        left, right = owner.operands
        number = _integer_constant(right)
        assert number is not None
        constant = self.builder.add(ConstantOp.create(float(number), F32))
        splat = self.builder.add(SplatOp.create_vector(constant, value.type.size))
        return self.builder.add(BinaryOp.create(owner.name, self.in_f32(left), splat))


def _exact_bf16(value: Value) -> bool:
    """Whether `value` is a bf16 vector of integers every step of whose chain is exact, from
    codes of more than `TABLE_CODE_BITS` bits (smaller codes' chains stay bf16: the backend
    tabulates them in 16-bit lanes, one `vpermw` a register of 32, cheaper than f32 lanes)."""
    return (
        isinstance(value.type, VectorType)
        and value.type.dtype == BF16
        and integer_range(value) is not None
        and _chain_source(value).nbits > TABLE_CODE_BITS
    )


def _chain_source(value: Value) -> DType:
    """The integer type an exact chain (`integer_range`) starts from: its cast's operand's."""
    owner = value.owner
    while not isinstance(owner, CastOp):
        assert isinstance(owner, Operation)  # integer_range accepted it: casts and arithmetic
        owner = owner.operands[0].owner
    return owner.operands[0].type.dtype


@register_pass
class WidenExactCastsPass(Pass):
    name = "widen-exact-casts"
    stage = "thread"

    def run(self, module: Module) -> Module:
        return _WidenExactCasts().run(module)
