"""Empty calls: a grid with a block count of 0 (an empty batch, cdiv(0, B) blocks) runs no
block on every target and reads or writes nothing; tensors may then have size-0 dimensions.
Blocks over an empty tensor (a non-empty grid) are a located limitation, negative sizes a
mistake."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.errors import LpirError

ADD = """
kernel add[N, B = 64](x: global f32[N], y: global f32[N], z: global f32[N])
    blocks(cdiv(N, B)) threads(32) {
    i = block.x * B
    store(z[i :+ B], load(x[i :+ B]) + load(y[i :+ B]))
}
"""

ROWS = """
kernel row_sums[N, K, BN = 16, BK = 32](x: global f32[N, K], w: global u4[N, K],
    y: global f32[N]) blocks(cdiv(N, BN)) threads(32) {
    r = block.x * BN
    acc = zeros<f32>[BN, BK]
    for k0 in range(0, K, BK) {
        acc += load(x[r :+ BN, k0 :+ BK]) * cast<f32>(load(w[r :+ BN, k0 :+ BK]))
    }
    store(y[r :+ BN], sum(acc, axis = 1) + 1.0)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_an_empty_batch_runs_no_block(target):
    """N = 0 deduced from the tensors: blocks(cdiv(0, 64)) was "block count is 0" and the
    tensors "dimension is 0"; now the call checks its arguments and runs nothing."""
    add = lpir.compile(ADD, target=target)
    empty = np.zeros(0, np.float32)
    add(empty, empty.copy(), empty.copy())
    assert add.last.params["N"] == 0 and add.last.empty_grid
    rows = lpir.compile(ROWS, target=target)
    y = np.zeros(0, np.float32)
    rows(np.zeros((0, 40), np.float32), lpir.pack(np.zeros((0, 40), int), "u4"), y)
    # a call with elements afterwards compiles and runs as usual
    x = np.arange(100, dtype=np.float32)
    z = np.zeros_like(x)
    add(x, x, z)
    np.testing.assert_array_equal(z, 2 * x)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_an_empty_call_still_checks_its_arguments(target):
    add = lpir.compile(ADD, target=target)
    empty = np.zeros(0, np.float32)
    with pytest.raises(LpirError, match="argument y"):
        add(empty, np.zeros(0, np.float64), empty.copy())
    with pytest.raises(LpirError, match="read-only"):
        out = np.zeros(0, np.float32)
        out.flags.writeable = False
        add(empty, empty.copy(), out)


def test_an_empty_grid_is_shown_and_has_no_code():
    add = lpir.compile(ADD, target="cpu", N=0)
    assert "blocks(0, 1, 1)" in add.ir("final")
    with pytest.raises(LpirError, match=r"the grid blocks\(0, 1, 1\) is empty"):
        add.source("llvm")


def test_blocks_over_an_empty_tensor_are_a_located_limitation():
    """K = 0 with N = 64: the grid has a block, which would run over an empty x."""
    rows = lpir.compile(ROWS, target="interp")
    with pytest.raises(LpirError) as caught:
        rows(
            np.zeros((64, 0), np.float32),
            lpir.pack(np.zeros((64, 0), int), "u4"),
            np.zeros(64, np.float32),
        )
    text = str(caught.value)
    assert ":2:58: error: dimension is 0 while the grid has blocks" in text
    assert "(a limitation)" in text and "hint: with K = 0: skip the call" in text


def test_negative_sizes_and_counts_are_still_mistakes():
    with pytest.raises(LpirError, match="dimension is -3; it must not be negative"):
        lpir.compile(ADD, target="interp", N=-3).specialize(None)
    grid = ADD.replace("blocks(cdiv(N, B))", "blocks(N - 1)")
    with pytest.raises(LpirError, match="the block count is -1; it must not be negative"):
        lpir.compile(grid, target="interp", N=0).specialize(None)
