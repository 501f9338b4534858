"""A load of one element (every dimension indexed) is a scalar: an index, a loop bound or an
`if` condition read from memory, the same in every thread (`item` of a 0-d tile).

Gathers (an embedding lookup: a row chosen by an id in memory), ragged loops (each block's
length in memory) whose bodies reduce across threads (barriers on the CPU: the loop runs once
per block, its bound thread 0's copy), and a branch on a flag in memory around a `sync()`, on
every target against numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

GATHER = """
kernel gather[V = 1000, D = 96, T = 37](ids: global i32[T], table: global f16[V, D],
        y: global f16[T, D]) blocks(T) threads(32) {
    let id = load(ids[block.x])
    store(y[block.x, :], load(table[id, :]))
}
"""

RAGGED = """
kernel ragged[B = 9, L = 500, BL = 64](lengths: global i32[B], flags: global i32[B],
        x: global f32[B, L], y: global f32[B]) blocks(B) threads(64) {
    let n = load(lengths[block.x])
    total = 0.0
    for i in range(0, n, BL) {
        t = load(x[block.x, i :+ BL])
        total = total + sum(where(arange<i32>(BL) + i < n, t, 0.0))
    }
    if load(flags[block.x]) != 0 {
        s = shared<f32>[64]
        store(s, full<f32>[64](total))
        sync()
        total = max(load(s), axis = 0) * 2.0
    }
    store(y[block.x], total)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_row_chosen_by_an_id_in_memory(target):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, 37).astype(np.int32)
    ids[3] = 1200  # past the table: the row reads as 0, as every load past an edge does
    table = rng.standard_normal((1000, 96)).astype(np.float16)
    y = np.zeros((37, 96), np.float16)
    lpir.compile(GATHER, target=target)(ids, table, y)
    wanted = table[np.minimum(ids, 999)]
    wanted[3] = 0
    np.testing.assert_array_equal(y, wanted)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_loop_bound_and_a_branch_read_from_memory(target):
    rng = np.random.default_rng(1)
    lengths = np.array([0, 1, 63, 64, 65, 200, 499, 500, 17], np.int32)
    flags = np.array([1, 0, 1, 0, 0, 1, 0, 1, 1], np.int32)
    x = rng.standard_normal((9, 500)).astype(np.float32)
    y = np.zeros(9, np.float32)
    lpir.compile(RAGGED, target=target)(lengths, flags, x, y)
    sums = np.array([x[b, :n].astype(np.float64).sum() for b, n in enumerate(lengths)])
    wanted = np.where(flags != 0, 2 * sums, sums)
    # f32 sums of up to 500 normal values, in each target's order
    np.testing.assert_allclose(y, wanted, rtol=1e-5, atol=1e-4)


def test_one_element_is_a_scalar_in_the_ir():
    ir = lpir.compile(GATHER, target="interp").ir("source")
    assert "= item(" in ir and ": i32[]" in ir
