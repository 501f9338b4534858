"""Independent, exact references for the dtype tests (slow Python, no numpy arithmetic).

Values of float codes come from their sign/exponent/mantissa fields as `Fraction`s; rounding is
done on `Fraction`s with Python's round-half-even; integer rules with Python integers.
"""

from __future__ import annotations

import math
from fractions import Fraction

from lpir.dtypes import DType


def exact_value(dt: DType, code: int) -> Fraction | float:
    """The value of a float code from its fields; inf and NaN as floats.

    Zeros come back as Fraction(0) whatever the sign bit: callers check signs separately.
    """
    negative = (code >> (dt.nbits - 1)) & 1
    exponent = (code >> dt.mantissa_bits) & ((1 << dt.exponent_bits) - 1)
    mantissa = code & ((1 << dt.mantissa_bits) - 1)
    all_ones = (1 << dt.exponent_bits) - 1
    bias = (1 << (dt.exponent_bits - 1)) - 1
    if dt.variant == "ieee" and exponent == all_ones:
        return (-math.inf if negative else math.inf) if mantissa == 0 else math.nan
    if dt.variant == "fn" and exponent == all_ones and mantissa == (1 << dt.mantissa_bits) - 1:
        return math.nan
    fraction = Fraction(mantissa, 1 << dt.mantissa_bits)
    if exponent == 0:
        magnitude = fraction * Fraction(2) ** (1 - bias)
    else:
        magnitude = (1 + fraction) * Fraction(2) ** (exponent - bias)
    return -magnitude if negative else magnitude


def reference_round(x: Fraction | int, dt: DType) -> Fraction | float:
    """|x| rounded to float format `dt`: nearest, ties to the even code; past the top, max for
    the saturating formats and inf for the IEEE ones. The result is non-negative."""
    x = abs(Fraction(x))
    if x == 0:
        return Fraction(0)
    bias = (1 << (dt.exponent_bits - 1)) - 1
    exponent = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** exponent > x:
        exponent -= 1
    exponent = max(exponent, 1 - bias)
    quantum = Fraction(2) ** (exponent - dt.mantissa_bits)
    steps = x / quantum
    if dt.mantissa_bits == 0 and steps == Fraction(3, 2):
        # A tie between 2**e and 2**(e+1): both significands are 1, so "even" means the even
        # code, which is the even biased exponent.
        steps = 1 if (exponent + bias) % 2 == 0 else 2
    rounded = round(steps) * quantum  # Fraction.__round__ rounds half to even
    if rounded > Fraction(dt.max):
        return math.inf if dt.has_inf else Fraction(dt.max)
    return rounded


def rounded_float(x: float | int, dt: DType) -> float:
    """The float that encoding the number `x` to `dt` and decoding it must give (signed;
    infinities saturate in formats without inf). NaN is not handled here."""
    if isinstance(x, float) and math.isinf(x):
        magnitude = math.inf if dt.has_inf else dt.max
    else:
        magnitude = float(reference_round(Fraction(x), dt))
    return math.copysign(magnitude, x)


def wrapped(dt: DType, value: int) -> int:
    """The integer of type `dt` with the low `nbits` bits of `value` (two's complement)."""
    low = value & ((1 << dt.nbits) - 1)
    return low - (1 << dt.nbits) if dt.is_signed and low >> (dt.nbits - 1) else low


def truncated(dt: DType, value: float) -> int:
    """float -> int: toward zero, saturated to `dt`'s range, NaN -> 0."""
    if math.isnan(value):
        return 0
    if math.isinf(value):
        return dt.max if value > 0 else dt.min
    return min(max(math.trunc(value), dt.min), dt.max)


def near_ties_past_f64(nbits: int, signed: bool) -> list[int]:
    """Integers of `nbits` bits past 2^53 one away from a tie of a p-bit float format (bf16
    8 bits, f16 11, f32 24, small floats 2 to 5), with the tie's lower neighbour even and odd:
    a conversion through a rounded f64 lands on the tie and rounds twice."""
    values = []
    for k in range(53, nbits - 1 if signed else nbits):
        for p in (2, 3, 4, 5, 8, 11, 24):
            for last in (0, 2 ** (k - p + 1)):
                for nudge in (-1, 1):
                    value = 2**k + last + 2 ** (k - p) + nudge
                    values += [value, -value] if signed else [value]
    return values
