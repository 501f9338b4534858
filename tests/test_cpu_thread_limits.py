"""A CPU thread's share of a tile is one LLVM vector, whose code generation grows faster than
its length (a thread's 16384-lane comparison: over a minute; 131072: LLVM aborted the process):
lower-to-threads refuses a tile giving a thread more than CPU_THREAD_ELEMENTS, located."""

from __future__ import annotations

import pytest
from lpir.passes.thread_limits import CPU_THREAD_ELEMENTS

import lpir
from lpir.errors import LpirError

SOURCE = """
kernel k[NB = 512, E = 256, THREADS = 1](ends: global i32[E], out: global i32[NB])
    blocks(1) threads(THREADS) {
    e = load(ends[0 :+ E])
    b = arange(NB) * 64
    store(out[0 :+ NB], sum(cast<i32>(e[None, :] <= b[:, None]), axis = 1))
}
"""


def test_a_tile_too_big_for_one_cpu_thread_is_a_located_error():
    with pytest.raises(LpirError) as caught:
        lpir.compile(SOURCE, target="cpu").specialize()
    text = str(caught.value)
    assert ":6:39:" in text and "131072 elements" in text and f"the {CPU_THREAD_ELEMENTS}" in text
    assert "threads(32) or more" in text


def test_with_the_threads_the_hint_names_it_compiles_and_runs():
    import numpy as np

    kernel = lpir.compile(SOURCE, target="cpu", NB=64, E=256, THREADS=128)
    ends = np.cumsum(np.full(256, 64, np.int32)).astype(np.int32)
    out = np.zeros(64, np.int32)
    kernel(ends, out)
    np.testing.assert_array_equal(out, (ends[None, :] <= np.arange(64)[:, None] * 64).sum(1))
