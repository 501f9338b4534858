"""Exact rewrites across thread-IR ops that LLVM cannot find itself.

`cast<f32>(q) ± c`, for a narrow integer q and an integral constant c (the zero point of a
dequantization, `cast<f32>(w) - 8.0`), becomes one integer op and one float op with no
conversion instruction: OR-ing q into the mantissa of 2^23 gives the float 2^23 + q exactly
(signed q is added to 2^23 + 2^22 instead), and subtracting the constant 2^23 ∓ c leaves q ± c.
Every intermediate is an integer below 2^24, so each float op is exact and the result is the
same bits as the interpreter's (a zero result is +0 both ways). On x86 the OR merges with the
mask of `unpack_bits` into one `vpternlogd`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir
from lpir.backends.llvm.types import F32, I32, constant, like

from lpir.ir.core import Operation, Value

if TYPE_CHECKING:
    from lpir.backends.llvm.kernel import KernelEmitter

MAGIC = 2.0**23


def integral_constant(e: KernelEmitter, value: Value) -> float | None:
    """The value of a scalar constant or a splat of one, if integral and small."""
    op = e.producer(value)
    if op is not None and op.name == "splat":
        op = e.producer(op.operands[0])
    if op is None or op.name != "constant":
        return None
    number = op.attributes["value"]
    if isinstance(number, bool) or not abs(number) <= 2**20 or float(number) != int(number):
        return None
    return float(number)


def small_int_to_f32(e: KernelEmitter, value: Value) -> Value | None:
    """The integer operand q of `value = cast<f32>(q)`, if every q fits in 17 bits."""
    op = e.producer(value)
    if op is None or op.name != "cast" or op.result.type.dtype.name != "f32":
        return None
    source = op.operands[0]
    dt = source.type.dtype
    if not dt.is_int or dt.nbits > 16:
        return None
    return source


def zero_point(e: KernelEmitter, op: Operation) -> ir.Value | None:
    """`cast<f32>(q) - c` or `cast<f32>(q) + c` without a conversion, else None."""
    if op.name not in ("add", "sub") or op.result.type.dtype.name != "f32":
        return None
    lhs, rhs = op.operands
    c = integral_constant(e, rhs)
    q = small_int_to_f32(e, lhs)
    if c is None or q is None or not e.has(q):
        return None
    b = e.b
    codes = e.get(q)
    wide = like(codes, I32)
    if q.type.dtype.kind == "uint":
        base = MAGIC
        bits = b.or_(b.zext(codes, wide), constant(codes, I32, 0x4B000000))
    else:
        base = MAGIC + 2.0**22
        bits = b.add(b.sext(codes, wide), constant(codes, I32, 0x4B400000))
    biased = b.bitcast(bits, like(codes, F32))  # base + q, exactly
    offset = base + c if op.name == "sub" else base - c
    return b.fsub(biased, constant(biased, F32, offset))


__all__ = ["zero_point"]
