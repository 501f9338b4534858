"""What a loop does with its iteration values, for the passes that rewrite loops."""

from __future__ import annotations

from dataclasses import dataclass

from lpir.ir.core import Value, use_counts
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
