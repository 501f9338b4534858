"""An element of a tile every thread needs (`run = c[BV - 1]`) on the CPU: the tile is held
whole in every replica (one thread's work after drop-replicas) only while its whole class, every
tile sharing its layout, stays within `CPU_INDEXED_REPLICA_ELEMENTS` a thread; past that the
element comes from a shared copy, as on the GPU. An inverse-CDF search carrying a cumsum's last
element (docs/language.md's idiom) replicated nine tiles of the chunk (load, scan, compare,
where, arange, ...) into one thread's vectors of the whole chunk, whose LLVM compile took 5 s
at chunks of 512, 24 s at 1024 and 250 s at 2048 (0.7 s with the shared copy)."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.passes.layout_rules import CPU_INDEXED_REPLICA_ELEMENTS

import lpir

# the first position whose running sum passes th, over a row in chunks of BV
SEARCH = """
kernel search[V = 3000, BV = 512](x: global f32[V], th: f32, y: global i32[2]) blocks(1)
    threads(128) {
    run = 0.0
    tok = V - 1
    for v0 in range(0, V, BV) {
        c = cumsum(load(x[v0 :+ BV])) + run
        first = min(where(c > th, arange(BV), BV))
        tok = where(first < BV and tok == V - 1, v0 + first, tok)
        run = c[BV - 1]
    }
    store(y[0], tok)
    store(y[1], cast<i32>(run))
}
"""

# a block's total from a cumsum of BV: two tiles (the load and the scan) in the class
TOTAL = """
kernel total[N = 8192, BV = 1024](x: global f32[N], last: global f32[N / BV])
    blocks(N / BV) threads(128) {
    c = cumsum(load(x[block.x * BV :+ BV]))
    store(last[block.x], c[BV - 1])
}
"""


def _search_expected(x: np.ndarray, th: float, bv: int) -> list[int]:
    """The interpreter's answer in exact arithmetic (integer-valued x: every sum exact)."""
    running = np.cumsum(x.astype(np.float64))
    over = np.flatnonzero(running > th)
    return [int(over[0]) if over.size else len(x) - 1, int(running[-1])]


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("bv", [256, 512])
def test_a_search_carrying_a_cumsums_last_element(target: str, bv: int) -> None:
    x = np.random.default_rng(bv).integers(0, 3, 3000).astype(np.float32)
    y = np.zeros(2, np.int32)
    th = float(np.float32(x.sum() * 0.7))
    lpir.compile(SEARCH, target=target, BV=bv)(x, np.float32(th), y)
    assert list(y) == _search_expected(x, th, bv)


def test_a_long_replicated_chain_reads_the_element_from_a_shared_copy() -> None:
    """Nine tiles of 512 in the searched chunk's class pass the budget: the chunk stays spread
    over the threads and c[BV - 1] is read from a shared copy (one thread's vectors of 512
    elements took LLVM 5 s, of 2048 four minutes)."""
    tiles = lpir.compile(SEARCH, target="cpu", BV=512).ir("after:layout-selection")
    assert CPU_INDEXED_REPLICA_ELEMENTS < 9 * 512
    assert tiles.count("alloc_shared") == 1 and "replicate(128).local(512)" not in tiles
    assert "load_shared" in tiles


@pytest.mark.parametrize("bv", [1024, 2048])
def test_a_short_chain_stays_replicated(bv: int) -> None:
    """A cumsum and its total (two tiles of the line) keep the replicated form, which
    drop-replicas makes one thread's work (1.2-1.5x faster than the shared copy)."""
    kernel = lpir.compile(TOTAL, target="cpu", BV=bv)
    tiles = kernel.ir("after:layout-selection")
    assert "alloc_shared" not in tiles and f"replicate(128).local({bv})" in tiles
    x = np.random.default_rng(3).integers(-3, 4, 8192).astype(np.float32)
    last = np.zeros(8192 // bv, np.float32)
    kernel(x, last)
    np.testing.assert_array_equal(last, x.reshape(-1, bv).sum(axis=1))
