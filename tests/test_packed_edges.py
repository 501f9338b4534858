"""Packed stores of tiles whose rows overhang a narrower tensor: one thread's lanes past the
edge of row r sit where row r + 1 begins (row 0's column N is row 1's column 0), and
`pack_bits` ORs the fields of lanes at one place. bit-packing packs those lanes as zeros
(found when fold-threads gave CPU threads whole rows of quantize's tiles: its codes past the
edge are ZERO, not 0). A one-thread block holds every row: compiled for the CPU, through the
thread interpreter and as CUDA C on the host, against the reference interpreter. And slices
that start before a packed tensor, at a position off a byte boundary."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.cuda.emulation import emulation_available

import lpir

OVERHANG = """
kernel overhang[WT = u7, M = 4, N = 10, BN = 32](x: global f32[M, N], q: global WT[M, N])
    blocks(1) threads(1) {
    store(q[0 :+ M, 0 :+ BN], cast<WT>(load(x[0 :+ M, 0 :+ BN]) + 3.0))
}
"""

TARGETS = ["cpu", "threads"] + (["cuda-host"] if emulation_available() else [])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("params", [{}, {"WT": "i3", "N": 5, "BN": 8}, {"WT": "f4e2m1", "M": 3}])
def test_lanes_past_a_rows_edge_do_not_write_into_the_next_row(params, target):
    kernel = lpir.compile(OVERHANG, target="interp", **params)
    values = kernel.specialize(None).params
    m, n, dt = values["M"], values["N"], lpir.dtype(values["WT"])
    x = np.random.default_rng(8).integers(-2, 3, (m, n)).astype(np.float32)
    expected = [x, lpir.pack(np.zeros((m, n), np.float32), dt)]
    kernel(*expected)
    got = [x, lpir.pack(np.zeros((m, n), np.float32), dt)]
    lpir.compile(OVERHANG, target=target, **params)(*got)
    np.testing.assert_array_equal(lpir.unpack(got[1]), lpir.unpack(expected[1]))
    assert np.all(lpir.unpack(expected[1]).astype(np.float32) != 0)  # x + 3 is 1..5, never 0


BEFORE_THE_START = """
kernel window[WT = u3, N = 40, B = 16, S = -3](x: global WT[N], y: global i32[B],
                                              q: global WT[N], start: i32)
    blocks(1) threads(4) {
    store(y[0 :+ B], cast<i32>(load(x[start :+ B])))
    store(q[S :+ B], cast<WT>(arange(B) % 2))
}
"""


@pytest.mark.parametrize("target", ["interp", *TARGETS])
@pytest.mark.parametrize("WT", ["u1", "u3", "i5", "f4e2m1"])
@pytest.mark.parametrize("start", [-3, -9, 5])
def test_slices_starting_before_the_tensor_read_zeros_and_write_nothing_there(WT, start, target):
    """x[start :+ 16] with start < 0 (a sliding window's first block): elements before the
    tensor read as 0 and are not written. The thread's first element's byte and bit were
    found by truncating division, so a start not on a byte boundary (-3 elements of u3) read
    all zeros and wrote nothing; now floored (-3 is byte -2, bit 15 of u3's groups of 8)."""
    dt = lpir.dtype(WT)
    codes = np.random.default_rng(start + 100).integers(1, 1 << dt.nbits, 40).astype(np.uint8)
    y = np.full(16, -1, np.int32)
    q = lpir.pack_codes(np.zeros(40, np.uint8), dt)
    lpir.compile(BEFORE_THE_START, target=target, WT=WT, S=start)(
        lpir.pack_codes(codes, dt), y, q, np.int32(start)
    )
    window = np.arange(start, start + 16)
    inside = (window >= 0) & (window < 40)
    expected = np.zeros(16, np.int64)
    expected[inside] = lpir.unpack(lpir.pack_codes(codes, dt)).astype(np.int64)[window[inside]]
    assert np.array_equal(y, expected)
    stored = np.zeros(40, np.float64)
    stored[window[inside]] = (np.arange(16) % 2)[inside]
    assert np.array_equal(lpir.unpack(q).astype(np.float64), stored)


FAR_BEFORE = """
kernel far[WT = u3, N = 40, S = -2147483648](x: global WT[N], y: global i32[16],
                                             q: global WT[N])
    blocks(1) threads(4) {
    store(y[0 :+ 16], cast<i32>(load(x[S :+ 16])) + 1)
    store(q[S :+ 16], cast<WT>(arange(16) % 2))
}
"""


@pytest.mark.parametrize("target", ["interp", *TARGETS])
@pytest.mark.parametrize("WT", ["u1", "u3", "bool", "f4e2m1"])
@pytest.mark.parametrize("S", [-(2**31), -(2**31) + 8, 2**31 - 16])
def test_constant_starts_near_the_ends_of_i32_read_zeros_and_write_nothing(WT, S, target):
    """A constant start is its own divisor; bit-packing divided by it to find the first byte,
    and -2**31 is no i32 constant: the kernel did not compile for threads and cpu."""
    dt = lpir.dtype(WT)
    x = lpir.pack_codes(np.ones(40, np.uint8), dt)
    y = np.full(16, -1, np.int32)
    q = lpir.pack_codes(np.zeros(40, np.uint8), dt)
    lpir.compile(FAR_BEFORE, target=target, WT=WT, S=S)(x, y, q)
    assert np.array_equal(y, np.ones(16, np.int32))
    assert not lpir.unpack(q).astype(np.float64).any()
