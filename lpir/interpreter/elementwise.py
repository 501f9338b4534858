"""The exact semantics of lpir's elementwise ops on numpy arrays.

This module is the definition that the interpreter runs, that canonicalize folds constants
with, and that the backends must agree with. Arrays hold values in `dtype.numpy_dtype` (see
`lpir.dtypes`): integers wrap, floats follow IEEE in their own precision (f16 and bf16 compute in
f32 and round once, which is exact for + - * / and sqrt), integer division truncates toward zero
and division by zero gives 0, shifts take their amount modulo the bit width, float min/max
return the other operand when one is NaN, quiet or signalling (IEEE's minimumNumber and
maximumNumber; of two NaNs the first, made quiet).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from lpir.dtypes import DType, convert, dtype


def _int_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    safe = np.where(b == 0, 1, b).astype(a.dtype)
    quotient = np.floor_divide(a, safe)
    adjust = (np.remainder(a, safe) != 0) & ((a < 0) != (safe < 0))
    quotient = quotient + adjust.astype(a.dtype)
    return np.where(b == 0, 0, quotient).astype(a.dtype)


def _int_remainder(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    quotient = _int_divide(a, b)
    return np.where(b == 0, 0, a - quotient * np.where(b == 0, 1, b).astype(a.dtype)).astype(
        a.dtype
    )


def _shift(a: np.ndarray, b: np.ndarray, dt: DType, left: bool) -> np.ndarray:
    amount = (b.astype(np.int64) & (dt.nbits - 1)).astype(a.dtype)
    return np.left_shift(a, amount) if left else np.right_shift(a, amount)


def binary(name: str, a: object, b: object, dt: DType) -> np.ndarray:
    """`a <name> b` for operands of dtype `dt` (comparisons give bool)."""
    a = np.asarray(a, dtype=dt.numpy_dtype)
    b = np.asarray(b, dtype=dt.numpy_dtype)
    with np.errstate(all="ignore"):
        if name in ("lt", "le", "gt", "ge", "eq", "ne"):
            compare = {
                "lt": np.less,
                "le": np.less_equal,
                "gt": np.greater,
                "ge": np.greater_equal,
                "eq": np.equal,
                "ne": np.not_equal,
            }
            return compare[name](a, b)
        if dt.is_float:
            return _float_binary(name, a, b, dt)
        return _int_binary(name, a, b, dt)


def _float_binary(name: str, a: np.ndarray, b: np.ndarray, dt: DType) -> np.ndarray:
    functions = {
        "add": np.add,
        "sub": np.subtract,
        "mul": np.multiply,
        "div": np.divide,
        "rem": np.fmod,
    }
    if name in ("max", "min"):
        return _float_min_max(name, a, b, dt)
    return np.asarray(functions[name](a, b), dtype=dt.numpy_dtype)


def quiet(a: np.ndarray, dt: DType) -> np.ndarray:
    """`a` with its NaNs made quiet (the top bit of the fraction set), payload and sign kept."""
    codes = np.asarray(a, dtype=dt.numpy_dtype).view(dt.code_numpy_dtype)
    quiet_bit = np.array(1 << (dt.mantissa_bits - 1), dtype=dt.code_numpy_dtype)
    return np.bitwise_or(codes, quiet_bit).view(dt.numpy_dtype)


def _float_min_max(name: str, a: np.ndarray, b: np.ndarray, dt: DType) -> np.ndarray:
    """min/max that pass over a NaN operand whatever its kind. np.fmax does so only on its
    vectorised path: for a signalling NaN, a scalar or a short array gets the NaN made quiet."""
    a, b = np.broadcast_arrays(a, b)
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    numbers = (np.fmax if name == "max" else np.fmin)(a, b)
    either = np.where(b_nan, a, b)  # the number, where one operand is NaN
    result = np.where(a_nan | b_nan, either, numbers)
    result = np.where(a_nan & b_nan, quiet(a, dt), result)
    return np.asarray(result, dtype=dt.numpy_dtype)


def _int_binary(name: str, a: np.ndarray, b: np.ndarray, dt: DType) -> np.ndarray:
    if name == "div":
        return _int_divide(a, b)
    if name == "rem":
        return _int_remainder(a, b)
    if name in ("shl", "shr"):
        return _shift(a, b, dt, name == "shl")
    functions = {
        "add": np.add,
        "sub": np.subtract,
        "mul": np.multiply,
        "max": np.maximum,
        "min": np.minimum,
        "and": np.bitwise_and,
        "or": np.bitwise_or,
        "xor": np.bitwise_xor,
    }
    return np.asarray(functions[name](a, b), dtype=dt.numpy_dtype)


def _rsqrt(x: np.ndarray) -> np.ndarray:
    return 1.0 / np.sqrt(x)


_MATH_ERF = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 (numpy has none; math.erf is within an ulp of float64), so that an f32
    result is the exact value rounded once, as the other functions' nearly are."""
    return np.asarray(_MATH_ERF(np.asarray(x, np.float64)), dtype=np.float64)


_FLOAT_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "exp2": np.exp2,
    "log": np.log,
    "log2": np.log2,
    "sqrt": np.sqrt,
    "rsqrt": _rsqrt,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.rint,
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "erf": _erf,
}


def unary(name: str, a: object, dt: DType) -> np.ndarray:
    """`name(a)` for an operand of dtype `dt`."""
    a = np.asarray(a, dtype=dt.numpy_dtype)
    with np.errstate(all="ignore"):
        if name == "neg":
            return np.asarray(np.negative(a), dtype=dt.numpy_dtype)
        if name == "abs":
            return np.asarray(np.abs(a), dtype=dt.numpy_dtype)
        if name == "not":
            return np.logical_not(a) if dt.is_bool else np.invert(a)
        if dt.numpy_dtype in (np.float32, np.float64):
            return np.asarray(_FLOAT_UNARY[name](a), dtype=dt.numpy_dtype)
        # f16 and bf16: compute in f32, round once.
        wide = a.astype(np.float32)
        return np.asarray(_FLOAT_UNARY[name](wide), dtype=np.float32).astype(dt.numpy_dtype)


# Any, not object: numpy's stubs take only array-likes in np.where, and canonicalize passes its
# folded constants as int | float | bool | None
def select(cond: Any, a: Any, b: Any, dt: DType) -> np.ndarray:
    return np.asarray(np.where(cond, a, b), dtype=dt.numpy_dtype)


def cast(a: object, source: DType, target: DType) -> np.ndarray:
    """`cast<target>(a)`: value conversion (see `lpir.dtypes.convert`)."""
    return np.asarray(convert(np.asarray(a, dtype=source.numpy_dtype), source, target))


def view(a: npt.ArrayLike, source: DType, target: DType) -> np.ndarray:
    """Reinterpret the bits of the last axis (LSB-first) as elements of `target`."""
    a = np.asarray(a, dtype=source.numpy_dtype)
    if a.ndim == 0 or source.nbits == target.nbits:
        codes = source.to_codes(a).astype(np.uint64)
        return target.from_codes(codes.astype(target.code_numpy_dtype))
    codes = source.to_codes(a).astype(np.uint64)
    # bits[..., i, j] = bit j of element i, then regroup the row's bit string.
    bits = (codes[..., None] >> np.arange(source.nbits, dtype=np.uint64)) & np.uint64(1)
    row_bits = bits.reshape(*a.shape[:-1], a.shape[-1] * source.nbits)
    count = row_bits.shape[-1] // target.nbits
    grouped = row_bits.reshape(*a.shape[:-1], count, target.nbits)
    weights = np.left_shift(np.uint64(1), np.arange(target.nbits, dtype=np.uint64))
    new_codes = (grouped * weights).sum(axis=-1, dtype=np.uint64)
    return target.from_codes(new_codes.astype(target.code_numpy_dtype))


def scalar(value: int | float | bool, dt: DType) -> np.generic:
    """A numpy scalar of `dt` holding a Python constant (a small float's code: 3.0 as an
    f8e4m3 is the code of 3.0, not code 3)."""
    if isinstance(value, float) and not dt.is_float:
        raise TypeError(f"float constant for {dt.name}")
    if dt.is_small_float:
        return np.uint8(dt.encode([value])[0])
    # the ignore: numpy's stubs type x[()] of a 0-d array as an array; it is a numpy scalar
    return (
        np.asarray(value, dtype=dt.numpy_dtype)[()]  # type: ignore[return-value]
        if dt.is_float or dt.is_bool
        else (np.asarray(int(value)).astype(dt.numpy_dtype)[()])
    )


BOOL = dtype("bool")
