"""`lpir.dtypes.convert` (the semantics of `cast<T>`) against independent Python references.

float -> int truncates toward zero and saturates (NaN -> 0); int -> int wraps; int -> float and
float -> float round the exact value to nearest even; bool <-> number is 0/1 and `!= 0`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from dtype_references import exact_value, rounded_float, truncated, wrapped

from lpir.dtypes import ALL_DTYPE_NAMES, convert, dtype

INTS = [n for n in ALL_DTYPE_NAMES if dtype(n).is_int]
FLOATS = [n for n in ALL_DTYPE_NAMES if dtype(n).is_float]
SOURCE_FLOATS = ["f3e1m1", "f3e2m0", "f4e2m1", "f5e3m1", "f6e2m3", "f6e3m2", "f8e4m3", "f8e5m2"]


def register_values(name: str, rng: np.random.Generator, count: int = 40) -> np.ndarray:
    """Values of `name` in its register representation: the extremes, small numbers around
    zero and random ones (all codes for small floats)."""
    dt = dtype(name)
    if dt.is_small_float:
        return np.arange(1 << dt.nbits, dtype=np.uint8)
    if dt.is_int:
        edges = [
            e
            for e in (dt.min, dt.min + 1, dt.max - 1, dt.max, 0, 1, -1, -2)
            if dt.min <= e <= dt.max
        ]
        upper = dt.max + 1 if dt.nbits < 64 else dt.max
        randoms = rng.integers(dt.min, upper, size=count, dtype=dt.numpy_dtype, endpoint=False)
        return np.concatenate([np.array(edges, dt.numpy_dtype), randoms])
    if dt.name == "bool":
        return np.array([False, True])
    magnitudes = np.exp2(rng.uniform(-30, min(math.log2(dt.max), 80), size=count))
    values = np.concatenate([magnitudes * rng.choice([-1, 1], size=count), [0.0, -0.0, 0.5]])
    values = np.concatenate([values, [1.5, -2.5, 127.99, -128.7, np.nan, np.inf, -np.inf]])
    with np.errstate(over="ignore"):
        return values.astype(dt.numpy_dtype)


def as_numbers(values: np.ndarray, name: str) -> list:
    """Register values as Python numbers (floats decoded exactly, NaN and inf as floats)."""
    dt = dtype(name)
    if dt.is_small_float:
        return [exact_value(dt, int(c)) for c in values]
    if dt.is_float:
        return [Fraction(v) if math.isfinite(v) else v for v in values.astype(np.float64).tolist()]
    return [int(v) for v in values.tolist()]


def signed_zero_aware(value, code_negative: bool):
    """exact_value gives Fraction(0) for both zeros: a float zero with the code's sign."""
    if isinstance(value, Fraction) and value == 0:
        return -0.0 if code_negative else 0.0
    return value


@pytest.mark.parametrize("source", [*FLOATS])
@pytest.mark.parametrize("target", INTS)
def test_float_to_int_truncates_and_saturates(source, target):
    src, dst = dtype(source), dtype(target)
    rng = np.random.default_rng(len(source) * 100 + len(target))
    values = register_values(source, rng)
    result = convert(values, src, dst)
    assert result.dtype == dst.numpy_dtype
    expected = [truncated(dst, float(v)) for v in as_numbers(values, source)]  # exact floats
    assert result.tolist() == expected


@pytest.mark.parametrize("source", INTS)
@pytest.mark.parametrize("target", INTS)
def test_int_to_int_wraps(source, target):
    rng = np.random.default_rng(len(source) * 7 + len(target))
    values = register_values(source, rng, count=12)
    result = convert(values, source, target)
    assert result.dtype == dtype(target).numpy_dtype
    assert result.tolist() == [wrapped(dtype(target), int(v)) for v in values.tolist()]


def tricky_integers() -> np.ndarray:
    """int64 values near rounding boundaries of 8-, 11- and 24-bit significands, where rounding
    through float64 first would round twice."""
    values = []
    for high in (62, 60, 54, 40, 30, 25, 24, 12, 9):
        for precision in (8, 11, 24):
            if high - precision >= 1:
                middle = (1 << high) + (1 << (high - precision))  # a tie at this precision
                values += [middle - 1, middle, middle + 1, -(middle + 1), -middle]
    values += [2**63 - 1, -(2**63), 0, 1, -1, 65504, 65520, 65519]
    return np.array(values, np.int64)


@pytest.mark.parametrize("target", FLOATS)
def test_int_to_float_rounds_the_exact_value(target):
    dst = dtype(target)
    rng = np.random.default_rng(5)
    for source, values in [
        ("i64", tricky_integers()),
        ("u64", np.array([2**64 - 1, 2**63 + 2**39 + 1, 2**63 + 2**39, 2**53 + 1], np.uint64)),
        ("i8", register_values("i8", rng)),
        ("u4", register_values("u4", rng)),
        ("i32", register_values("i32", rng)),
    ]:
        result = convert(values, source, dst)
        assert result.dtype == dst.numpy_dtype
        decoded = dst.decode(dst.to_codes(result)).astype(np.float64).tolist()
        expected = [rounded_float(int(v), dst) for v in values.tolist()]
        assert decoded == expected, (source, target)


@pytest.mark.parametrize("source", [*SOURCE_FLOATS, "f16", "bf16", "f32", "f64"])
@pytest.mark.parametrize("target", FLOATS)
def test_float_to_float_rounds_the_exact_value(source, target):
    src, dst = dtype(source), dtype(target)
    rng = np.random.default_rng(11)
    values = register_values(source, rng)
    result = convert(values, src, dst)
    assert result.dtype == dst.numpy_dtype
    decoded = dst.decode(dst.to_codes(result)).astype(np.float64).tolist()
    codes_negative = np.signbit(src.decode(src.to_codes(values))).tolist()
    for number, negative, got in zip(as_numbers(values, source), codes_negative, decoded):
        number = signed_zero_aware(number, negative)
        if isinstance(number, float) and math.isnan(number):
            assert math.isnan(got) if dst.has_nan else got == 0.0
            continue
        expected = rounded_float(number, dst)
        if number == 0 or (isinstance(number, Fraction) and expected == 0):
            expected = -0.0 if negative else 0.0
        assert got == expected and math.copysign(1, got) == math.copysign(1, expected), (
            source,
            target,
            number,
            got,
        )


def test_hand_picked_casts():
    x = np.array([1.7, -1.7, 300.0, -300.0, np.nan, np.inf, -np.inf, 7.99], np.float32)
    assert convert(x, "f32", "i8").tolist() == [1, -1, 127, -128, 0, 127, -128, 7]
    assert convert(x, "f32", "u4").tolist() == [1, 0, 15, 0, 0, 15, 0, 7]
    assert convert(x, "f32", "i3").tolist() == [1, -1, 3, -4, 0, 3, -4, 3]
    assert convert(np.array([1e30, -1e30]), "f64", "i64").tolist() == [2**63 - 1, -(2**63)]
    assert convert(np.array([1e30, -1e30]), "f64", "u64").tolist() == [2**64 - 1, 0]
    assert convert(np.array([255, 256, -1, 300], np.int32), "i32", "u8").tolist() == [
        255,
        0,
        255,
        44,
    ]
    assert convert(np.array([7, 8, 15, -9], np.int32), "i32", "i4").tolist() == [7, -8, -1, 7]
    assert convert(np.array([13], np.uint8), "u4", "i4").tolist() == [-3]
    assert convert(np.array([-3], np.int8), "i3", "u3").tolist() == [5]
    f6 = convert(np.array([0.3, 100.0, -0.0], np.float32), "f32", "f6e3m2")
    assert dtype("f6e3m2").decode(f6).tolist() == [0.3125, 28.0, -0.0]
    assert convert(f6, "f6e3m2", "f16").tolist() == [0.3125, 28.0, -0.0]
    assert convert(np.array([5, 7, -8], np.int8), "i4", "f4e2m1").tolist() == [
        int(dtype("f4e2m1").encode(v)) for v in (4.0, 6.0, -6.0)
    ]


def test_bool_casts():
    assert convert(np.array([0, 2, -1], np.int32), "i32", "bool").tolist() == [False, True, True]
    floats = np.array([0.0, -0.0, 0.1, np.nan], np.float32)
    assert convert(floats, "f32", "bool").tolist() == [False, False, True, True]
    f4 = dtype("f4e2m1")
    assert convert(f4.encode([0.0, -0.0, 0.5]), f4, "bool").tolist() == [False, False, True]
    for target in ["f32", "f16", "bf16", "i4", "u64", "f4e2m1"]:
        result = convert(np.array([True, False]), "bool", target)
        assert result.dtype == dtype(target).numpy_dtype
        assert dtype(target).decode(dtype(target).to_codes(result)).tolist() == [1, 0]


def test_convert_keeps_shapes_and_copies():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert convert(x, "f32", "i8").shape == (3, 4)
    same = convert(x, "f32", "f32")
    assert same is not x and np.array_equal(same, x)
    assert convert(2.5, "f32", "i8").tolist() == 2
    assert convert([1.0, 2.0], "f64", "f16").dtype == np.float16
