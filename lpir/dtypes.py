"""Data types: names, properties, exact decoding and correctly rounded encoding.

`dtype(name)` returns the (cached, frozen) `DType` for one of the names of DESIGN §2:

* integers `i1`..`i8`, `i16`, `i32`, `i64` (two's complement) and `u1`..`u8`, `u16`, `u32`,
  `u64`; `bool`, the type of comparisons;
* small floats `f{1+E+M}e{E}m{M}` (E >= 1, M >= 0, 3 to 8 bits): bias 2^(E-1) - 1,
  subnormals, and no inf or NaN — every code is a finite number (OCP MX style);
* `f8e4m3` (OCP E4M3 "fn": no inf, NaN = S.1111.111, max 448) and `f8e5m2` (OCP E5M2,
  IEEE-like inf and NaN);
* `f16`, `bf16`, `f32`, `f64` (IEEE 754 / bfloat16).

**Representations** (what the interpreter and the backends hold):

* `numpy_dtype` holds *register values*: bool -> np.bool_; integers of 8 bits or fewer ->
  int8/uint8 holding the value (u4 value 13 is uint8 13, i3 value -3 is int8 -3); wider
  integers natively; f16 -> float16; bf16 -> ml_dtypes.bfloat16; f32, f64 natively; small floats
  and fp8 hold their **codes** in uint8 (they are storage types: a cast decodes them).
* `code_numpy_dtype` holds one code (the stored bit pattern): uint8, uint16, uint32 or uint64.

**Conversions** (`convert(values, src, dst)`, the semantics of `cast<dst>`): float -> float
decodes exactly and rounds to nearest, ties to even; small floats and f8e4m3 saturate to
+-max, f8e5m2/f16/bf16/f32 overflow to +-inf (IEEE); NaN stays NaN where the target has one and
becomes +0 in the small floats, which have none. float -> int truncates toward zero and
saturates, NaN -> 0. int -> float rounds to nearest even. int -> int keeps the low bits (wraps).
bool -> number gives 0/1, number -> bool is `!= 0`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from lpir.errors import DTypeError

_INT_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)
_IEEE = {"f16": (5, 10), "bf16": (8, 7), "f32": (8, 23), "f64": (11, 52)}
_SMALL_FLOAT = re.compile(r"^f(\d)e(\d)m(\d)$")
_ML_DTYPES = {
    "f4e2m1": "float4_e2m1fn",
    "f6e2m3": "float6_e2m3fn",
    "f6e3m2": "float6_e3m2fn",
    "f8e4m3": "float8_e4m3fn",
    "f8e5m2": "float8_e5m2",
    "bf16": "bfloat16",
    "i2": "int2",
    "i4": "int4",
    "u2": "uint2",
    "u4": "uint4",
    "i1": "int1",
    "u1": "uint1",
}

VALID_FORMS = (
    "i1..i8, i16, i32, i64, u1..u8, u16, u32, u64, bool, f16, bf16, f32, f64, f8e4m3, f8e5m2, "
    "or a small float f{1+E+M}e{E}m{M} with E >= 1, M >= 0 and 3 to 8 bits (e.g. f4e2m1, "
    "f6e3m2, f6e2m3, f5e2m2, f3e1m1)"
)


@dataclass(frozen=True)
class DType:
    """One lpir data type (see the module docstring). Build it with `dtype(name)`."""

    name: str
    nbits: int
    kind: str  # "int", "uint", "bool" or "float"
    exponent_bits: int = 0
    mantissa_bits: int = 0
    variant: str = ""  # floats: "finite" (small floats), "fn" (f8e4m3) or "ieee"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"dtype({self.name!r})"

    # ---- classification -------------------------------------------------------------------
    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "uint")

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    @property
    def is_signed(self) -> bool:
        return self.kind == "int" or self.is_float

    @property
    def is_packed(self) -> bool:
        """Stored densely, several elements per byte (fewer than 8 bits)."""
        return self.nbits < 8

    @property
    def is_small_float(self) -> bool:
        """A float of 8 bits or fewer: stored as codes, decoded by a cast."""
        return self.is_float and self.nbits <= 8

    @property
    def itemsize(self) -> int:
        return max(1, self.nbits // 8)

    @property
    def has_nan(self) -> bool:
        return self.variant in ("fn", "ieee")

    @property
    def has_inf(self) -> bool:
        return self.variant == "ieee"

    # ---- numpy representations --------------------------------------------------------------
    @property
    def numpy_dtype(self) -> np.dtype:
        if self.is_bool:
            return np.dtype(np.bool_)
        if self.is_float:
            if self.is_small_float:
                return np.dtype(np.uint8)
            if self.name == "bf16":
                return np.dtype(ml_dtypes.bfloat16)
            return np.dtype(f"f{self.nbits // 8}")
        letter = "i" if self.kind == "int" else "u"
        return np.dtype(f"{letter}{max(8, self.nbits) // 8}")

    @property
    def code_numpy_dtype(self) -> np.dtype:
        return np.dtype(f"u{max(8, self.nbits) // 8}")

    @property
    def ml_dtype(self):
        """The ml_dtypes type with exactly these semantics, or None."""
        name = _ML_DTYPES.get(self.name)
        return getattr(ml_dtypes, name, None) if name else None

    # ---- ranges -------------------------------------------------------------------------------
    @property
    def bias(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1 if self.is_float else 0

    @property
    def min(self) -> int | float:
        if self.is_bool:
            return 0
        if self.is_float:
            return -self.max
        return -(1 << (self.nbits - 1)) if self.kind == "int" else 0

    @property
    def max(self) -> int | float:
        if self.is_bool:
            return 1
        if self.is_int:
            return (1 << (self.nbits - 1)) - 1 if self.kind == "int" else (1 << self.nbits) - 1
        top_exponent = (1 << self.exponent_bits) - 1
        mantissa = (1 << self.mantissa_bits) - 1
        if self.variant == "ieee":
            top_exponent -= 1  # the all-ones exponent is inf/NaN
        elif self.variant == "fn":
            mantissa -= 1  # S.1111.111 is NaN
        fraction = 1 + mantissa / (1 << self.mantissa_bits)
        return float(fraction * 2.0 ** (top_exponent - self.bias))

    @property
    def eps(self) -> float:
        return 2.0**-self.mantissa_bits

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    # ---- codes and values -------------------------------------------------------------------
    def decode(self, codes) -> np.ndarray:
        """The values of `codes`: exact float32 (float64 for f64) for floats, else numpy_dtype."""
        codes = np.asarray(codes)
        if not self.is_float:
            return self.from_codes(codes)
        if self.is_small_float:
            return _small_float_table(self.name)[codes.astype(np.intp) & ((1 << self.nbits) - 1)]
        values = codes.astype(self.code_numpy_dtype).view(self.numpy_dtype)
        return values.astype(np.float64 if self.nbits == 64 else np.float32)

    def encode(self, values) -> np.ndarray:
        """Codes for `values` (floats: correctly rounded; ints: the cast rules)."""
        values = np.asarray(values)
        if self.is_float:
            return _encode_float(self, values)
        if self.is_bool:
            return (values != 0).astype(np.uint8)
        if values.dtype.kind in "fc" or values.dtype == ml_dtypes.bfloat16:
            return _wrap_codes(self, _float_to_int(self, values))
        return _wrap_codes(self, values)

    def to_codes(self, values) -> np.ndarray:
        """The bit patterns of register values held in `numpy_dtype`."""
        values = np.asarray(values)
        if self.is_bool:
            return values.astype(np.uint8)
        if self.is_small_float:
            return values.astype(np.uint8)
        if self.is_float:
            return values.astype(self.numpy_dtype).view(self.code_numpy_dtype)
        return _wrap_codes(self, values)

    def from_codes(self, codes) -> np.ndarray:
        """Register values (in `numpy_dtype`) of bit patterns."""
        codes = np.asarray(codes)
        if self.is_bool:
            return codes.astype(np.bool_)
        if self.is_small_float:
            return codes.astype(np.uint8)
        if self.is_float:
            return codes.astype(self.code_numpy_dtype).view(self.numpy_dtype)
        unsigned = codes.astype(np.uint64)
        if self.nbits < 64:
            unsigned &= np.uint64((1 << self.nbits) - 1)
        if self.kind == "uint":
            return unsigned.astype(self.numpy_dtype)
        if self.nbits == 64:
            return unsigned.view(np.int64)
        signed = unsigned.astype(np.int64)
        signed = np.where(signed >= (1 << (self.nbits - 1)), signed - (1 << self.nbits), signed)
        return signed.astype(self.numpy_dtype)


# ---- parsing names ------------------------------------------------------------------------
@functools.cache
def _parse(name: str) -> DType:
    if name == "bool":
        return DType("bool", 1, "bool")
    match = re.fullmatch(r"([iu])(\d+)", name)
    if match and int(match.group(2)) in _INT_WIDTHS and not match.group(2).startswith("0"):
        return DType(name, int(match.group(2)), "int" if match.group(1) == "i" else "uint")
    if name in _IEEE:
        exponent, mantissa = _IEEE[name]
        return DType(name, 1 + exponent + mantissa, "float", exponent, mantissa, "ieee")
    match = _SMALL_FLOAT.match(name)
    if match:
        total, exponent, mantissa = (int(g) for g in match.groups())
        if total == 1 + exponent + mantissa and exponent >= 1 and 3 <= total <= 8:
            variant = {"f8e4m3": "fn", "f8e5m2": "ieee"}.get(name, "finite")
            return DType(name, total, "float", exponent, mantissa, variant)
    raise DTypeError(f"unknown dtype {name!r}", hint=f"valid dtypes: {VALID_FORMS}")


def dtype(name: str | DType) -> DType:
    """The `DType` called `name` (a `DType` is returned as it is)."""
    if isinstance(name, DType):
        return name
    if not isinstance(name, str):
        raise DTypeError(f"a dtype name must be a string, not {name!r}", hint=VALID_FORMS)
    return _parse(name.strip())


def _all_names() -> list[str]:
    names = ["bool"]
    names += [f"i{n}" for n in _INT_WIDTHS] + [f"u{n}" for n in _INT_WIDTHS]
    for total in range(3, 9):
        for exponent in range(1, total):
            names.append(f"f{total}e{exponent}m{total - 1 - exponent}")
    return names + list(_IEEE)


ALL_DTYPE_NAMES: list[str] = _all_names()


# ---- small floats: an exact table of every code ------------------------------------------------
@functools.cache
def _small_float_table(name: str) -> np.ndarray:
    """Every code's value (float32, exact): the decoding table of a format of <= 8 bits."""
    dt = _parse(name)
    codes = np.arange(1 << dt.nbits)
    sign = (codes >> (dt.nbits - 1)) & 1
    exponent = (codes >> dt.mantissa_bits) & ((1 << dt.exponent_bits) - 1)
    mantissa = codes & ((1 << dt.mantissa_bits) - 1)
    scale = float(1 << dt.mantissa_bits)
    normal = (1.0 + mantissa / scale) * np.exp2(exponent.astype(np.float64) - dt.bias)
    subnormal = mantissa / scale * 2.0 ** (1 - dt.bias)
    values = np.where(exponent == 0, subnormal, normal)
    top = exponent == (1 << dt.exponent_bits) - 1
    if dt.variant == "fn":
        values = np.where(top & (mantissa == (1 << dt.mantissa_bits) - 1), np.nan, values)
    elif dt.variant == "ieee":
        values = np.where(top, np.where(mantissa == 0, np.inf, np.nan), values)
    values = np.where(sign == 1, -values, values)
    table = values.astype(np.float32)
    table.flags.writeable = False
    return table


@functools.cache
def _positive_grid(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The finite non-negative values of a small format, ascending, and their codes."""
    table = _small_float_table(name).astype(np.float64)
    half = len(table) // 2
    codes = np.arange(half)
    finite = np.isfinite(table[:half])
    return table[:half][finite], codes[finite]


def _encode_small_float(dt: DType, values: np.ndarray) -> np.ndarray:
    """Round to nearest, ties to even code; saturate (or overflow to inf for f8e5m2)."""
    grid, codes = _positive_grid(dt.name)
    x = np.asarray(values, dtype=np.float64)
    magnitude = np.abs(x)
    upper = np.clip(np.searchsorted(grid, magnitude), 1, len(grid) - 1)
    low, high = grid[upper - 1], grid[upper]
    # 2x versus low + high is exact in float64 for every input of float32 or less.
    twice, middle = 2 * magnitude, low + high
    take_high = (twice > middle) | ((twice == middle) & (codes[upper] % 2 == 0))
    code = np.where(take_high, codes[upper], codes[upper - 1])
    largest = grid[-1]
    if dt.variant == "ieee":
        # IEEE: beyond max + half an ulp rounds to infinity.
        ulp = largest - grid[-2]
        overflow = (twice > 2 * largest + ulp) | (
            (twice == 2 * largest + ulp) & (codes[-1] % 2 == 1)
        )
        infinity = ((1 << dt.exponent_bits) - 1) << dt.mantissa_bits
        code = np.where(overflow | np.isinf(magnitude), infinity, code)
    else:
        code = np.where(magnitude >= largest, codes[-1], code)
    code = code | (np.signbit(x).astype(np.int64) << (dt.nbits - 1))
    nan_code = {"fn": 0x7F, "ieee": 0x7F}.get(dt.variant, 0)
    return np.where(np.isnan(x), nan_code, code).astype(np.uint8)


# ---- wider floats ---------------------------------------------------------------------------
def _round_to_odd_f32(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounding to odd: then rounding to a format of <= 22 bits of precision
    gives the correctly rounded result of the float64 value (no double-rounding error)."""
    rounded = x.astype(np.float32)
    back = rounded.astype(np.float64)
    inexact = (back != x) & np.isfinite(x)
    too_far = inexact & (np.abs(back) > np.abs(x))
    rounded = np.where(too_far, np.nextafter(rounded, np.float32(0)), rounded)
    bits = rounded.view(np.uint32) | (inexact.astype(np.uint32))
    return bits.view(np.float32)


def _encode_float(dt: DType, values: np.ndarray) -> np.ndarray:
    if values.dtype == ml_dtypes.bfloat16 or values.dtype == np.float16:
        values = values.astype(np.float32)
    if values.dtype.kind not in "f":
        values = values.astype(np.float64)
    if dt.is_small_float:
        return _encode_small_float(dt, values)
    if dt.name == "bf16" and values.dtype == np.float64:
        values = _round_to_odd_f32(values)
    with np.errstate(over="ignore"):
        return values.astype(dt.numpy_dtype).view(dt.code_numpy_dtype)


# ---- integers -------------------------------------------------------------------------------
def _float_to_int(dt: DType, values: np.ndarray) -> np.ndarray:
    """Truncate toward zero and saturate to the type's range; NaN gives 0."""
    x = np.asarray(values).astype(np.float64)
    truncated = np.trunc(np.where(np.isnan(x), 0.0, x))
    if dt.nbits == 64:
        # float64 cannot hold 2**63 - 1: saturate in the integer domain.
        high = truncated >= 2.0**63 if dt.kind == "int" else truncated >= 2.0**64
        low = truncated < -(2.0**63) if dt.kind == "int" else truncated < 0
        target = np.int64 if dt.kind == "int" else np.uint64
        safe = np.clip(truncated, dt.min, np.nextafter(float(dt.max), 0))
        result = safe.astype(target)
        result = np.where(high, target(dt.max), result)
        return np.where(low, target(dt.min), result).astype(target)
    return np.clip(truncated, dt.min, dt.max).astype(np.int64)


def _wrap_codes(dt: DType, values: np.ndarray) -> np.ndarray:
    """The low `nbits` bits of integer values, as codes."""
    values = np.asarray(values)
    if values.dtype == np.bool_:
        values = values.astype(np.uint8)
    if values.dtype.kind == "u":
        unsigned = values.astype(np.uint64)
    else:
        unsigned = values.astype(np.int64).view(np.uint64)
    if dt.nbits < 64:
        unsigned = unsigned & np.uint64((1 << dt.nbits) - 1)
    return unsigned.astype(dt.code_numpy_dtype)


# ---- conversions between dtypes --------------------------------------------------------------
def _exact_values(values: np.ndarray, source: DType) -> np.ndarray:
    """Register values of `source` as numbers numpy can convert from without loss."""
    if source.is_bool:
        return values.astype(np.int64)
    if source.is_small_float:
        return source.decode(values)
    if source.is_float:
        return values.astype(np.float64) if source.nbits < 64 else values
    if source.kind == "uint" and source.nbits == 64:
        return values.astype(np.uint64)
    return values.astype(np.int64)


def convert(values, source: DType | str, target: DType | str) -> np.ndarray:
    """`cast<target>` of register values of `source` (see the module docstring)."""
    source, target = dtype(source), dtype(target)
    values = np.asarray(values, dtype=source.numpy_dtype)
    if source == target:
        return values.copy()
    exact = _exact_values(values, source)
    if target.is_bool:
        return exact != 0
    if target.is_float:
        if exact.dtype.kind in "iu":
            if target.name in ("f32", "f64"):
                return exact.astype(target.numpy_dtype)  # one correctly rounded conversion
            # Integers below 2**53 are exact in float64, so the encode rounds once; larger
            # ones saturate every narrower target anyway (f16 max 65504, bf16 ~3.4e38 aside).
            exact = exact.astype(np.float64)
        codes = target.encode(exact)
        return target.from_codes(codes)
    if exact.dtype.kind == "f":
        return target.from_codes(_wrap_codes(target, _float_to_int(target, exact)))
    return target.from_codes(_wrap_codes(target, exact))


__all__ = ["ALL_DTYPE_NAMES", "DType", "convert", "dtype"]
