"""Bit fields and data movement in registers, compiled vs the thread-IR interpreter:
`unpack_bits` / `pack_bits` for every width 1..8 and every kind of element (unsigned, signed,
small float, bool), at constant offsets and with each run-time shift a field can have (0..7,
multiples of gcd(nbits, 8)); `view` between
widths; `shuffle`, `extract`, `vector`, `splat`, `vector_constant` and `reduce_lanes`."""

from __future__ import annotations

import re

import numpy as np
import pytest
from lpir.backends.llvm import compile_kernel
from test_llvm_harness import LaneKernel, check, empty_for, private_cache  # noqa: F401

import lpir
from lpir.ir import parse
from lpir.ir.ops.thread import field_shifts

rng = np.random.default_rng(11)
WIDTHS = {
    1: ["u1", "i1", "bool"],
    2: ["u2", "i2"],
    3: ["u3", "i3", "f3e1m1"],
    4: ["u4", "i4", "f4e2m1"],
    5: ["u5", "i5", "f5e2m2"],
    6: ["u6", "i6", "f6e3m2"],
    7: ["u7", "i7", "f7e3m3"],
    8: ["u8", "i8", "f8e4m3"],
}
FIELDS = [(n, name) for n, names in WIDTHS.items() for name in names]

BITS = """
kernel @bits[](%x: global u8[BYTES_ALL], %shifts: global i32[32], %y: global u8[LANES_ALL],
    %z: global u8[BYTES_ALL])
    blocks(1, 1, 1) threads(32) stage(thread) {
  %tid = thread_index : i32
  %cb = constant {value = BYTES} : i32
  %cl = constant {value = LANES} : i32
  %b = mul(%tid, %cb) : i32
  %l = mul(%tid, %cl) : i32
  %data = ld(%x, %b) {offsets = BYTE_OFFSETS} : <BYTES x u8>
  %s = ld(%shifts, %tid) {offsets = [0]} : <1 x i32>
  %shift = extract(%s) {index = 0} : i32
  %v = unpack_bits(%data SHIFT) {bit_offsets = FIELD_OFFSETS} : <LANES x T>
  %codes = pack_bits(%v) {bit_offsets = BYTE_FIELDS} : <LANES x u8>
  st(%y, %l, %codes) {offsets = LANE_OFFSETS}
  %again = pack_bits(%v SHIFT) {bit_offsets = FIELD_OFFSETS} : <BYTES x u8>
  st(%z, %b, %again) {offsets = BYTE_OFFSETS}
}
"""


def bits_kernel(dt: lpir.DType, offsets: list[int], nbytes: int, runtime_shift: bool) -> str:
    lanes = len(offsets)
    replacements = {
        "BYTES_ALL": str(32 * nbytes),
        "LANES_ALL": str(32 * lanes),
        "BYTE_OFFSETS": str(list(range(nbytes))),
        "LANE_OFFSETS": str(list(range(lanes))),
        "FIELD_OFFSETS": str(offsets),
        "BYTE_FIELDS": str([8 * i for i in range(lanes)]),
        "BYTES": str(nbytes),
        "LANES": str(lanes),
        "SHIFT": ", %shift" if runtime_shift else "",
        " T>": f" {dt.name}>",
    }
    text = BITS
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


@pytest.mark.parametrize("runtime_shift", [False, True])
@pytest.mark.parametrize(("nbits", "name"), FIELDS)
def test_unpack_and_pack_bits(nbits, name, runtime_shift):
    """Dense fields (straddling bytes), then gapped and shuffled ones; 32 threads, each with
    its own run-time shift (one of `field_shifts`: the bytes hold no more than it needs)."""
    dt = lpir.dtype(name)
    dense = [i * nbits for i in range(16)]
    gapped = [3 + i * (nbits + 2) for i in range(8)][::-1]
    shifts_of_fields = np.array(field_shifts(nbits), np.int32)
    for offsets in (dense, gapped):
        slack = int(shifts_of_fields[-1]) if runtime_shift else 0
        nbytes = (max(offsets) + nbits + slack + 7) // 8
        text = bits_kernel(dt, offsets, nbytes, runtime_shift)
        data = rng.integers(0, 256, 32 * nbytes).astype(np.uint8)
        shifts = shifts_of_fields[np.arange(32) % len(shifts_of_fields)]
        outputs = [np.zeros(32 * len(offsets), np.uint8), np.zeros(32 * nbytes, np.uint8)]
        check(text, [data, shifts, *outputs])


@pytest.mark.parametrize("name", ["u4", "i4", "f4e2m1"])
@pytest.mark.parametrize("lanes", [64, 50])
def test_nibbles_unpacked_from_a_shifted_copy(name, lanes):
    """Enough 4-bit fields per thread (4 registers of words) are cut from the bytes and one
    copy of them shifted by 4 (right; left for signed fields, which go to the top of their
    byte) instead of shifting every lane (vectors.py: `unpack_byte_fields`): in any order of
    the fields, and from an odd number of bytes."""
    dt = lpir.dtype(name)
    offsets = [int(o) for o in rng.permutation(lanes) * 4]
    nbytes = (lanes * 4 + 7) // 8
    text = bits_kernel(dt, offsets, nbytes, runtime_shift=False)
    llvm_ir = compile_kernel(parse(text), {}).llvm_ir
    copy = "shl" if dt.kind == "int" else "lshr"
    assert f"{copy} <{(nbytes + 1) // 2} x i16>" in llvm_ir  # the copy
    assert f"lshr <{lanes} x i32>" not in llvm_ir  # no shift per lane
    data = rng.integers(0, 256, 32 * nbytes).astype(np.uint8)
    shifts = np.zeros(32, np.int32)
    outputs = [np.zeros(32 * lanes, np.uint8), np.zeros(32 * nbytes, np.uint8)]
    check(text, [data, shifts, *outputs])


@pytest.mark.parametrize("name", ["u2", "i2"])
@pytest.mark.parametrize("lanes", [128, 124])
def test_two_bit_fields_unpacked_from_shifted_copies(name, lanes):
    """BitNet's ternary weights: 128 2-bit fields per thread (8 registers of words) are cut
    from the bytes and three shifted copies of them, in any order and from an odd number of
    bytes. An unsigned field is the low bits of its byte in the copy shifted right, a signed
    one the top bits of its byte in the copy shifted left, sign-extended by one arithmetic
    shift of the word the byte permute puts it at the top of (vectors.py:
    `unpack_byte_fields`)."""
    dt = lpir.dtype(name)
    offsets = [int(o) for o in rng.permutation(lanes) * 2]
    nbytes = (lanes * 2 + 7) // 8
    text = bits_kernel(dt, offsets, nbytes, runtime_shift=False)
    llvm_ir = compile_kernel(parse(text), {}).llvm_ir
    copy = "shl" if dt.kind == "int" else "lshr"
    for amount in (2, 4, 6):  # the copies
        assert re.search(rf"{copy} <{(nbytes + 1) // 2} x i16> \S+, <i16 {amount},", llvm_ir)
    assert f"lshr <{lanes} x i32>" not in llvm_ir  # no shift per lane
    assert f"shl <{lanes} x i8>" not in llvm_ir  # nor a sign extension of the bytes
    data = rng.integers(0, 256, 32 * nbytes).astype(np.uint8)
    shifts = np.zeros(32, np.int32)
    outputs = [np.zeros(32 * lanes, np.uint8), np.zeros(32 * nbytes, np.uint8)]
    check(text, [data, shifts, *outputs])


VIEWS = [
    ("u8", 8, "u4"),
    ("u8", 6, "u3"),
    ("u8", 12, "i6"),
    ("i8", 8, "bool"),
    ("f32", 4, "u8"),
    ("u8", 16, "f32"),
    ("f16", 8, "i16"),
    ("bf16", 8, "f16"),
    ("i3", 16, "u3"),
    ("u4", 16, "i4"),
    ("f4e2m1", 16, "u4"),
    ("u6", 8, "u8"),
    ("u5", 8, "i5"),
    ("bool", 16, "u8"),
    ("i64", 2, "f64"),
    ("u16", 4, "u4"),
]


@pytest.mark.parametrize(("source", "lanes", "target"), VIEWS)
def test_view_reinterprets_bits(source, lanes, target):
    src, dst = lpir.dtype(source), lpir.dtype(target)
    count = lanes * src.nbits // dst.nbits
    n = 64 * lanes
    kernel = LaneKernel(n, lanes, 32)
    value = kernel.load(src)
    viewed = kernel.op(f"view({value})", dst, lanes=count)
    kernel.store(viewed, dst, lanes=count)
    kernel.store(kernel.op(f"view({viewed})", src), src)
    codes = rng.integers(0, 1 << min(src.nbits, 16), n).astype(np.uint64)
    inputs = codes.astype(np.uint8 if src.nbits < 8 else src.code_numpy_dtype)
    check(kernel.text(), [inputs, empty_for(dst, n // lanes * count), empty_for(src, n)])


MOVES = """
kernel @moves[](%x: global f32[2048], %y: global f32[2048], %r: global f32[1024],
    %i: global i32[2048])
    blocks(2, 1, 1) threads(64) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c64 = constant {value = 64} : i32
  %c16 = constant {value = 16} : i32
  %c4 = constant {value = 4} : i32
  %t = mul(%bx, %c64) : i32
  %thread = add(%t, %tid) : i32
  %base = mul(%thread, %c16) : i32
  %v = ld(%x, %base) {offsets = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
      vector = 16} : <16 x f32>
  %a = shuffle(%v) {indices = [15, 0, 14, 1, 13, 2, 12, 3, 11, 4, 10, 5, 9, 6, 8, 7]} : <16 x f32>
  %e = extract(%v) {index = 5} : f32
  %w = vector(%e, %e, %e, %e) : <4 x f32>
  %h = shuffle(%a, %w) {indices = [16, 17, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 18,
      19]} : <16 x f32>
  st(%y, %base, %h) {offsets = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]}
  %sum = reduce_lanes(%v) {group = 4, kind = "sum"} : <4 x f32>
  %max = reduce_lanes(%v) {group = 8, kind = "max"} : <2 x f32>
  %min = reduce_lanes(%v) {group = 16, kind = "min"} : <1 x f32>
  %all = shuffle(%sum, %max, %min) {indices = [0, 1, 2, 3, 4, 5, 6, 6]} : <8 x f32>
  %quarter = mul(%thread, %c4) : i32
  st(%r, %quarter, %all) {offsets = [0, 1, 2, 3, 512, 513, 514, 515]}
  %iota = vector_constant {values = [0, -1, 2, -3, 4, -5, 6, -7, 8, -9, 10, -11, 12, -13, 14,
      -15]} : <16 x i32>
  %spread = splat(%thread) {shape = [16]} : <16 x i32>
  %ints = mul(%iota, %spread) : <16 x i32>
  %isum = reduce_lanes(%ints) {group = 2, kind = "sum"} : <8 x i32>
  %both = shuffle(%ints, %isum) {indices = [16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6,
      7]} : <16 x i32>
  st(%i, %base, %both) {offsets = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
      vector = 8}
}
"""


def test_shuffles_extracts_and_lane_reductions():
    x = rng.standard_normal(2048).astype(np.float32)
    check(
        MOVES,
        [x, np.zeros(2048, np.float32), np.zeros(1024, np.float32), np.zeros(2048, np.int32)],
    )


@pytest.mark.parametrize("kind", ["sum", "max"])
@pytest.mark.parametrize(
    ("lanes", "group"), [(24, 1), (24, 2), (24, 3), (24, 6), (24, 8), (24, 24), (35, 5), (35, 7)]
)
def test_lane_reductions_follow_the_balanced_tree(lanes, group, kind):
    """Float sums of any group size (odd ones carry a term up a level) give the interpreter's
    bits; the inputs span magnitudes so that another order would round differently."""
    outputs = lanes // group
    kernel = LaneKernel(lanes * 8 * 2, lanes, threads=8)
    values = kernel.load("f32")
    reduced = kernel.op(
        f'reduce_lanes({values}) {{group = {group}, kind = "{kind}"}}', "f32", outputs
    )
    kernel.store(reduced, "f32", outputs)
    x = (rng.standard_normal(kernel.n) * 10.0 ** rng.integers(-4, 5, kernel.n)).astype(np.float32)
    check(kernel.text(f"tree_{kind}_{lanes}_{group}"), [x, np.zeros(kernel.n // group, np.float32)])


def test_balanced_tree_order():
    from lpir.ir.order import balanced_tree, tree_levels

    assert balanced_tree(list("abcde"), lambda a, b: f"({a}{b})") == "(((ab)(cd))e)"
    assert tree_levels(5) == [([0, 2], [1, 3], 4), ([0], [1], 2), ([0], [1], None)]
