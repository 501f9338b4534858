"""Packed fields that a thread reads out of its bytes' order, from more bytes than one byte
permute reads: a tile loaded row by row and held column by column (a KV cache's keys,
transposed for the dot of decode attention). The LLVM backend puts the bytes in the lanes'
order at byte width and cuts the fields there (vectors.py: `unpack_ordered_bytes`); gathered
into a word per lane first, the transposition moved four times the bytes and the KIVI decode
kernel of u4 keys took 1.4-1.5x the time of the same bytes read as u8 and unpacked by hand.
Compiled against the thread-IR interpreter, bit for bit, for every field of 1, 2, 4 and 8
bits (unsigned, signed, float, bool), and end to end against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.llvm import compile_kernel
from test_llvm_harness import check, private_cache  # noqa: F401

import lpir
from lpir.ir import parse

rng = np.random.default_rng(37)
ROWS, ROW_BYTES, THREADS = 8, 24, 4  # 192 bytes a thread: more than one byte permute reads
FIELDS = ["u1", "i1", "bool", "u2", "i2", "u4", "i4", "f4e2m1", "u8", "i8", "f8e4m3"]

UNPACK = """
kernel @unpack[](%x: global u8[BYTES_ALL], %y: global u8[LANES_ALL])
    blocks(1, 1, 1) threads(THREADS) stage(thread) {
  %tid = thread_index : i32
  %cb = constant {value = BYTES} : i32
  %cl = constant {value = LANES} : i32
  %b = mul(%tid, %cb) : i32
  %l = mul(%tid, %cl) : i32
  %data = ld(%x, %b) {offsets = BYTE_OFFSETS} : <BYTES x u8>
  %v = unpack_bits(%data) {bit_offsets = FIELD_OFFSETS} : <LANES x T>
  %codes = pack_bits(%v) {bit_offsets = LANE_FIELDS} : <LANES x u8>
  st(%y, %l, %codes) {offsets = LANE_OFFSETS}
}
"""


def unpack_kernel(name: str, offsets: list[int], nbytes: int) -> str:
    """Each of THREADS threads cuts the `name` fields at `offsets` out of its `nbytes` bytes
    and stores each lane's code in a byte of its own."""
    lanes = len(offsets)
    replacements = {
        "BYTES_ALL": str(THREADS * nbytes),
        "LANES_ALL": str(THREADS * lanes),
        "THREADS": str(THREADS),
        "BYTE_OFFSETS": str(list(range(nbytes))),
        "LANE_OFFSETS": str(list(range(lanes))),
        "FIELD_OFFSETS": str(offsets),
        "LANE_FIELDS": str([8 * i for i in range(lanes)]),
        "BYTES": str(nbytes),
        "LANES": str(lanes),
        " T>": f" {name}>",
    }
    text = UNPACK
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


def transposed(nbits: int, rows: list[int]) -> list[int]:
    """Bit offsets of the fields of `rows` (of ROW_BYTES bytes each), column by column."""
    columns = ROW_BYTES * 8 // nbits
    return [row * ROW_BYTES * 8 + column * nbits for column in range(columns) for row in rows]


def orders(nbits: int) -> dict[str, list[int]]:
    every_row = transposed(nbits, list(range(ROWS)))
    return {
        "transposed": every_row,
        "every other row": transposed(nbits, list(range(0, ROWS, 2))),  # bytes left out
        "shuffled": [int(o) for o in rng.permutation(every_row)],
    }


@pytest.mark.parametrize("name", FIELDS)
def test_fields_read_out_of_order_are_cut_at_byte_width(name):
    """The bytes move once, as bytes; no lane's field is shifted or masked in a word of its
    own (before: `lshr` of <lanes x i32> for unsigned fields, `ashr` for signed ones)."""
    nbits = lpir.dtype(name).nbits
    nbytes = ROWS * ROW_BYTES
    for order, offsets in orders(nbits).items():
        text = unpack_kernel(name, offsets, nbytes)
        llvm_ir = compile_kernel(parse(text), {}).llvm_ir
        lanes = len(offsets)
        for shift in ("lshr", "ashr"):
            assert f"{shift} <{lanes} x i32>" not in llvm_ir, (order, shift)
        data = rng.integers(0, 256, THREADS * nbytes).astype(np.uint8)
        check(text, [data, np.zeros(THREADS * lanes, np.uint8)])


SCORES = """
kernel scores[QT = u4, G = 4, L = 64, D = 64, BT = 16](
    q: global f32[G, D], k: global QT[L, D], s: global f32[G, L],
) blocks(L / BT) threads(1) {
    t0 = block.x * BT
    kq = cast<f32>(load(k[t0 :+ BT, :]))
    store(s[:, t0 :+ BT], dot(load(q[:, :]), transpose(kq)))
}
"""


@pytest.mark.parametrize("QT", ["u4", "i4", "u2", "u1", "f4e2m1"])
def test_a_key_tile_read_transposed_for_a_dot(QT):
    """Decode attention's scores q . k over a packed key tile: the thread reads its 512 bytes
    (of u4) row by row and holds them column by column. Small integer q: every sum is exact,
    in any order."""
    dt = lpir.dtype(QT)
    kernel = lpir.compile(SCORES, target="cpu", QT=QT)
    thread_ir = kernel.ir()
    assert "unpack_bits" in thread_ir
    codes = rng.integers(0, 1 << dt.nbits, (64, 64))
    values = dt.decode(codes.astype(np.uint8)) if dt.is_float else dt.from_codes(codes)
    k = lpir.pack(np.asarray(values), dt)
    q = rng.integers(-3, 4, (4, 64)).astype(np.float32)
    s = np.zeros((4, 64), np.float32)
    kernel(q, k, s)
    expected = (q.astype(np.float64) @ np.asarray(values, np.float64).T).astype(np.float32)
    np.testing.assert_array_equal(s, expected)
