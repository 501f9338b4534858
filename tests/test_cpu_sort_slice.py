"""A slice of a sorted tile on the CPU (`argsort(c, axis = 1, descending = true)[:, 0:8]`, a
reshape and an index): the sort's class keeps the layout the sort runs in
(`Selection.anchor_sorts`) and the slice is read from a shared copy of the sorted tile. The
slice's replicated layout used to flow back through the reshape to the whole class, so the
loaded rows and the sort's result were converted to it: a top-8 of [256, 1024] rows took 2.5x
as long as storing the whole sort (a speculative-decoding explorer); beam search's top-2K
16x. Checked on every host target against numpy, and the CPU's tile IR."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

TOP_ROWS = """
kernel topk_rows[M = 64, N = 1024, BM = 4, KK = 8](
    x: global f32[M, N],
    y: global i32[M, KK],
) blocks(cdiv(M, BM)) threads(128) {
    r = block.x * BM
    store(y[r :+ BM, :], argsort(load(x[r :+ BM, :]), axis = 1, descending = true)[:, 0:KK])
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("n", [256, 1024])
def test_the_first_columns_of_a_sort(target: str, n: int) -> None:
    if target == "cuda-host" and n == 1024:
        pytest.skip("the GPU pipeline refuses 32 elements a thread through a sort's steps")
    rng = np.random.default_rng(n)
    x = rng.integers(-50, 50, (64, n)).astype(np.float32)  # (ties: the lower position first)
    y = np.zeros((64, 8), np.int32)
    lpir.compile(TOP_ROWS, target=target, N=n)(x, y)
    np.testing.assert_array_equal(y, np.argsort(-x, axis=1, kind="stable")[:, :8])


def test_the_sort_keeps_its_layout_and_the_slice_reads_a_copy() -> None:
    tiles = lpir.compile(TOP_ROWS, target="cpu").ir("after:layout-selection")
    assert "convert_layout" not in tiles  # (three conversions of [4, 1024] tiles before)
    assert tiles.count("alloc_shared") == 1 and tiles.count("load_shared") == 1
    sort = next(line for line in tiles.splitlines() if "= sort(" in line)
    assert "replicate" not in sort
