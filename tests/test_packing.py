"""Packed storage: round trips, exact bit positions, accepted inputs and errors."""

from __future__ import annotations

import copy

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lpir
from lpir.dtypes import ALL_DTYPE_NAMES, dtype
from lpir.errors import DTypeError
from lpir.packing import PackedArray, pack_codes, storage_bytes, unpack_codes


def reference_pack(codes: np.ndarray, nbits: int) -> np.ndarray:
    """Independent reference: place every element's bits with one big Python integer."""
    total = 0
    for index, code in enumerate(codes.reshape(-1).tolist()):
        total |= int(code) << (index * nbits)
    count = (codes.size * nbits + 7) // 8
    return np.frombuffer(total.to_bytes(count, "little"), dtype=np.uint8)


def names_of_width(nbits: int) -> list[str]:
    return [n for n in ALL_DTYPE_NAMES if dtype(n).nbits == nbits]


@pytest.mark.parametrize("nbits", range(1, 9))
def test_codes_round_trip_for_every_width_and_length(nbits):
    rng = np.random.default_rng(nbits)
    dt = dtype(f"u{nbits}")
    for length in range(71):
        codes = rng.integers(0, 1 << nbits, size=length).astype(np.uint8)
        packed = pack_codes(codes, dt)
        assert packed.nbytes == storage_bytes(length, dt) == (length * nbits + 7) // 8
        assert np.array_equal(packed.data, reference_pack(codes, nbits))
        assert packed.codes().dtype == np.uint8 and np.array_equal(packed.codes(), codes)


@pytest.mark.parametrize("nbits", range(1, 9))
def test_values_round_trip_for_every_dtype_of_each_width(nbits):
    rng = np.random.default_rng(100 + nbits)
    for name in names_of_width(nbits):
        dt = dtype(name)
        for length in (0, 1, 7, 8, 9, 23, 64, 70):
            codes = rng.integers(0, 1 << nbits, size=length).astype(np.uint8)
            if dt.is_float:
                values = dt.decode(codes)
                values = np.where(np.isnan(values), np.float32(0), values)
            else:
                values = dt.from_codes(codes)
            packed = lpir.pack(values, dt)
            unpacked = lpir.unpack(packed)
            assert unpacked.dtype == (np.float32 if dt.is_float else dt.numpy_dtype)
            assert np.array_equal(unpacked, values), (name, length)
            assert np.array_equal(packed.data, reference_pack(dt.encode(values), nbits))


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(st.integers(0, 6), min_size=0, max_size=4),
    st.integers(0, 2**32 - 1),
)
def test_random_shapes_round_trip(nbits, shape, seed):
    rng = np.random.default_rng(seed)
    names = names_of_width(nbits)
    dt = dtype(names[seed % len(names)])
    codes = rng.integers(0, 1 << nbits, size=shape).astype(np.uint8)
    packed = pack_codes(codes, dt)
    assert packed.shape == tuple(shape) and packed.ndim == len(shape)
    assert packed.size == codes.size and packed.dtype == dt
    assert np.array_equal(packed.codes(), codes)
    assert np.array_equal(packed.data, reference_pack(codes, nbits))
    if dt.is_int:
        values = dt.from_codes(codes)
        assert np.array_equal(lpir.pack(values, dt).unpack(), values)


def test_three_bit_positions_by_hand():
    # Elements 5, 3, 6, 1, 7, 2, 4, 0, 5 take bits 0-2, 3-5, 6-8, ... (LSB first):
    #   byte 0 = bits 0..7   = 5 | 3<<3 | (6 & 0b11)<<6          = 0b10_011_101 = 0x9D
    #   byte 1 = bits 8..15  = 6>>2 | 1<<1 | 7<<4 | (2 & 1)<<7    = 0b0_111_001_1 = 0x73
    #   byte 2 = bits 16..23 = 2>>1 | 4<<2 | 0<<5                 = 0b000_100_1   = 0x11
    #   byte 3 = bits 24..26 = 5                                   = 0x05
    packed = pack_codes(np.array([5, 3, 6, 1, 7, 2, 4, 0, 5], np.uint8), "u3")
    assert packed.data.tolist() == [0x9D, 0x73, 0x11, 0x05]


def test_five_bit_positions_by_hand():
    # Elements 21 (0b10101), 7 (0b00111), 24 (0b11000), 1 take bits 0-4, 5-9, 10-14, 15-19:
    #   byte 0 = 21 | (7 & 0b111)<<5        = 0b111_10101  = 0xF5
    #   byte 1 = 7>>3 | 24<<2 | (1 & 1)<<7  = 0b1_11000_00 = 0xE0
    #   byte 2 = 1>>1                        = 0x00         (bits 16..19; 4 pad bits)
    packed = pack_codes(np.array([21, 7, 24, 1], np.uint8), "u5")
    assert packed.data.tolist() == [0xF5, 0xE0, 0x00]


def test_signed_and_float_codes_by_hand():
    # i3 values -1, 2, -4 have two's-complement codes 0b111, 0b010, 0b100:
    #   byte 0 = 7 | 2<<3 | (4 & 0b11)<<6 = 0b00_010_111 = 0x17;  byte 1 = 4>>2 = 0x01
    packed = lpir.pack(np.array([-1, 2, -4]), "i3")
    assert packed.data.tolist() == [0x17, 0x01] and packed.unpack().tolist() == [-1, 2, -4]
    # f4e2m1 codes: 1.5 = 0.01.1 = 0x3, -6 = 1.11.1 = 0xF, 0.5 = 0.00.1 = 0x1 (low nibble first)
    floats = lpir.pack(np.array([1.5, -6.0, 0.5]), "f4e2m1")
    assert floats.data.tolist() == [0xF3, 0x01] and floats.unpack().tolist() == [1.5, -6.0, 0.5]


def test_wide_types_are_their_little_endian_bytes():
    values = np.array([[1.5, -2.0], [3.25, 1e-3]], np.float32)
    packed = lpir.pack(values, "f32")
    assert packed.data.tobytes() == values.astype("<f4").tobytes()
    assert np.array_equal(packed.unpack(), values) and packed.shape == (2, 2)
    halves = lpir.pack(np.array([1, -1, 300], np.int16), "i16")
    assert halves.data.tolist() == [1, 0, 0xFF, 0xFF, 0x2C, 0x01]
    assert halves.unpack().tolist() == [1, -1, 300]
    big = lpir.pack(np.array([2**64 - 1, 5], np.uint64), "u64")
    assert big.nbytes == 16 and big.unpack().tolist() == [2**64 - 1, 5]
    f16 = lpir.pack(np.array([1.0, -2.0]), "f16")
    assert f16.data.tolist() == [0x00, 0x3C, 0x00, 0xC0]
    bf16 = lpir.pack(np.array([1.0, -2.0], ml_dtypes.bfloat16), "bf16")
    assert bf16.data.tolist() == [0x80, 0x3F, 0x00, 0xC0]
    assert lpir.pack(np.array([0.5, 448.0]), "f8e4m3").data.tolist() == [0x30, 0x7E]


@pytest.mark.parametrize(
    "name", [n for n in ALL_DTYPE_NAMES if dtype(n).ml_dtype is not None and n != "bf16"]
)
def test_ml_dtypes_arrays_give_their_bits(name):
    dt = dtype(name)
    codes = np.arange(1 << dt.nbits, dtype=np.uint8)
    array = codes.view(dt.ml_dtype)
    packed = lpir.pack(array, dt)
    assert np.array_equal(packed.codes(), codes)
    if dt.is_float:
        finite = np.isfinite(dt.decode(codes))
        assert lpir.pack(array.astype(np.float32)[finite], dt) == pack_codes(codes[finite], dt)


def test_bfloat16_and_float16_arrays_are_numbers_for_float_dtypes():
    values = np.array([0.26, 100.0, -0.74], np.float32)
    expected = lpir.pack(values.astype(ml_dtypes.bfloat16).astype(np.float32), "f4e2m1")
    assert lpir.pack(values.astype(ml_dtypes.bfloat16), "f4e2m1") == expected
    assert lpir.pack(values.astype(np.float16), "f6e3m2").unpack().tolist() == [0.25, 28.0, -0.75]


def test_floats_are_encoded_when_packed():
    packed = lpir.pack([0.26, 100.0, -0.74, float("inf")], "f4e2m1")
    assert packed.unpack().tolist() == [0.5, 6.0, -0.5, 6.0]
    assert packed.unpack().dtype == np.float32
    assert lpir.pack(np.array([1, 2, 3]), "f4e2m1").unpack().tolist() == [1.0, 2.0, 3.0]


def test_integer_dtypes_take_whole_floats_and_bools():
    assert lpir.pack(np.array([-8.0, 7.0, 0.0]), "i4").unpack().tolist() == [-8, 7, 0]
    assert lpir.pack(np.array([True, False]), "u2").unpack().tolist() == [1, 0]
    boolean = lpir.pack(np.array([True, False, True]), "bool")
    assert boolean.data.tolist() == [0b101] and boolean.unpack().tolist() == [True, False, True]
    assert lpir.pack([0, 1, 1], "bool").unpack().dtype == np.bool_


def test_packed_array_api():
    packed = lpir.pack(np.arange(12).reshape(3, 4) % 8, "u3")
    assert (packed.shape, packed.ndim, packed.size, packed.nbytes) == ((3, 4), 2, 12, 5)
    assert repr(packed) == "PackedArray(u3[3, 4], 5 bytes)"
    flat = packed.reshape(-1)
    assert flat.shape == (12,) and flat.data is packed.data
    assert packed.reshape(2, 6).shape == (2, 6) and packed.reshape((4, 3)).shape == (4, 3)
    copied = copy.deepcopy(packed)
    assert copied == packed and copied.data is not packed.data
    copied.data[0] ^= 1
    assert copied != packed
    from_bytes = PackedArray(packed.tobytes(), (3, 4), "u3")
    assert from_bytes == packed and lpir.pack(from_bytes, "u3") is from_bytes
    assert np.array_equal(unpack_codes(packed.data, 12, "u3"), packed.codes().reshape(-1))
    empty = lpir.pack(np.zeros((0, 5), np.int8), "i5")
    assert empty.nbytes == 0 and empty.unpack().shape == (0, 5)
    assert PackedArray(np.zeros(1, np.uint8), 3, "u2").shape == (3,)


def test_writes_to_data_change_the_tensor():
    packed = lpir.pack(np.zeros(4, np.uint8), "u2")
    packed.data[0] = 0b11_10_01_00
    assert packed.unpack().tolist() == [0, 1, 2, 3]


def test_errors():
    with pytest.raises(DTypeError, match="8 is outside the range of u3"):
        lpir.pack(np.array([1, 8]), "u3")
    with pytest.raises(DTypeError, match="-9 is outside the range of i4"):
        lpir.pack(np.array([-9, 3]), "i4")
    with pytest.raises(DTypeError, match="-1 is outside the range of u8"):
        lpir.pack([-1], "u8")
    with pytest.raises(DTypeError, match=r"u4 holds integers; got 1\.5"):
        lpir.pack(np.array([1.0, 1.5]), "u4")
    with pytest.raises(DTypeError, match="holds integers; got nan"):
        lpir.pack(np.array([np.nan]), "i8")
    with pytest.raises(DTypeError, match="needs 2 bytes, got 3"):
        PackedArray(np.zeros(3, np.uint8), (4,), "u3")
    with pytest.raises(DTypeError, match="must be a uint8 array or bytes, not int8") as error:
        PackedArray(np.zeros(2, np.int8), (4,), "u4")
    assert "data.view(np.uint8)" in error.value.hint
    with pytest.raises(DTypeError, match="negative"):
        PackedArray(np.zeros(0, np.uint8), (-1,), "u4")
    with pytest.raises(DTypeError, match="cannot pack an array of float8_e5m2 as f8e4m3"):
        lpir.pack(np.zeros(2, ml_dtypes.float8_e5m2), "f8e4m3")
    with pytest.raises(DTypeError, match="cannot pack an array of int4 as u4"):
        lpir.pack(np.zeros(2, ml_dtypes.int4), "u4")
    with pytest.raises(DTypeError, match="cannot pack an array of bfloat16 as i8"):
        lpir.pack(np.zeros(2, ml_dtypes.bfloat16), "i8")
    with pytest.raises(DTypeError, match="code 9 does not fit in 3 bits"):
        pack_codes(np.array([9], np.uint8), "u3")
    with pytest.raises(DTypeError, match="code 70000 does not fit in 16 bits"):
        pack_codes(np.array([70000], np.uint32), "f16")
    with pytest.raises(DTypeError, match="codes must be integers"):
        pack_codes(np.array([1.0]), "u3")  # (non-negative signed integers are codes too)
    with pytest.raises(DTypeError, match="PackedArray of u4 as u3"):
        lpir.pack(lpir.pack(np.zeros(2, np.uint8), "u4"), "u3")
    with pytest.raises(DTypeError, match="cannot reshape"):
        lpir.pack(np.zeros(6, np.uint8), "u4").reshape(4, 2)
    with pytest.raises(DTypeError, match="takes a PackedArray"):
        lpir.unpack(np.zeros(3))
    with pytest.raises(DTypeError, match="unknown dtype"):
        lpir.pack([1], "u9")


@pytest.mark.parametrize(
    "value, float_type, name",
    [
        (32768.0, np.float16, "i16"),
        (2.0**31, np.float32, "i32"),
        (2.0**32, np.float32, "u32"),
        (2.0**63, np.float64, "i64"),
        (2.0**64, np.float64, "u64"),
    ],
)
def test_a_float_just_past_an_integer_maximum_is_refused(value, float_type, name):
    """dt.max rounds up to the next power of two in the float type; the check must not."""
    with pytest.raises(DTypeError, match=f"{int(value)} is outside the range of {name}"):
        lpir.pack(np.array([value], float_type), name)
    largest_below = np.nextafter(float_type(value), float_type(0))
    assert lpir.pack(np.array([largest_below]), name).unpack().tolist() == [int(largest_below)]


def test_the_float_minimum_of_a_signed_type_is_packed():
    assert lpir.pack(np.float64([-(2.0**63)]), "i64").unpack().tolist() == [-(2**63)]
    assert lpir.pack(np.float32([-(2.0**31)]), "i32").unpack().tolist() == [-(2**31)]


@pytest.mark.parametrize("shape", ["ab", None, (2.5, 2), ("4",), [[2, 2]], 4.0])
def test_a_packed_array_shape_that_is_not_integers_is_refused(shape):
    with pytest.raises(DTypeError, match=r"PackedArray shape .*integer") as caught:
        PackedArray(np.zeros(2, np.uint8), shape, "u4")
    assert "e.g. (4, 8)" in caught.value.hint


def test_a_packed_array_shape_too_large_to_count_is_refused():
    with pytest.raises(DTypeError, match="more than int64 can count"):
        PackedArray(np.zeros(2, np.uint8), (2**62 + 1, 4), "u4")
    assert PackedArray(np.zeros(2, np.uint8), np.array([2, 2]), "u4").shape == (2, 2)
    assert PackedArray(np.zeros(2, np.uint8), (np.int32(4),), "u4").shape == (4,)


@pytest.mark.parametrize(
    "values, name",
    [
        ([1, 2**63 + 1], "u64"),
        ([0, 2**64 - 1], "u64"),
        ([[1, 2], [2**64 - 1, 2**63 + 3]], "u64"),
        ([True, 2**63 + 1, 7.0], "u64"),
        ([-(2**63), 2**63 - 1, 5], "i64"),
        ([[-(2**63)], [2**63 - 1]], "i64"),
        ([np.uint64(2**64 - 1), np.int64(0)], "u64"),
        ([2**31 - 1, -(2**31)], "i32"),
        ([2**32 - 1, 0], "u32"),
    ],
)
def test_python_integers_are_packed_exactly(values, name):
    """np.asarray turns a list mixing integers below 2**63 with larger ones into float64."""
    unpacked = lpir.pack(values, name).unpack()
    expected = [int(v) for v in np.array(values, dtype=object).reshape(-1)]
    assert unpacked.shape == np.shape(values) and unpacked.dtype == dtype(name).numpy_dtype
    assert [int(v) for v in unpacked.reshape(-1)] == expected


@pytest.mark.parametrize(
    "values, name, bad, wrap",
    [
        ([1, 2**64], "u64", 2**64, "v % 2**64 wraps a Python integer v"),
        ([2**63, -1], "u64", -1, "v % 2**64 wraps"),
        ([0, 2**63], "i64", 2**63, "(v + 2**63) % 2**64 - 2**63 wraps"),
        ([1, 2**70], "i8", 2**70, "(v + 2**7) % 2**8 - 2**7 wraps"),
        ([-1], "u64", -1, "lpir.convert(values, 'i64', 'u64') wraps"),
        ([200], "i8", 200, "lpir.convert(values, 'i64', 'i8') wraps"),
    ],
)
def test_an_integer_past_a_dtype_range_is_refused_with_a_way_to_wrap_it(values, name, bad, wrap):
    with pytest.raises(DTypeError, match=f"error: {bad} is outside the range of {name} ") as caught:
        lpir.pack(values, name)
    assert wrap in caught.value.hint and "'i64', 'i64'" not in caught.value.hint


def test_a_fraction_beside_a_large_integer_is_refused():
    with pytest.raises(DTypeError, match=r"u64 holds integers; got 1\.5"):
        lpir.pack([1.5, 2**63 + 1], "u64")


# ---- PackedArray over bytes already packed (a checkpoint's) ---------------------------------
FP4_TIMES_TWO = """
kernel scale[N = 4, K = 16](w: global f4e2m1[N, K], y: global f32[N, K], o: global u4[N, K])
    blocks(1) threads(16) {
    t = load(w[:, :])
    store(y[:, :], cast<f32>(t) * 2.0)
    store(o[:, :], cast<u4>(where(cast<f32>(t) >= 0.0, 15, 0)))
}
"""

# the 16 values of f4e2m1 codes 0..15 (OCP MX: sign, 2 exponent bits, 1 mantissa bit)
FP4_VALUES = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_a_packed_array_wraps_checkpoint_bytes_in_place(target):
    """gpt-oss stores MXFP4 weights as u8[N, K / 2], weight 2i in the low nibble of byte i and
    2i + 1 in the high one: wrapped as they are (2-D, no copy), they are the weights; writes
    through a PackedArray reach the caller's bytes."""
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 16, size=(4, 16)).astype(np.uint8)
    blocks = codes[:, 0::2] | (codes[:, 1::2] << 4)  # as a checkpoint holds them
    weights = lpir.PackedArray(blocks, (4, 16), "f4e2m1")
    assert np.shares_memory(weights.data, blocks)
    assert np.array_equal(weights.codes(), codes)
    out_bytes = np.zeros((4, 8), np.uint8)
    out = lpir.PackedArray(out_bytes, (4, 16), "u4")
    y = np.zeros((4, 16), np.float32)
    lpir.compile(FP4_TIMES_TWO, target=target)(weights, y, out)
    assert np.array_equal(y, FP4_VALUES[codes] * 2)
    nonnegative = np.where(FP4_VALUES[codes] >= 0, 15, 0).astype(np.uint8)  # -0.0 too
    assert np.array_equal(out_bytes, nonnegative[:, 0::2] | (nonnegative[:, 1::2] << 4))


def test_a_packed_array_refuses_bytes_of_the_wrong_count_or_kind():
    with pytest.raises(DTypeError, match=r"f4e2m1\[4, 16\] needs 32 bytes, got 64"):
        PackedArray(np.zeros((4, 16), np.uint8), (4, 16), "f4e2m1")
    with pytest.raises(DTypeError, match="must be contiguous bytes"):
        PackedArray(np.zeros((4, 16), np.uint8)[:, ::2], (4, 16), "f4e2m1")


def test_pack_codes_takes_non_negative_integers_of_any_integer_dtype():
    """np.arange and Python lists give int64: codes all the same, as long as none is
    negative (a negative number is a value, which lpir.pack takes)."""
    packed = lpir.pack_codes(np.arange(16), "u4")
    np.testing.assert_array_equal(lpir.unpack(packed), np.arange(16))
    assert lpir.pack_codes([1, 2, 15], "f4e2m1").codes().tolist() == [1, 2, 15]
    with pytest.raises(lpir.LpirError, match="codes are unsigned bit patterns, but -1"):
        lpir.pack_codes(np.array([-1, 2]), "u4")
    with pytest.raises(lpir.LpirError, match="code 16 does not fit in 4 bits"):
        lpir.pack_codes(np.arange(17), "u4")


def test_pack_codes_of_no_codes_and_of_python_integers_past_64_bits():
    assert lpir.pack_codes([], "u4").nbytes == 0  # np.asarray([]) is float64: still no codes
    with pytest.raises(lpir.LpirError, match="code 18446744073709551617 does not fit in 4 bits"):
        lpir.pack_codes([2**64 + 1], "u4")
    big = np.array([3, 2**63 + 1], dtype=object)
    assert lpir.unpack(lpir.pack_codes(big, "u64")).tolist() == [3, 2**63 + 1]
    with pytest.raises(lpir.LpirError, match="codes must be integers, not float64"):
        lpir.pack_codes([1.5], "u4")


def test_rows_of_a_packed_array_share_its_storage() -> None:
    """A preallocated packed buffer's first m rows, for a kernel whose rows are read at run
    time (found by an explorer: it had to be rewrapped by hand)."""
    codes = (np.arange(30 * 5).reshape(30, 5) % 8).astype(np.uint8)
    packed = lpir.pack_codes(codes, "u3")  # 15 bits a row: every eighth row starts a byte
    for rows in (slice(None, 7), slice(8, 13), slice(0, 30), slice(40, 50), slice(16, None)):
        part = packed[rows]
        np.testing.assert_array_equal(part.codes(), codes[rows])
    part = packed[:7]
    part.data[:] = 0  # a view: the buffer's first rows change
    np.testing.assert_array_equal(packed.codes()[:6], 0)
    for index, words in [
        (slice(1, 3), r"row 1 of u3\[30, 5\] starts inside"),
        (3, "rows only"),
    ]:
        with pytest.raises(lpir.LpirError, match=words):
            packed[index]
    with pytest.raises(lpir.LpirError, match="not contiguous storage"):
        packed[::2]
