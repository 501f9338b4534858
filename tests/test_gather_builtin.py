"""`gather(t, index, axis = k, other = v)`: the elements of t's lines along axis k at the
positions `index` holds (numpy's `take_along_axis`, Triton's `tl.gather`); positions outside
the line read `other` (0 without it). Lowered through a shared tile of t's shape: stored,
then read at the positions (a gathered load), so every target shares the loads' edge rules.
Checked on every target against numpy, in loops, with wide and storage dtypes, plus the CUDA
code, the IR text and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from located_errors import assert_located_error
from lpir.backends.cuda.compiler import find_nvcc

import lpir
from lpir.ir.parser import parse
from lpir.ir.printer import print_module

TARGETS = ["interp", "threads", "threads-cuda", "cpu"]
NUMPY = {"f32": np.float32, "f16": np.float16, "i32": np.int32, "u8": np.uint8, "bool": np.bool_}

ROWS = """
kernel pick[T = f32, M = 37, N = 24, K = 12, BM = 16, BN = 32, OTHER = 0](
    x: global T[M, N], ids: global i32[M, K], y: global T[M, K]
) blocks(cdiv(M, BM)) threads(64) {
    r = block.x * BM
    t = load(x[r :+ BM, 0 :+ BN])
    i = load(ids[r :+ BM, 0 :+ K])
    if OTHER == 1 {
        store(y[r :+ BM, 0 :+ K], gather(t, i, axis = 1, other = cast<T>(7)))
    } else {
        store(y[r :+ BM, 0 :+ K], gather(t, i, axis = 1))
    }
}
"""


def take(x: np.ndarray, ids: np.ndarray, axis: int, length: int, other) -> np.ndarray:
    """numpy's take_along_axis over x padded with zeros to `length` along `axis` (a tile
    reaching past the tensor's edge reads 0 there), `other` where a position leaves the tile."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, length - x.shape[axis])
    padded = np.pad(x, pad)
    inside = (ids >= 0) & (ids < length)
    picked = np.take_along_axis(padded, np.clip(ids, 0, length - 1), axis)
    return np.where(inside, picked, np.asarray(other).astype(x.dtype))


def _values(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in ("i32", "u8"):
        return rng.integers(0, 200, size=shape).astype(NUMPY[dtype])
    x = rng.standard_normal(shape).astype(NUMPY[dtype])
    x[0, :3] = [np.nan, -0.0, np.inf]
    return x


# (the thread interpreter runs the cpu's thread IR: f32 and i32 cover it there)
@pytest.mark.parametrize(
    "target, dtype",
    [
        (target, dtype)
        for dtype in ("f32", "f16", "i32", "u8", "bool")
        for target in TARGETS
        if target != "threads" or dtype in ("f32", "i32")
    ],
)
@pytest.mark.parametrize("other", [0, 1])
def test_gathers_rows_positions_with_the_edges_of_loads(target, dtype, other):
    """37 rows in tiles of 16 (the last overhangs), 24 columns in a tile of 32 (positions
    24..31 read the tile's zeros past the edge), positions from -3 to 35 (outside the tile:
    `other`, or 0)."""
    rng = np.random.default_rng(3)
    x = _values(dtype, (37, 24), rng)
    ids = rng.integers(-3, 36, size=(37, 12)).astype(np.int32)
    y = np.zeros((37, 12), NUMPY[dtype])
    fill = True if dtype == "bool" else 7  # (cast<bool>(7) is true)
    kernel = lpir.compile(ROWS, target=target, T=dtype, OTHER=other)
    if dtype == "bool":  # lpir's bool tensors are packed, 8 to a byte
        packed = lpir.pack(y, "bool")
        kernel(lpir.pack(x, "bool"), ids, packed)
        y = lpir.unpack(packed)
    else:
        kernel(x, ids, y)
    expected = take(x, ids, 1, 32, fill if other else 0)
    np.testing.assert_array_equal(y, expected)  # (bit for bit: nothing is computed)
    if dtype in ("f32", "f16"):  # -0.0 and 0.0 where they were
        np.testing.assert_array_equal(np.signbit(y), np.signbit(expected))


COLUMNS = """
kernel pick_rows[BM = 32, BN = 16, K = 8](
    x: global f32[BM, BN], ids: global u8[K, BN], y: global f32[K, BN]
) blocks(1) threads(THREADS) {
    t = load(x[0 :+ BM, 0 :+ BN])
    store(y[0 :+ K, 0 :+ BN], gather(t, load(ids[0 :+ K, 0 :+ BN]), axis = 0, other = -inf))
}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("threads", [32, 128])
def test_gathers_along_axis_0_with_u8_positions(target, threads):
    """Each column's K elements picked from its 32 (axis 0), u8 positions (200 and more
    read `other`), fewer positions than the line."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((32, 16)).astype(np.float32)
    ids = rng.integers(0, 40, size=(8, 16)).astype(np.uint8)
    y = np.zeros((8, 16), np.float32)
    source = COLUMNS.replace("THREADS", str(threads))
    lpir.compile(source, target=target)(x, ids, y)
    np.testing.assert_array_equal(y, take(x, ids.astype(np.int64), 0, 32, -np.inf))


VECTOR_AND_CUBE = """
kernel shapes[N = 100, BN = 128, K = 256](
    v: global f32[N], ids: global i32[K], out: global f32[K],
    c: global i32[4, 8, 6], cids: global i64[4, 1, 6], cout: global i32[4, 3, 6]
) blocks(1) threads(64) {
    store(out[0 :+ K], gather(load(v[0 :+ BN]), load(ids[0 :+ K])))
    positions = load(cids[0 :+ 4, 0 :+ 1, 0 :+ 6])
    cube = load(c[0 :+ 4, 0 :+ 8, 0 :+ 6])
    picked = gather(cube, reshape(stack(positions, positions + 1, positions - 1, axis = 1),
        4, 3, 6), axis = -2)
    store(cout[0 :+ 4, 0 :+ 3, 0 :+ 6], picked)
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_rank_1_and_rank_3_gathers_and_64_bit_positions(target):
    """A vector gather (the axis left out) of more positions than the line, and a middle axis
    of a rank-3 tile with i64 positions, some beyond 2**32, which must not wrap into the line."""
    rng = np.random.default_rng(7)
    v = rng.standard_normal(100).astype(np.float32)
    ids = rng.integers(-10, 140, size=256).astype(np.int32)
    c = rng.integers(-1000, 1000, size=(4, 8, 6)).astype(np.int32)
    cids = rng.integers(-1, 9, size=(4, 1, 6)).astype(np.int64)
    cids[0, 0, :3] = [2**32 + 3, 2**40, -(2**32) + 1]
    out, cout = np.zeros(256, np.float32), np.zeros((4, 3, 6), np.int32)
    lpir.compile(VECTOR_AND_CUBE, target=target)(v, ids, out, c, cids, cout)
    np.testing.assert_array_equal(out, take(v, ids, 0, 128, 0))
    stacked = np.concatenate([cids, cids + 1, cids - 1], axis=1)
    np.testing.assert_array_equal(cout, take(c, stacked, 1, 8, 0))


LOOP = """
kernel running[N = 64, STEPS = 5](
    x: global f32[STEPS, N], ids: global i32[STEPS, N], y: global f32[STEPS, N]
) blocks(1) threads(32) {
    acc = zeros<f32>[N]
    for s in range(STEPS) {
        t = load(x[s, 0 :+ N]) + acc
        acc = gather(t, load(ids[s, 0 :+ N]))
        store(y[s, 0 :+ N], acc)
    }
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_a_gather_in_a_loop_reads_this_iterations_tile(target):
    """The shared tile is reused each iteration: a thread still reading the last iteration's
    positions must not see this one's values (insert-syncs orders them)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 64)).astype(np.float32)
    ids = np.stack([rng.permutation(64) for _ in range(5)]).astype(np.int32)
    y = np.zeros((5, 64), np.float32)
    lpir.compile(LOOP, target=target)(x, ids, y)
    acc = np.zeros(64, np.float32)
    for s in range(5):
        acc = (x[s] + acc)[ids[s]]
        np.testing.assert_array_equal(y[s], acc)


@pytest.mark.parametrize("target", ["interp", "threads-cuda", "cpu"])
@pytest.mark.parametrize("dtype", ["u4", "i3", "f8e4m3", "f4e2m1"])
def test_storage_types_gather_their_codes(target, dtype):
    source = """
kernel small[T = u4](x: global T[4, 32], ids: global i32[4, 16], y: global T[4, 16])
    blocks(1) threads(32) {
    store(y[0 :+ 4, 0 :+ 16], gather(load(x[0 :+ 4, 0 :+ 32]), load(ids[0 :+ 4, 0 :+ 16]),
        axis = 1))
}
"""
    kind = lpir.dtype(dtype)
    rng = np.random.default_rng(13)
    codes = rng.integers(0, 1 << kind.nbits, size=(4, 32)).astype(kind.code_numpy_dtype)
    ids = rng.integers(0, 32, size=(4, 16)).astype(np.int32)
    y = lpir.pack_codes(np.zeros((4, 16), kind.code_numpy_dtype), kind)
    lpir.compile(source, target=target, T=dtype)(lpir.pack_codes(codes, kind), ids, y)
    np.testing.assert_array_equal(y.codes(), np.take_along_axis(codes, ids, 1))


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_cuda_code_of_a_gather_compiles():
    kernel = lpir.compile(ROWS, target="cuda", T="f16", OTHER=1)
    assert "LPIR_SHARED(gathered" in kernel.source("cuda")
    assert "__syncthreads()" in kernel.source("cuda")
    assert ".visible .entry" in kernel.source("ptx")


def test_a_gather_round_trips_through_ir_text():
    tiles = lpir.compile(ROWS, target="cpu").ir("after:layout-selection")
    assert "alloc_shared" in tiles and "load_shared" in tiles
    assert print_module(parse(tiles)) == tiles


@pytest.mark.parametrize(
    "expression, column, message, hint",
    [
        ("gather(a, t)", 16, "gather picks elements of a tile", "gather(load(a[...]), t)"),
        ("gather(t, t, axis = 1)", 19, "must be an integer tile or", "gather(t, ids, axis = 1)"),
        ("gather(t, 1.5, axis = 1)", 19, "must be an integer tile or", "a tile of positions"),
        ("gather(t, arange(4))", 9, "needs the axis", "gather(t, arange(4), axis = 1)"),
        ("gather(t, arange(4), axis = 2)", 37, "axis 2 is out of range", "between 0 and 1"),
        (
            "gather(t, arange(6)[None, :], axis = 0)",
            19,
            "shape [1, 6] do not fit a tile of shape [6, 4] along axis 0",
            "any length there",
        ),
        (
            "gather(t, cast<i32>(t), axis = 1, other = arange(4))",
            51,
            "other = must be an f32 value, the tile's dtype",
            "cast<f32>",
        ),
        (
            "gather(t, cast<i32>(t), 1)",
            33,
            "gather takes the axis as a keyword",
            "gather(t, cast<i32>(t), axis = 1)",
        ),
        (  # torch's order, gather(input, dim, index)
            "gather(t, 1, cast<i32>(t))",
            19,
            "gather takes the axis as a keyword",
            "gather(t, cast<i32>(t), axis = 1)",
        ),
        ("gather(t, -1, cast<i32>(t))", 19, "as a keyword", "gather(t, cast<i32>(t), axis = -1)"),
    ],
)
def test_gather_mistakes_are_located_errors(expression, column, message, hint):
    assert_located_error(expression, column, message, hint)


ONE_POSITION = """
kernel one[](x: global f32[64], m: global f32[8, 16], i: i32, y: global f32[4],
    r: global f32[16], c: global f32[8]) blocks(1) threads(32) {
    t = load(x[0 :+ 64])
    a = load(m[0 :+ 8, 0 :+ 16])
    store(y[0 :+ 4], stack(gather(t, i), gather(t, 3), gather(t, i + 100, other = -1.0),
        gather(t, -1)))
    store(r[0 :+ 16], gather(a, i % 8, axis = 0))
    store(c[0 :+ 8], gather(a, i % 16, axis = 1))
}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("i", [5, 37])
def test_one_position_known_at_run_time(target, i):
    """A scalar position (numpy's take of one index): the axis is dropped, t[i] at a run-time
    i (an element of a vector, a row or a column of a matrix); outside the line, other (0
    without it: -1 counts from the start, not the end)."""
    rng = np.random.default_rng(i)
    x = rng.standard_normal(64).astype(np.float32)
    m = rng.standard_normal((8, 16)).astype(np.float32)
    y, r, c = np.zeros(4, np.float32), np.zeros(16, np.float32), np.zeros(8, np.float32)
    lpir.compile(ONE_POSITION, target=target)(x, m, i, y, r, c)
    np.testing.assert_array_equal(y, [x[i], x[3], -1.0, 0.0])
    np.testing.assert_array_equal(r, m[i % 8])
    np.testing.assert_array_equal(c, m[:, i % 16])
