"""Packed storage: round trips, exact bit positions, accepted inputs and errors."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lpir
from lpir.dtypes import dtype
from lpir.errors import DTypeError
from lpir.packing import PackedArray, pack_codes, storage_bytes


def reference_pack(codes: np.ndarray, nbits: int) -> np.ndarray:
    """Independent reference: write every bit of every element with Python ints."""
    total = 0
    for index, code in enumerate(codes.reshape(-1).tolist()):
        total |= int(code) << (index * nbits)
    count = (codes.size * nbits + 7) // 8
    return np.frombuffer(total.to_bytes(count, "little"), dtype=np.uint8)


@pytest.mark.parametrize("nbits", range(1, 9))
def test_round_trip_every_width_and_length(nbits):
    rng = np.random.default_rng(nbits)
    dt = dtype(f"u{nbits}")
    for length in range(71):
        codes = rng.integers(0, 1 << nbits, size=length).astype(np.uint8)
        packed = pack_codes(codes, dt)
        assert packed.nbytes == storage_bytes(length, dt) == (length * nbits + 7) // 8
        assert np.array_equal(packed.data, reference_pack(codes, nbits))
        assert np.array_equal(packed.codes(), codes)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(st.integers(1, 7), min_size=1, max_size=3),
    st.sampled_from(["u", "i", "f"]),
    st.integers(0, 2**32 - 1),
)
def test_round_trip_random_shapes(nbits, shape, family, seed):
    rng = np.random.default_rng(seed)
    if family == "f":
        names = [n for n in lpir.dtypes.ALL_DTYPE_NAMES if n.startswith(f"f{nbits}e")]
        if not names:
            return
        dt = dtype(names[seed % len(names)])
        codes = rng.integers(0, 1 << nbits, size=shape).astype(np.uint8)
        values = dt.decode(codes)
        values = np.where(np.isfinite(values), values, 0).astype(np.float32)
        packed = lpir.pack(values, dt)
        assert np.array_equal(lpir.unpack(packed), values)
        return
    dt = dtype(f"{family}{nbits}")
    values = rng.integers(dt.min, dt.max + 1, size=shape)
    packed = lpir.pack(values, dt)
    assert packed.shape == tuple(shape) and packed.dtype == dt
    assert np.array_equal(lpir.unpack(packed), values)


def test_three_bit_positions_by_hand():
    # Elements 5, 3, 6, 1, 7, 2, 4, 0, 5 at bits 0-2, 3-5, 6-8, ... (LSB first):
    #   byte 0 = bits 0..7  = 5 | 3<<3 | (6 & 0b11)<<6          = 0b10_011_101 = 0x9D
    #   byte 1 = bits 8..15 = 6>>2 | 1<<1 | 7<<4 | (2 & 1)<<7    = 0b0_111_001_1 = 0x73
    #   byte 2 = bits 16..23 = 2>>1 | 4<<2 | 0<<5                = 0b000_100_1 = 0x11
    #   byte 3 = bits 24..26 = 5                                  = 0x05
    packed = pack_codes(np.array([5, 3, 6, 1, 7, 2, 4, 0, 5], np.uint8), "u3")
    assert packed.data.tolist() == [0x9D, 0x73, 0x11, 0x05]


def test_five_bit_positions_by_hand():
    # Elements 0b10101 (21), 0b00111 (7), 0b11000 (24), 0b00001 (1) at bits 0-4, 5-9, 10-14, 15-19:
    #   byte 0 = 21 | (7 & 0b111)<<5             = 0b111_10101 = 0xF5
    #   byte 1 = 7>>3 | 24<<2 | (1 & 1)<<7       = 0b1_11000_00 = 0xE0
    #   byte 2 = 1>>1                             = 0x00
    packed = pack_codes(np.array([21, 7, 24, 1], np.uint8), "u5")
    assert packed.data.tolist() == [0xF5, 0xE0, 0x00]


def test_wide_types_pass_through():
    values = np.array([[1.5, -2.0], [3.25, 1e-3]], np.float32)
    packed = lpir.pack(values, "f32")
    assert np.array_equal(packed.data, values.reshape(-1).view(np.uint8))
    assert np.array_equal(packed.unpack(), values)
    halves = lpir.pack(np.array([1, -1, 300], np.int16), "i16")
    assert halves.nbytes == 6 and halves.unpack().tolist() == [1, -1, 300]


def test_ml_dtypes_arrays_are_accepted():
    values = np.array([0.5, -6.0, 3.0, 1.5], np.float32)
    from_ml = lpir.pack(values.astype(ml_dtypes.float4_e2m1fn), "f4e2m1")
    assert from_ml == lpir.pack(values, "f4e2m1")
    e4m3 = np.array([448.0, -0.125], np.float32).astype(ml_dtypes.float8_e4m3fn)
    assert lpir.pack(e4m3, "f8e4m3").unpack().tolist() == [448.0, -0.125]
    ints = np.array([-8, 7, 0], dtype=ml_dtypes.int4)
    assert lpir.pack(ints, "i4").unpack().tolist() == [-8, 7, 0]


def test_errors():
    with pytest.raises(DTypeError, match="outside the range of u3"):
        lpir.pack(np.array([1, 8]), "u3")
    with pytest.raises(DTypeError, match="outside the range of i4"):
        lpir.pack(np.array([-9]), "i4")
    with pytest.raises(DTypeError, match="holds integers"):
        lpir.pack(np.array([1.5]), "u4")
    with pytest.raises(DTypeError, match="needs 2 bytes"):
        PackedArray(np.zeros(3, np.uint8), (4,), "u3")
    with pytest.raises(DTypeError, match="cannot pack an array of float8_e5m2"):
        lpir.pack(np.zeros(2, ml_dtypes.float8_e5m2), "f8e4m3")
    with pytest.raises(DTypeError, match="does not fit in 3 bits"):
        pack_codes(np.array([9], np.uint8), "u3")
    with pytest.raises(DTypeError, match="PackedArray of u4 as u3"):
        lpir.pack(lpir.pack(np.zeros(2, np.uint8), "u4"), "u3")


def test_floats_are_encoded_when_packed():
    packed = lpir.pack(np.array([0.26, 100.0, -0.74]), "f4e2m1")
    assert packed.unpack().tolist() == [0.5, 6.0, -0.5]
