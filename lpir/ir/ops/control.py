"""Structured control flow: `for`, `if` and `yield`.

Both levels use these. In tile IR every condition and bound is a block-uniform scalar, so all
threads of a block take the same path; passes and backends rely on that (a `sync` or `barrier`
inside a loop is reached by every thread).

    %acc.1 = for %k0 = %lo to %hi step %st stages 2 iter_args(%acc = %acc.0) -> f32[32, 256] {
      ...
      yield %next
    }

    %r = if %cond -> f32[8] {
      yield %a
    } else {
      yield %b
    }
"""

from __future__ import annotations

from collections.abc import Sequence

from lpir.errors import TypeCheckError
from lpir.ir.core import Operation, Region, Value
from lpir.ir.ops.arith import ConstantOp
from lpir.ir.signature import INT, Signature, at_least, exactly
from lpir.ir.types import ScalarType, Type, agree


class YieldOp(Operation):
    """Ends a `for` or `if` region, passing its values on."""

    names = ("yield",)
    signature = Signature(operands=at_least(0))

    @classmethod
    def create(cls, values: Sequence[Value] = ()) -> YieldOp:
        return cls("yield", list(values))


class ForOp(Operation):
    """A counted loop `for iv in range(lower, upper, step)` carrying `iter_args`.

    Operands: lower, upper, step (integer scalars of one dtype), then the initial iteration
    values. The body's arguments are the induction variable and the iteration values; it ends in
    a `yield` of the next iteration values. The results are the final iteration values.
    The optional attribute `stages` (from `range(..., stages = S)`) asks for the loop's global
    loads to be issued S - 1 iterations ahead (passes/pipeline_loads.py).
    """

    names = ("for",)
    signature = Signature(
        operands=at_least(3), results=at_least(0), regions=exactly(1), optional={"stages": INT}
    )

    @classmethod
    def create(
        cls,
        lower: Value,
        upper: Value,
        step: Value,
        inits: Sequence[Value] = (),
        iv_name: str | None = None,
        iter_names: Sequence[str | None] | None = None,
        result_names: Sequence[str | None] | None = None,
    ) -> ForOp:
        for bound in (lower, upper, step):
            if not isinstance(bound.type, ScalarType) or not bound.type.dtype.is_int:
                raise TypeCheckError(f"loop bounds must be integer scalars, not {bound.type}")
        iv = Value(lower.type, iv_name)
        iter_names = list(iter_names) if iter_names else [None] * len(inits)
        iter_args = [Value(init.type, n) for init, n in zip(inits, iter_names)]
        body = Region([iv, *iter_args])
        return cls(
            "for",
            [lower, upper, step, *inits],
            [init.type for init in inits],
            regions=[body],
            result_names=result_names,
        )

    @property
    def body(self) -> Region:
        return self.regions[0]

    @property
    def induction_variable(self) -> Value:
        return self.body.args[0]

    @property
    def iter_args(self) -> list[Value]:
        return self.body.args[1:]

    @property
    def lower(self) -> Value:
        return self.operands[0]

    @property
    def upper(self) -> Value:
        return self.operands[1]

    @property
    def step(self) -> Value:
        return self.operands[2]

    @property
    def inits(self) -> list[Value]:
        return self.operands[3:]

    @property
    def stages(self) -> int | None:
        """The `stages` the source asked for, or None (the target's default)."""
        return self.attributes.get("stages")

    def verify_(self) -> None:
        for bound in self.operands[:3]:
            if not isinstance(bound.type, ScalarType) or not bound.type.dtype.is_int:
                raise self.error(f"loop bounds must be integer scalars, not {bound.type}")
        step = self.step.owner
        if isinstance(step, ConstantOp) and isinstance(step.value, int) and step.value <= 0:
            raise self.error(f"the step is {step.value}; a loop step must be positive")
        if self.stages is not None and self.stages < 1:
            raise self.error(f"stages is {self.stages}; it must be at least 1")
        if not self.body.args:
            raise self.error("the body has no induction variable")
        types = [v.type for v in self.inits]
        if [a.type for a in self.iter_args] != types:
            raise self.error("iteration arguments do not match the initial values")
        if [r.type for r in self.results] != types:
            raise self.error("results do not match the initial values")
        bounds = {v.type for v in self.operands[:3]} | {self.induction_variable.type}
        if len(bounds) != 1:
            raise self.error(f"bounds and induction variable differ in type: {bounds}")
        _check_yield(self, self.body, types)


class IfOp(Operation):
    """`if cond { ... } else { ... }` on a bool scalar; both regions yield the results."""

    names = ("if",)
    signature = Signature(operands=exactly(1), results=at_least(0), regions=exactly(2))

    @classmethod
    def create(
        cls,
        cond: Value,
        result_types: Sequence[Type] = (),
        result_names: Sequence[str | None] | None = None,
        regions: Sequence[Region] | None = None,
    ) -> IfOp:
        """An `if` on `cond`; `regions` are its then and else regions (two empty ones if None)."""
        if not isinstance(cond.type, ScalarType) or not cond.type.dtype.is_bool:
            raise TypeCheckError(
                f"an if condition must be a bool scalar, not {cond.type}",
                hint="compare to get a bool, e.g. if k > 0 { ... }",
            )
        return cls(
            "if",
            [cond],
            list(result_types),
            regions=list(regions) if regions is not None else [Region(), Region()],
            result_names=result_names,
        )

    @property
    def then_region(self) -> Region:
        return self.regions[0]

    @property
    def else_region(self) -> Region:
        return self.regions[1]

    def verify_(self) -> None:
        cond = self.operands[0].type
        if not isinstance(cond, ScalarType) or not cond.dtype.is_bool:
            raise self.error(f"the condition must be a bool scalar, not {cond}")
        if self.then_region.args or self.else_region.args:
            raise self.error("the regions of an if take no arguments")
        types = [r.type for r in self.results]
        _check_yield(self, self.then_region, types)
        _check_yield(self, self.else_region, types)


def _check_yield(op: Operation, region: Region, types: list) -> None:
    terminator = region.terminator
    if not isinstance(terminator, YieldOp):
        raise op.error("region does not end in 'yield'")
    yielded = [v.type for v in terminator.operands]
    if len(yielded) != len(types) or not all(map(agree, yielded, types)):
        shown = ", ".join(map(str, yielded)) or "nothing"
        expected = ", ".join(map(str, types)) or "nothing"
        raise op.error(f"region yields {shown} but {expected} is expected")
