"""Memory ops compiled vs the thread-IR interpreter: `ld`/`st` plain, masked, vector-wide and
gathered, byte access of packed tensors, `st_bits` from many threads into shared bytes, direct
loads and stores of packed sub-byte elements, and shared memory (zeroed on allocation, shared
by a block's threads across barriers)."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.llvm import llvm_module
from test_llvm_harness import check, module_of, private_cache  # noqa: F401

import lpir

rng = np.random.default_rng(7)


def lanes(n: int) -> str:
    return str(list(range(n)))


MASKED = """
kernel @masked[](%x: global T[1024], %y: global T[1024], %z: global T[1024], %n: i32)
    blocks(4, 1, 1) threads(16) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c16 = constant {value = 16} : i32
  %c256 = constant {value = 256} : i32
  %0 = mul(%bx, %c256) : i32
  %1 = mul(%tid, %c16) : i32
  %base = add(%0, %1) : i32
  %limit = sub(%n, %base) : i32
  %iota = vector_constant {values = LANES} : <16 x i32>
  %bound = splat(%limit) {shape = [16]} : <16 x i32>
  %mask = lt(%iota, %bound) : <16 x bool>
  %v = ld(%x, %base, %mask) {offsets = LANES, vector = W} : <16 x T>
  st(%y, %base, %v, %mask) {offsets = LANES, vector = W}
  %g = ld(%x, %base, %mask) {offsets = [3, 1, 2, 0, 7, 5, 6, 4, 11, 9, 10, 8, 15, 13, 14,
      12]} : <16 x T>
  st(%z, %base, %g, %mask) {offsets = [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]}
}
"""


@pytest.mark.parametrize("width", [1, 4, 8, 16])
@pytest.mark.parametrize("name", ["f32", "f16", "u8", "i64", "bf16"])
def test_masked_loads_and_stores_touch_only_active_lanes(name, width):
    dt = lpir.dtype(name)
    text = MASKED.replace("LANES", lanes(16)).replace("W", str(width)).replace(" T[", f" {name}[")
    text = text.replace("x T>", f"x {name}>")
    if width == 1:
        text = text.replace(", vector = 1", "")
    codes = rng.integers(0, 2**16, 1024).astype(dt.code_numpy_dtype)
    for n in (1024, 1000, 517, 3):  # edges inside a vector group, a thread and a block
        sentinel = np.full(1024, 0x5A, dt.code_numpy_dtype)
        check(text, [codes, sentinel.copy(), sentinel.copy(), n])


BYTES_OF_PACKED = """
kernel @bytes[](%w: global u4[512], %y: global u8[256]) blocks(2, 1, 1) threads(4) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c32 = constant {value = 32} : i32
  %c128 = constant {value = 128} : i32
  %0 = mul(%bx, %c128) : i32
  %1 = mul(%tid, %c32) : i32
  %base = add(%0, %1) : i32
  %v = ld(%w, %base) {dtype = u8, offsets = LANES, vector = 32} : <32 x u8>
  st(%y, %base, %v) {offsets = LANES, vector = 16}
}
"""


def test_packed_tensors_read_as_bytes():
    w = lpir.pack(rng.integers(0, 16, 512), "u4")
    check(BYTES_OF_PACKED.replace("LANES", lanes(32)), [w, np.zeros(256, np.uint8)])


ST_BITS = """
kernel @bits[](%y: global u8[64], %data: global u8[1024]) blocks(2, 1,
    1) threads(256) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %s = alloc_shared : shared u8[32]
  %c8 = constant {value = 8} : i32
  %c3 = constant {value = 3} : i32
  %c0 = constant {value = 0} : i32
  %c1 = constant {value = 1} : i32
  %c32 = constant {value = 32} : i32
  %byte = div(%tid, %c8) : i32
  %bit = rem(%tid, %c8) : i32
  %one = shl(%c1, %bit) : i32
  %m8 = cast(%one) : u8
  %bitmask = vector(%m8, %m8) : <2 x u8>
  %c256 = constant {value = 256} : i32
  %slot = mul(%bx, %c256) : i32
  %at = add(%slot, %tid) : i32
  %d = ld(%data, %at) {offsets = [0]} : <1 x u8>
  %d0 = extract(%d) {index = 0} : u8
  %pair = vector(%d0, %d0) : <2 x u8>
  %r = rem(%tid, %c3) : i32
  %on = ne(%r, %c0) : bool
  %on2 = vector(%on, %on) : <2 x bool>
  barrier
  st_bits(%s, %byte, %pair, %bitmask, %on2) {offsets = [0, 0]}
  barrier
  %lt = lt(%tid, %c32) : bool
  %ltv = splat(%lt) {shape = [1]} : <1 x bool>
  %val = ld(%s, %tid, %ltv) {offsets = [0]} : <1 x u8>
  %out = mul(%bx, %c32) : i32
  %where = add(%out, %tid) : i32
  st(%y, %where, %val, %ltv) {offsets = [0]}
}
"""


def test_st_bits_from_many_threads_merge_into_shared_bytes():
    """256 threads each set (or skip) one bit of 32 shared bytes; untouched bits stay zero."""
    data = rng.integers(0, 256, 1024).astype(np.uint8)
    result = check(ST_BITS, [np.zeros(64, np.uint8), data])[0]
    assert result.any()


ST_BITS_GLOBAL = """
kernel @bits_global[](%y: global u8[16]) blocks(8, 1, 1) threads(32) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c4 = constant {value = 4} : i32
  %c8 = constant {value = 8} : i32
  %c1 = constant {value = 1} : i32
  %t = rem(%tid, %c8) : i32
  %shift = rem(%bx, %c8) : i32
  %bit = add(%t, %shift) : i32
  %b8 = rem(%bit, %c8) : i32
  %m = shl(%c1, %b8) : i32
  %m8 = cast(%m) : u8
  %mv = splat(%m8) {shape = [1]} : <1 x u8>
  %ff = constant {value = 255} : u8
  %dv = splat(%ff) {shape = [1]} : <1 x u8>
  %byte = div(%tid, %c8) : i32
  %block = mul(%bx, %c4) : i32
  %b = add(%byte, %block) : i32
  %c16 = constant {value = 16} : i32
  %wrapped = rem(%b, %c16) : i32
  st_bits(%y, %wrapped, %dv, %mv) {offsets = [0]}
}
"""


def test_st_bits_from_blocks_running_in_parallel_are_atomic():
    """Blocks on different cores set bits of the same global bytes: every bit lands."""
    for _ in range(20):
        result = check(ST_BITS_GLOBAL, [np.zeros(16, np.uint8)])[0]
        assert (result == 0xFF).all()


PACKED = """
kernel @packed[](%x: global T[100], %y: global T[100], %n: i32) blocks(1, 1,
    1) threads(13) stage(thread) {
  %tid = thread_index : i32
  %c8 = constant {value = 8} : i32
  %base = mul(%tid, %c8) : i32
  %limit = sub(%n, %base) : i32
  %iota = vector_constant {values = [0, 1, 2, 3, 4, 5, 6, 7]} : <8 x i32>
  %bound = splat(%limit) {shape = [8]} : <8 x i32>
  %mask = lt(%iota, %bound) : <8 x bool>
  %v = ld(%x, %base, %mask) {offsets = [0, 1, 2, 3, 4, 5, 6, 7]} : <8 x T>
  %r = shuffle(%v) {indices = [7, 6, 5, 4, 3, 2, 1, 0]} : <8 x T>
  st(%y, %base, %r, %mask) {offsets = [0, 1, 2, 3, 4, 5, 6, 7]}
}
"""


@pytest.mark.parametrize("name", ["u1", "u3", "i3", "u5", "i6", "u7", "bool", "f4e2m1", "f6e3m2"])
def test_direct_packed_loads_and_stores(name):
    """Elements straddle bytes, neighbours belong to other threads, the last byte is partial."""
    dt = lpir.dtype(name)
    text = PACKED.replace(" T[", f" {name}[").replace("x T>", f"x {name}>")
    codes = rng.integers(0, 1 << dt.nbits, 100).astype(np.uint8)
    for n in (100, 99, 37):
        x = lpir.pack_codes(codes, dt)
        y = lpir.pack_codes(np.full(100, (1 << dt.nbits) - 1, np.uint8), dt)
        check(text, [x, y, n])


REVERSE = """
kernel @reverse[](%x: global f32[1024], %y: global f32[1024]) blocks(4, 1,
    1) threads(64) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c4 = constant {value = 4} : i32
  %c256 = constant {value = 256} : i32
  %c252 = constant {value = 252} : i32
  %block = mul(%bx, %c256) : i32
  %mine = mul(%tid, %c4) : i32
  %at = add(%block, %mine) : i32
  %v = ld(%x, %at) {offsets = [0, 1, 2, 3], vector = 4} : <4 x f32>
  %s = alloc_shared : shared f32[256]
  %untouched = ld(%s, %mine) {offsets = [0, 1, 2, 3]} : <4 x f32>
  %mirror = sub(%c252, %mine) : i32
  barrier
  st(%s, %mirror, %v) {offsets = [3, 2, 1, 0]}
  barrier
  %r = ld(%s, %mine) {offsets = [0, 1, 2, 3], vector = 4} : <4 x f32>
  %sum = add(%r, %untouched) : <4 x f32>
  st(%y, %at, %sum) {offsets = [0, 1, 2, 3], vector = 4}
}
"""


def test_block_level_reverse_through_shared_memory():
    """Each block reverses its 256 elements across its threads; shared memory starts zeroed."""
    x = rng.standard_normal(1024).astype(np.float32)
    y = check(REVERSE, [x, np.zeros(1024, np.float32)])[1]
    assert np.array_equal(y, x.reshape(4, 256)[:, ::-1].reshape(-1))


WIDE_SCATTERED = """
kernel @wide[](%x: global T[8192], %y: global T[8192], %n: i32)
    blocks(4, 1, 1) threads(8) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c8 = constant {value = 8} : i32
  %c2048 = constant {value = 2048} : i32
  %0 = mul(%bx, %c2048) : i32
  %base = add(%0, %tid) : i32
  %limit = sub(%n, %base) : i32
  %iota = vector_constant {values = STRIDED} : <256 x i32>
  %bound = splat(%limit) {shape = [256]} : <256 x i32>
  %mask = lt(%iota, %bound) : <256 x bool>
  %v = ld(%x, %base, MASK) {offsets = STRIDED} : <256 x T>
  st(%y, %base, %v, MASK) {offsets = REVERSED}
}
"""


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name", ["f32", "u8", "i64", "bf16"])
def test_wide_scattered_accesses_gather_and_scatter(name, masked):
    """256 lanes at stride 8 per thread: one masked gather and one masked scatter each (more
    than 64 lanes), instead of a scalar access per lane; u8 and bf16, with 8 and 4 lanes in
    each 64 bytes, through masked 64-byte windows instead (`offset_windows`)."""
    dt = lpir.dtype(name)
    strided = str([8 * lane for lane in range(256)])
    reversed_ = str([8 * lane for lane in reversed(range(256))])
    text = WIDE_SCATTERED.replace("REVERSED", reversed_).replace("STRIDED", strided)
    text = text.replace(" T[", f" {name}[").replace("x T>", f"x {name}>")
    text = text.replace(", MASK", ", %mask" if masked else "")
    codes = rng.integers(0, 2**16, 8192).astype(dt.code_numpy_dtype)
    for n in (8192, 5000) if masked else (8192,):
        check(text, [codes, np.full(8192, 0x5A, dt.code_numpy_dtype), n])


def test_consecutive_runs_of_offsets():
    from lpir.backends.llvm.memory import consecutive_runs

    assert consecutive_runs(list(range(5, 45)), 16) == [(0, 16), (16, 16), (32, 8)]
    assert consecutive_runs([0, 1, 2, 3, 10, 11, 12, 13], 16) == [(0, 4), (4, 4)]
    assert consecutive_runs([0, 2, 4, 6, 8, 10, 12, 14], 16) is None  # runs of 1: per lane


ODD_ROWS = """
kernel odd_rows[M = 15, N = 461](x: global f16[M, N], y: global f32[M, N])
    blocks(cdiv(M, 2)) threads(2) {
    store(y[block.x * 2 :+ 2, :], cast<f32>(load(x[block.x * 2 :+ 2, :])) * 2.0)
}
"""


def test_unaligned_rows_are_vector_accesses_and_match():
    """Rows of 461 (no vector width: their starts are not aligned) are read and written as runs
    of whole registers, masked in the last block's missing row, not gathered lane by lane."""
    kernel = lpir.compile(ODD_ROWS, target="cpu")
    llvm = kernel.source("llvm")
    assert "masked.gather" not in llvm and "masked.scatter" not in llvm
    x = np.random.default_rng(0).standard_normal((15, 461)).astype(np.float16)
    got, want = np.zeros((15, 461), np.float32), np.zeros((15, 461), np.float32)
    kernel(x, got)
    lpir.compile(ODD_ROWS, target="interp")(x, want)
    np.testing.assert_array_equal(got, want)


def test_offset_windows():
    from lpir.backends.llvm.memory import offset_windows

    rows = [r * 64 + c for c in range(32) for r in (0, 1)]  # two rows, interleaved
    assert offset_windows(rows, 32) == [0, 64]
    assert offset_windows([2 * i for i in range(32)], 32) == [0, 32]  # every other element
    assert offset_windows([5, 4, 7, 6], 16) == [4]  # a permuted run
    assert offset_windows([0, 0, 1, 1, 2, 2, 3, 3], 16) == [0]  # repeated lanes
    assert offset_windows([16 * i for i in range(8)], 16) is None  # one lane a window


WINDOWS = """
kernel @windows[](%x: global T[4096], %y: global T[4096], %n: i32)
    blocks(4, 1, 1) threads(8) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c1024 = constant {value = 1024} : i32
  %c128 = constant {value = 128} : i32
  %0 = mul(%bx, %c1024) : i32
  %1 = mul(%tid, %c128) : i32
  %base = add(%0, %1) : i32
  %limit = sub(%n, %base) : i32
  %iota = vector_constant {values = LOADS} : <128 x i32>
  %bound = splat(%limit) {shape = [128]} : <128 x i32>
  %mask = lt(%iota, %bound) : <128 x bool>
  %v = ld(%x, %base, MASK) {offsets = LOADS} : <128 x T>
  st(%y, %base, %v, MASK) {offsets = STORES}
}
"""

# each thread's 128 elements: two rows of 64 read interleaved (a pair-interleaved register),
# written to every other element (a row into a pair-interleaved tile), or repeated lanes
PAIRS = [r * 64 + c for c in range(64) for r in (0, 1)]
EVERY_OTHER = [2 * (lane % 64) + lane // 64 for lane in range(128)]
REPEATED = [lane // 2 for lane in range(128)]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name", ["f32", "bf16", "u8", "i64"])
@pytest.mark.parametrize(
    "loads, stores",
    [(PAIRS, EVERY_OTHER), (EVERY_OTHER, PAIRS), (REPEATED, list(range(0, 128)))],
    ids=["pairs-every-other", "every-other-pairs", "repeated"],
)
def test_accesses_through_offset_windows(loads, stores, name, masked):
    """Lanes that are not consecutive runs but lie close together are read and written as
    64-byte windows and shuffles, not lane by lane or gathered; the elements a store skips keep
    their bytes, masked-off lanes read 0 and are not written, as in the interpreter."""
    dt = lpir.dtype(name)
    text = WINDOWS.replace("LOADS", str(loads)).replace("STORES", str(stores))
    text = text.replace(" T[", f" {name}[").replace("x T>", f"x {name}>")
    text = text.replace(", MASK", ", %mask" if masked else "")
    llvm = str(llvm_module(module_of(text)))
    # a masked load of repeated lanes is gathered (one window lane could not carry two masks)
    assert ("masked.gather" in llvm) == (masked and loads == REPEATED)
    assert "masked.scatter" not in llvm
    codes = rng.integers(0, 2**16, 4096).astype(dt.code_numpy_dtype)
    for n in (4096, 2500) if masked else (4096,):
        check(text, [codes, np.full(4096, 0x5A, dt.code_numpy_dtype), n])
