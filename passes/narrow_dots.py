"""narrow-dots: a `dot` whose b repeats one column multiplies that column once (CPU).

Requires: tile IR (before layout-selection). Guarantees: the same values up to the order of a
dot's additions, which is each target's own anyway:

    dot(a, broadcast(c, [K, N]), acc)  ->  acc + broadcast(dot(a, c, 0), [M, N])

where `c` is [K, 1]. A GEMV written for tensor cores puts x into all N = 8 columns of an mma
(`load(x[k0 :+ BK])[:, None] * ones<f16>[1, 8]`, which canonicalize leaves a broadcast): an
mma computes them at no extra cost, but a CPU would do every column's multiplies and adds.
With `acc` a splat of zero the add disappears. The GPU pipeline does not run this pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lpir.passes.base import Pass, register_pass
from lpir.passes.canonicalize import splat_constant

from lpir.ir.core import Module, Operation, Value
from lpir.ir.ops import BinaryOp, BroadcastOp, ConstantOp, DotOp, SplatOp
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import TileType


def repeated_column(b: Value) -> Value | None:
    """The [K, 1] tile that `b` ([K, N], N > 1) repeats in every column, or None."""
    owner = b.owner
    if not isinstance(owner, BroadcastOp):
        return None
    column = owner.operands[0]
    shape = column.type.shape  # type: ignore[attr-defined]
    if shape[1] != 1 or b.type.shape[1] == 1:  # type: ignore[attr-defined]
        return None
    return column


def _is_positive_zero(constant) -> bool:
    """0 or +0.0: what the narrowed dot starts from (acc + x keeps a -0.0 accumulator's sign
    where x is -0.0, so such an accumulator is still added)."""
    return constant is not None and constant == 0 and math.copysign(1.0, constant) > 0


def _has_layout(value: Value) -> bool:
    return isinstance(value.type, TileType) and value.type.layout is not None


class _NarrowDots(Rewriter):
    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        if isinstance(op, DotOp):
            narrowed = self.narrowed(op)
            if narrowed is not None:
                return [narrowed]
        return self.copy(op).results

    def narrowed(self, op: DotOp) -> Value | None:
        a, b, acc = self.map_all(op.operands)
        column = repeated_column(b)
        # a user's layout annotation on any of them is theirs to keep
        if column is None or any(_has_layout(v) for v in (a, b, acc, op.result)):
            return None
        m, n = acc.type.shape  # type: ignore[attr-defined]
        dt = acc.type.dtype  # type: ignore[attr-defined]
        zero = self.builder.add(ConstantOp.create(0.0 if dt.is_float else 0, dt))
        zeros = self.builder.add(SplatOp.create(zero, (m, 1)))
        narrow = self.builder.add(DotOp.create(a, column, zeros))
        wide = self.builder.add(BroadcastOp.create(narrow, (m, n)))
        if _is_positive_zero(splat_constant(acc)):
            return wide
        return self.builder.add(BinaryOp.create("add", acc, wide))


@register_pass
class NarrowDotsPass(Pass):
    name = "narrow-dots"

    def run(self, module: Module) -> Module:
        return _NarrowDots().run(module)
