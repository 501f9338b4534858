"""Data types: names, exhaustive exact decoding, correctly rounded encoding, cast rules."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lpir
from lpir.dtypes import ALL_DTYPE_NAMES, convert, dtype
from lpir.errors import DTypeError, LpirError

SMALL_FLOATS = [n for n in ALL_DTYPE_NAMES if n.startswith("f") and dtype(n).nbits <= 8]
ML_FLOATS = ["f4e2m1", "f6e2m3", "f6e3m2", "f8e4m3", "f8e5m2"]


def exact_value(dt, code: int) -> Fraction | float:
    """The value of a float code from its sign, exponent and mantissa fields, exactly."""
    exponent_bits, mantissa_bits = dt.exponent_bits, dt.mantissa_bits
    sign = -1 if code >> (dt.nbits - 1) & 1 else 1
    exponent = (code >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = code & ((1 << mantissa_bits) - 1)
    top = (1 << exponent_bits) - 1
    if dt.variant == "ieee" and exponent == top:
        return sign * math.inf if mantissa == 0 else math.nan
    if dt.variant == "fn" and exponent == top and mantissa == (1 << mantissa_bits) - 1:
        return math.nan
    fraction = Fraction(mantissa, 1 << mantissa_bits)
    if exponent == 0:
        return sign * fraction * Fraction(2) ** (1 - dt.bias)
    return sign * (1 + fraction) * Fraction(2) ** (exponent - dt.bias)


def same_float(a: float, b) -> bool:
    if isinstance(b, float) and math.isnan(b):
        return math.isnan(a)
    return a == b


# ---- names --------------------------------------------------------------------------------
def test_every_design_name_parses():
    for name in ALL_DTYPE_NAMES:
        assert dtype(name).name == name
    assert len([n for n in ALL_DTYPE_NAMES if n.startswith("f") and dtype(n).nbits <= 8]) == 27
    assert dtype("f6e3m2") is dtype("f6e3m2")


@pytest.mark.parametrize("bad", ["u9", "i0", "f4e3m1", "f9e4m4", "f2e1m0", "float", "f8e0m7", ""])
def test_bad_names_list_the_valid_forms(bad):
    with pytest.raises(DTypeError) as caught:
        dtype(bad)
    assert isinstance(caught.value, LpirError)
    assert "f{1+E+M}e{E}m{M}" in caught.value.hint


def test_properties():
    f4 = dtype("f4e2m1")
    assert (f4.nbits, f4.max, f4.min, f4.eps, f4.smallest_subnormal) == (4, 6.0, -6.0, 0.5, 0.5)
    assert dtype("f8e4m3").max == 448.0 and dtype("f8e5m2").max == 57344.0
    assert dtype("f6e3m2").max == 28.0 and dtype("f6e2m3").max == 7.5
    assert dtype("i3").min == -4 and dtype("i3").max == 3 and dtype("u5").max == 31
    assert dtype("f16").max == 65504.0 and dtype("bf16").smallest_normal == 2.0**-126
    assert dtype("u4").is_packed and not dtype("u8").is_packed and dtype("i4").is_signed


# ---- exhaustive decoding ------------------------------------------------------------------
@pytest.mark.parametrize("name", SMALL_FLOATS)
def test_every_code_decodes_exactly(name):
    dt = dtype(name)
    codes = np.arange(1 << dt.nbits)
    values = dt.decode(codes)
    for code, value in zip(codes, values):
        assert same_float(float(value), exact_value(dt, int(code))), (name, code)


@pytest.mark.parametrize("name", [*ML_FLOATS, "bf16"])
def test_decoding_is_bit_exact_against_ml_dtypes(name):
    dt = dtype(name)
    codes = np.arange(1 << dt.nbits, dtype=np.uint64)
    ours = dt.decode(codes.astype(dt.code_numpy_dtype))
    raw = codes.astype(np.uint8 if dt.nbits <= 8 else np.uint16)
    theirs = raw.view(dt.ml_dtype).astype(np.float32)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_f16_every_code():
    dt = dtype("f16")
    codes = np.arange(1 << 16, dtype=np.uint16)
    values = dt.decode(codes)
    assert np.array_equal(values, codes.view(np.float16).astype(np.float32), equal_nan=True)
    back = dt.encode(values)
    finite = np.isfinite(values)
    assert np.array_equal(back[finite], codes[finite])


@pytest.mark.parametrize("name", ["i1", "i2", "i4", "u1", "u2", "u4"])
def test_ints_against_ml_dtypes(name):
    dt = dtype(name)
    if dt.ml_dtype is None:
        pytest.skip(f"this ml_dtypes has no {name}")
    codes = np.arange(1 << dt.nbits, dtype=np.uint8)
    ours = dt.decode(codes).astype(np.int64)
    values = np.arange(dt.min, dt.max + 1)
    theirs = values.astype(dt.ml_dtype)
    assert sorted(ours.tolist()) == values.tolist()
    assert np.array_equal(dt.encode(values), dt.to_codes(values))
    assert np.array_equal(theirs.astype(np.int64), values)


# ---- encoding -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SMALL_FLOATS)
def test_encode_inverts_decode(name):
    dt = dtype(name)
    codes = np.arange(1 << dt.nbits, dtype=np.uint8)
    values = dt.decode(codes)
    back = dt.encode(values)
    finite = np.isfinite(values)
    zero = values == 0
    assert np.array_equal(back[finite & ~zero], codes[finite & ~zero])
    assert np.all(dt.decode(back[zero]) == 0)
    assert np.all(np.isnan(dt.decode(back[np.isnan(values)])))


@pytest.mark.parametrize("name", SMALL_FLOATS)
def test_midpoints_round_to_the_even_code(name):
    dt = dtype(name)
    codes = np.arange(1 << (dt.nbits - 1))  # non-negative codes
    values = dt.decode(codes).astype(np.float64)
    finite = np.isfinite(values)
    values, codes = values[finite], codes[finite]
    order = np.argsort(values)
    values, codes = values[order], codes[order]
    for (low, low_code), (high, high_code) in zip(
        zip(values[:-1], codes[:-1]), zip(values[1:], codes[1:])
    ):
        middle = (low + high) / 2  # exact in float64 and in float32 for these formats
        even = low_code if low_code % 2 == 0 else high_code
        assert dt.encode(np.float32(middle)) == even, (name, low, high)
        assert dt.encode(np.float32(-middle)) == even | (1 << (dt.nbits - 1))
        above = np.nextafter(np.float32(middle), np.float32(np.inf))
        below = np.nextafter(np.float32(middle), np.float32(0))
        assert dt.encode(above) == high_code and dt.encode(below) == low_code


@pytest.mark.parametrize("name", [n for n in SMALL_FLOATS if n != "f8e5m2"])
def test_values_past_max_saturate(name):
    dt = dtype(name)
    big = np.array([dt.max * 1.01, dt.max * 1000, 1e30, np.inf], np.float32)
    assert np.all(dt.decode(dt.encode(big)) == dt.max)
    assert np.all(dt.decode(dt.encode(-big)) == -dt.max)


def test_nan_handling():
    assert np.isnan(dtype("f8e4m3").decode(dtype("f8e4m3").encode(np.float32("nan"))))
    assert np.isnan(dtype("f8e5m2").decode(dtype("f8e5m2").encode(np.float32("nan"))))
    assert dtype("f4e2m1").decode(dtype("f4e2m1").encode(np.float32("nan"))) == 0.0  # documented
    assert dtype("f8e5m2").decode(dtype("f8e5m2").encode(np.float32(1e6))) == np.inf


finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite_f32, min_size=1, max_size=64), st.sampled_from([*ML_FLOATS, "bf16"]))
def test_rounding_agrees_with_ml_dtypes(values, name):
    dt = dtype(name)
    x = np.asarray(values, np.float32)
    theirs = x.astype(dt.ml_dtype).astype(np.float32)
    inside = np.isfinite(theirs) & (np.abs(x) <= dt.max)  # ml_dtypes overflows to NaN/inf
    ours = dt.decode(dt.encode(x))
    assert np.array_equal(ours[inside], theirs[inside])


def test_float64_to_bf16_rounds_once():
    # 1 + 2**-8 + 2**-30 is just above the bf16 midpoint between 1 and 1 + 2**-7, but its
    # float32 rounding is exactly the midpoint: rounding via float32 would give 1.0.
    x = np.array([1 + 2.0**-8 + 2.0**-30], np.float64)
    assert dtype("bf16").decode(dtype("bf16").encode(x))[0] == 1 + 2.0**-7


# ---- conversions --------------------------------------------------------------------------
def test_float_to_int_truncates_and_saturates():
    x = np.array([1.7, -1.7, 300.0, -300.0, np.nan, np.inf, -np.inf, 7.99], np.float32)
    assert convert(x, "f32", "i8").tolist() == [1, -1, 127, -128, 0, 127, -128, 7]
    assert convert(x, "f32", "u4").tolist() == [1, 0, 15, 0, 0, 15, 0, 7]
    assert convert(x, "f32", "i3").tolist() == [1, -1, 3, -4, 0, 3, -4, 3]
    big = np.array([1e30, -1e30], np.float64)
    assert convert(big, "f64", "i64").tolist() == [2**63 - 1, -(2**63)]
    assert convert(big, "f64", "u64").tolist() == [2**64 - 1, 0]


def test_int_to_int_wraps():
    assert convert(np.array([255, 256, -1, 300], np.int32), "i32", "u8").tolist() == [
        255,
        0,
        255,
        44,
    ]
    assert convert(np.array([7, 8, 15, -9], np.int32), "i32", "i4").tolist() == [7, -8, -1, 7]
    assert convert(np.array([-1], np.int8), "i8", "u4").tolist() == [15]
    assert convert(np.array([13], np.uint8), "u4", "i4").tolist() == [-3]


def test_int_to_float_rounds_to_nearest_even():
    assert convert(np.array([2**24 + 1, 2**24 + 3], np.int64), "i64", "f32").tolist() == [
        2**24,
        2**24 + 4,
    ]
    assert convert(np.array([7, -8], np.int8), "i4", "f4e2m1").tolist() == list(
        dtype("f4e2m1").encode(np.array([6.0, -6.0]))
    )
    assert convert(np.array([5], np.int8), "i8", "f4e2m1").tolist() == [dtype("f4e2m1").encode(4.0)]


def test_float_to_float_and_bool():
    x = np.array([0.3, 100.0, -0.0], np.float32)
    f6 = convert(x, "f32", "f6e3m2")
    assert dtype("f6e3m2").decode(f6).tolist() == [0.3125, 28.0, -0.0]
    assert convert(f6, "f6e3m2", "f16").tolist() == [0.3125, 28.0, 0.0]
    assert convert(np.array([0, 2, -1], np.int32), "i32", "bool").tolist() == [False, True, True]
    assert convert(np.array([True, False]), "bool", "f32").tolist() == [1.0, 0.0]


@pytest.mark.parametrize("source", ["f4e2m1", "f6e2m3", "f8e4m3", "f8e5m2", "f5e3m1"])
@pytest.mark.parametrize("target", ["f16", "bf16", "f32", "f3e1m1", "f8e4m3"])
def test_small_float_conversions_are_exact_roundings(source, target):
    src, dst = dtype(source), dtype(target)
    codes = np.arange(1 << src.nbits, dtype=np.uint8)
    values = src.decode(codes)
    ours = dst.decode(dst.to_codes(convert(codes, src, dst))).astype(np.float64)
    expected = dst.decode(dst.encode(values)).astype(np.float64)
    assert np.array_equal(ours, expected, equal_nan=True)


def test_package_exports():
    assert lpir.dtype("u3").nbits == 3
    assert lpir.convert(np.array([1.5], np.float32), "f32", "i8").tolist() == [1]
