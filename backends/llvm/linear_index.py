"""Index values as linear functions of one variable: the coefficient c in `c * v + rest`.

Addresses in thread IR are sums, differences, products and shifts of a few sources: a loop's
induction variable, the block's indices, the thread's index, constants. Two CPU decisions ask
how far an address moves when one of those moves: a software prefetch (how far a load walks a
step of its loop, prefetch.py) and the order of the blocks (how far an access moves a step of a
grid axis, block_order.py).
"""

from __future__ import annotations

from collections.abc import Callable

from lpir.ir.core import Operation, Value
from lpir.ir.ops import ConstantOp

# ops whose value is the same whatever the variable (where `known` does not say otherwise)
INVARIANT = ("constant", "block_index", "thread_index")
# ops that do not move where none of their operands does (and are no linear function otherwise)
STILL_WHERE_OPERANDS_ARE = ("rem", "shr", "and", "or", "xor", "min", "max")


def linear_coefficient(
    value: Value, known: Callable[[Value], int | None], memo: dict[int, int | None]
) -> int | None:
    """c where `value` is c times the variable plus terms that do not move with it, or None
    where it is no such function. `known(v)` gives the coefficient of values it decides (1
    for the variable, 0 for what does not move with it) and None for those to look into:
    sums, differences, products by a constant, shifts by one and divisions by a constant that
    divides the coefficient (element to packed byte: the coefficient's share of the quotient,
    exact where the other terms do not carry into it); any other bit or integer operation of
    terms that do not move (a thread's column, `tid % 8`) does not move either."""
    decided = known(value)
    if decided is not None:
        return decided
    owner = value.owner
    if not isinstance(owner, Operation):
        return 0  # an argument: the same throughout
    if id(value) not in memo:
        memo[id(value)] = _coefficient_of(owner, known, memo)
    return memo[id(value)]


def _coefficient_of(
    op: Operation, known: Callable[[Value], int | None], memo: dict[int, int | None]
) -> int | None:
    if op.name in INVARIANT:
        return 0
    if op.name in STILL_WHERE_OPERANDS_ARE:
        return _invariant(op, known, memo)
    if op.name not in ("add", "sub", "mul", "shl", "div"):
        return None
    left, right = (linear_coefficient(v, known, memo) for v in op.operands)
    if left is None or right is None:
        return None
    if op.name == "div":  # by a constant that divides the coefficient: a packed byte's index
        divisor = op.operands[1].owner
        if right or not isinstance(divisor, ConstantOp) or left % int(divisor.value):
            return None
        return left // int(divisor.value)
    if op.name in ("add", "sub"):
        return left + right if op.name == "add" else left - right
    if left and right:
        return None  # a product of two moving values
    moving, factor = (left, op.operands[1]) if left else (right, op.operands[0])
    if not moving:
        return 0
    scale = factor.owner
    if not isinstance(scale, ConstantOp):
        return None
    factor_value = int(scale.value)  # an index constant
    return moving * factor_value if op.name == "mul" else moving << factor_value


def _invariant(
    op: Operation, known: Callable[[Value], int | None], memo: dict[int, int | None]
) -> int | None:
    """0 where every operand of `op` stays the same as the variable moves, else None."""
    coefficients = [linear_coefficient(v, known, memo) for v in op.operands]
    return 0 if all(c == 0 for c in coefficients) else None


__all__ = ["INVARIANT", "linear_coefficient"]
