"""`transpose(t)`: a rank-2 tile with its dimensions swapped. Each thread keeps its elements
(the result's layout is the operand's with its dims swapped), so after layout selection it
costs nothing; a transposed load or store reads or writes in the layout the other side gives.
Checked on every target against numpy, plus its errors and its folding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lpir
from lpir.errors import LpirError

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


def test_transpose_of_a_vector_is_a_located_error():
    source = """
kernel bad[](a: global f32[8], b: global f32[8]) blocks(1) threads(32) {
    store(b[0 :+ 8], transpose(load(a[0 :+ 8])))
}
"""
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    text = str(caught.value)
    assert ":3:32:" in text and "transpose swaps the two dimensions" in text
    assert "^" in text and "[rows, columns]" in text


def test_skinny_matmul_reads_x_rows_straight_into_the_mma():
    kernel = lpir.compile(
        str(EXAMPLES / "skinny_wq.lp"), target="cuda", M=16, N=256, K=512, WT="u4"
    )
    assert "convert_layout" not in kernel.ir("after:layout-selection")
    threads = kernel.ir("after:vectorize")
    x = [line for line in threads.splitlines() if "ld(%x" in line]
    assert len(x) == 1 and "vector = 8" in x[0]  # a row of x per thread, 16 bytes at a time
    assert threads.count("= mma(") == 16  # 8 k16 steps x 2 atoms of 8 rows of x
