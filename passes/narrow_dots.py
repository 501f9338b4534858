"""narrow-dots: a `dot` whose b repeats one column multiplies that column once (CPU).

Requires: tile IR (before layout-selection). Guarantees: the same values up to the order of a
dot's additions, which is each target's own anyway:

    dot(a, broadcast(c, [K, N]), acc)  ->  acc + broadcast(dot(a, c, 0), [M, N])

where `c` is [K, 1]. A GEMV written for tensor cores puts x into all N = 8 columns of an mma
(`load(x[k0 :+ BK])[:, None] * ones<f16>[1, 8]`, which canonicalize leaves a broadcast): an
mma computes them at no extra cost, but a CPU would do every column's multiplies and adds.
With `acc` a splat of zero the add disappears.

Then a loop accumulator whose columns stay equal is carried as one column:

    %acc = for ... iter_args(%a = splat) {        %c = for ... iter_args(%a1 = splat [M, 1]) {
      yield(add(%a, broadcast(%t)))        ->       yield(add(%a1, %t))
    }                                             }
                                                  %acc = broadcast(%c, [M, N])

where the added term is built from broadcasts of [M, 1] columns and splats by elementwise
arithmetic (examples/gemv_tc.lp's `acc += dot(wt, xt) * st[:, None]`): the columns of such
a term are equal, so each column of the accumulator adds the same numbers in the same order.
Without it the [M, 1] dot result would meet the [M, N] accumulator's layout through shared
memory in every iteration. The GPU pipeline does not run this pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lpir.passes.base import Pass, register_pass
from lpir.passes.canonicalize import splat_constant

from lpir.ir.core import Module, Operation, Value
from lpir.ir.loops import Accumulation, accumulations
from lpir.ir.ops import BinaryOp, BroadcastOp, ConstantOp, DotOp, ForOp, SplatOp
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import TileType, as_tile


def repeated_column(b: Value) -> Value | None:
    """The [K, 1] tile that `b` ([K, N], N > 1) repeats in every column, or None."""
    owner = b.owner
    if not isinstance(owner, BroadcastOp):
        return None
    column = owner.operands[0]
    shape = as_tile(column.type).shape
    if shape[1] != 1 or as_tile(b.type).shape[1] == 1:
        return None
    return column


def _is_positive_zero(constant: int | float | bool | None) -> bool:
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
        m, n = as_tile(acc.type).shape
        dt = acc.type.dtype
        zero = self.builder.add(ConstantOp.create(0.0 if dt.is_float else 0, dt))
        zeros = self.builder.add(SplatOp.create(zero, (m, 1)))
        narrow = self.builder.add(DotOp.create(a, column, zeros))
        wide = self.builder.add(BroadcastOp.create(narrow, (m, n)))
        if _is_positive_zero(splat_constant(acc)):
            return wide
        return self.builder.add(BinaryOp.create("add", acc, wide))


# Elementwise ops that keep equal columns equal (each result column is the same function of
# the operands' columns).
_COLUMNWISE = ("add", "sub", "mul", "div", "max", "min")


def _equal_columns(value: Value) -> bool:
    """Whether `value` ([M, N], N > 1) is a broadcast column, a splat, or elementwise
    arithmetic of such values: all its columns equal, computable as one [M, 1] column."""
    owner = value.owner
    if isinstance(owner, BroadcastOp):
        return as_tile(owner.operands[0].type).shape[1] == 1
    if isinstance(owner, SplatOp):
        return True
    if isinstance(owner, BinaryOp) and owner.name in _COLUMNWISE:
        return all(_equal_columns(v) for v in owner.operands)
    return False


def _is_wide_matrix(value: Value) -> bool:
    return (
        isinstance(value.type, TileType)
        and value.type.rank == 2
        and value.type.shape[1] > 1
        and value.type.layout is None  # a user's layout annotation is theirs to keep
    )


def narrowable_accumulators(loop: ForOp) -> dict[int, Accumulation]:
    """Iteration values of `loop` whose columns stay equal: a wide [M, N] start that is one
    column repeated (or a splat), and each iteration adds a term of equal columns to it (its
    only use)."""
    return {
        index: accumulation
        for index, accumulation in accumulations(loop).items()
        if _is_wide_matrix(loop.iter_args[index])
        and _equal_columns(loop.inits[index])
        and _equal_columns(accumulation.term)
    }


class _NarrowAccumulators(Rewriter):
    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        if isinstance(op, ForOp):
            narrow = narrowable_accumulators(op)
            if narrow:
                return self.narrowed_loop(op, narrow)
        return self.copy(op).results

    def column(self, value: Value) -> Value:
        """The [M, 1] column of an (old) value of equal columns, built from mapped values."""
        owner = value.owner
        rows = as_tile(value.type).shape[0]
        if isinstance(owner, BroadcastOp):
            source = self.map(owner.operands[0])
            if as_tile(source.type).shape[0] == rows:
                return source
            return self.builder.add(BroadcastOp.create(source, (rows, 1)))  # a [1, 1] tile
        if isinstance(owner, SplatOp):
            return self.builder.add(SplatOp.create(self.map(owner.operands[0]), (rows, 1)))
        assert isinstance(owner, BinaryOp)  # columns are broadcasts, splats and their arithmetic
        a, b = (self.column(v) for v in owner.operands)
        return self.builder.add(BinaryOp.create(owner.name, a, b))

    def narrowed_loop(self, loop: ForOp, narrow: dict[int, Accumulation]) -> list[Value]:
        inits = self.map_all(loop.inits)
        for index in narrow:
            inits[index] = self.column(loop.inits[index])
        new = self.rebuilt_loop(loop, inits)
        adds = {id(accumulation.add): index for index, accumulation in narrow.items()}
        with self.builder.at(new.body):
            for op in loop.body.ops:
                if id(op) not in adds:
                    self.rewrite_op(op)
                    continue
                index = adds[id(op)]
                carried = self.map(loop.iter_args[index])
                column = self.column(narrow[index].term)
                lhs, rhs = (carried, column) if narrow[index].carried_first else (column, carried)
                self.replace(op.result, self.builder.add(BinaryOp.create("add", lhs, rhs)))
        results = list(new.results)
        for index in narrow:
            shape = as_tile(loop.results[index].type).shape
            results[index] = self.builder.add(BroadcastOp.create(new.results[index], shape))
        return results


@register_pass
class NarrowDotsPass(Pass):
    name = "narrow-dots"
    stage = "tile"

    def run(self, module: Module) -> Module:
        return _NarrowAccumulators().run(_NarrowDots().run(module))
