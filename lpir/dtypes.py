"""Data types: names, properties, codes and values, and the conversions of `cast`.

`dtype(name)` returns the (cached, frozen, hashable) `DType` for one of the names of DESIGN §2:

* integers `i1`..`i8`, `i16`, `i32`, `i64` (two's complement) and `u1`..`u8`, `u16`, `u32`,
  `u64`; `bool`, the 1-bit type of comparisons (False/True);
* small floats `f{1+E+M}e{E}m{M}` (E >= 1, M >= 0, 3 to 8 bits): bias 2^(E-1) - 1, subnormals,
  and no inf or NaN: every code is a finite number (OCP MX style);
* `f8e4m3`, OCP E4M3 "fn" (no inf, NaN = S.1111.111, max 448), and `f8e5m2`, OCP E5M2
  (IEEE-like: inf and NaN); every other 8-bit split follows the small-float rule;
* `f16`, `bf16`, `f32`, `f64` (IEEE 754 binary16/32/64 and bfloat16).

**Codes and values.** A *code* is the stored bit pattern of one element (an unsigned integer of
`nbits` bits, held in `code_numpy_dtype`: uint8, uint16, uint32 or uint64). A *register value*
is what the interpreter and the backends compute with, held in `numpy_dtype`:

* bool -> np.bool_;
* integers of 8 bits or fewer -> int8/uint8 holding the value (u4 value 13 is uint8 13, i3 value
  -3 is int8 -3); i16..i64 and u16..u64 natively;
* f16 -> float16, bf16 -> ml_dtypes.bfloat16, f32 and f64 natively;
* small floats and fp8 -> their **codes** in uint8: they are storage types, nothing computes in
  them; a cast decodes them.

`to_codes`/`from_codes` reinterpret bits between the two (identity on uint8 for small floats,
two's-complement low bits for integers, float16 <-> uint16 and so on). `decode(codes)` gives
numbers: floats as exact float32 (float64 for f64), integers and bool as register values.

**Encoding and conversion** (`encode(values) -> codes`; `convert(values, src, dst)` is exactly
`cast<dst>` on register values):

* float -> float: the exact value rounded to nearest, ties to the even code (from the input's
  exact value: float64 inputs are not rounded through float32; in formats with M = 0, a tie
  between 2^e and 2^(e+1) goes to the even exponent field). Small floats and f8e4m3 saturate to
  +-max beyond the largest finite magnitude (infinities too); f8e5m2, f16, bf16 and f32 follow
  IEEE and overflow to +-inf, like ml_dtypes and numpy.
* NaN stays NaN, with its sign, where the format has one, bit for bit as ml_dtypes/numpy
  make it: f8e4m3 S.1111.111, f8e5m2 S.11111.10, bf16 the quiet NaN, f16/f32 numpy's cast;
  except two payloads: f16 -> f64 quiets a signalling NaN (numpy keeps it signalling) and
  bf16 -> f16 keeps the payload's high bits (ml_dtypes gives 0x7e00). That is the
  reference's (`encode`, `convert`, the interpreter); compiled code keeps a NaN a NaN but not
  always its payload or sign: the CPU makes f16 -> f32 NaNs quiet (0x7fc00000),
  the host emulation of the CUDA C gives conversions to f16/bf16 an unsigned quiet NaN
  (0x7e00, 0x7fc0), and a GPU's conversion instructions may return their own canonical NaN.
  The all-finite small floats have none: like ml_dtypes (whose quiet_NaN for float4_e2m1fn
  and float6 is the -0 code, negated for a negative NaN), a NaN becomes a zero whose sign bit
  is the opposite of the NaN's, so `encode(nan)` decodes to -0.0 and `encode(-nan)` to +0.0.
* float -> int: truncate toward zero, saturate to [min, max]; NaN -> 0.
* int -> float: the integer's exact value rounded to nearest even (64-bit integers included).
* int -> int: keep the low bits (wrap); codes are the two's-complement low `nbits` bits, and
  signed register values are sign-extended.
* bool -> number: 0/1; number -> bool: `!= 0` (NaN -> True; small floats are decoded first).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from lpir import dtype_conversions as conversions
from lpir.errors import DTypeError

_INT_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)
_IEEE = {"f16": (5, 10), "bf16": (8, 7), "f32": (8, 23), "f64": (11, 52)}
_ML_DTYPES = {
    "f4e2m1": "float4_e2m1fn",
    "f6e2m3": "float6_e2m3fn",
    "f6e3m2": "float6_e3m2fn",
    "f8e4m3": "float8_e4m3fn",
    "f8e5m2": "float8_e5m2",
    "bf16": "bfloat16",
    "i1": "int1",
    "i2": "int2",
    "i4": "int4",
    "u1": "uint1",
    "u2": "uint2",
    "u4": "uint4",
}
# Names people reach for first, answered with a hint (they are not accepted as aliases, so one
# type has one spelling in kernels, IR text and tests).
_SUGGESTIONS = {
    "float16": "f16",
    "half": "f16",
    "bfloat16": "bf16",
    "float32": "f32",
    "float": "f32",
    "float64": "f64",
    "double": "f64",
    "int": "i32",
    "bool_": "bool",
    "float8_e4m3fn": "f8e4m3",
    "float8_e5m2": "f8e5m2",
    "float4_e2m1fn": "f4e2m1",
    "float6_e2m3fn": "f6e2m3",
    "float6_e3m2fn": "f6e3m2",
}

VALID_FORMS = (
    "i1..i8, i16, i32, i64, u1..u8, u16, u32, u64, bool, f16, bf16, f32, f64, f8e4m3, f8e5m2, "
    "or a small float f{1+E+M}e{E}m{M} with E >= 1, M >= 0 and 3 to 8 bits in all (e.g. "
    "f3e1m1, f4e2m1, f5e2m2, f6e3m2, f6e2m3, f7e3m3, f8e3m4)"
)


@dataclass(frozen=True)
class DType:
    """One lpir data type (see the module docstring). Build it with `dtype(name)`.

    Attributes:
        name: the canonical name (`str(dt) == dt.name`).
        nbits: bits per element.
        kind: "int", "uint", "bool" or "float".
        exponent_bits, mantissa_bits: the float fields (0 for non-floats).
        variant: for floats, "finite" (small floats: every code a number), "fn" (f8e4m3: no
            inf, one NaN per sign) or "ieee" (inf and NaN); "" otherwise.
    """

    name: str
    nbits: int
    kind: str
    exponent_bits: int = 0
    mantissa_bits: int = 0
    variant: str = ""

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"dtype({self.name!r})"

    def __hash__(self) -> int:
        # the name determines the rest; hashing it alone is cheaper than all six fields
        # (every kernel call hashes its arguments' dtypes)
        return hash(self.name)

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
        return self.kind in ("int", "float")

    @property
    def is_packed(self) -> bool:
        """Stored densely, several elements per byte (fewer than 8 bits)."""
        return self.nbits < 8

    @property
    def is_small_float(self) -> bool:
        """A float of 8 bits or fewer (fp8 included): held as codes, decoded by a cast."""
        return self.is_float and self.nbits <= 8

    @property
    def itemsize(self) -> int:
        """Bytes per element for types of 8 bits or more (1 for packed types: the byte that
        holds one unpacked register value)."""
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
        """The numpy dtype of register values (see the module docstring)."""
        if self.is_bool:
            return np.dtype(np.bool_)
        if self.is_small_float:
            return np.dtype(np.uint8)
        if self.name == "bf16":
            import ml_dtypes  # imported when needed: it takes ~0.5 s of CPU to load

            return np.dtype(ml_dtypes.bfloat16)
        if self.is_float:
            return np.dtype(f"f{self.nbits // 8}")
        letter = "i" if self.kind == "int" else "u"
        return np.dtype(f"{letter}{max(8, self.nbits) // 8}")

    @property
    def code_numpy_dtype(self) -> np.dtype:
        """The unsigned numpy dtype that holds one code."""
        return np.dtype(f"u{max(8, self.nbits) // 8}")

    @property
    def ml_dtype(self) -> type | None:
        """The ml_dtypes type with exactly these semantics, or None.

        ml_dtypes' float8_e3m4 and float8_e4m3 are IEEE-like (they have inf and NaN), unlike
        lpir's all-finite f8e3m4 and OCP f8e4m3fn, so they are not matched.
        """
        name = _ML_DTYPES.get(self.name)
        if not name:
            return None
        import ml_dtypes

        return getattr(ml_dtypes, name, None)

    # ---- ranges -------------------------------------------------------------------------------
    @property
    def min(self) -> int | float:
        """The smallest value (the most negative finite value for floats)."""
        if self.is_float:
            return -self.max
        return -(1 << (self.nbits - 1)) if self.kind == "int" else 0

    @property
    def max(self) -> int | float:
        """The largest value (the largest finite value for floats)."""
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
        return float((1 + mantissa / (1 << self.mantissa_bits)) * 2.0 ** (top_exponent - self.bias))

    def rounds_past_max(self, value: float) -> bool:
        """Whether a finite `value`, rounded to this float dtype (nearest, ties to even),
        lands past its largest finite value: beyond the largest plus half its spacing there,
        or on that tie where the even code is past it (IEEE and all-finite formats; in
        f8e4m3 the largest mantissa 110 is the even one, 111 being NaN). Never for f64."""
        largest = float(self.max)
        exponent = math.frexp(largest)[1] - 1  # largest = 1.m * 2**exponent
        threshold = largest + 2.0 ** (exponent - self.mantissa_bits - 1)
        size = abs(value)
        return size > threshold or (size == threshold and self.variant != "fn")

    @property
    def bias(self) -> int:
        """The exponent bias 2^(E-1) - 1 (floats only)."""
        return (1 << (self._float_field("bias").exponent_bits - 1)) - 1

    @property
    def eps(self) -> float:
        """2^-M: the distance from 1 to the next value (floats only)."""
        return 2.0 ** -self._float_field("eps").mantissa_bits

    @property
    def smallest_normal(self) -> float:
        """2^(1 - bias) (floats only)."""
        return 2.0 ** (1 - self._float_field("smallest_normal").bias)

    @property
    def smallest_subnormal(self) -> float:
        """2^(1 - bias - M): the smallest positive value (floats only)."""
        return 2.0 ** (1 - self._float_field("smallest_subnormal").bias - self.mantissa_bits)

    def _float_field(self, field: str) -> DType:
        if not self.is_float:
            raise DTypeError(f"{self.name} is not a float type: it has no {field}")
        return self

    # ---- codes and values -------------------------------------------------------------------
    def decode(self, codes: ArrayLike) -> np.ndarray:
        """The numbers that `codes` stand for: exact float32 for floats (float64 for f64),
        register values (`numpy_dtype`) for integers and bool."""
        array = np.asarray(codes)
        if not self.is_float:
            return self.from_codes(array)
        if self.is_small_float:
            if array.dtype != np.uint8 or self.nbits < 8:
                array = array.astype(np.uint8) & np.uint8((1 << self.nbits) - 1)
            return conversions.decode_table(self)[array]
        if self.name == "bf16":
            # bfloat16 is the top half of a float32: faster than ml_dtypes' cast, and exact.
            return (array.astype(np.uint32) << np.uint32(16)).view(np.float32)  # drops bits >= 16
        return self.from_codes(array).astype(np.float64 if self.nbits == 64 else np.float32)

    def encode(self, values: ArrayLike) -> np.ndarray:
        """Codes (`code_numpy_dtype`) for numbers `values`, by the rules of the module
        docstring: floats are correctly rounded, integers truncated, saturated or wrapped.

        `values` may be Python numbers or lists, or numpy arrays of bool, integers, float16,
        float32, float64 or ml_dtypes types.
        """
        numbers = conversions.as_numbers(values)
        if self.is_float:
            return conversions.encode_float(self, numbers)
        if self.is_bool:
            return (numbers != 0).astype(np.uint8)
        if numbers.dtype.kind == "f":
            numbers = conversions.float_to_int(self, numbers)
        return conversions.wrap_to_codes(self, numbers)

    def to_codes(self, values: ArrayLike) -> np.ndarray:
        """The codes of register values held in `numpy_dtype` (a reinterpretation of bits)."""
        values = np.asarray(values)
        if self.is_bool:
            return values.astype(np.bool_).astype(np.uint8)
        if self.is_small_float:
            return values.astype(np.uint8)
        if self.is_float:
            return values.astype(self.numpy_dtype).view(self.code_numpy_dtype)
        return conversions.wrap_to_codes(self, values)

    def from_codes(self, codes: ArrayLike) -> np.ndarray:
        """Register values (`numpy_dtype`) of codes (a reinterpretation of bits; bits above
        `nbits` are ignored)."""
        codes = np.asarray(codes)
        if self.is_bool:
            return (codes & 1).astype(np.bool_)
        if self.is_small_float:
            return codes.astype(np.uint8)
        if self.nbits == 8:
            return codes.astype(np.uint8).view(self.numpy_dtype)
        if self.nbits < 8:
            return conversions.small_int_table(self)[codes.astype(np.uint8)]
        return codes.astype(self.code_numpy_dtype).view(self.numpy_dtype)


# ---- names --------------------------------------------------------------------------------
@functools.cache
def _parse(name: str) -> DType:
    if name == "bool":
        return DType("bool", 1, "bool")
    if name in _IEEE:
        exponent, mantissa = _IEEE[name]
        return DType(name, 1 + exponent + mantissa, "float", exponent, mantissa, "ieee")
    match = re.fullmatch(r"([iu])([1-9]\d*)", name)
    if match and int(match.group(2)) in _INT_WIDTHS:
        return DType(name, int(match.group(2)), "int" if match.group(1) == "i" else "uint")
    match = re.fullmatch(r"f(\d)e(\d)m(\d)", name)
    if match:
        total, exponent, mantissa = (int(g) for g in match.groups())
        if total == 1 + exponent + mantissa and exponent >= 1 and 3 <= total <= 8:
            variant = {"f8e4m3": "fn", "f8e5m2": "ieee"}.get(name, "finite")
            return DType(name, total, "float", exponent, mantissa, variant)
    raise DTypeError(f"unknown dtype {name!r}; valid dtypes: {VALID_FORMS}", hint=_hint(name))


def _hint(name: str) -> str | None:
    """A likely intended name for a bad one, or None."""
    if name in _SUGGESTIONS:
        return f"lpir calls this type {_SUGGESTIONS[name]!r}"
    match = re.fullmatch(r"f(\d+)e(\d+)m(\d+)", name)
    if match:
        exponent, mantissa = int(match.group(2)), int(match.group(3))
        total = 1 + exponent + mantissa
        if exponent >= 1 and 3 <= total <= 8 and f"f{total}e{exponent}m{mantissa}" != name:
            return f"the total is 1 + E + M bits: did you mean 'f{total}e{exponent}m{mantissa}'?"
        return "small floats have E >= 1 and 3 to 8 bits in all (1 sign + E + M)"
    match = re.fullmatch(r"(u?int)(\d+)", name)
    if match and int(match.group(2)) in _INT_WIDTHS:
        return f"lpir calls this type '{match.group(1)[0]}{match.group(2)}'"
    match = re.fullmatch(r"(uint|int|float|[iuf])(\d+)", name.lower())
    if match:
        family = {"uint": "u", "int": "i", "float": "f"}.get(match.group(1), match.group(1))
        bits = int(match.group(2))
        if family == "f" and bits == 8:
            return "the 8-bit floats are f8e4m3 and f8e5m2"
        widths = _INT_WIDTHS if family in "iu" else (16, 32, 64)
        nearest = min(widths, key=lambda width: (abs(width - bits), -width))
        return f"did you mean '{family}{nearest}'?"
    close = difflib.get_close_matches(name.lower(), ALL_DTYPE_NAMES, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "write a dtype name such as f32, f16, bf16, i32, u8, u4 or bool"


def dtype(name: str | DType) -> DType:
    """The `DType` called `name` (a `DType` is returned as it is).

    Raises:
        DTypeError: `name` is not one of `ALL_DTYPE_NAMES`; the message lists the valid forms.
    """
    if isinstance(name, DType):
        return name
    if not isinstance(name, str):
        raise DTypeError(f"a dtype must be a name (str) or a DType, not {name!r}")
    return _parse(name.strip())


def _all_names() -> list[str]:
    names = [f"i{n}" for n in _INT_WIDTHS] + [f"u{n}" for n in _INT_WIDTHS] + ["bool"]
    for total in range(3, 9):
        for exponent in range(1, total):
            names.append(f"f{total}e{exponent}m{total - 1 - exponent}")
    return names + list(_IEEE)


ALL_DTYPE_NAMES: list[str] = _all_names()
"""Every valid dtype name: integers, bool, the 27 small floats (fp8 included), f16..f64."""


def is_small_float(dt: DType | str) -> bool:
    """Whether `dt` is a float of 8 bits or fewer (held as codes, decoded by a cast)."""
    return dtype(dt).is_small_float


# ---- conversions --------------------------------------------------------------------------
def _numbers(values: np.ndarray, source: DType) -> np.ndarray:
    """Register values of `source` as numbers the encoders take exactly."""
    if source.is_bool:
        return values.astype(np.uint8)
    if source.is_small_float:
        return source.decode(values)
    if source.name in ("f16", "bf16"):
        return values.astype(np.float32)
    return values


def convert(values: ArrayLike, source: DType | str, target: DType | str) -> np.ndarray:
    """`cast<target>` of register values of `source`: an array in `target.numpy_dtype`.

    The rules are those of the module docstring; e.g. f32 -> f4e2m1 rounds to nearest even and
    saturates, f32 -> i8 truncates and saturates, i32 -> u4 keeps the low 4 bits.
    """
    source, target = dtype(source), dtype(target)
    values = np.asarray(values)
    if values.dtype != source.numpy_dtype:
        values = values.astype(source.numpy_dtype)
    if source == target:
        return values.copy()
    numbers = _numbers(values, source)
    if target.is_bool:
        return numbers != 0
    return target.from_codes(target.encode(numbers))


__all__ = ["ALL_DTYPE_NAMES", "VALID_FORMS", "DType", "convert", "dtype", "is_small_float"]
