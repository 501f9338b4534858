"""What a loop does with its iteration values, for the passes that rewrite loops."""

from __future__ import annotations

from dataclasses import dataclass

from lpir.dtypes import DType
from lpir.ir.core import Operation, Region, Value, use_counts
from lpir.ir.ops import BinaryOp, ForOp


@dataclass(frozen=True)
class Accumulation:
    """An iteration value that each iteration only adds `term` to: the body yields
    `add(carried, term)` (or `add(term, carried)`), the carried value's one use."""

    add: BinaryOp
    term: Value
    carried_first: bool


def accumulations(loop: ForOp) -> dict[int, Accumulation]:
    """The iteration values of `loop` (by index) whose only use in the body is one `add`
    whose result is yielded in their place and used nowhere else."""
    uses = use_counts(loop.body)
    yielded = loop.body.yielded
    found = {}
    for index, carried in enumerate(loop.iter_args):
        add = yielded[index].owner
        if uses.get(id(carried)) != 1 or uses.get(id(yielded[index])) != 1:
            continue
        if not isinstance(add, BinaryOp) or add.name != "add" or carried not in add.operands:
            continue
        first = add.operands[0] is carried
        term = add.operands[1] if first else add.operands[0]
        if term is not carried:
            found[index] = Accumulation(add, term, first)
    return found


def step_may_overflow(upper: int | None, step: int | None, dtype: DType) -> bool:
    """Whether `iv + step`, after an iteration with `iv < upper`, can pass the largest value of
    the induction variable's `dtype` (None: not a compile-time constant). A step of 1 cannot
    (iv + 1 <= upper); neither can a constant step below a constant bound that leaves room
    for it. Elsewhere (`range(lo, hi, 4)` with hi near 2^31) a backend must not add past
    hi: a wrapped sum is below hi again, and the loop would not end."""
    if step is None:
        return True
    if step == 1:
        return False
    return upper is None or upper - 1 + step > dtype.max


def trip_count(lower: int, upper: int, step: int) -> int:
    """How many iterations `range(lower, upper, step)` runs, for a step above 0 (as
    `len(range(...))`, which overflows past sys.maxsize for 64-bit bounds)."""
    return max(0, -(-(upper - lower) // step))


def in_a_loop(region: Region | None) -> bool:
    """Whether ops in `region` run inside a `for` loop's body (at any depth): a shared tile
    written there may still be read by the last iteration's threads."""
    while region is not None and isinstance(region.parent, Operation):
        if isinstance(region.parent, ForOp):
            return True
        region = region.parent.parent
    return False
