"""Float formats in integer arithmetic: decode any code to f32, encode f32 to any code.

One algorithm serves every float format narrower than f32 — small floats (3 to 8 bits), fp8,
f16 and bf16 — parameterized by exponent bits E, mantissa bits M, bias and which codes are
special. Everything is branch-free integer and float arithmetic on scalars or whole vectors,
bit-exact with `lpir.dtypes` (round to nearest even, saturation or IEEE overflow, NaN codes).

Decoding places the exponent and mantissa fields into an f32 (subnormals through one exact
multiply). Encoding rounds the f32 mantissa to M bits with the classic add-and-shift
(`a + (half - 1) + lowest kept bit`), takes the subnormal range through `roundeven` of the
value scaled by a power of two, then clamps.
"""

from __future__ import annotations

from llvmlite import ir
from lpir.backends.llvm.intrinsics import Intrinsics
from lpir.backends.llvm.types import F32, F64, I32, I64, constant, like

from lpir.dtypes import DType


class FloatCodec:
    """Decode/encode helpers for one float format (narrower than f32) on an IRBuilder."""

    def __init__(self, builder: ir.IRBuilder, intrinsics: Intrinsics, dt: DType):
        self.b = builder
        self.intrinsics = intrinsics
        self.dt = dt
        self.E, self.M, self.bias = dt.exponent_bits, dt.mantissa_bits, dt.bias
        self.code_type = ir.IntType(8 if dt.nbits <= 8 else 16)

    def c32(self, value: ir.Value, number: int) -> ir.Constant:
        return constant(value, I32, number)

    # ---- decode ---------------------------------------------------------------------------
    def decode(self, code: ir.Value) -> ir.Value:
        """f32 value(s) of code(s) (i8 or i16, scalar or vector)."""
        b, dt = self.b, self.dt
        c = b.zext(code, like(code, I32))
        if dt.name == "bf16":
            return b.bitcast(b.shl(c, self.c32(c, 16)), like(code, F32))
        sign = b.and_(b.lshr(c, self.c32(c, dt.nbits - 1)), self.c32(c, 1))
        exponent = b.and_(b.lshr(c, self.c32(c, self.M)), self.c32(c, (1 << self.E) - 1))
        mantissa = b.and_(c, self.c32(c, (1 << self.M) - 1))
        normal_bits = b.or_(
            b.shl(b.add(exponent, self.c32(c, 127 - self.bias)), self.c32(c, 23)),
            b.shl(mantissa, self.c32(c, 23 - self.M)),
        )
        normal = b.bitcast(normal_bits, like(code, F32))
        scale = constant(c, F32, 2.0 ** (1 - self.bias - self.M))
        subnormal = b.fmul(b.uitofp(mantissa, like(code, F32)), scale)
        is_zero_exponent = b.icmp_unsigned("==", exponent, self.c32(c, 0))
        magnitude = b.select(is_zero_exponent, subnormal, normal)
        magnitude = self.special_values(magnitude, exponent, mantissa)
        bits = b.or_(b.bitcast(magnitude, like(code, I32)), b.shl(sign, self.c32(c, 31)))
        return b.bitcast(bits, like(code, F32))

    def special_values(
        self, magnitude: ir.Value, exponent: ir.Value, mantissa: ir.Value
    ) -> ir.Value:
        b, dt = self.b, self.dt
        top = b.icmp_unsigned("==", exponent, self.c32(exponent, (1 << self.E) - 1))
        nan = constant(magnitude, F32, float("nan"))
        if dt.variant == "ieee":
            infinite = b.icmp_unsigned("==", mantissa, self.c32(mantissa, 0))
            special = b.select(infinite, constant(magnitude, F32, float("inf")), nan)
            return b.select(top, special, magnitude)
        if dt.variant == "fn":
            full = b.icmp_unsigned("==", mantissa, self.c32(mantissa, (1 << self.M) - 1))
            return b.select(b.and_(top, full), nan, magnitude)
        return magnitude

    # ---- encode ---------------------------------------------------------------------------
    def encode(self, value: ir.Value) -> ir.Value:
        """Code(s) of f32 value(s): round to nearest even, saturate or overflow, NaN codes."""
        b, dt = self.b, self.dt
        if dt.name == "bf16":
            return self.encode_bf16(value)
        bits = b.bitcast(value, like(value, I32))
        sign = b.lshr(bits, self.c32(bits, 31))
        magnitude = b.and_(bits, self.c32(bits, 0x7FFFFFFF))
        code = b.select(
            b.icmp_unsigned("<", magnitude, self.c32(bits, (128 - self.bias) << 23)),
            self.subnormal_code(value),
            self.normal_code(magnitude),
        )
        code = self.clamp(code)
        is_nan = b.icmp_unsigned(">", magnitude, self.c32(bits, 0x7F800000))
        sign_bit = b.shl(sign, self.c32(bits, dt.nbits - 1))
        if dt.variant == "finite":
            # No NaN code: a zero whose sign is the NaN's flipped (as ml_dtypes does).
            nan_code = b.shl(b.xor(sign, self.c32(bits, 1)), self.c32(bits, dt.nbits - 1))
            code = b.or_(code, sign_bit)
        else:
            nan_code = b.or_(sign_bit, self.c32(bits, self.nan_payload()))
            code = b.or_(code, sign_bit)
        code = b.select(is_nan, nan_code, code)
        return b.trunc(code, like(value, self.code_type))

    def encode_bf16(self, value: ir.Value) -> ir.Value:
        """bf16 has f32's exponent range: its code is the f32's high half rounded to nearest
        even on the bits (subnormals and overflow to infinity included; the carry never
        reaches the sign), and a NaN the quiet NaN of its sign. The same codes as the generic
        path, in 9 integer operations. (The NaN is chosen before the shift: selecting between
        shifted codes sent LLVM 22's code generator into an endless loop on a kernel of bf16
        clamps, tests/test_llvm_elementwise.py.)"""
        b = self.b
        bits = b.bitcast(value, like(value, I32))
        lowest_kept = b.and_(b.lshr(bits, self.c32(bits, 16)), self.c32(bits, 1))
        rounded = b.add(bits, b.add(lowest_kept, self.c32(bits, 0x7FFF)))
        magnitude = b.and_(bits, self.c32(bits, 0x7FFFFFFF))
        is_nan = b.icmp_unsigned(">", magnitude, self.c32(bits, 0x7F800000))
        quiet = b.or_(
            b.and_(bits, self.c32(bits, -(1 << 31))), self.c32(bits, self.nan_payload() << 16)
        )
        chosen = b.select(is_nan, quiet, rounded)
        return b.trunc(b.lshr(chosen, self.c32(bits, 16)), like(value, self.code_type))

    def nan_payload(self) -> int:
        dt = self.dt
        if dt.variant == "fn":
            return (1 << (dt.nbits - 1)) - 1  # S.1111.111
        # IEEE: the quiet NaN, the top mantissa bit set.
        return (((1 << self.E) - 1) << self.M) | (1 << (self.M - 1))

    def normal_code(self, magnitude: ir.Value) -> ir.Value:
        b = self.b
        drop = 23 - self.M
        rounded = magnitude
        if drop > 0:
            lowest_kept = b.and_(
                b.lshr(magnitude, self.c32(magnitude, drop)), self.c32(magnitude, 1)
            )
            half = self.c32(magnitude, (1 << (drop - 1)) - 1)
            rounded = b.lshr(b.add(b.add(magnitude, half), lowest_kept), self.c32(magnitude, drop))
        return b.sub(rounded, self.c32(magnitude, (127 - self.bias) << self.M))

    def subnormal_code(self, value: ir.Value) -> ir.Value:
        b = self.b
        scaled = b.call(self.intrinsics.get("llvm.fabs", value.type), [value])
        exponent = self.bias + self.M - 1
        while exponent > 0:  # powers of two past f32's range (bf16) take two exact steps
            step = min(exponent, 100)
            scaled = b.fmul(scaled, constant(value, F32, 2.0**step))
            exponent -= step
        rounded = b.call(self.intrinsics.get("llvm.roundeven", value.type), [scaled])
        return b.fptoui(rounded, like(value, I32))

    def clamp(self, code: ir.Value) -> ir.Value:
        b, dt = self.b, self.dt
        if dt.variant == "ieee":
            limit = ((1 << self.E) - 1) << self.M  # infinity: overflow goes there
        elif dt.variant == "fn":
            limit = (1 << (dt.nbits - 1)) - 2  # S.1111.110 = 448 for e4m3
        else:
            limit = (1 << (dt.nbits - 1)) - 1
        too_big = b.icmp_unsigned(">", code, self.c32(code, limit))
        return b.select(too_big, self.c32(code, limit), code)


def round_to_odd_f32(builder: ir.IRBuilder, intrinsics: Intrinsics, value: ir.Value) -> ir.Value:
    """f64 -> f32 rounding to odd: a later rounding to 22 bits or fewer is then correct."""
    b = builder
    rounded = b.fptrunc(value, like(value, F32))
    back = b.fpext(rounded, like(value, F64))
    inexact = b.fcmp_unordered("!=", back, value)
    inexact = b.and_(inexact, b.fcmp_ordered("==", value, value))
    fabs = intrinsics.get("llvm.fabs", value.type)
    too_far = b.fcmp_ordered(">", b.call(fabs, [back]), b.call(fabs, [value]))
    bits = b.bitcast(rounded, like(value, I32))
    toward_zero = b.sub(bits, constant(bits, I32, 1))  # one ulp closer to zero in magnitude
    bits = b.select(b.and_(too_far, inexact), toward_zero, bits)
    bits = b.or_(bits, b.zext(inexact, like(value, I32)))
    return b.bitcast(bits, like(value, F32))


__all__ = ["I64", "FloatCodec", "round_to_odd_f32"]
