"""exp, exp2, tanh, erf, log, log2, sin and cos of f32 in plain LLVM IR, so that they vectorize.

LLVM lowers `llvm.exp.v16f32` to sixteen calls of libm's `expf` (it has no vector routine of its
own without a vector math library; `llvm.log` alike, and tanh has no intrinsic at all), which
made exp the slowest part of a softmax or an attention on the CPU.

exp(x) = 2^n e^r with n = round(x log2 e) and r = x - n ln 2 (two FMAs with ln 2 split in two,
so r is nearly exact), e^r by its Taylor polynomial of degree 7 in Horner form with FMAs
(|r| <= ln 2 / 2: the first term left out is below 1e-8 of the result), and 2^n as two exact
multiplies by powers of two (so that results near the overflow threshold and the subnormal ones
need no special case). Inputs are clamped first, so large ones give inf or 0 through the same
arithmetic; NaN stays NaN. tanh is its odd series near 0 and 1 - 2 / (e^(2|x|) + 1) elsewhere
(see `TANH_SERIES_BELOW`); erf is a polynomial below 1 and through exp above (`ERF_BELOW_ONE`,
`ERFC_SCALED`); log and log2 take x's exponent from its bits and the log of its
mantissa as a series (`ATANH_SERIES`); sin and cos reduce x by pi/2 in three parts and sum
their Taylor series, below 8192 (`SINCOS_VECTOR_BELOW`; past it libm per lane). Against
float64 over the 7.2 million inputs of tests/test_llvm_vector_math.py: exp, exp2 and log
within 1 ulp (0.92 at worst), tanh within 1.05, log2, sin and cos within 1.56.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from llvmlite import ir
from lpir.backends.llvm.branches import branch_value
from lpir.backends.llvm.intrinsics import Intrinsics
from lpir.backends.llvm.types import F32, constant, like

I32 = ir.IntType(32)
LOG2_E = float(np.float32(1 / math.log(2)))
LN2_HIGH = float(np.float32(math.log(2)))
LN2_LOW = float(np.float32(math.log(2) - LN2_HIGH))
# 1/k! for k = 7 .. 0: Horner's order
TAYLOR = [float(np.float32(Fraction(1, math.factorial(k)))) for k in range(7, -1, -1)]
# Past these, exp and exp2 are inf or round to 0: clamping there changes no result
EXP_RANGE = (-104.0, 89.0)
EXP2_RANGE = (-151.0, 129.0)


def _tanh_series(terms: int) -> list[Fraction]:
    """The first `terms` coefficients c_k of tanh(a) = sum c_k a^(2k+1) (sinh / cosh)."""
    sinh = [Fraction(k % 2, math.factorial(k)) for k in range(2 * terms)]
    cosh = [Fraction(1 - k % 2, math.factorial(k)) for k in range(2 * terms)]
    quotient: list[Fraction] = []
    for k in range(2 * terms):
        quotient.append(sinh[k] - sum(quotient[j] * cosh[k - j] for j in range(k)))
    return quotient[1::2]


# tanh(a) for a < TANH_SERIES_BELOW: a + a^3 (c_1 + c_2 a^2 + ... + c_11 a^20), Horner's order
# (12 terms: the rest is below 0.05 ulp there); above it 1 - 2 / (e^(2a) + 1), which is 0.6 or
# more there, so the subtraction adds little error (where it starts at 0.55, 1.5 ulps)
TANH_SERIES_BELOW = 0.7
TANH_SERIES = [float(np.float32(c)) for c in reversed(_tanh_series(12)[1:])]
# log(m) for m in [sqrt(1/2), sqrt(2)) is 2 atanh(s) = 2s + s R(s^2) with s = f / (2 + f),
# f = m - 1, |s| < 0.172, R(z) = z (2/3 + 2z/5 + ... + 2z^4/11) (the terms left out are below
# 0.001 ulp); written f - (f^2/2 - s (f^2/2 + R)), whose leading term f is exact
ATANH_SERIES = [float(np.float32(Fraction(2, k))) for k in (11, 9, 7, 5, 3)]
LOG2_E_LOW = float(np.float32(1 / math.log(2) - LOG2_E))

# sin and cos: x = k pi/2 + r, |r| <= pi/4, with pi/2 in three floats (each fma below is exact
# or rounds once, so r keeps its relative accuracy even where x is near a multiple of pi/2) and
# the Taylor series of sin and cos in r up to r^11 and r^12. Past SINCOS_VECTOR_BELOW (where k
# outgrows that reduction) and for inf and NaN, libm per lane.
_PI = Fraction("3.14159265358979323846264338327950288419716939937510582097494459")


def _float_parts(value: Fraction, count: int) -> list[float]:
    """`value` as a sum of `count` f32s, each the one nearest what the ones before leave."""
    parts: list[float] = []
    for _ in range(count):
        parts.append(float(np.float32(float(value - sum(map(Fraction, parts))))))
    return parts


HALF_PI_PARTS = _float_parts(_PI / 2, 3)
TWO_OVER_PI = float(np.float32(2 / math.pi))
SINCOS_VECTOR_BELOW = 8192.0
SIN_SERIES = [
    float(np.float32(Fraction((-1) ** k, math.factorial(2 * k + 1)))) for k in (5, 4, 3, 2, 1)
]
COS_SERIES = [
    float(np.float32(Fraction((-1) ** k, math.factorial(2 * k)))) for k in (6, 5, 4, 3, 2)
]


# erf(x) for |x| < 1 is x + x Q(x^2), Q(z) = erf(sqrt z) / sqrt z - 1 (from 2/sqrt(pi) - 1 at
# 0 to erf(1) - 1): the leading term is exact and Q, at most 0.16, errs by a few 1e-8. For
# 1 <= |x| < 4 it is 1 - e^(-x^2) R(x), R(x) = erfc(x) e^(x^2) in powers of 1/x - 5/8 (x^2
# split into two floats so that e^(-x^2) keeps its accuracy); past 4, 1 rounds it. Both
# polynomials are least-squares fits of math.erf / math.erfc in float64 (numpy's
# `polynomial.polyfit` at 40001 points, degree 7 in z and 10 in 1/x - 5/8: 8e-11 absolute and
# 7e-9 relative), highest power first, rounded to f32.
ERF_BELOW_ONE = [
    -9.670127838035114e-06,
    0.00011263511987635866,
    -0.0008483169367536902,
    0.005220920778810978,
    -0.026865368708968163,
    0.11283780634403229,
    -0.37612637877464294,
    0.12837916612625122,
]
ERFC_SCALED = [
    -0.03681888431310654,
    0.025390533730387688,
    0.005775825120508671,
    -0.026740290224552155,
    0.043087877333164215,
    -0.04696020111441612,
    0.02333679236471653,
    0.0437675341963768,
    -0.17239487171173096,
    0.3822837769985199,
    0.3059529960155487,
]
ERFC_CENTER = 0.625  # (1 + 1/4) / 2: the middle of 1/x over [1, 4]
ERF_ONE_ABOVE = 4.0


class VectorMath:
    """Emits exp, exp2, tanh, erf, log, log2, sin and cos of f32 scalars or vectors with
    `builder`."""

    def __init__(self, builder: ir.IRBuilder, intrinsics: Intrinsics):
        self.b = builder
        self.intrinsics = intrinsics

    def exp(self, x: ir.Value) -> ir.Value:
        """e^x."""
        clamped = self.clamp(x, *EXP_RANGE)
        n = self.call("llvm.roundeven", self.b.fmul(clamped, constant(x, F32, LOG2_E)))
        r = self.fma(self.b.fneg(n), constant(x, F32, LN2_HIGH), clamped)
        r = self.fma(self.b.fneg(n), constant(x, F32, LN2_LOW), r)
        return self.nan_passes(x, self.scaled(self.exp_near_zero(r), n))

    def exp2(self, x: ir.Value) -> ir.Value:
        """2^x."""
        clamped = self.clamp(x, *EXP2_RANGE)
        n = self.call("llvm.roundeven", clamped)
        fraction = self.b.fsub(clamped, n)  # exact: |fraction| <= 1/2
        r = self.b.fmul(fraction, constant(x, F32, LN2_HIGH))
        return self.nan_passes(x, self.scaled(self.exp_near_zero(r), n))

    def tanh(self, x: ir.Value) -> ir.Value:
        """tanh(x): a series near 0, through exp elsewhere, the sign of x put back."""
        b = self.b
        magnitude = self.call("llvm.fabs", x)
        square = b.fmul(magnitude, magnitude)
        series = self.polynomial(square, TANH_SERIES)
        near_zero = self.fma(b.fmul(magnitude, square), series, magnitude)
        grown = self.exp(b.fadd(magnitude, magnitude))
        one = constant(x, F32, 1.0)
        away = b.fsub(one, b.fdiv(constant(x, F32, 2.0), b.fadd(grown, one)))
        small = b.fcmp_ordered("<", magnitude, constant(x, F32, TANH_SERIES_BELOW))
        return self.call("llvm.copysign", b.select(small, near_zero, away), x)

    def erf(self, x: ir.Value) -> ir.Value:
        """erf(x): x + x Q(x^2) below 1, 1 - e^(-x^2) R(x) from 1 to 4, 1 past it; the sign of
        x put back, NaN kept."""
        b = self.b
        magnitude = self.call("llvm.fabs", x)
        square = b.fmul(magnitude, magnitude)
        near_zero = self.fma(magnitude, self.polynomial(square, ERF_BELOW_ONE), magnitude)
        c = self.clamp(magnitude, 1.0, ERF_ONE_ABOVE)
        high = b.fmul(c, c)
        low = self.fma(c, c, b.fneg(high))  # c^2 = high + low exactly
        decay = self.exp(b.fneg(high))
        decay = self.fma(decay, b.fneg(low), decay)  # e^(-high) (1 - low)
        t = b.fsub(b.fdiv(constant(x, F32, 1.0), c), constant(x, F32, ERFC_CENTER))
        erfc = b.fmul(decay, self.polynomial(t, ERFC_SCALED))
        away = b.fsub(constant(x, F32, 1.0), erfc)
        small = b.fcmp_ordered("<", magnitude, constant(x, F32, 1.0))
        signed = self.call("llvm.copysign", b.select(small, near_zero, away), x)
        return self.nan_passes(x, signed)

    def log(self, x: ir.Value) -> ir.Value:
        """ln(x): e ln 2 + ln(m) for x = m 2^e, m in [sqrt(1/2), sqrt(2))."""
        exponent, log_m = self.log_parts(x)
        ln2 = self.fma(exponent, constant(x, F32, LN2_LOW), log_m)
        return self.log_specials(x, self.fma(exponent, constant(x, F32, LN2_HIGH), ln2))

    def log2(self, x: ir.Value) -> ir.Value:
        """log2(x): e + ln(m) log2(e) for x = m 2^e, m in [sqrt(1/2), sqrt(2))."""
        exponent, log_m = self.log_parts(x)
        low = self.b.fmul(log_m, constant(x, F32, LOG2_E_LOW))
        fraction = self.fma(log_m, constant(x, F32, LOG2_E), low)
        return self.log_specials(x, self.b.fadd(exponent, fraction))

    def sin(self, x: ir.Value) -> ir.Value:
        return self.sine_or_cosine(x, cosine=False)

    def cos(self, x: ir.Value) -> ir.Value:
        return self.sine_or_cosine(x, cosine=True)

    def sine_or_cosine(self, x: ir.Value, cosine: bool) -> ir.Value:
        """sin(x) or cos(x): vector code where every lane is below SINCOS_VECTOR_BELOW, else
        libm's for each lane (a branch: such arguments are rare)."""
        b = self.b
        magnitude = self.call("llvm.fabs", x)
        small = b.fcmp_ordered("<", magnitude, constant(x, F32, SINCOS_VECTOR_BELOW))
        if isinstance(x.type, ir.VectorType):
            every = b.call(self.intrinsics.vector_reduce("and", small.type), [small])
        else:
            every = small
        return branch_value(
            b,
            every,
            lambda: self.reduced_sine(x, cosine),
            lambda: self.per_lane("cosf" if cosine else "sinf", x),
            "sincos",
        )

    def reduced_sine(self, x: ir.Value, cosine: bool) -> ir.Value:
        """sin(x) (or cos(x) = sin(x + pi/2): one more quarter turn) for |x| below
        SINCOS_VECTOR_BELOW."""
        b = self.b
        k = self.call("llvm.roundeven", b.fmul(x, constant(x, F32, TWO_OVER_PI)))
        r = x
        for part in HALF_PI_PARTS:
            r = self.fma(b.fneg(k), constant(x, F32, part), r)
        quarter = b.fptosi(k, like(x, I32))
        if cosine:
            quarter = b.add(quarter, constant(x, I32, 1))
        square = b.fmul(r, r)
        sine = self.fma(b.fmul(r, square), self.polynomial(square, SIN_SERIES), r)
        half = self.fma(square, constant(x, F32, -0.5), constant(x, F32, 1.0))
        cosine_r = self.fma(b.fmul(square, square), self.polynomial(square, COS_SERIES), half)
        odd = b.icmp_signed("!=", b.and_(quarter, constant(x, I32, 1)), constant(x, I32, 0))
        value = b.select(odd, cosine_r, sine)
        negative = b.icmp_signed("!=", b.and_(quarter, constant(x, I32, 2)), constant(x, I32, 0))
        return b.select(negative, b.fneg(value), value)

    def per_lane(self, function: str, value: ir.Value) -> ir.Value:
        """A libm call per lane (of a float or double vector, or a scalar)."""
        b = self.b
        float_type = value.type.element if isinstance(value.type, ir.VectorType) else value.type
        callee = self.intrinsics.declare(function, ir.FunctionType(float_type, [float_type]))
        if not isinstance(value.type, ir.VectorType):
            return b.call(callee, [value])
        result = ir.Constant(value.type, ir.Undefined)
        for lane in range(value.type.count):
            index = ir.Constant(I32, lane)
            result = b.insert_element(
                result, b.call(callee, [b.extract_element(value, index)]), index
            )
        return result

    # ---- parts ------------------------------------------------------------------------------
    def log_parts(self, x: ir.Value) -> tuple[ir.Value, ir.Value]:
        """(e as a float, ln(m)) for x = m 2^e with m in [sqrt(1/2), sqrt(2)), for x > 0
        (subnormals scaled up by 2^23 first)."""
        b = self.b
        subnormal = b.fcmp_ordered("<", x, constant(x, F32, 2.0**-126))
        x = b.select(subnormal, b.fmul(x, constant(x, F32, 2.0**23)), x)
        bits = b.bitcast(x, like(x, I32))
        biased = b.lshr(bits, constant(x, I32, 23))
        mantissa = b.or_(b.and_(bits, constant(x, I32, 0x7FFFFF)), constant(x, I32, 0x3F800000))
        # m in [1, 2); past sqrt(2) take m / 2 and one more in the exponent
        high = b.icmp_signed(">", mantissa, constant(x, I32, 0x3FB504F3))
        mantissa = b.select(high, b.sub(mantissa, constant(x, I32, 1 << 23)), mantissa)
        biased = b.select(high, b.add(biased, constant(x, I32, 1)), biased)
        unbiased = b.sub(biased, b.select(subnormal, constant(x, I32, 150), constant(x, I32, 127)))
        exponent = b.sitofp(unbiased, like(x, F32))
        m = b.bitcast(mantissa, like(x, F32))
        f = b.fsub(m, constant(x, F32, 1.0))  # exact
        s = b.fdiv(f, b.fadd(f, constant(x, F32, 2.0)))
        square = b.fmul(s, s)
        r = b.fmul(square, self.polynomial(square, ATANH_SERIES))
        half_square = b.fmul(b.fmul(f, f), constant(x, F32, 0.5))
        correction = b.fsub(half_square, b.fmul(s, b.fadd(half_square, r)))
        return exponent, b.fsub(f, correction)

    def log_specials(self, x: ir.Value, result: ir.Value) -> ir.Value:
        """log of 0 is -inf, of a negative number NaN, of inf inf; NaN stays NaN."""
        b = self.b
        result = b.select(
            b.fcmp_ordered("==", x, constant(x, F32, 0.0)), constant(x, F32, float("-inf")), result
        )
        result = b.select(b.fcmp_ordered("==", x, constant(x, F32, float("inf"))), x, result)
        negative = b.fcmp_unordered("<", x, constant(x, F32, 0.0))  # (NaN too)
        return b.select(negative, constant(x, F32, float("nan")), result)

    def exp_near_zero(self, r: ir.Value) -> ir.Value:
        """e^r for |r| <= ln 2 / 2: sum of r^k / k! for k <= 7."""
        return self.polynomial(r, TAYLOR)

    def polynomial(self, z: ir.Value, coefficients: list[float]) -> ir.Value:
        """The polynomial in z with these coefficients, highest power first (Horner's order,
        one FMA a term)."""
        total = constant(z, F32, coefficients[0])
        for coefficient in coefficients[1:]:
            total = self.fma(total, z, constant(z, F32, coefficient))
        return total

    def scaled(self, value: ir.Value, n: ir.Value) -> ir.Value:
        """value * 2^n for an integral float n in [-151, 129], as two powers of two (each a
        normal float), so the product rounds once, however small."""
        b = self.b
        whole = b.fptosi(n, like(n, I32))
        first = b.ashr(whole, constant(n, I32, 1))
        second = b.sub(whole, first)
        return b.fmul(b.fmul(value, self.power_of_two(first)), self.power_of_two(second))

    def power_of_two(self, k: ir.Value) -> ir.Value:
        """2^k for an i32 k in [-126, 127]: the exponent field alone."""
        b = self.b
        bits = b.shl(b.add(k, constant(k, I32, 127)), constant(k, I32, 23))
        return b.bitcast(bits, like(k, F32))

    def clamp(self, x: ir.Value, low: float, high: float) -> ir.Value:
        """x within [low, high] (a NaN becomes low: `nan_passes` restores it)."""
        inside = self.call("llvm.maxnum", x, constant(x, F32, low))
        return self.call("llvm.minnum", inside, constant(x, F32, high))

    def nan_passes(self, x: ir.Value, result: ir.Value) -> ir.Value:
        is_nan = self.b.fcmp_unordered("uno", x, x)
        return self.b.select(is_nan, x, result)

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        return self.call("llvm.fma", a, b, c)

    def call(self, name: str, *operands: ir.Value) -> ir.Value:
        return self.b.call(self.intrinsics.get(name, operands[0].type), list(operands))


__all__ = ["VectorMath"]
