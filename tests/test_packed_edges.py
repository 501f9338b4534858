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


COLUMN_PACKED = """
# AWQ's order: field i of 8 holds column 0 2 4 6 1 3 5 7 of the 8; back to natural order
def unawq(t, R, C) {
    r = reshape(t, R, C / 8, 2, 4)                   # [.., c, h, j] = column 8c + 2j + h
    return reshape(stack(r[:, :, 0, :], r[:, :, 1, :], axis = -1), R, C)
}

kernel column_packed[WT = u4, ST = i32, BITS = 4, SB = 32, N = 200, K = 100, BN = 64, BK = 32](
    x: global f32[K], q: global ST[K, N * BITS / SB], y: global f32[N],
) blocks(cdiv(N, BN)) threads(32) {
    n0 = block.x * BN
    acc = zeros<f32>[BK, BN]
    for k0 in range(0, K, BK) {
        words = load(q[k0 :+ BK, n0 * BITS / SB :+ BN * BITS / SB])
        acc += cast<f32>(unawq(view<WT>(words), BK, BN)) * load(x[k0 :+ BK])[:, None]
    }
    store(y[n0 :+ BN], sum(acc, axis = 0))
}
"""
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("target", ["interp", *TARGETS])
@pytest.mark.parametrize(
    ("WT", "ST", "N"),
    [
        ("u4", "i32", 200),
        ("u2", "i32", 208),
        ("u3", "i32", 224),
        ("u3", "u8", 200),
        ("i4", "i16", 200),
        ("f4e2m1", "u8", 200),
    ],
)
def test_sub_byte_lanes_reordered_after_a_view_of_words_are_the_columns(WT, ST, N, target):
    """Columns packed along N in AWQ's order, reordered by reshape/index/stack after a view of
    the words as WT: bit-packing folds the reorder into the unpacking (each lane cut out at
    its column's bit offset). Every target gives x @ W exactly (small integers times the
    codes' values), with N and K past the tiles' edges."""
    dt, storage = lpir.dtype(WT), np.dtype({"i32": np.int32, "i16": np.int16, "u8": np.uint8}[ST])
    k = 100
    rng = np.random.default_rng(dt.nbits)
    codes = rng.integers(0, 1 << dt.nbits, (k, N)).astype(np.uint8)
    fields = codes.reshape(k, N // 8, 8)[:, :, AWQ_ORDER].reshape(k, N)
    words = np.frombuffer(lpir.pack_codes(fields, dt).data, storage).reshape(k, -1)
    x = rng.integers(-2, 3, k).astype(np.float32)
    y = np.zeros(N, np.float32)
    params = {"WT": WT, "ST": ST, "BITS": dt.nbits, "SB": 8 * storage.itemsize, "N": N, "K": k}
    lpir.compile(COLUMN_PACKED, target=target, **params)(x, words, y)
    weights = lpir.unpack(lpir.pack_codes(codes, dt)).astype(np.float64)
    np.testing.assert_array_equal(y, x.astype(np.float64) @ weights)
