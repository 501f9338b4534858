"""fold-threads (CPU) and replicated tiles: a tile every thread holds whole is the same work
in each thread, not work of its own, so it does not keep the kernel's threads
(`FOLDED_ENOUGH_BYTES` counts a thread's own bytes), and folded threads hold its copies once
(`REGISTER_BYTES` bounds the folded slots of the tiles that folding makes larger: a tile of
copies past it is held as before, by fewer threads).

A running top-64 whose first element is read after the loop (`top[0]`) is a class of tiles
held whole by every thread, 256 bytes a thread: the kernel kept its 128 threads and each
sort's cross-thread stages went through shared memory (V = 32768: 8.5 ms, folded to 8 threads
2.7 ms, as the same kernel without `top[0]`; top-128, 512 bytes in every thread and 1 KiB
of their stack: 7.7 -> 2.4 ms; 2-core Zen 4, one thread, not asserted here).
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.passes.fold_threads import FOLDED_ENOUGH_BYTES, folding_factor

import lpir
from lpir.ir import parse
from lpir.ir.rewrite import tile_types

TOPK = """
kernel topk_elem[V = 256, KMAX = 64, BV = 128](
    logits: global f32[B, V], out: global f32[B, KMAX], mx: global f32[B], B: i32,
) blocks(B) threads(128) {
    b = block.x
    top = full<f32>[KMAX](-inf)
    for v0 in range(0, V, BV) {
        x = load(logits[b, v0 :+ BV], other = -inf)
        best = sort(x, descending = true)[0:KMAX]
        top = sort(reshape(stack(top, best, axis = 0), 2 * KMAX), descending = true)[0:KMAX]
    }
    store(out[b, :], top)
    store(mx[b], top[0])
}
"""


@pytest.mark.parametrize("top", [64, 128])  # 256 and 512 bytes in every thread
def test_a_tile_held_whole_by_every_thread_does_not_keep_the_threads(top):
    kernel = lpir.compile(TOPK, target="cpu", KMAX=top, BV=2 * top)
    before = parse(kernel.ir("after:drop-replicas")).kernels[0]
    # the premise: the running top is 64 floats in every thread (256 bytes, copies)
    held = {str(t.selected_layout) for t in tile_types(before)}
    assert f"replicate(128).local({top})" in held
    held_bytes = top * 4
    assert held_bytes >= FOLDED_ENOUGH_BYTES  # so the rule before kept 128 threads
    assert before.threads == 128
    after = parse(kernel.ir("after:fold-threads")).kernels[0]
    assert after.threads < 128
    assert parse(kernel.ir("final")).kernels[0].threads == after.threads
    x = np.random.default_rng(3).standard_normal((5, 256)).astype(np.float32)
    out, mx = np.zeros((5, top), np.float32), np.zeros(5, np.float32)
    kernel(x, out, mx, 5)
    np.testing.assert_array_equal(out, -np.sort(-x, axis=1)[:, :top])
    np.testing.assert_array_equal(mx, x.max(axis=1))


# One tile of the layout under test beside a [256] tile of 2 floats a thread.
IR = """kernel @k[](%x: global f32[SHAPE], %y: global f32[256]) blocks(1, 1, 1) threads(128) {
  %0 = constant {value = 0} : i32
  %1 = load_global(%x, %0) {dims = [0], shape = [SHAPE]} : f32[SHAPE] @ LAYOUT
  store_global(%x, %0, %1) {dims = [0]}
  %2 = load_global(%y, %0) {dims = [0], shape = [256]} : f32[256] @ spatial(128).local(2)
  store_global(%y, %0, %2) {dims = [0]}
}"""


@pytest.mark.parametrize(
    ("shape", "layout", "factor"),
    [
        # 64 floats in every thread: copies, folded away; the [256] tile sets the factor
        (64, "replicate(128).local(64)", 64),
        (64, "replicate(64).spatial(2).local(32)", 64),
        (64, "spatial(64).replicate(2)", 64),
        # 1 KiB in every thread, past REGISTER_BYTES: folding does not make it larger
        (256, "replicate(128).local(256)", 64),
        # 64 floats a thread of its own: the kernel keeps its threads
        (8192, "spatial(128).local(64)", 1),
        # 16 a thread of its own, held twice: folded by 4 to 512 bytes (REGISTER_BYTES)
        (2048, "replicate(2).spatial(64).local(32)", 4),
    ],
)
def test_the_fold_counts_a_thread_s_own_bytes_and_its_copies_once(shape, layout, factor):
    text = IR.replace("SHAPE", str(shape)).replace("LAYOUT", layout)
    assert folding_factor(parse(text).kernels[0]) == factor
