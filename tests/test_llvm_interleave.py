"""Loops that run interleaved on the CPU (backends/llvm/plan.py, `Plan.interleaves`): the
block's threads take each step in turn, where a thread running the whole loop alone would walk
memory with gaps of a page or more; and carried values stored in place by a block-level
loop's last segment (`Plan.carries_in_place`). Results against the reference interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lpir.backends.llvm.plan import Plan
from test_llvm_harness import private_cache  # noqa: F401

import lpir
from lpir.ir.ops import ForOp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def plan_of(path: Path | str, **definitions) -> tuple[Plan, list[ForOp]]:
    """The CPU plan of one specialization's thread IR, and its loops."""
    kernel = lpir.compile(path, target="cpu", **definitions).specialize(None).kernel_ir
    return Plan(kernel), [op for op in kernel.walk() if isinstance(op, ForOp)]


def interleaved(path: Path | str, **definitions) -> bool:
    plan, loops = plan_of(path, **definitions)
    return any(id(loop) in plan.block_level for loop in loops)


@pytest.mark.parametrize(
    "tile, expected",
    [
        # 8 KiB, 4 KiB and 16 KiB a step, split over 16, 8 and 32 threads after fold-threads
        ({"BV": 2048, "THREADS": 128}, True),
        ({"BV": 1024, "THREADS": 64}, True),
        ({"BV": 4096, "THREADS": 256}, True),
        # 1 KiB a step: inside a page, which the prefetchers follow (and prefetch.py helps)
        ({"BV": 256, "THREADS": 32}, False),
        # one thread reads every step whole: no gap
        ({"BV": 128, "THREADS": 1}, False),
        # 4 rows carry 64 KiB (a best logit and its position for each of 4 x 2048 columns),
        # past CARRIED_BYTES: each thread keeps its own in registers
        ({"BV": 2048, "THREADS": 128, "BM": 4}, False),
    ],
)
def test_greedy_interleaves_where_threads_split_steps_of_a_page(tile, expected):
    assert interleaved(EXAMPLES / "greedy.lp", M=64, V=128256, **tile) is expected


def test_gemv_and_matmul_loops_do_not_interleave():
    """A GEMV's thread walks its rows on (64 bytes a step of u4); a matmul's loop, which
    has barriers, runs at block level anyway and its carried accumulator goes in place."""
    assert not interleaved(EXAMPLES / "gemv_wq.lp", N=8192, K=8192)
    assert not interleaved(EXAMPLES / "gemv_splitk.lp")
    plan, loops = plan_of(EXAMPLES / "matmul_wq.lp", M=64, N=256, K=256)
    assert not plan.interleaved_loads
    (loop,) = loops
    assert id(loop) in plan.block_level and id(loop) in plan.in_place


@pytest.mark.parametrize("m, v", [(3, 128256), (5, 10000), (2, 2048)])
@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_greedy_interleaved_equals_the_interpreter(m, v, dtype):
    """Rows past the last step's edge (V not a multiple of 2048), NaNs and ties."""
    rng = np.random.default_rng(m * v)
    numpy_type = lpir.dtype(dtype).numpy_dtype
    logits = (rng.standard_normal((m, v)) * 3).astype(numpy_type)
    logits[0, rng.integers(0, v, 50)] = np.nan
    logits[-1, [v // 3, v - 1]] = 100  # a tie: the first one wins
    results = {}
    for target in ("interp", "cpu"):
        ids = np.full(m, -1, np.int32)
        lpir.compile(EXAMPLES / "greedy.lp", target=target, T=dtype, M=m, V=v)(logits, ids)
        results[target] = ids
    assert interleaved(EXAMPLES / "greedy.lp", T=dtype, M=m, V=v)  # 8 (bf16: 4) KiB a step
    np.testing.assert_array_equal(results["cpu"], results["interp"])
    assert results["cpu"][-1] == v // 3


SWAP = """
kernel swap[V = 40960, BV = 2048, SYNC = 0](x: global f32[V], y: global f32[2, BV])
    blocks(1) threads(128) {
    a = zeros<f32>[BV]
    b = ones<f32>[BV]
    for v0 in range(0, V, BV) {
        t = a
        a = b + load(x[v0 :+ BV])
        b = t
        if SYNC {
            sync()
        }
    }
    store(y[0, 0 :+ BV], a)
    store(y[1, 0 :+ BV], b)
}
"""


@pytest.mark.parametrize("sync", [0, 1])
def test_a_loop_that_carries_a_carried_value_on_copies_them_all(tmp_path, sync):
    """`b = t = a` carries last step's value on: the loop may not store the new `a` into a's
    context array before b is copied from it, so no value is stored in place. Interleaved
    (no barrier) and at block level for its barrier alike."""
    path = tmp_path / "swap.lp"
    path.write_text(SWAP)
    plan, (loop,) = plan_of(path, SYNC=sync)
    assert id(loop) in plan.block_level and id(loop) not in plan.in_place
    x = np.random.default_rng(sync).standard_normal(40960 + 100).astype(np.float32)[:40960]
    results = {}
    for target in ("interp", "cpu"):
        y = np.zeros((2, 2048), np.float32)
        lpir.compile(path, target=target, SYNC=sync)(x, y)
        results[target] = y
    np.testing.assert_array_equal(results["cpu"], results["interp"])  # the same additions


DOT_ROWS = """
# per row, the sum of a[m, :] * b[m, :] in i32 and the largest a, over rows of V read BV a step
kernel dot_rows[T = i16, M = 3, V = 50000, BV = 2048, THREADS = 128](
    a: global T[M, V], b: global T[M, V], sums: global i32[M], largest: global i32[M],
) blocks(M) threads(THREADS) {
    acc = zeros<i32>[BV]
    top = full<i32>[BV](min_value(i32))
    for v0 in range(0, V, BV) {
        inside = v0 + arange(BV) < V
        x = cast<i32>(load(a[block.x, v0 :+ BV]))
        acc += x * cast<i32>(load(b[block.x, v0 :+ BV]))
        top = where(inside, max(top, x), top)
    }
    store(sums[block.x :+ 1], sum(acc[None, :], axis = 1))
    store(largest[block.x :+ 1], max(top[None, :], axis = 1))
}
"""


@pytest.mark.parametrize("tile", [(2048, 128), (4096, 64), (2048, 256)])
@pytest.mark.parametrize("dtype", ["i16", "i32"])
def test_two_streams_and_integer_sums_interleaved(tmp_path, tile, dtype):
    """Two loads a step, integer accumulators (exact, whatever the order), a masked running
    maximum, and a row whose end is not a step's: equal to numpy."""
    path = tmp_path / "dot_rows.lp"
    path.write_text(DOT_ROWS)
    bv, threads = tile
    definitions = {"T": dtype, "BV": bv, "THREADS": threads}
    assert interleaved(path, **definitions)
    rng = np.random.default_rng(bv + threads)
    numpy_type = np.dtype(dtype.replace("i", "int"))
    a = rng.integers(-300, 300, (3, 50000)).astype(numpy_type)
    b = rng.integers(-300, 300, (3, 50000)).astype(numpy_type)
    sums, largest = np.zeros(3, np.int32), np.zeros(3, np.int32)
    lpir.compile(path, target="cpu", **definitions)(a, b, sums, largest)
    wide = a.astype(np.int64) * b.astype(np.int64)
    np.testing.assert_array_equal(sums, wide.sum(axis=1).astype(np.int32))
    np.testing.assert_array_equal(largest, a.max(axis=1))
