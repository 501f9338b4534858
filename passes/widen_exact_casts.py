"""widen-exact-casts: integer arithmetic done in a narrow float is done in f32 instead (CPU).

Requires: thread IR. Guarantees: bit-identical values:

    cast<f32>(cast<f16>(q) - c)  ->  cast<f32>(q) - c    (c a splat of an integer constant)

where every value of the narrow float chain is an integer the narrow format holds exactly
(f16: |v| <= 2048, bf16: |v| <= 256, from the integer type's range and the constants): the
narrow chain then rounds nowhere, and f32 (exact below 2^24) computes the same numbers. The
chain is a cast from an integer type and additions or subtractions of such constants.

A kernel written for tensor cores dequantizes to f16 (`cast<f16>(w) - ZERO`, skinny_wq,
gemv_tc), and a CPU dot casts its f16 operands to f32: for weights of more than 5 bits (no
code table, `backends/llvm/code_tables.py`) each register of 16 weights went int -> f32 ->
f16 -> f32 (`vcvtps2ph` and `vcvtph2ps`) for nothing. The GPU pipeline does not run this pass
(an mma takes the f16 values).
"""

from __future__ import annotations

from collections.abc import Sequence

from lpir.passes.base import Pass, register_pass
from lpir.passes.canonicalize import splat_constant

from lpir.dtypes import DType, dtype
from lpir.ir.core import Module, Operation, Value
from lpir.ir.ops import BinaryOp, CastOp, ConstantOp, SplatOp
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import VectorType

F32 = dtype("f32")


def exact_integers(dt: DType) -> int:
    """The largest integer magnitude below which a float format holds every integer."""
    return 1 << (dt.mantissa_bits + 1)


def integer_range(value: Value) -> tuple[int, int] | None:
    """[lo, hi] of the integers an (old) narrow-float vector holds, where it is a cast from an
    integer type plus or minus integer constants, every step exact in its format; else None."""
    dt = value.type.dtype  # type: ignore[attr-defined]
    owner = value.owner
    if isinstance(owner, CastOp):
        source = owner.operands[0].type.dtype  # type: ignore[attr-defined]
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
        return self.copy(op).results

    def widened_cast(self, op: CastOp) -> Value | None:
        source = op.operands[0]
        narrow = source.type.dtype  # type: ignore[attr-defined]
        if op.result.type.dtype != F32 or narrow.name not in ("f16", "bf16"):  # type: ignore[attr-defined]
            return None
        if not isinstance(source.type, VectorType) or integer_range(source) is None:
            return None
        return self.in_f32(source)

    def in_f32(self, value: Value) -> Value:
        """The (old) exact narrow chain rebuilt in f32 from mapped operands."""
        owner = value.owner
        if isinstance(owner, CastOp):
            return self.builder.add(CastOp.create(self.map(owner.operands[0]), F32))
        left, right = owner.operands  # type: ignore[union-attr]
        constant = self.builder.add(ConstantOp.create(float(_integer_constant(right)), F32))
        splat = self.builder.add(SplatOp.create_vector(constant, right.type.size))  # type: ignore[attr-defined]
        return self.builder.add(BinaryOp.create(owner.name, self.in_f32(left), splat))  # type: ignore[union-attr]


@register_pass
class WidenExactCastsPass(Pass):
    name = "widen-exact-casts"

    def run(self, module: Module) -> Module:
        return _WidenExactCasts().run(module)
