"""Numeric kernels behind `DType.encode`, `DType.decode` and `lpir.dtypes.convert`.

Every function here is whole-array numpy; none loops over elements in Python. The functions take
a `DType` (defined in `lpir.dtypes`, which imports this module, never the other way round) and
read only its fields.

How the float encoders stay correctly rounded (round to nearest, ties to the even code, from
the exact value of the input):

* Small floats (8 bits or fewer) from float32 go through a table of 2**17 codes indexed by the
  top 16 bits of the float32 and one "any lower bit set" flag. Every small float has at most 6
  mantissa bits, so its rounding bit lies within those top 16 bits and everything below it only
  matters as a sticky bit: the table is exact. It is built once per format by the bit-level
  encoder below, run on one representative float32 per index.
* Small floats from float64 (and the table's representatives) use the bit-level encoder: the
  exponent is re-biased and the mantissa rounded by integer addition on the IEEE bit pattern
  (carries flow into the exponent, which is what RNE wants); values below the smallest normal
  are scaled by a power of two (exact) and rounded with `np.rint`, which is RNE.
* float64 -> bf16 first rounds to float32 *to odd* (truncate and set the last bit when inexact);
  rounding that to 8 bits then gives the correctly rounded result. numpy's float64 -> float16
  and float64 -> float32 casts are already single roundings.
* Integers wider than 53 bits are made exact enough for float64 by keeping bits 63..12 and
  folding bits 11..0 into a sticky bit 11: every later rounding to 41 or fewer bits is then the
  rounding of the integer itself (f64 targets take numpy's direct, single-rounding cast).
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from lpir.errors import DTypeError

if TYPE_CHECKING:
    from lpir.dtypes import DType

# float dtype -> (unsigned view, mantissa bits, exponent bias, width)
_IEEE_BITS = {
    np.dtype(np.float32): (np.uint32, 23, 127, 32),
    np.dtype(np.float64): (np.uint64, 52, 1023, 64),
}
_ML_FLOAT_NAMES = (
    "bfloat16",
    "float4_e2m1fn",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "float8_e3m4",
    "float8_e4m3",
    "float8_e4m3b11fnuz",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
)
_ML_INT_NAMES = ("int1", "int2", "int4", "uint1", "uint2", "uint4")


@functools.cache
def _ml_dtypes_of(names: tuple[str, ...]) -> frozenset[np.dtype]:
    import ml_dtypes

    return frozenset(np.dtype(getattr(ml_dtypes, n)) for n in names if hasattr(ml_dtypes, n))


def _is_ml(array_dtype: np.dtype, names: tuple[str, ...]) -> bool:
    # An array of an ml_dtypes type exists only once ml_dtypes is loaded: lpir loads it only
    # where it needs it (it takes ~0.5 s of CPU, most of `import lpir`).
    return "ml_dtypes" in sys.modules and array_dtype in _ml_dtypes_of(names)


def is_ml_float(array_dtype: np.dtype) -> bool:
    """Whether `array_dtype` is one of ml_dtypes' floating-point types."""
    return _is_ml(array_dtype, _ML_FLOAT_NAMES)


def is_ml_int(array_dtype: np.dtype) -> bool:
    """Whether `array_dtype` is one of ml_dtypes' narrow integer types."""
    return _is_ml(array_dtype, _ML_INT_NAMES)


# ---- inputs ---------------------------------------------------------------------------------
def as_numbers(values: ArrayLike) -> np.ndarray:
    """`values` as a numpy array of bool, integers, float32 or float64 holding the same numbers.

    float16, bfloat16 and ml_dtypes' small floats widen to float32 and ml_dtypes' narrow
    integers to int64, all exactly. Python integers too wide for 64 bits become float64 (the
    one place where the input is rounded before it is encoded).
    """
    array = np.asarray(values)
    kind = array.dtype.kind
    if kind in "biu" or array.dtype in _IEEE_BITS:
        return array
    if kind == "f":
        # float16 widens exactly; longdouble narrows (documented as rounding first).
        return array.astype(np.float32 if array.dtype.itemsize < 4 else np.float64)
    if is_ml_float(array.dtype):
        return array.astype(np.float32)
    if is_ml_int(array.dtype):
        return array.astype(np.int64)
    if kind == "O":
        for wide in (np.int64, np.uint64, np.float64):
            try:
                return np.asarray(values, dtype=wide)
            except (OverflowError, TypeError, ValueError):
                continue
    raise DTypeError(f"cannot encode values of numpy dtype {array.dtype}")


def integers_to_float64(values: np.ndarray) -> np.ndarray:
    """Integers as float64 exactly below 2**53 and with a sticky bit above (see the module
    docstring): any later rounding to 41 bits or fewer is that of the integer itself."""
    if values.dtype.kind == "u" or values.dtype == np.bool_:
        magnitude = values.astype(np.uint64)
        negative = None
    else:
        signed = values.astype(np.int64)
        negative = signed < 0
        # Two's-complement negation in uint64 also gives the magnitude 2**63 of -2**63 (the
        # wrap-around of ~0 + 1 for the zeros np.where drops is intended)
        with np.errstate(over="ignore"):
            magnitude = np.where(
                negative, ~signed.view(np.uint64) + np.uint64(1), signed.view(np.uint64)
            )
    sticky = (magnitude & ~np.uint64(0xFFF)) | ((magnitude & np.uint64(0xFFF)) != 0).astype(
        np.uint64
    ) << np.uint64(11)
    result = np.where(magnitude >= np.uint64(1 << 53), sticky, magnitude).astype(np.float64)
    return result if negative is None else np.where(negative, -result, result)


# ---- small floats ---------------------------------------------------------------------------
@functools.cache
def decode_table(dt: DType) -> np.ndarray:
    """The exact float32 value of every code of a format of 8 bits or fewer (read-only)."""
    codes = np.arange(1 << dt.nbits)
    sign = (codes >> (dt.nbits - 1)) & 1
    exponent = (codes >> dt.mantissa_bits) & ((1 << dt.exponent_bits) - 1)
    mantissa = codes & ((1 << dt.mantissa_bits) - 1)
    fraction = mantissa / float(1 << dt.mantissa_bits)
    # Every value is a dyadic rational with few bits, exact in float64 and then in float32.
    normal = (1.0 + fraction) * np.exp2(exponent - dt.bias)
    subnormal = fraction * 2.0 ** (1 - dt.bias)
    values = np.where(exponent == 0, subnormal, normal)
    top_exponent = exponent == (1 << dt.exponent_bits) - 1
    if dt.variant == "fn":
        values = np.where(top_exponent & (mantissa == (1 << dt.mantissa_bits) - 1), np.nan, values)
    elif dt.variant == "ieee":
        values = np.where(top_exponent, np.where(mantissa == 0, np.inf, np.nan), values)
    table = np.where(sign == 1, -values, values).astype(np.float32)
    table.flags.writeable = False
    return table


def _largest_magnitude_code(dt: DType) -> int:
    """Saturation code: the largest finite code, or infinity for IEEE formats."""
    if dt.variant == "ieee":
        return ((1 << dt.exponent_bits) - 1) << dt.mantissa_bits
    if dt.variant == "fn":
        return (1 << (dt.nbits - 1)) - 2
    return (1 << (dt.nbits - 1)) - 1


def _nan_codes(dt: DType, sign: np.ndarray) -> np.ndarray:
    """Codes for NaN inputs of sign `sign` (0/1, uint8), bit for bit as ml_dtypes makes them.

    Formats with a NaN keep the sign and take their quiet NaN: S.1111.111 for f8e4m3, the
    all-ones exponent with the top mantissa bit for f8e5m2 (S.11111.10). The all-finite formats
    have no NaN; ml_dtypes' quiet_NaN for float4_e2m1fn/float6 is the -0 code, negated for a
    negative NaN, so a NaN becomes a zero whose sign bit is the opposite of the NaN's.
    """
    top = np.uint8(1 << (dt.nbits - 1))
    if dt.variant == "fn":
        return (sign * top) | np.uint8(top - 1)
    if dt.variant == "ieee":
        exponent_ones = ((1 << dt.exponent_bits) - 1) << dt.mantissa_bits
        return (sign * top) | np.uint8(exponent_ones | (1 << (dt.mantissa_bits - 1)))
    return (sign ^ np.uint8(1)) * top


def encode_small_float_exact(dt: DType, x: np.ndarray) -> np.ndarray:
    """Codes (uint8) of float32 or float64 values `x`, by bit arithmetic on the IEEE pattern."""
    uint, fraction_bits, input_bias, width = _IEEE_BITS[x.dtype]
    bits = x.view(uint)
    sign = (bits >> uint(width - 1)).astype(np.uint8)
    magnitude_bits = bits & uint((1 << (width - 1)) - 1)
    # Normal results: add half an ulp (minus one, plus the kept lsb: ties go to even) and drop
    # the low bits; a carry out of the mantissa correctly bumps the exponent.
    shift = fraction_bits - dt.mantissa_bits
    kept_lsb = (magnitude_bits >> uint(shift)) & uint(1)
    rounded = (magnitude_bits + uint((1 << (shift - 1)) - 1) + kept_lsb) >> uint(shift)
    # Re-biasing wraps round for inputs below the format's normals (np.where drops those
    # lanes); numpy warns of a wrap only when `x` is 0-d, so the warning is silenced.
    with np.errstate(over="ignore"):
        normal = rounded - uint((input_bias - dt.bias) << dt.mantissa_bits)
    # Subnormal results: the code is |x| in units of the smallest subnormal, rounded to even.
    magnitude = np.abs(x)
    is_subnormal = magnitude < x.dtype.type(2.0 ** (1 - dt.bias))
    scale = x.dtype.type(2.0 ** (dt.bias - 1 + dt.mantissa_bits))
    # Lanes that are not subnormal may overflow or be NaN here; np.where drops them.
    with np.errstate(over="ignore", invalid="ignore"):
        subnormal = np.rint(magnitude * scale).astype(uint)
    code = np.where(is_subnormal, subnormal, normal)
    code = np.minimum(code, uint(_largest_magnitude_code(dt))).astype(np.uint8)
    code |= sign << np.uint8(dt.nbits - 1)
    return np.where(np.isnan(x), _nan_codes(dt, sign), code)


@functools.cache
def _float32_encode_table(dt: DType) -> np.ndarray:
    """Codes indexed by (top 16 bits of a float32) * 2 + (any of its low 16 bits set)."""
    index = np.arange(1 << 17, dtype=np.uint32)
    representatives = ((index >> np.uint32(1)) << np.uint32(16)) | (index & np.uint32(1))
    table = encode_small_float_exact(dt, representatives.view(np.float32))
    table.flags.writeable = False
    return table


def encode_small_float(dt: DType, x: np.ndarray) -> np.ndarray:
    """Codes (uint8) of float32 or float64 values, correctly rounded from the input."""
    if x.dtype != np.float32:
        return encode_small_float_exact(dt, x)
    bits = np.ascontiguousarray(x).view(np.uint32)
    index = (bits >> np.uint32(16)) << np.uint32(1)
    index |= (bits & np.uint32(0xFFFF)) != 0
    return _float32_encode_table(dt)[index]


# ---- wider floats ---------------------------------------------------------------------------
def round_to_odd_float32(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounded to odd: truncate toward zero, then set the last bit if any
    bit was lost. Rounding the result to 22 or fewer bits is a correct rounding of `x`."""
    # overflow to inf and gradual underflow are IEEE's answers
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        nearest = x.astype(np.float32)
        back = nearest.astype(np.float64)
        inexact = (back != x) & np.isfinite(x)
        overshot = inexact & (np.abs(back) > np.abs(x))
        truncated = np.where(overshot, np.nextafter(nearest, np.float32(0)), nearest)
    return (truncated.view(np.uint32) | inexact.astype(np.uint32)).view(np.float32)


def encode_float(dt: DType, x: np.ndarray) -> np.ndarray:
    """Codes (`dt.code_numpy_dtype`) of numbers `x` (bool, ints, float32 or float64)."""
    if x.dtype.kind in "biu":
        x = x.astype(np.float64) if dt.nbits == 64 else integers_to_float64(x)
    if dt.nbits <= 8:
        return encode_small_float(dt, x)
    if dt.name == "bf16" and x.dtype == np.float64:
        x = round_to_odd_float32(x)
    # IEEE formats overflow to infinity and underflow gradually, as intended; NaN payloads
    # may be dropped.
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return x.astype(dt.numpy_dtype).view(dt.code_numpy_dtype)


# ---- integers -------------------------------------------------------------------------------
def float_to_int(dt: DType, x: np.ndarray) -> np.ndarray:
    """Truncate toward zero and saturate to `dt`'s range; NaN gives 0.

    `x` is float32 or float64; the result is in `dt.numpy_dtype` (int64/uint64 for 64 bits).
    """
    # Work in float32 when it holds the range bounds exactly (up to 24 bits): half the memory.
    work = np.float32 if x.dtype == np.float32 and dt.nbits <= 24 else np.float64
    with np.errstate(invalid="ignore"):  # NaN and out-of-range values are handled below
        truncated = x.astype(work)
        np.trunc(truncated, out=truncated)
    nan = np.isnan(truncated)
    if nan.any():
        truncated[nan] = 0
    target = dt.numpy_dtype
    if dt.nbits < 64:
        return np.clip(truncated, dt.min, dt.max, out=truncated).astype(target)
    # float64 cannot hold 2**63 - 1 or 2**64 - 1: saturate in the integer domain.
    limit = 2.0**63 if dt.is_signed else 2.0**64
    inside = np.clip(truncated, dt.min, np.nextafter(limit, 0)).astype(target)
    return np.where(truncated >= limit, target.type(dt.max), inside)


def wrap_to_codes(dt: DType, values: np.ndarray) -> np.ndarray:
    """The two's-complement low `nbits` bits of integer values, as codes."""
    codes = values.astype(dt.code_numpy_dtype)  # integer casts wrap modulo 2**width
    if dt.nbits < 8:
        codes &= np.uint8((1 << dt.nbits) - 1)
    return codes


@functools.cache
def small_int_table(dt: DType) -> np.ndarray:
    """Values (in `dt.numpy_dtype`) of every code 0..255 of an int of 8 bits or fewer, taking
    the low `nbits` bits (sign-extended for signed types)."""
    low = np.arange(256) & ((1 << dt.nbits) - 1)
    if dt.is_signed:
        low = np.where(low >= 1 << (dt.nbits - 1), low - (1 << dt.nbits), low)
    table = low.astype(dt.numpy_dtype)
    table.flags.writeable = False
    return table
