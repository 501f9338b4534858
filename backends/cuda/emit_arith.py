"""Emitters of constants and elementwise arithmetic: binary ops, comparisons, unary math, where.

Semantics follow lpir/interpreter/elementwise.py: integer `+ - *` wrap (two's complement),
`div`/`rem` truncate and give 0 for a zero divisor, shifts take their amount modulo the bit
width, float `min`/`max` ignore a NaN operand, f16 and bf16 compute as if in f32 and round
once (native f16/bf16 `+ - *` and min/max give exactly that; the rest goes through f32),
comparisons with NaN are false except `ne`.

An op whose vector operands are all splats is computed once, as a scalar, and splatted.
"""

from __future__ import annotations

from collections.abc import Callable

from lpir.backends.cuda import c_types
from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits

from lpir.dtypes import DType, dtype
from lpir.ir.analysis import Facts
from lpir.ir.core import Operation, Value
from lpir.ir.ops import BinaryOp, ConstantOp, SelectOp, UnaryOp
from lpir.ir.types import VectorType

_C_OPERATORS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "and": "&",
    "or": "|",
    "xor": "^",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "eq": "==",
    "ne": "!=",
}
_HALF_NATIVE = {"add": "__hadd", "sub": "__hsub", "mul": "__hmul", "max": "__hmax", "min": "__hmin"}
_F32_MATH = {
    "exp": "expf",
    "exp2": "exp2f",
    "log": "logf",
    "log2": "log2f",
    "sqrt": "sqrtf",
    "floor": "floorf",
    "ceil": "ceilf",
    "round": "rintf",
    "sin": "sinf",
    "cos": "cosf",
    "tanh": "tanhf",
    "erf": "erff",
}
_ARITHMETIC_C = {"add", "sub", "mul", "div"}
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)
F32 = dtype("f32")


def to_f32(expression: str, dt: DType) -> str:
    """An f16/bf16 expression as float (exact)."""
    if dt.name == "f16":
        return f"__half2float({expression})"
    if dt.name == "bf16":
        return f"__bfloat162float({expression})"
    return expression


def from_f32(expression: str, dt: DType) -> str:
    """A float expression rounded to f16/bf16 (to nearest even)."""
    if dt.name == "f16":
        return f"__float2half_rn({expression})"
    if dt.name == "bf16":
        return f"__float2bfloat16_rn({expression})"
    return expression


def float_binary(name: str, a: str, b: str, dt: DType) -> str:
    if dt.name in ("f16", "bf16"):
        if name in _HALF_NATIVE:
            return f"{_HALF_NATIVE[name]}({a}, {b})"
        return from_f32(float_binary(name, to_f32(a, dt), to_f32(b, dt), F32), dt)
    suffix = "f" if dt.name == "f32" else ""
    if name == "rem":
        return f"fmod{suffix}({a}, {b})"
    if name in ("max", "min"):
        return f"f{name}{suffix}({a}, {b})"
    if name == "div":
        b = _ZERO_DIVISORS.get(b, b)
    return f"({a} {_C_OPERATORS[name]} {b})"


# A literal zero divisor written as its bits: the quotient is IEEE's (inf, NaN) either way, but
# nvcc warns of a division by zero (#39-D) on the literal, an error under -Werror.
_ZERO_DIVISORS = {
    "0.0f": "__int_as_float(0)",
    "-0.0f": "__int_as_float(0x80000000)",
    "0.0": "__longlong_as_double(0LL)",
    "-0.0": "__longlong_as_double(0x8000000000000000LL)",
}


def _fits_int32(facts: Facts) -> bool:
    return (
        facts.lo is not None
        and facts.hi is not None
        and INT32_RANGE[0] <= facts.lo
        and facts.hi <= INT32_RANGE[1]
    )


def int_binary(name: str, a: str, b: str, dt: DType, facts: tuple[Facts, Facts, Facts]) -> str:
    """An integer op; `facts` are the index facts of the result and both operands."""
    ctype = c_types.c_type(dt)
    result, left, right = facts
    if name in _C_OPERATORS and name not in _ARITHMETIC_C:
        if name in ("and", "or", "xor") and dt.is_bool:
            return {"and": f"({a} && {b})", "or": f"({a} || {b})", "xor": f"({a} != {b})"}[name]
        text = f"({a} {_C_OPERATORS[name]} {b})"
        return text if name not in ("and", "or", "xor") or dt.nbits >= 32 else f"({ctype}){text}"
    if name in ("max", "min"):
        return f"lpir_{name}<{ctype}>({a}, {b})"
    plain = dt.nbits == 32 and dt.kind == "int" and _fits_int32(result)
    if name in ("add", "sub", "mul"):
        if plain:
            return f"({a} {_C_OPERATORS[name]} {b})"
        return f"lpir_{name}<{ctype}>({a}, {b})"
    divisor = right.constant
    if name in ("div", "rem") and divisor is not None and divisor not in (0, -1):
        operator = "/" if name == "div" else "%"
        if dt.kind == "int" and dt.nbits == 32 and divisor > 0 and left.nonnegative():
            return f"(int)((unsigned){a} {operator} {divisor}u)"
        return f"({ctype})({a} {operator} {b})"
    if name in ("div", "rem"):
        return f"lpir_{name}<{ctype}>({a}, {b})"
    amount = right.constant
    if name == "shr" and amount is not None and 0 <= amount < dt.nbits:
        return f"({ctype})({a} >> {amount})"
    if name == "shl" and plain and amount is not None and 0 <= amount < 32:
        return f"({a} << {amount})"
    return f"lpir_{name}<{ctype}>({a}, {b})"


def binary_expression(
    name: str, a: str, b: str, dt: DType, facts: tuple[Facts, Facts, Facts]
) -> str:
    if name in _C_OPERATORS and name not in _ARITHMETIC_C and dt.is_float:
        return f"({to_f32(a, dt)} {_C_OPERATORS[name]} {to_f32(b, dt)})"
    if dt.is_float:
        return float_binary(name, a, b, dt)
    return int_binary(name, a, b, dt, facts)


def unary_expression(name: str, a: str, dt: DType) -> str:
    ctype = c_types.c_type(dt)
    if dt.is_float:
        if name == "neg":
            return f"__hneg({a})" if dt.name in ("f16", "bf16") else f"(-{a})"
        if name == "abs":
            if dt.name in ("f16", "bf16"):
                return f"__habs({a})"
            return f"fabsf({a})" if dt.name == "f32" else f"fabs({a})"
        wide = to_f32(a, dt)
        if dt.name == "f64":
            function = _F32_MATH.get(name, "")[:-1] if name != "round" else "rint"
            return f"(1.0 / sqrt({a}))" if name == "rsqrt" else f"{function}({a})"
        text = f"(1.0f / sqrtf({wide}))" if name == "rsqrt" else f"{_F32_MATH[name]}({wide})"
        return from_f32(text, dt)
    if name == "not":
        return f"(!{a})" if dt.is_bool else f"({ctype})(~{a})"
    if name in ("neg", "abs"):
        return f"lpir_{name}<{ctype}>({a})"
    raise ValueError(f"unary {name} on {dt.name}")


def _operand_lanes(emitter: KernelEmitter, operands: list[Value]) -> tuple[list[CValue], bool]:
    values = [emitter.value(v) for v in operands]
    all_splat = all(v.kind in ("splat", "scalar") for v in values)
    return values, all_splat


def emit_elementwise(
    emitter: KernelEmitter,
    op: Operation,
    expression: Callable[..., str],
    result: Value | None = None,
) -> None:
    """Define op's result (or `result`) from `expression(*operand lane expressions)`, lane by
    lane."""
    result = result if result is not None else op.result
    values, all_splat = _operand_lanes(emitter, op.operands)
    if not isinstance(result.type, VectorType):
        emitter.scalar(result, expression(*(v.text for v in values)))
        return
    if all_splat:
        name = emitter.c_name(result)
        ctype = c_types.c_type(result.type.dtype)
        emitter.w.line(f"const {ctype} {name} = {expression(*(v.text for v in values))};")
        emitter.bind(result, CValue("splat", name, result.type.dtype, result.type.size))
        return
    emitter.lanewise(result, lambda i: expression(*(v.lane(i) for v in values)))


@emits(ConstantOp)
def emit_constant(emitter: KernelEmitter, op: ConstantOp) -> None:
    dt = op.result.type.dtype
    emitter.bind(op.result, CValue("scalar", c_types.literal(op.value, dt), dt))


_PAIRED = {"f16": ("__half2", "__halves2half2", "__low2half", "__high2half")}
_PAIRED["bf16"] = ("__nv_bfloat162", "__halves2bfloat162", "__low2bfloat16", "__high2bfloat16")


def _emit_paired_half(emitter: KernelEmitter, op: BinaryOp, dt: DType) -> bool:
    """f16/bf16 `+ - * max min` on vectors, two lanes per instruction (`hmul2`, ...)."""
    result = op.result
    values = [emitter.value(v) for v in op.operands]
    if (
        dt.name not in _PAIRED
        or op.name not in _HALF_NATIVE
        or not isinstance(result.type, VectorType)
        or result.type.size % 2
        or all(v.kind in ("splat", "scalar") for v in values)
    ):
        return False
    pair_type, pack, low, high = _PAIRED[dt.name]
    target = emitter.array(result)
    w = emitter.w

    def body(j: str) -> None:
        first = f"2 * {j}" if j != "0" else "0"
        second = f"2 * {j} + 1" if j != "0" else "1"
        a, b = (f"{pack}({v.lane(first)}, {v.lane(second)})" for v in values)
        name = emitter.fresh("pair")
        w.line(f"const {pair_type} {name} = {_HALF_NATIVE[op.name]}2({a}, {b});")
        w.line(f"{target.lane(first)} = {low}({name});")
        w.line(f"{target.lane(second)} = {high}({name});")

    w.unrolled_loop(result.type.size // 2, body, variable="j")
    return True


@emits(BinaryOp)
def emit_binary(emitter: KernelEmitter, op: BinaryOp) -> None:
    dt = op.operands[0].type.dtype
    if _emit_paired_half(emitter, op, dt):
        return
    facts = tuple(emitter.analysis.facts(v) for v in (op.result, *op.operands))
    assert len(facts) == 3  # the result's and the two operands' (a binary op has two)
    emit_elementwise(emitter, op, lambda a, b: binary_expression(op.name, a, b, dt, facts))


@emits(UnaryOp)
def emit_unary(emitter: KernelEmitter, op: UnaryOp) -> None:
    dt = op.operands[0].type.dtype
    emit_elementwise(emitter, op, lambda a: unary_expression(op.name, a, dt))


@emits(SelectOp)
def emit_select(emitter: KernelEmitter, op: SelectOp) -> None:
    emit_elementwise(emitter, op, lambda c, a, b: f"({c} ? {a} : {b})")
