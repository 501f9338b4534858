"""Constant folding: the language's binary operators on compile-time constants, with the
semantics the operators have at run time (C division, IEEE float division, NaN-passing max and
min, bool rules). Integer constants fold exactly, without a width: their results are checked
when they meet a dtype.

`folded_scalar` evaluates a typed scalar built only from constants (`cast<i8>(300)`,
`cast<i8>(300) == 44`) as the interpreter would run it, for the places that need a
compile-time value (dimensions, static_assert): the typed IR of such a value is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lpir.dtypes import dtype
from lpir.errors import TypeCheckError
from lpir.interpreter import elementwise as ew
from lpir.ir.core import Value
from lpir.ir.ops import BinaryOp, CastOp, ConstantOp, SelectOp, UnaryOp
from lpir.ir.ops.arith import BOOL_ARITHMETIC_HINT, SYMBOLS
from lpir.ir.types import ScalarType


def c_division(a: int, b: int) -> int:
    """Integer division truncating toward zero (C, CUDA and LLVM `sdiv`)."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


BOOL_HINT = BOOL_ARITHMETIC_HINT
INT_CONSTANTS = (-(2**63), 2**64 - 1)  # what a folded integer constant may be: i64's to u64's
# what BinaryOp.create refuses on bool operands (cdiv is built from add and div)
NOT_ON_BOOL = ("add", "sub", "mul", "div", "rem", "shl", "shr", "cdiv")


def checked_literal(value: int | float | bool) -> int | float | bool:
    """A literal's value, where an integer fits in 64 bits (`INT_CONSTANTS`)."""
    if type(value) is int and not INT_CONSTANTS[0] <= value <= INT_CONSTANTS[1]:
        text = str(value)
        shown = text if len(text) <= 40 else f"of {len(text)} digits"
        raise TypeCheckError(
            f"the integer {shown} does not fit in 64 bits",
            hint="integers stay within i64's and u64's range; a float takes an exponent: 1e30",
        )
    return value


def constant_text(value: int | float | bool) -> str:
    """A constant as the source spells it: true, 3, 0.5."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def check_bool_constants(op: str, a: int | float | bool, b: int | float | bool) -> None:
    """Bool constants fold only where bool values are allowed at run time (`BinaryOp.create`):
    never mixed with numbers, not in `+ - * / %` or shifts, and `and`/`or` take only bools."""
    if op in ("logical_and", "logical_or"):
        for value in (a, b):
            if not isinstance(value, bool):
                raise TypeCheckError(
                    f"'{op.removeprefix('logical_')}' needs bool operands, not "
                    f"{constant_text(value)}",
                    hint="compare first, e.g. (x > 0) and (y > 0); use & and | for integer bits",
                )
        return
    symbol = SYMBOLS.get(op)
    if isinstance(a, bool) != isinstance(b, bool):
        shown = (
            f"{constant_text(a)} {symbol} {constant_text(b)}"
            if symbol
            else f"{op}({constant_text(a)}, {constant_text(b)})"
        )
        raise TypeCheckError(f"bool values do not take part in arithmetic: {shown}", hint=BOOL_HINT)
    if isinstance(a, bool) and op in NOT_ON_BOOL:
        raise TypeCheckError(f"'{symbol or op}' is not defined on bool", hint=BOOL_HINT)


def _float_extreme(
    pick: Callable[[int | float, int | float], int | float],
    a: int | float | bool,
    b: int | float | bool,
) -> int | float | bool:
    """max/min of two constants as at run time: a NaN gives the other operand."""
    if isinstance(a, float) and math.isnan(a):
        return b
    if isinstance(b, float) and math.isnan(b):
        return a
    return pick(a, b)


def _ieee(function: Callable[..., Any], a: int | float, b: int | float) -> float:
    """A float operation as IEEE arithmetic does it (by zero: inf or NaN; of inf: NaN)."""
    with np.errstate(all="ignore"):
        return float(function(np.float64(a), np.float64(b)))


# a and b are int, float or bool constants: Any, as which operators each pair takes is checked at
# run time (check_bool_constants, both_int), which mypy cannot follow into the table's lambdas
def fold_binary(op: str, a: Any, b: Any) -> int | float | bool:
    """Evaluate a binary operator on two Python constants with lpir's semantics."""
    check_bool_constants(op, a, b)
    both_int = isinstance(a, int) and isinstance(b, int)
    if op in ("div", "rem") and both_int and b == 0:
        raise TypeCheckError("division by zero in a constant expression")
    table: dict[str, Callable] = {
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "mul": lambda: a * b,
        "div": lambda: c_division(a, b) if both_int else _ieee(np.divide, a, b),
        "rem": lambda: a - c_division(a, b) * b if both_int else _ieee(np.fmod, a, b),
        "max": lambda: _float_extreme(max, a, b),
        "min": lambda: _float_extreme(min, a, b),
        "lt": lambda: a < b,
        "le": lambda: a <= b,
        "gt": lambda: a > b,
        "ge": lambda: a >= b,
        "eq": lambda: a == b,
        "ne": lambda: a != b,
        "logical_and": lambda: a and b,
        "logical_or": lambda: a or b,
    }
    if op in ("and", "or", "xor", "shl", "shr"):
        if not both_int:
            symbol = SYMBOLS.get(op, op)
            raise TypeCheckError(f"'{symbol}' needs integer constants, got {a!r} and {b!r}")
        if op in ("shl", "shr") and not 0 <= b < 64:
            raise TypeCheckError(
                f"cannot shift a constant by {b}", hint="shift constants by 0 to 63 bits"
            )
        table.update(
            {
                "and": lambda: a & b,
                "or": lambda: a | b,
                "xor": lambda: a ^ b,
                "shl": lambda: a << b,
                "shr": lambda: a >> b,
            }
        )
    result = table[op]()
    if type(result) is int and not INT_CONSTANTS[0] <= result <= INT_CONSTANTS[1]:
        # past every integer dtype, and past what a float can take from an int (an error
        # here, where the source shows which operation; OverflowError further on)
        shown = f"{constant_text(a)} {SYMBOLS.get(op, op)} {constant_text(b)}"
        raise TypeCheckError(
            f"the constant {shown} does not fit in 64 bits",
            hint="integer constants stay within i64's and u64's range",
        )
    return result


def folded_scalar(value: Value) -> int | float | bool | None:
    """The constant a scalar computed only from constants holds (through casts, arithmetic,
    comparisons and `where`), with the interpreter's semantics (`lpir.interpreter.elementwise`,
    which canonicalize folds with too); None where it depends on anything else."""
    data = _scalar_data(value)
    if data is None:
        return None
    dt = value.type.dtype
    if dt.is_small_float:  # held as its code: the number it encodes
        data = ew.cast(data, dt, dtype("f64"))
    number = np.asarray(data)[()].item()
    if dt.is_bool:
        return bool(number)
    return float(number) if dt.is_float else int(number)


def _scalar_data(value: Value) -> Any:
    """`value` as the interpreter holds it (a numpy scalar), or None if it is not constant."""
    op = value.owner
    if not isinstance(value.type, ScalarType):
        return None
    if isinstance(op, ConstantOp):
        return ew.scalar(op.value, value.type.dtype)
    if not isinstance(op, BinaryOp | UnaryOp | CastOp | SelectOp):
        return None
    operands = [_scalar_data(v) for v in op.operands]
    if any(v is None for v in operands):
        return None
    source = op.operands[-1].type.dtype
    if isinstance(op, BinaryOp):
        return ew.binary(op.name, operands[0], operands[1], op.operands[0].type.dtype)
    if isinstance(op, UnaryOp):
        return ew.unary(op.name, operands[0], source)
    if isinstance(op, CastOp):
        return ew.cast(operands[0], source, value.type.dtype)
    return ew.select(operands[0], operands[1], operands[2], value.type.dtype)
