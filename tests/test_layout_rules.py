"""GPU layout rules: how a loaded tile is spread over the threads (passes/layout_rules.py).

Coalesced loads give each thread a run of consecutive elements of the last dimension, as wide
as 16 bytes allows and as the tile has elements per thread: never replicas (two threads
loading and dequantizing the same weights), and for sub-byte types one run per thread where
the tile has enough, rather than two half-runs in different rows.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from lpir.backends.cuda.emulation import emulation_available

import lpir


def _weight_load(weights: str, bn: int) -> tuple[list[int], int]:
    """(byte offsets, vector width) of gemv_wq's weight load per thread (N x K = 28672 x 8192)."""
    kernel = lpir.compile(
        "examples/gemv_wq.lp", target="cuda", WT=weights, ZERO=0, N=28672, K=8192, BN=bn, BK=128
    )
    line = next(x for x in kernel.ir("final").splitlines() if "ld(%w" in x)
    offsets = [int(v) for v in re.search(r"offsets = \[([^\]]*)\]", line).group(1).split(",")]
    vector = re.search(r"vector = (\d+)", line)
    return offsets, int(vector.group(1)) if vector else 1


@pytest.mark.parametrize(
    ("weights", "bn", "run_bytes", "runs", "vector"),
    [
        ("u4", 64, 16, 2, 16),  # 4 KB over 128 threads: two 16-byte runs each
        ("u4", 16, 8, 1, 8),  # 1 KB: one 8-byte run each, no replicas
        ("u3", 64, 12, 2, 4),  # 32 weights (12 bytes) a run: 16 bytes would split a weight
        ("u3", 32, 12, 1, 4),  # one 12-byte run (three aligned words), not two of 6 bytes
        ("u3", 16, 6, 1, 2),  # 768 bytes: 6 each
        ("u5", 32, 20, 1, 4),  # 32 fields are whole words: 20 bytes, 4-byte aligned
        ("u7", 64, 28, 2, 4),  # (16 fields, 14 bytes, would be 2-byte aligned)
        ("u8", 64, 16, 4, 16),  # 8-bit and wider: runs of at most 16 bytes
    ],
)
def test_each_thread_loads_runs_as_wide_as_the_tile_allows(weights, bn, run_bytes, runs, vector):
    offsets, width = _weight_load(weights, bn)
    assert len(offsets) == run_bytes * runs and width == vector
    starts = offsets[::run_bytes]
    for start, run in zip(starts, range(runs)):
        chunk = offsets[run * run_bytes : (run + 1) * run_bytes]
        assert chunk == list(range(start, start + run_bytes))  # consecutive bytes


ANNOTATED_IN_A_LOOP = """
kernel rev[N = 64, R = 3](x: global f32[N], y: global f32[N]) blocks(1) threads(64) {
    acc = zeros<f32>[N]
    for r in range(0, R) {
        acc += load(x[0 :+ N]) @ spatial(64)
    }
    store(y[0 :+ N], acc)
}
"""


@pytest.mark.parametrize("target", ["interp", "cpu", "threads-cuda"])
def test_a_tile_carried_by_a_loop_may_be_annotated_inside_it(target):
    """The annotated sum and the unannotated zeros it starts from are one loop-carried value
    (a type without a layout agrees with the same type with one); layout-selection gives the
    whole loop the annotation's layout."""
    import numpy as np

    kernel = lpir.compile(ANNOTATED_IN_A_LOOP, target=target)
    x, y = np.arange(64, dtype=np.float32), np.zeros(64, np.float32)
    kernel(x, y)
    np.testing.assert_array_equal(y, 3 * x)
    if target != "interp":
        header = kernel.ir("after:layout-selection").split(" = for ", 1)[1].split("\n", 1)[0]
        assert header.endswith("-> f32[64] @ spatial(64) {")


@pytest.mark.parametrize("threads", [33, 40, 48, 96, 100, 1000])
@pytest.mark.parametrize("n", [64, 128, 1000])
def test_any_thread_count_gets_a_gpu_layout(threads, n):
    """A block of threads that is not a power of two (48: one and a half warps) gets a
    coalesced layout over all of them (it once spread a warp's 32 along the row and failed:
    "spans 32 threads, the kernel has 48"); the CUDA C runs right on the host."""
    source = f"""
kernel add_one[N = {n}](x: global f32[N], y: global f32[N]) blocks(1) threads({threads}) {{
    store(y[:], load(x[:]) + 1.0)
}}
"""
    layouts = lpir.compile(source, target="cuda").ir("after:layout-selection")
    assert layouts.count("@") >= 2
    if threads == 48 and emulation_available():
        x, y = np.arange(n, dtype=np.float32), np.zeros(n, np.float32)
        lpir.compile(source, target="cuda-host")(x, y)
        np.testing.assert_array_equal(y, x + 1)
