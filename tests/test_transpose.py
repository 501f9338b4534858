"""`transpose(t)`: a tile with its dimensions reversed (a rank-2 tile's two swap), and
`transpose(t, d0, d1, ...)`: permuted as numpy's `np.transpose` permutes them. Each thread
keeps its elements (the result's layout is the operand's with its dims permuted), so after
layout selection it costs nothing; a transposed load or store reads or writes in the layout
the other side gives. Checked on every target against numpy, plus its errors and its
folding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lpir
from lpir.errors import LpirError
from lpir.ir.parser import parse
from lpir.ir.printer import print_module
from lpir.ir.verifier import verify

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SOURCE = """
kernel flip[M = 48, N = 40, BM = 32, BN = 16](a: global f32[M, N], b: global f32[N, M])
    blocks(cdiv(M, BM), cdiv(N, BN)) threads(64) {
    t = load(a[block.x * BM :+ BM, block.y * BN :+ BN])
    store(b[block.y * BN :+ BN, block.x * BM :+ BM], transpose(t * 2.0) + 1.0)
}
"""


@pytest.mark.parametrize("target", ["interp", "threads", "threads-cuda", "cpu"])
def test_transpose_of_tiles_with_edges(target):
    a = np.random.default_rng(3).standard_normal((48, 40)).astype(np.float32)
    b = np.zeros((40, 48), np.float32)
    lpir.compile(SOURCE, target=target)(a, b)
    np.testing.assert_array_equal(b, a.T * 2 + 1)  # exact: * 2 and + 1 round alike


def test_a_transposed_load_or_store_is_not_converted_on_the_gpu():
    kernel = lpir.compile(SOURCE, target="cuda")
    tiles = kernel.ir("after:layout-selection")
    assert "transpose(" in tiles and "convert_layout" not in tiles
    assert "transpose" not in kernel.ir("after:lower-to-threads")


def test_transpose_of_a_transpose_folds():
    source = """
kernel twice[](a: global f32[8, 4], b: global f32[8, 4]) blocks(1) threads(32) {
    store(b[0 :+ 8, 0 :+ 4], transpose(transpose(load(a[0 :+ 8, 0 :+ 4]))))
}
"""
    kernel = lpir.compile(source, target="cpu")
    assert "transpose" not in kernel.ir("after:dce")
    a = np.arange(32, dtype=np.float32).reshape(8, 4)
    b = np.zeros_like(a)
    kernel(a, b)
    np.testing.assert_array_equal(a, b)


def test_transpose_of_a_vector_is_the_vector_and_of_an_element_a_located_error():
    source = """
kernel vec[](a: global f32[8], b: global f32[8]) blocks(1) threads(32) {
    store(b[0 :+ 8], transpose(load(a[0 :+ 8])) + transpose(load(a[0 :+ 8]), 0))
}
"""
    kernel = lpir.compile(source, target="cpu")
    assert "transpose" not in kernel.ir("after:dce")  # numpy's: a vector's transpose is itself
    a, b = np.arange(8, dtype=np.float32), np.zeros(8, np.float32)
    kernel(a, b)
    np.testing.assert_array_equal(b, 2 * a)
    bad = source.replace("transpose(load(a[0 :+ 8]), 0)", "transpose(load(a[0 :+ 8])[2])")
    with pytest.raises(LpirError) as caught:
        lpir.compile(bad, target="cpu").specialize(None)
    text = str(caught.value)
    assert ":3:61:" in text and "transpose permutes the dimensions of a tile" in text
    assert "^" in text and "one dimension or more" in text


def test_numpys_tuple_of_dimensions_is_a_located_error_with_the_arguments_to_write():
    source = """
kernel k[](x: global f32[2, 4, 8], y: global f32[2, 8, 4]) blocks(1) threads(32) {
    store(y[0 :+ 2, 0 :+ 8, 0 :+ 4], transpose(load(x[0 :+ 2, 0 :+ 4, 0 :+ 8]), (0, 2, -2)))
}
"""
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    text = str(caught.value)
    assert ":3:81:" in text and "^^^^^^^^^^" in text and "not a tuple" in text
    assert "write transpose(load(x[0 :+ 2, 0 :+ 4, 0 :+ 8]), 0, 2, -2)" in text


PERMUTE = """
kernel permute[A = 6, B = 10, C = 12, BA = 4, BB = 8, BC = 16](
    x: global f32[A, B, C], y: global f32[Y0, Y1, Y2]
) blocks(cdiv(A, BA), cdiv(B, BB), cdiv(C, BC)) threads(64) {
    t = load(x[block.x * BA :+ BA, block.y * BB :+ BB, block.z * BC :+ BC])
    store(y[O0 :+ S0, O1 :+ S1, O2 :+ S2], transpose(t * 2.0, DIMS) + 1.0)
}
"""


def _permute_source(dims: tuple[int, ...]) -> str:
    """PERMUTE with y's dimensions, the stored slice and transpose's order for `dims` (dim 2
    written as -1: negative dims count from the last, as numpy's do)."""
    sizes, tiles = ("A", "B", "C"), ("BA", "BB", "BC")
    starts = ("block.x * BA", "block.y * BB", "block.z * BC")
    text = PERMUTE
    for i, d in enumerate(dims):
        text = text.replace(f"Y{i}", sizes[d]).replace(f"O{i}", starts[d])
        text = text.replace(f"S{i}", tiles[d])
    return text.replace("DIMS", ", ".join(str(d - 3 if d == 2 else d) for d in dims))


@pytest.mark.parametrize("target", ["interp", "threads", "threads-cuda", "cpu"])
@pytest.mark.parametrize("dims", [(0, 2, 1), (2, 0, 1), (1, 2, 0), (2, 1, 0), (1, 0, 2)])
def test_permuted_tiles_with_edges(target, dims):
    x = np.random.default_rng(5).standard_normal((6, 10, 12)).astype(np.float32)
    y = np.zeros(tuple(x.shape[d] for d in dims), np.float32)
    lpir.compile(_permute_source(dims), target=target)(x, y)
    np.testing.assert_array_equal(y, np.transpose(x, dims) * 2 + 1)  # exact, as above


@pytest.mark.parametrize("target", ["interp", "cpu", "threads-cuda"])
@pytest.mark.parametrize("dtype", ["u4", "i3", "u1"])
def test_permuted_packed_tiles(target, dtype):
    """Sub-byte elements: each thread's slots are fields of packed bytes, in another order."""
    source = """
kernel p[T = u4, A = 6, B = 10, C = 24, BA = 4, BB = 8, BC = 16](
    x: global T[A, B, C], y: global T[C, A, B]
) blocks(cdiv(A, BA), cdiv(B, BB), cdiv(C, BC)) threads(64) {
    t = load(x[block.x * BA :+ BA, block.y * BB :+ BB, block.z * BC :+ BC])
    store(y[block.z * BC :+ BC, block.x * BA :+ BA, block.y * BB :+ BB], transpose(t, 2, 0, 1))
}
"""
    bits = int(dtype[1:])
    low = -(2 ** (bits - 1)) if dtype[0] == "i" else 0
    codes = np.random.default_rng(2).integers(low, low + 2**bits, size=(6, 10, 24))
    x = lpir.pack(codes.astype(np.int8), dtype)
    y = lpir.pack(np.zeros((24, 6, 10), np.int8), dtype)
    lpir.compile(source, target=target, T=dtype)(x, y)
    np.testing.assert_array_equal(lpir.unpack(y), np.transpose(codes, (2, 0, 1)))


@pytest.mark.parametrize("target", ["interp", "cpu", "threads-cuda"])
def test_transpose_without_dims_reverses_them(target):
    source = """
kernel reverse[](x: global i32[2, 3, 4, 5], y: global i32[5, 4, 3, 2]) blocks(1) threads(32) {
    store(y[0 :+ 5, 0 :+ 4, 0 :+ 3, 0 :+ 2], transpose(load(x[0 :+ 2, 0 :+ 3, 0 :+ 4, 0 :+ 5])))
}
"""
    x = np.arange(120, dtype=np.int32).reshape(2, 3, 4, 5)
    y = np.zeros((5, 4, 3, 2), np.int32)
    lpir.compile(source, target=target)(x, y)
    np.testing.assert_array_equal(y, x.T)


def test_a_permuted_load_is_not_converted_on_the_gpu():
    kernel = lpir.compile(_permute_source((2, 0, 1)), target="cuda")
    assert "transpose(" in kernel.ir("after:layout-selection")
    assert "convert_layout" not in kernel.ir("after:layout-selection")
    assert "transpose" not in kernel.ir("after:lower-to-threads")
    kernel.source("cuda")


def test_transposes_of_transposes_fold_into_one_or_none():
    source = """
kernel twice[](a: global f32[2, 4, 8], b: global f32[8, 2, 4], c: global f32[2, 4, 8])
    blocks(1) threads(32) {
    t = load(a[0 :+ 2, 0 :+ 4, 0 :+ 8])
    store(b[0 :+ 8, 0 :+ 2, 0 :+ 4], transpose(transpose(t, 1, 0, 2), 2, 1, 0))
    store(c[0 :+ 2, 0 :+ 4, 0 :+ 8], transpose(transpose(t, 2, 0, 1), 1, 2, 0))
    store(c[0 :+ 2, 0 :+ 4, 0 :+ 8], transpose(t, 0, 1, 2))
}
"""
    kernel = lpir.compile(source, target="cpu")
    folded = kernel.ir("after:dce")
    assert folded.count("transpose") == 1 and "dims = [2, 0, 1]" in folded
    a = np.arange(64, dtype=np.float32).reshape(2, 4, 8)
    b, c = np.zeros((8, 2, 4), np.float32), np.zeros_like(a)
    kernel(a, b, c)
    np.testing.assert_array_equal(b, np.transpose(a, (2, 0, 1)))
    np.testing.assert_array_equal(c, a)


def test_a_permuted_tile_round_trips_through_ir_text():
    kernel = lpir.compile(_permute_source((2, 0, 1)), target="cpu")
    text = kernel.ir("after:layout-selection")
    assert "transpose(" in text and "{dims = [2, 0, 1]}" in text
    assert print_module(parse(text)) == text


@pytest.mark.parametrize(
    "call, column, message, hint",
    [
        ("transpose(t, 0, 1)", 38, "takes 3 dimensions, got 2", "write transpose(t, 1, 0, 2)"),
        ("transpose(t, 0)", 38, "takes 3 dimensions, got 1", "transpose(t, 2, 1, 0)"),
        ("transpose(t, 0, 1, 1)", 57, "dimension 1 is named twice", "name each dimension once"),
        ("transpose(t, 0, 3, 1)", 54, "dimension 3 is out of range", "use 0..2"),
        ("transpose(t, 0, -4, 1)", 54, "dimension -4 is out of range", "-3..-1"),
        ("transpose(t, 0, n, 1)", 54, "a dimension of transpose", None),
        ("transpose(t, axes = 1)", 38, "optionally, the order of its dimensions", "d0, d1"),
    ],
)
def test_bad_dimension_orders_are_located_errors(call, column, message, hint):
    source = f"""
kernel bad[](a: global f32[2, 4, 8], b: global f32[8, 4, 2], n: i32) blocks(1) threads(32) {{
    t = load(a[0 :+ 2, 0 :+ 4, 0 :+ 8])
    store(b[0 :+ 8, 0 :+ 4, 0 :+ 2], {call})
}}
"""
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    text = str(caught.value)
    assert f":4:{column}:" in text and message in text and "^" in text
    if hint is not None:
        assert hint in text


def test_bad_dimension_orders_in_ir_text_are_verifier_errors():
    source = """
kernel @bad[](%a: global f32[2, 4, 8]) blocks(1, 1, 1) threads(32) {
  %0 = constant {value = 0} : i32
  %t = load_global(%a, %0, %0, %0) {dims = [0, 1, 2], shape = [2, 4, 8]} : f32[2, 4, 8]
  %r = transpose(%t) {dims = [0, 0, 1]} : f32[2, 2, 4]
}
"""
    with pytest.raises(LpirError, match="not a permutation of the 3 dimensions"):
        verify(parse(source))


def test_skinny_matmul_reads_x_rows_straight_into_the_mma():
    kernel = lpir.compile(
        str(EXAMPLES / "skinny_wq.lp"), target="cuda", M=16, N=256, K=512, WT="u4"
    )
    assert "convert_layout" not in kernel.ir("after:layout-selection")
    threads = kernel.ir("after:vectorize")
    x = [line for line in threads.splitlines() if "ld(%x" in line]
    assert len(x) == 1 and "vector = 8" in x[0]  # a row of x per thread, 16 bytes at a time
    assert threads.count("= mma(") == 16  # 8 k16 steps x 2 atoms of 8 rows of x
