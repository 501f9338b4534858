"""Compile-time indices of register tiles and their inverse, `stack`: `t[:, :, 0]` keeps one
position of a dimension and removes it (negative positions count from the end; `:` and None
mix with them); `t[:, 0:32]` keeps an aligned block of one (a reshape and an index);
`stack(a, b, axis = k)` joins tiles along a new axis. Both are free where each
thread holds the whole (new) dimension: a choice or shuffle of slots; where the threads split
it, a conversion comes first. Checked on every host target against numpy, with the GPU's
layouts (threads-cuda) and the CPU's, plus the errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from located_errors import assert_located_error

import lpir
from lpir.ir.ops import LoadOp, ScanOp
from lpir.ir.parser import parse
from lpir.ir.types import as_tile

TARGETS = [*HOST_TARGETS, "threads-cuda"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# interleaved pairs, as a rotary embedding reads them: the even and odd elements of each row
PAIRS = """
kernel pairs[T = 37, D = 64, BT = 16](
    x: global f32[T, D], even: global f32[T, D / 2], odd: global f32[T, D / 2],
) blocks(cdiv(T, BT)) threads(64) {
    rows = block.x * BT
    p = reshape(load(x[rows :+ BT, :]), BT, D / 2, 2)
    store(even[rows :+ BT, :], p[:, :, 0] * 2.0)
    store(odd[rows :+ BT, :], p[:, :, -1] + 1.0)
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_even_and_odd_elements_with_edges(target):
    x = np.random.default_rng(1).standard_normal((37, 64)).astype(np.float32)
    even, odd = np.zeros((37, 32), np.float32), np.zeros((37, 32), np.float32)
    lpir.compile(PAIRS, target=target)(x, even, odd)
    np.testing.assert_array_equal(even, x[:, 0::2] * 2)
    np.testing.assert_array_equal(odd, x[:, 1::2] + 1)


def test_indexing_a_dimension_each_thread_holds_costs_nothing():
    kernel = lpir.compile(PAIRS, target="cuda")
    tiles = kernel.ir("after:layout-selection")
    assert tiles.count("index(") == 2 and "convert_layout" not in tiles
    assert "index(" not in kernel.ir("after:lower-to-threads")


# one row of a tile whose rows are spread over the threads, and a column with new axes around
ROW_AND_COLUMN = """
kernel pick[](x: global i32[64, 32], row: global i32[32], column: global i32[1, 64, 1])
    blocks(1) threads(64) {
    t = load(x[0 :+ 64, 0 :+ 32])
    store(row[0 :+ 32], t[5, :])
    store(column[0 :+ 1, 0 :+ 64, 0 :+ 1], t[None, :, 31, None])
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_a_dimension_the_threads_split_is_converted_first(target):
    x = np.arange(64 * 32, dtype=np.int32).reshape(64, 32)
    row, column = np.zeros(32, np.int32), np.zeros((1, 64, 1), np.int32)
    kernel = lpir.compile(ROW_AND_COLUMN, target=target)
    kernel(x, row, column)
    np.testing.assert_array_equal(row, x[5])
    np.testing.assert_array_equal(column, x[None, :, 31, None])
    if target == "threads-cuda":
        # t is loaded with each thread holding whole rows (for t[:, 31], free); t[5, :] needs
        # a row its threads split, in two replicas of 32 threads: read from a shared copy of
        # t, one exchange (converting t to whole columns in every thread would be another)
        tiles = kernel.ir("after:layout-selection")
        assert tiles.count("convert_layout(") == 0 and tiles.count("alloc_shared") == 1
        assert tiles.count("index(") == 1


# a block's running total (c[BV - 1], in every thread) and one row of a tile whose threads
# split its rows, each in a loop; the element types travel through shared memory as they are
TOTALS = """
kernel totals[T = f32, N = 3000, BV = 1024, STEPS = 3](
    x: global T[STEPS, N], y: global T[STEPS, N], last: global T[STEPS, cdiv(N, BV)],
    m: global T[64, 64], row: global T[STEPS, 64],
) blocks(cdiv(N, BV)) threads(128) {
    for s in range(STEPS) {
        c = cumsum(load(x[s, block.x * BV :+ BV]))
        store(y[s, block.x * BV :+ BV], c)
        store(last[s, block.x], c[BV - 1])
        t = load(m[0 :+ 64, 0 :+ 64]) + cast<T>(s)
        store(row[s, 0 :+ 64], t[40, :])
    }
}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["f32", "i32", "u8"])
def test_an_element_every_thread_needs_comes_through_shared_memory(target, dtype):
    """Taking c[BV - 1] (a 0-d tile, held by every thread) once made every thread hold the
    whole tile: on the GPU each of 128 threads scanned all 1024 elements. Now the tile keeps
    its layout and the one element is read from a shared copy, in every iteration anew."""
    numpy_dtype = {"f32": np.float32, "i32": np.int32, "u8": np.uint8}[dtype]
    rng = np.random.default_rng(4)
    x = rng.integers(0, 5, size=(3, 3000)).astype(numpy_dtype)  # (exact sums in every dtype)
    m = rng.integers(0, 100, size=(64, 64)).astype(numpy_dtype)
    y, last = np.zeros_like(x), np.zeros((3, 3), numpy_dtype)
    row = np.zeros((3, 64), numpy_dtype)
    lpir.compile(TOTALS, target=target, T=dtype)(x, y, last, m, row)
    blocks = np.pad(x, ((0, 0), (0, 72))).reshape(3, 3, 1024)
    expected = np.cumsum(blocks, axis=2, dtype=numpy_dtype)
    np.testing.assert_array_equal(y, expected.reshape(3, -1)[:, :3000])
    np.testing.assert_array_equal(last, expected[:, :, -1])
    np.testing.assert_array_equal(row, np.stack([m[40] + s for s in range(3)]))


def test_a_gpu_scan_whose_total_is_taken_stays_spread_over_the_threads():
    """On the GPU; the CPU keeps the replicated form, whose replicas drop-replicas removes
    (one thread scanning the line in registers was 2-2.4x faster there)."""
    kernel = lpir.compile(TOTALS, target="cuda")
    tiles = kernel.ir("after:layout-selection")
    ops = list(parse(tiles).kernels[0].walk())
    scan = next(op for op in ops if isinstance(op, ScanOp))
    assert as_tile(scan.result.type).selected_layout.slots == 8  # 1024 over 128 threads
    loads = [op for op in ops if isinstance(op, LoadOp) and op.name == "load_shared"]
    assert [as_tile(op.result.type).shape for op in loads] == [(), (64,)]
    # in the loop, a barrier before each copy is stored (the last iteration's reads are done)
    copies = [line for line in tiles.splitlines() if "store_shared(%indexed" in line]
    lines = tiles.splitlines()
    assert len(copies) == 2 and all(lines[lines.index(c) - 1].strip() == "sync" for c in copies)
    assert "__syncthreads" in kernel.source("cuda")
    cpu = lpir.compile(TOTALS, target="cpu").ir("after:layout-selection")
    assert "alloc_shared" not in cpu


# several elements of one tile: one shared copy, one barrier, a load each
ELEMENTS = """
kernel picks[N = 8192, BV = 2048](x: global f32[N], y: global f32[N / BV])
    blocks(N / BV) threads(128) {
    c = cumsum(load(x[block.x * BV :+ BV]))
    store(y[block.x], c[BV - 1] + c[0] + c[BV / 2] + c[7] + c[100] + c[200])
}
"""


@pytest.mark.parametrize("target", ["interp", "threads-cuda", "cpu"])
def test_several_elements_of_one_tile_share_one_copy(target):
    x = np.random.default_rng(6).integers(-3, 4, 8192).astype(np.float32)  # (exact sums)
    y = np.zeros(4, np.float32)
    kernel = lpir.compile(ELEMENTS, target=target)
    kernel(x, y)
    c = np.cumsum(x.reshape(4, 2048), axis=1)
    expected = c[:, [2047, 0, 1024, 7, 100, 200]]
    np.testing.assert_array_equal(
        y,
        expected[:, 0]
        + expected[:, 1]
        + expected[:, 2]
        + expected[:, 3]
        + expected[:, 4]
        + expected[:, 5],
    )
    if target == "threads-cuda":  # 8 KiB once, not six times (49 KiB: past sm_86's limit)
        tiles = kernel.ir("after:layout-selection")
        assert tiles.count("alloc_shared") == 1 and tiles.count("load_shared") == 6


# a sampler's best logit: an element of a gather from a top-k's sort of 8192 logits
BEST_OF_TOP_K = """
kernel best[NV = 8192](x: global f32[NV], o: global f32[2]) blocks(1) threads(256) {
    t = load(x[:])
    top = gather(t, argsort(t, descending = true)[0:64])
    store(o[0 :+ 2], stack(top[0], top[63]))
}
"""


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_an_element_of_a_long_line_on_the_cpu_reads_a_shared_copy(target):
    """On the CPU top[0] once made every thread hold all 8192 logits (replicated back through
    the gather and the sort): past the CPU's 4096 elements a thread, a located error whose
    hint asked for more threads (a decode step's explorer). Past 2048 elements a thread the
    element comes from a shared copy, as on the GPU."""
    x = np.random.default_rng(9).permutation(8192).astype(np.float32)
    o = np.zeros(2, np.float32)
    lpir.compile(BEST_OF_TOP_K, target=target)(x, o)
    np.testing.assert_array_equal(o, [8191, 8191 - 63])


# elements stacked back into a tile (stack is an index's inverse): 0-d operands
ELEMENTS_STACKED = """
kernel ends[](x: global f32[64], e: global f32[2], f: global f32[2]) blocks(1) threads(64) {
    t = load(x[0 :+ 4])
    store(e[0 :+ 2], stack(t[0], t[3]))
    c = cumsum(load(x[0 :+ 64]))
    store(f[0 :+ 2], stack(c[63], c[10]))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_a_stack_of_elements(target):
    """The verifier's slot table of a 0-d layout failed to reshape (every compiled target
    raised a ValueError; the interpreter was right), found by a reviewer."""
    x = np.random.default_rng(7).integers(-3, 4, 64).astype(np.float32)
    e, f = np.zeros(2, np.float32), np.zeros(2, np.float32)
    lpir.compile(ELEMENTS_STACKED, target=target)(x, e, f)
    np.testing.assert_array_equal(e, x[[0, 3]])
    np.testing.assert_array_equal(f, np.cumsum(x)[[63, 10]])


@pytest.mark.parametrize(
    ("subscript", "column", "message", "hint"),
    [
        (
            "t[0 :+ 4, :]",
            11,
            "the range 0:4 of dimension 0 of f32[6, 4] is not an aligned",
            "divides 6",
        ),
        ("t[:, 1:3]", 14, "the range 1:3 of dimension 1", "start at a multiple of that length"),
        (
            "t[:, n:4]",
            14,
            "a register tile's range must start at a compile-time integer",
            "gather(t, (n + arange(L))[None, :], axis = 1), L the range's length",
        ),
        ("t[6, :]", 11, "index 6 is out of range for dimension 0 of f32[6, 4]", "-6 to -1"),
        ("t[:, -5]", 14, "index -5 is out of range for dimension 1", "use 0 to 3"),
        (
            "t[n, :]",
            11,
            "an index of a register tile must be a compile-time integer",
            "known at run time, gather(t, n, axis = 0)",
        ),
        ("t[0]", 9, "needs 2 entries (':' or an index), got 1", "t[:, 0, None]"),
    ],
)
def test_a_bad_index_is_a_located_error(subscript, column, message, hint):
    assert_located_error(subscript, column, message, hint)


# a tile's halves swapped by ranges (rotate-half), a quarter's first column added
HALVES = """
kernel halves[T = 37, D = 64, BT = 16](x: global f32[T, D], y: global f32[T, D])
    blocks(cdiv(T, BT)) threads(64) {
    t = load(x[block.x * BT :+ BT, :])
    quarter = t[:, -16:]
    swapped = stack(t[:, D / 2 :] * 2.0 + quarter[:, 0 :+ 1], t[:, 0 : D / 2], axis = 1)
    store(y[block.x * BT :+ BT, :], reshape(swapped, BT, D))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_aligned_ranges_of_a_tile(target):
    x = np.random.default_rng(3).standard_normal((37, 64)).astype(np.float32)
    y = np.zeros_like(x)
    lpir.compile(HALVES, target=target)(x, y)
    expected = np.concatenate([x[:, 32:] * 2 + x[:, 48:49], x[:, :32]], axis=1)
    np.testing.assert_array_equal(y, expected)


# pairs split, changed, interleaved back and stored in one piece; rows joined side by side
STACKS = """
kernel joins[T = 37, D = 64, BT = 16](
    x: global f32[T, D], y: global f32[T, D], wide: global f32[T, 3 * D],
) blocks(cdiv(T, BT)) threads(64) {
    rows = block.x * BT
    t = load(x[rows :+ BT, :])
    p = reshape(t, BT, D / 2, 2)
    store(y[rows :+ BT, :], reshape(stack(p[:, :, 1] * 2.0, p[:, :, 0] + 1.0, axis = -1), BT, D))
    store(wide[rows :+ BT, :], reshape(stack(t, t * 3.0, -t, axis = 1), BT, 3 * D))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_stacks_interleave_and_concatenate(target):
    x = np.random.default_rng(2).standard_normal((37, 64)).astype(np.float32)
    y, wide = np.zeros_like(x), np.zeros((37, 192), np.float32)
    lpir.compile(STACKS, target=target)(x, y, wide)
    expected = np.empty_like(x)
    expected[:, 0::2], expected[:, 1::2] = x[:, 1::2] * 2, x[:, 0::2] + 1
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(wide, np.concatenate([x, x * 3, -x], axis=1))


def test_interleaving_pairs_back_costs_nothing_before_the_store():
    tiles = lpir.compile(STACKS, target="cuda").ir("after:layout-selection")
    first_store = tiles.index("store_global(%y")
    assert "convert_layout" not in tiles[: tiles.index("stack(")]
    assert tiles.count("stack(") == 2 and first_store > tiles.index("stack(")
    assert "stack(" not in lpir.compile(STACKS, target="cuda").ir("after:lower-to-threads")


@pytest.mark.parametrize(
    ("expression", "column", "message", "hint"),
    [
        ("stack(t, t[:, 0])", 9, "stack needs tiles of one type", "cast or broadcast"),
        ("stack(t, cast<f16>(t))", 9, "stack needs tiles of one type", None),
        ("stack(t, t, axis = 3)", 28, "axis 3 is out of range for stacking rank-2", "-3 to -1"),
        ("stack(t, 1.0)", 18, "stack joins tiles, but this is", None),
        ("stack()", 9, "stack joins one tile or more, got none", "stack(a, b, ..., axis = 0)"),
        ("stack(t, dim = 1)", 18, "stack has no argument 'dim'", None),
    ],
)
def test_a_bad_stack_is_a_located_error(expression, column, message, hint):
    assert_located_error(expression, column, message, hint)


@pytest.mark.parametrize(("interleaved", "vector"), [(0, 4), (1, 8)])
def test_rope_reads_and_writes_its_pairs_where_each_thread_holds_them(interleaved, vector):
    """examples/rope.lp on the GPU: x is loaded in the layout the pairs' index needs (no
    conversion) and the stacked result is stored as the stack leaves it. A thread's 8 lanes
    are 8 neighbours (16 bytes) for neighbour pairs, and for halves two runs of 4, 32 apart,
    which stack interleaves and vectorize sorts back into two 8-byte accesses."""
    kernel = lpir.compile(
        EXAMPLES / "rope.lp", target="cuda", T=100, H=2, D=64, INTERLEAVED=interleaved
    )
    assert "convert_layout" not in kernel.ir("after:layout-selection")
    accesses = [
        line for line in kernel.ir("final").splitlines() if " ld(%x" in line or "st(%y" in line
    ]
    assert len(accesses) == 2, accesses
    assert all(f"vector = {vector}" in line for line in accesses), accesses
