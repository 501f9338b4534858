"""Data types: names and properties, exhaustive exact decoding, correctly rounded encoding.

The references are independent of lpir's implementation (tests/dtype_references.py: values of
codes from their fields as `Fraction`s, rounding on `Fraction`s with round-half-even), and
ml_dtypes/numpy are compared bit for bit wherever they have the type. The rules of `convert`
are tested in test_dtype_conversions.py.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from dtype_references import exact_value, rounded_float
from hypothesis import given, settings
from hypothesis import strategies as st

import lpir
from lpir import dtype_conversions as conversions
from lpir.dtypes import ALL_DTYPE_NAMES, DType, dtype, is_small_float
from lpir.errors import DTypeError, LpirError

SMALL_FLOATS = [n for n in ALL_DTYPE_NAMES if dtype(n).is_small_float]
FLOATS = [n for n in ALL_DTYPE_NAMES if dtype(n).is_float]
INTS = [n for n in ALL_DTYPE_NAMES if dtype(n).is_int]
CODED_FLOATS = [*SMALL_FLOATS, "f16", "bf16"]  # small enough to enumerate every code
ML_FLOATS = [n for n in FLOATS if dtype(n).ml_dtype is not None]
ML_INTS = [n for n in INTS if dtype(n).ml_dtype is not None]


def check_rounding(dt: DType, inputs: np.ndarray) -> None:
    """decode(encode(inputs)) equals the exact reference rounding, sign of zero included."""
    decoded = dt.decode(dt.encode(inputs)).astype(np.float64)
    for x, got in zip(inputs.astype(np.float64).tolist(), decoded.tolist()):
        if not math.isnan(x):
            expected = rounded_float(x, dt)
            assert got == expected and math.copysign(1, got) == math.copysign(1, expected), (
                dt.name,
                x,
                got,
                expected,
            )


def same(a: float, b) -> bool:
    """Equal as numbers, NaN equal to NaN."""
    if isinstance(b, float) and math.isnan(b):
        return math.isnan(a)
    return a == b


def ml_codes(values: np.ndarray, dt: DType) -> np.ndarray:
    """ml_dtypes' conversion of `values` to `dt`, as codes."""
    converted = values.astype(dt.ml_dtype)
    return converted.view(np.uint8 if converted.itemsize == 1 else np.uint16)


# ---- names and properties -------------------------------------------------------------------
def test_every_name_parses_and_is_cached():
    assert len(ALL_DTYPE_NAMES) == len(set(ALL_DTYPE_NAMES)) == 22 + 1 + 27 + 4
    for name in ALL_DTYPE_NAMES:
        dt = dtype(name)
        assert dt.name == str(dt) == name and dtype(dt) is dt and dtype(name) is dt
    assert dtype("u4") == DType("u4", 4, "uint") and hash(dtype("u4")) == hash(
        DType("u4", 4, "uint")
    )
    assert repr(dtype("f6e3m2")) == "dtype('f6e3m2')"
    with pytest.raises(AttributeError):
        dtype("u4").nbits = 5  # frozen


def test_small_float_names_are_every_split_of_3_to_8_bits():
    expected = {
        f"f{1 + e + m}e{e}m{m}" for e in range(1, 8) for m in range(0, 7) if 3 <= 1 + e + m <= 8
    }
    assert set(SMALL_FLOATS) == expected
    assert {"f3e1m1", "f4e2m1", "f5e2m2", "f6e3m2", "f6e2m3", "f7e3m3", "f8e3m4"} <= expected
    assert is_small_float("f8e4m3") and not is_small_float("f16") and not is_small_float("u4")


@pytest.mark.parametrize(
    ("bad", "hint"),
    [
        ("u9", None),
        ("i0", None),
        ("i08", None),
        ("f4e3m1", "f5e3m1"),
        ("f4e2m2", "f5e2m2"),
        ("f9e4m4", "3 to 8 bits"),
        ("f2e1m0", "3 to 8 bits"),
        ("f8e0m7", "E >= 1"),
        ("float32", "'f32'"),
        ("bfloat16", "'bf16'"),
        ("int8", "'i8'"),
        ("uint4", "'u4'"),
        ("", None),
    ],
)
def test_bad_names_list_the_valid_forms(bad, hint):
    with pytest.raises(DTypeError) as caught:
        dtype(bad)
    assert isinstance(caught.value, LpirError)
    assert repr(bad) in caught.value.message
    assert "f{1+E+M}e{E}m{M}" in caught.value.message and "bf16" in str(caught.value)
    if hint is not None:
        assert hint in caught.value.hint


def test_a_dtype_must_be_a_name():
    with pytest.raises(DTypeError, match="must be a name"):
        dtype(np.float32)


@pytest.mark.parametrize(
    ("name", "bits", "low", "high", "eps", "subnormal", "normal", "nan", "inf"),
    [
        ("f3e1m1", 3, -3.0, 3.0, 0.5, 1.0, 2.0, False, False),
        ("f4e2m1", 4, -6.0, 6.0, 0.5, 0.5, 1.0, False, False),
        ("f5e2m2", 5, -7.0, 7.0, 0.25, 0.25, 1.0, False, False),
        ("f6e2m3", 6, -7.5, 7.5, 0.125, 0.125, 1.0, False, False),
        ("f6e3m2", 6, -28.0, 28.0, 0.25, 0.0625, 0.25, False, False),
        ("f8e3m4", 8, -31.0, 31.0, 2**-4, 2**-6, 0.25, False, False),
        ("f8e7m0", 8, -(2.0**64), 2.0**64, 1.0, 2.0**-62, 2.0**-62, False, False),
        ("f8e4m3", 8, -448.0, 448.0, 0.125, 2**-9, 2**-6, True, False),
        ("f8e5m2", 8, -57344.0, 57344.0, 0.25, 2**-16, 2**-14, True, True),
        ("f16", 16, -65504.0, 65504.0, 2**-10, 2**-24, 2**-14, True, True),
        (
            "bf16",
            16,
            -(2 - 2**-7) * 2.0**127,
            (2 - 2**-7) * 2.0**127,
            2**-7,
            2**-133,
            2**-126,
            1,
            1,
        ),
    ],
)
def test_float_properties(name, bits, low, high, eps, subnormal, normal, nan, inf):
    dt = dtype(name)
    assert (dt.nbits, dt.min, dt.max, dt.eps) == (bits, low, high, eps)
    assert (dt.smallest_subnormal, dt.smallest_normal) == (subnormal, normal)
    assert (dt.has_nan, dt.has_inf) == (bool(nan), bool(inf))
    assert dt.is_float and dt.is_signed and not dt.is_int and not dt.is_bool
    assert isinstance(dt.max, float) and dt.bias == (1 << (dt.exponent_bits - 1)) - 1
    assert (
        max(abs(float(v)) for v in dt.decode(np.arange(1 << min(bits, 16))) if np.isfinite(v))
        == dt.max
    )


@pytest.mark.parametrize("name", [*ML_FLOATS, "f16", "f32", "f64"])
def test_float_properties_agree_with_finfo(name):
    dt = dtype(name)
    info = ml_dtypes.finfo(dt.ml_dtype) if dt.ml_dtype is not None else np.finfo(dt.numpy_dtype)
    assert float(info.max) == dt.max and float(info.eps) == dt.eps
    assert float(info.smallest_normal) == dt.smallest_normal
    assert float(info.smallest_subnormal) == dt.smallest_subnormal


def test_integer_and_bool_properties():
    assert (dtype("i3").min, dtype("i3").max, dtype("u5").min, dtype("u5").max) == (-4, 3, 0, 31)
    assert (dtype("i1").min, dtype("i1").max, dtype("u1").max) == (-1, 0, 1)
    assert (dtype("i64").min, dtype("u64").max) == (-(2**63), 2**64 - 1)
    assert all(isinstance(dtype(n).max, int) for n in INTS)
    assert dtype("i4").is_signed and not dtype("u4").is_signed and dtype("u4").is_int
    boolean = dtype("bool")
    assert (boolean.nbits, boolean.min, boolean.max, boolean.is_bool) == (1, 0, 1, True)
    assert not boolean.is_int and not boolean.is_float and boolean.is_packed
    with pytest.raises(DTypeError, match="i8 is not a float type"):
        _ = dtype("i8").eps
    with pytest.raises(DTypeError, match="no bias"):
        _ = dtype("u4").bias


@pytest.mark.parametrize(
    ("name", "register", "code", "ml"),
    [
        ("bool", np.bool_, np.uint8, None),
        ("u4", np.uint8, np.uint8, ml_dtypes.uint4),
        ("i3", np.int8, np.uint8, None),
        ("i8", np.int8, np.uint8, None),
        ("u16", np.uint16, np.uint16, None),
        ("i32", np.int32, np.uint32, None),
        ("i64", np.int64, np.uint64, None),
        ("f4e2m1", np.uint8, np.uint8, ml_dtypes.float4_e2m1fn),
        ("f8e3m4", np.uint8, np.uint8, None),  # ml_dtypes' float8_e3m4 has inf and NaN
        ("f8e4m3", np.uint8, np.uint8, ml_dtypes.float8_e4m3fn),
        ("f16", np.float16, np.uint16, None),
        ("bf16", ml_dtypes.bfloat16, np.uint16, ml_dtypes.bfloat16),
        ("f32", np.float32, np.uint32, None),
        ("f64", np.float64, np.uint64, None),
    ],
)
def test_numpy_representations(name, register, code, ml):
    dt = dtype(name)
    assert dt.numpy_dtype == np.dtype(register) and dt.code_numpy_dtype == np.dtype(code)
    assert dt.ml_dtype is ml
    assert dt.is_packed == (dt.nbits < 8)
    if dt.nbits >= 8:
        assert dt.itemsize == dt.nbits // 8


def test_ml_dtypes_matches():
    expected = {"f4e2m1", "f6e2m3", "f6e3m2", "f8e4m3", "f8e5m2", "bf16"}
    expected |= {"i2", "i4", "u2", "u4"} | {n for n in ("i1", "u1") if hasattr(ml_dtypes, "int1")}
    assert {n for n in ALL_DTYPE_NAMES if dtype(n).ml_dtype is not None} == expected


# ---- exhaustive decoding --------------------------------------------------------------------
@pytest.mark.parametrize("name", CODED_FLOATS)
def test_every_code_decodes_exactly(name):
    dt = dtype(name)
    codes = np.arange(1 << dt.nbits, dtype=np.uint64).astype(dt.code_numpy_dtype)
    values = dt.decode(codes)
    assert values.dtype == np.float32
    for code, value in zip(codes.tolist(), values.tolist()):
        assert same(value, exact_value(dt, code)), (name, code, value)
    # The sign bit gives the sign, of zeros too (NaNs aside).
    negative = (codes >> (dt.nbits - 1)).astype(bool)
    assert np.array_equal(np.signbit(values)[~np.isnan(values)], negative[~np.isnan(values)])


@pytest.mark.parametrize("name", ML_FLOATS)
def test_decoding_is_bit_exact_against_ml_dtypes(name):
    dt = dtype(name)
    codes = np.arange(1 << dt.nbits, dtype=np.uint64).astype(dt.code_numpy_dtype)
    theirs = codes.view(dt.ml_dtype).astype(np.float32)
    assert np.array_equal(dt.decode(codes).view(np.uint32), theirs.view(np.uint32))


def test_f16_and_wide_floats_decode_like_numpy():
    codes = np.arange(1 << 16, dtype=np.uint16)
    assert np.array_equal(
        dtype("f16").decode(codes).view(np.uint32),
        codes.view(np.float16).astype(np.float32).view(np.uint32),
    )
    rng = np.random.default_rng(1)
    bits32 = rng.integers(0, 2**32, size=1000, dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(dtype("f32").decode(bits32).view(np.uint32), bits32)
    bits64 = rng.integers(0, 2**63, size=1000, dtype=np.uint64) * np.uint64(2)
    decoded64 = dtype("f64").decode(bits64)
    assert decoded64.dtype == np.float64 and np.array_equal(decoded64.view(np.uint64), bits64)


def int_reference(dt: DType, code: int) -> int:
    """Two's complement (signed) or plain (unsigned) value of the low nbits bits of `code`."""
    low = code & ((1 << dt.nbits) - 1)
    return low - (1 << dt.nbits) if dt.is_signed and low >> (dt.nbits - 1) else low


@pytest.mark.parametrize("name", INTS)
def test_integer_codes_decode_to_their_values(name):
    dt = dtype(name)
    if dt.nbits <= 16:
        codes = np.arange(1 << dt.nbits, dtype=np.uint64)
    else:
        codes = np.random.default_rng(dt.nbits).integers(0, 2**63, size=2000, dtype=np.uint64)
        codes = np.concatenate([codes * np.uint64(2), np.uint64([0, 1, (1 << dt.nbits) - 1])])
        codes &= np.uint64((1 << dt.nbits) - 1)
    codes = codes.astype(dt.code_numpy_dtype)
    values = dt.decode(codes)
    assert values.dtype == dt.numpy_dtype
    assert values.tolist() == [int_reference(dt, c) for c in codes.tolist()]
    assert np.array_equal(dt.to_codes(values), codes)
    assert np.array_equal(dt.encode(values), codes)
    if dt.nbits < 64:  # bits above nbits are ignored
        high = codes.astype(np.uint64) | np.uint64(1 << dt.nbits)
        assert np.array_equal(dt.from_codes(high), values)


@pytest.mark.parametrize("name", ML_INTS)
def test_integers_are_bit_exact_against_ml_dtypes(name):
    dt = dtype(name)
    codes = np.arange(1 << dt.nbits, dtype=np.uint8)
    assert np.array_equal(dt.decode(codes), codes.view(dt.ml_dtype).astype(dt.numpy_dtype))
    values = np.arange(dt.min, dt.max + 1)
    assert np.array_equal(dt.encode(values), values.astype(dt.ml_dtype).view(np.uint8))


def test_bool_codes():
    dt = dtype("bool")
    assert dt.decode(np.array([0, 1, 3, 2], np.uint8)).tolist() == [False, True, True, False]
    assert dt.encode([0.0, -2.0, np.nan, 0]).tolist() == [0, 1, 1, 0]
    assert dt.to_codes(np.array([True, False])).tolist() == [1, 0]


# ---- encoding: every code, midpoints, saturation, NaN -------------------------------------------
@pytest.mark.parametrize("name", CODED_FLOATS)
def test_encode_inverts_decode_for_every_code(name):
    dt = dtype(name)
    codes = np.arange(1 << dt.nbits, dtype=np.uint64).astype(dt.code_numpy_dtype)
    values = dt.decode(codes)
    nan = np.isnan(values)
    with np.errstate(invalid="ignore"):  # casting NaNs with payloads
        wide = values.astype(np.float64)
    for inputs in (values, wide):
        back = dt.encode(inputs)
        assert back.dtype == dt.code_numpy_dtype
        assert np.array_equal(back[~nan], codes[~nan])  # -0.0 included: it has its own code
        assert np.all(np.isnan(dt.decode(back[nan])))


def neighbours(dt: DType) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Adjacent non-negative finite values (low < high, float64) and their codes."""
    codes = np.arange(1 << (dt.nbits - 1), dtype=np.uint64).astype(dt.code_numpy_dtype)
    values = dt.decode(codes)
    finite = np.isfinite(values)
    codes, values = codes[finite], values[finite].astype(np.float64)
    assert np.all(np.diff(values) > 0)  # positive codes are ordered like their values
    return values[:-1], values[1:], codes[:-1], codes[1:]


@pytest.mark.parametrize("name", CODED_FLOATS)
def test_midpoints_round_to_the_even_code(name):
    dt = dtype(name)
    low, high, low_code, high_code = neighbours(dt)
    middle = (low + high) / 2
    assert np.all(middle * 2 == low + high) and np.all((low < middle) & (middle < high))
    even = np.where(low_code % 2 == 0, low_code, high_code)
    sign = dt.code_numpy_dtype.type(1 << (dt.nbits - 1))
    for width in (np.float32, np.float64):
        exact = middle.astype(width)
        assert np.array_equal(exact.astype(np.float64), middle)  # the midpoints are exact inputs
        assert np.array_equal(dt.encode(exact), even)
        assert np.array_equal(dt.encode(-exact), even | sign)
        above = np.nextafter(exact, width(np.inf))
        below = np.nextafter(exact, width(0))
        assert np.array_equal(dt.encode(above), high_code)
        assert np.array_equal(dt.encode(below), low_code)
        assert np.array_equal(dt.encode(-above), high_code | sign)


@pytest.mark.parametrize("name", CODED_FLOATS)
def test_values_past_max_saturate_or_overflow(name):
    dt = dtype(name)
    low, high, _, high_code = neighbours(dt)
    largest, step = high[-1], high[-1] - low[-1]
    tie = largest + step / 2  # the midpoint between max and the next value, if there were one
    for width in (np.float32, np.float64):
        if tie > np.finfo(width).max:
            continue
        just_below = np.nextafter(width(tie), width(0))
        with np.errstate(over="ignore"):
            past = np.array([tie, np.nextafter(width(tie), width(np.inf)), 2 * tie, np.inf], width)
        assert dt.encode(just_below) == high_code[-1]
        expected = np.inf if dt.has_inf else largest
        assert np.all(dt.decode(dt.encode(past)) == expected)
        assert np.all(dt.decode(dt.encode(-past)) == -expected)
    if not dt.has_inf:
        assert dt.decode(dt.encode(np.array([1e300, -1e300]))).tolist() == [dt.max, dt.min]


@pytest.mark.parametrize("name", CODED_FLOATS)
def test_nan_handling(name):
    dt = dtype(name)
    nan32 = np.array([np.nan, -np.nan], np.float32)
    top = 1 << (dt.nbits - 1)
    if dt.variant == "finite":
        expected = [top, 0]  # documented: like ml_dtypes, NaN -> zero of the opposite sign
    elif dt.name == "f8e4m3":
        expected = [0x7F, 0xFF]
    else:  # f8e5m2, f16, bf16: the quiet NaN, signed
        quiet = (((1 << dt.exponent_bits) - 1) << dt.mantissa_bits) | (1 << (dt.mantissa_bits - 1))
        expected = [quiet, quiet | top]
    assert dt.encode(nan32).tolist() == expected
    assert dt.encode(nan32.astype(np.float64)).tolist() == expected
    if dt.ml_dtype is not None:
        assert ml_codes(nan32, dt).tolist() == expected


# ---- encoding: rounding against exact references and ml_dtypes ------------------------------
def spread(dt: DType, rng: np.random.Generator, count: int) -> np.ndarray:
    """float64 values of both signs with log-uniform magnitudes from below the smallest
    subnormal to past max, with random low bits (so most are not exact in float32)."""
    top = min(math.log2(dt.max) + 1.5, 1020)
    exponents = rng.uniform(math.log2(dt.smallest_subnormal) - 2, top, size=count)
    values = np.exp2(exponents) * rng.choice([-1.0, 1.0], size=count)
    return np.concatenate([values, [0.0, -0.0, np.inf, -np.inf]])


@pytest.mark.parametrize("name", FLOATS)
def test_encode_rounds_float64_and_float32_like_the_exact_reference(name):
    dt = dtype(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    values = spread(dt, rng, 250)
    check_rounding(dt, values)
    with np.errstate(over="ignore"):
        check_rounding(dt, values.astype(np.float32))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(width=32), min_size=1, max_size=32),
    st.sampled_from(ML_FLOATS),
)
def test_encode_agrees_with_ml_dtypes_bit_for_bit(values, name):
    dt = dtype(name)
    x = np.asarray(values, np.float32)
    ours, theirs = dt.encode(x), ml_codes(x, dt)
    # ml_dtypes' float8_e4m3fn turns overflow into NaN; lpir saturates (DESIGN §2).
    comparable = ~(np.isnan(theirs.view(dt.ml_dtype).astype(np.float32)) & ~np.isnan(x))
    assert np.array_equal(ours[comparable], theirs[comparable])
    assert np.all(dt.decode(ours[~comparable]) == np.sign(x[~comparable]) * dt.max)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False), min_size=1, max_size=16),
    st.booleans(),
    st.sampled_from(FLOATS),
)
def test_encode_agrees_with_the_exact_reference(values, as_float32, name):
    with np.errstate(over="ignore"):
        check_rounding(dtype(name), np.asarray(values, np.float32 if as_float32 else np.float64))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(), min_size=1, max_size=32))
def test_f16_encode_agrees_with_numpy(values):
    x = np.asarray(values, np.float64)
    with np.errstate(over="ignore"):
        for inputs in (x, x.astype(np.float32)):
            assert np.array_equal(
                dtype("f16").encode(inputs), inputs.astype(np.float16).view(np.uint16)
            )


def test_float32_table_agrees_with_the_bit_level_encoder():
    # float32 inputs go through a 2**17-entry table built from the bit-level encoder; any
    # float32 bit pattern (NaNs, infinities, subnormals included) must encode the same both ways.
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2**32, size=20_000, dtype=np.uint64).astype(np.uint32)
    bits = np.concatenate([bits, np.uint32([0, 0x80000000, 0x7F800000, 0x7F800001, 0x00000001])])
    x = bits.view(np.float32)
    for name in SMALL_FLOATS:
        dt = dtype(name)
        assert np.array_equal(
            conversions.encode_small_float(dt, x), conversions.encode_small_float_exact(dt, x)
        )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        # Each input lies just above a midpoint by less than float32 can hold: rounding through
        # float32 lands on the midpoint and then on the even side, which is the wrong answer.
        ("bf16", 1 + 2**-8 + 2**-30, 1 + 2**-7),
        ("f16", 1 + 2**-11 + 2**-40, 1 + 2**-10),
        ("f4e2m1", 1.25 + 2**-40, 1.5),
        ("f8e4m3", 1 + 2**-4 + 2**-40, 1 + 2**-3),
        ("f6e3m2", -(1.125 + 2**-45), -1.25),
    ],
)
def test_float64_inputs_are_rounded_once(name, value, expected):
    assert float(dtype(name).decode(dtype(name).encode(np.float64(value)))) == expected


def test_encode_accepts_many_input_kinds():
    f4 = dtype("f4e2m1")
    expected = f4.encode(np.array([1.5, -6.0, 0.25], np.float32)).tolist()
    assert f4.encode([1.5, -6.0, 0.25]).tolist() == expected
    assert f4.encode(np.array([1.5, -6.0, 0.25], np.float16)).tolist() == expected
    assert f4.encode(np.array([1.5, -6.0, 0.25], ml_dtypes.bfloat16)).tolist() == expected
    e5m2 = np.array([1.5, -6.0, 0.25], np.float32).astype(ml_dtypes.float8_e5m2)
    assert f4.encode(e5m2).tolist() == expected
    assert f4.encode(1.5).tolist() == expected[0] and f4.encode(np.float32(1.5)) == expected[0]
    assert f4.encode(np.array([1, 7, -100])).tolist() == f4.encode([1.0, 7.0, -100.0]).tolist()
    assert dtype("f32").decode(dtype("f32").encode(2**70)).tolist() == 2.0**70  # a Python int
    with pytest.raises(DTypeError, match="cannot encode"):
        f4.encode(np.array(["1.5"]))


def test_int64_to_bf16_is_rounded_once():
    # 2**62 + 2**54 + 1 lies just above the bf16 midpoint 2**62 * (1 + 2**-8); float64 alone
    # would round it onto the midpoint, and then to the even side, 2**62.
    bf16 = dtype("bf16")
    x = np.array([2**62 + 2**54 + 1, 2**62 + 2**54, -(2**62 + 2**54 + 1)], np.int64)
    assert bf16.decode(bf16.encode(x)).tolist() == [
        2.0**62 * (1 + 2**-7),
        2.0**62,
        -(2.0**62) * (1 + 2**-7),
    ]
    f32 = dtype("f32")
    y = np.array([2**63 + 2**39 + 1, 2**64 - 1], np.uint64)
    assert f32.decode(f32.encode(y)).tolist() == [2.0**63 + 2**40, 2.0**64]


def test_package_exports():
    assert lpir.dtype("u3") is dtype("u3") and lpir.DType is DType
    assert lpir.convert(np.array([1.5], np.float32), "f32", "i8").tolist() == [1]
