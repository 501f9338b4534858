"""An atomic used as a value gives what memory held before each element was combined (a
fetch-and-add): the slots a counter hands out (`slot = atomic_add(cursor[e], 1)`, vLLM's
`moe_align_block_size`), a block's ticket, a running maximum's previous value. Checked on every
host target and the GPU's thread IR against numpy, where elements repeat within a tile, across
threads and across blocks, with masks and edges, with the result held by replicas (read back
through shared memory), plus the IR, the LLVM IR and the PTX."""

from __future__ import annotations

import re

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import find_nvcc

import lpir
from lpir.errors import LpirError
from lpir.ir.parser import parse
from lpir.ir.printer import print_module

TARGETS = [*HOST_TARGETS, "threads-cuda"]

# vLLM's moe_align_block_size, its scatter: each token takes the next slot of its expert's
# cursor (an atomic_add's old value), so the tokens land grouped by expert. Blocks take slots
# of the same cursors concurrently; within a tile experts repeat.
SLOTS = """
kernel slots[T = 300, E = 8, BT = 64](
    ids: global i32[T], cursor: global i32[E], starts: global i32[E], order: global i32[T],
) blocks(cdiv(T, BT)) threads(32) {
    t0 = block.x * BT
    inside = arange(BT) < T - t0
    e = load(ids[t0 :+ BT])
    slot = atomic_add(cursor[e], ones<i32>[BT], mask = inside)
    store(order[load(starts[e]) + slot], t0 + arange(BT), mask = inside)
}
"""


def _check_grouped_by_expert(ids: np.ndarray, order: np.ndarray, starts: np.ndarray) -> None:
    """`order` holds every token once, each expert's tokens in its own range."""
    assert sorted(order) == list(range(len(ids)))
    counts = np.bincount(ids, minlength=len(starts))
    for expert, (start, count) in enumerate(zip(starts, counts)):
        assert (ids[order[start : start + count]] == expert).all(), expert


@pytest.mark.parametrize("target", TARGETS)
def test_tokens_take_their_experts_slots(target):
    ids = np.random.default_rng(5).integers(0, 8, 300).astype(np.int32)
    counts = np.bincount(ids, minlength=8)
    starts = (np.cumsum(counts) - counts).astype(np.int32)
    cursor, order = np.zeros(8, np.int32), np.full(300, -1, np.int32)
    lpir.compile(SLOTS, target=target)(ids, cursor, starts, order)
    np.testing.assert_array_equal(cursor, counts)
    _check_grouped_by_expert(ids, order, starts)


# One element a block (the result held by every thread: through shared memory from the thread
# that combined it); a shared tile held in 8 replicas, fetched in a loop; a float add.
TICKETS = """
kernel tickets[N = 16, STEPS = 3](
    x: global i32[N], olds: global i32[STEPS, N], tick: global i32[2], order: global i32[8],
    last: global i32[1], halves: global f32[N], before: global f32[8, N], mark: global i32[128],
) blocks(8) threads(128) {
    s = shared<i32>[N]
    store(s, zeros<i32>[N])
    for step in range(STEPS) {
        o = atomic_add(s, load(x[0 :+ N]))
        store(olds[step, 0 :+ N], o, mask = block.x == 0)
    }
    t = atomic_add(tick[0], 1)
    store(order[t], block.x)
    store(last[0], block.x, mask = t == 7)
    if t == 7 {  # every thread's copy of t decides (each stores its own elements)
        store(mark[0 :+ 128], full<i32>[128](block.x))
    }
    m = atomic_max(tick[1], block.x * 10)
    store(before[block.x, 0 :+ N], atomic_add(halves[0 :+ N], cast<f32>(load(x[0 :+ N])) * 0.5))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_tickets_and_replicated_old_values(target):
    x = np.arange(1, 17, dtype=np.int32)
    olds = np.zeros((3, 16), np.int32)
    tick, order, last = np.array([0, -1], np.int32), np.full(8, -1, np.int32), np.zeros(1, np.int32)
    halves, before = np.zeros(16, np.float32), np.zeros((8, 16), np.float32)
    mark = np.full(128, -1, np.int32)
    lpir.compile(TICKETS, target=target)(x, olds, tick, order, last, halves, before, mark)
    np.testing.assert_array_equal(olds, np.stack([0 * x, x, 2 * x]))  # the block's own adds
    assert tick[0] == 8 and sorted(order) == list(range(8))  # one ticket each, all taken
    assert last[0] == order[7]  # the block that took the last ticket
    assert (mark == order[7]).all()  # all its threads saw the ticket
    assert tick[1] == 70
    # each block saw the sums of the blocks before it (halves: exact in f32)
    np.testing.assert_array_equal(halves, x * 4.0)
    assert sorted(before[:, 0] / 0.5) == list(range(8))
    np.testing.assert_array_equal(before, before[:, :1] * x)


# Repeats within a thread's lanes and across threads of a shared tile, masked-off elements and
# elements outside the tensor (old value 0, nothing combined), max and min.
REPEATS = """
kernel repeats[N = 100, BN = 128](
    bins: global i32[N], values: global i32[N], counts: global i32[4], seen: global i32[N],
    top: global i32[4], previous: global i32[N], low: global u32[4], lower: global u32[N],
) blocks(1) threads(64) {
    b = load(bins[0 :+ BN])
    v = load(values[0 :+ BN])
    c = shared<i32>[4]
    store(c, zeros<i32>[4])
    keep = v % 3 != 0
    old = atomic_add(c[b], ones<i32>[BN], mask = keep)
    store(seen[0 :+ BN], old)
    store(counts[0 :+ 4], load(c))
    store(previous[0 :+ BN], atomic_max(top[b], v))
    store(lower[0 :+ BN], atomic_min(low[b], cast<u32>(v), mask = keep))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_repeated_masked_and_outside_elements(target):
    rng = np.random.default_rng(11)
    bins = rng.integers(0, 5, 100).astype(np.int32)  # 4: outside the 4 bins
    values = rng.permutation(100).astype(np.int32) + 1
    counts, seen = np.zeros(4, np.int32), np.full(100, -7, np.int32)
    top, previous = np.zeros(4, np.int32), np.full(100, -7, np.int32)
    low, lower = np.full(4, 1000, np.uint32), np.full(100, 7, np.uint32)
    lpir.compile(REPEATS, target=target)(bins, values, counts, seen, top, previous, low, lower)
    keep = (values % 3 != 0) & (bins < 4)
    np.testing.assert_array_equal(counts, np.bincount(bins[keep], minlength=5)[:4])
    assert (seen[~keep] == 0).all()  # masked off or outside: 0, nothing combined
    for b in range(4):  # each bin's kept elements got 0, 1, ..., count - 1 in some order
        assert sorted(seen[keep & (bins == b)]) == list(range(counts[b])), b
        chosen = bins == b
        np.testing.assert_array_equal(top[b], values[chosen].max())
        # an element's old maximum is one of the values combined before it, or the start
        assert set(previous[chosen]) <= {0, *values[chosen]}, b
        assert (previous[chosen] < values[chosen]).sum() >= 1, b
        assert low[b] == min([1000, *values[keep & chosen]])
        assert (lower[chosen & ~keep] == 0).all()
    assert (previous[bins == 4] == 0).all()


def test_the_value_is_read_back_only_where_it_is_used():
    """As a statement an atomic has no result (its IR as before: a RED on the GPU); as a value
    the store gives a tile of the slice's shape, or a scalar for one element."""
    source = """
kernel k[](c: global i32[4], y: global i32[4]) blocks(1) threads(32) {
    atomic_add(c[0 :+ 4], ones<i32>[4])
    old = atomic_add(c[0 :+ 4], ones<i32>[4])
    store(y[0 :+ 4], old + atomic_max(c[3], 1))
}
"""
    text = lpir.compile(source, target="interp").ir("source")
    stores = re.findall(r"^ *(.*store_global.*)$", text, re.MULTILINE)
    assert not stores[0].startswith("%"), stores[0]
    assert re.match(r"%\S+ = store_global.*combine = \"add\".* : i32\[4\]$", stores[1]), stores
    assert re.match(r"%\S+ = store_global.*combine = \"max\".* : i32\[\]$", stores[2]), stores
    assert print_module(parse(text)) == text  # (the result prints and parses back)


def test_a_plain_store_has_no_value():
    source = """
kernel k[](y: global i32[4]) blocks(1) threads(32) {
    t = store(y[0 :+ 4], ones<i32>[4])
}
"""
    with pytest.raises(LpirError, match=r"store\(\) has no value") as error:
        lpir.compile(source, target="interp").specialize(None)
    assert error.value.location is not None


def test_a_wrong_dtype_names_the_atomic_and_the_shared_tile():
    source = """
kernel k[](ids: global i32[8]) blocks(1) threads(32) {
    counts = shared<i32>[4]
    atomic_add(counts[load(ids[0 :+ 8])], ones<u32>[8])
}
"""
    with pytest.raises(LpirError, match=r"cannot atomic_add u32\[8\] into counts, a shared tile"):
        lpir.compile(source, target="interp").specialize(None)


def test_the_cpu_fetches_global_elements_with_atomicrmw_and_shared_ones_plainly():
    llvm = lpir.compile(REPEATS, target="cpu").source("llvm")
    combined = re.findall(r"atomicrmw (\w+)", llvm)
    assert sorted(set(combined)) == ["max", "umin"], set(combined)  # the global top and low


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_gpu_fetches_with_atom():
    ptx = lpir.compile(TICKETS, target="cuda").source("ptx", "sm_90")
    for operation in ("shared.add.u32", "global.add.u32", "global.max.s32", "global.add.f32"):
        assert f"atom.{operation}" in ptx, operation


# Atomics of one kind commute, so none waits for another, unless one gives its old values:
# the second add's must hold every thread's first add (the interpreter's program order), the
# first fetch's none of the plain add after it. 16384 elements over 128 threads: the CPU
# keeps the threads (each ran both statements before the next thread started).
AFTER_AN_ADD = """
kernel k[N = 16384](g: global i32[2], seen: global i32[N], first: global i32[N])
    blocks(1) threads(128) {
    atomic_add(g[arange(N) * 0], ones<i32>[N])
    store(seen[0 :+ N], atomic_add(g[arange(N) * 0], zeros<i32>[N]))
    store(first[0 :+ N], atomic_add(g[arange(N) * 0 + 1], ones<i32>[N]))
    atomic_add(g[arange(N) * 0 + 1], ones<i32>[N])
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_a_fetch_waits_for_the_atomics_of_its_kind_before_it(target):
    g = np.zeros(2, np.int32)
    seen, first = np.full(16384, -1, np.int32), np.full(16384, -1, np.int32)
    lpir.compile(AFTER_AN_ADD, target=target)(g, seen, first)
    np.testing.assert_array_equal(g, [16384, 2 * 16384])
    assert (seen == 16384).all(), sorted(set(seen.tolist()))[:4]
    np.testing.assert_array_equal(np.sort(first), np.arange(16384))


# Lanes whose memory order differs from their order in the tile (a transposed or stacked
# value): vectorize orders an access's lanes by address, and the old values come back in the
# tile's order.
REORDERED = """
kernel k[](c: global i32[4, 64], d: global i32[2, 64], out: global i32[4, 64],
    out2: global i32[2, 64], x: global i32[64, 4]) blocks(1) threads(32) {
    store(out[0 :+ 4, 0 :+ 64], atomic_add(c[0 :+ 4, 0 :+ 64], transpose(load(x[0 :+ 64, 0 :+ 4]))))
    o = atomic_add(d[0 :+ 2, 0 :+ 64], stack(arange(64), arange(64) + 1000, axis = 0))
    store(out2[0 :+ 2, 0 :+ 64], o)
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_old_values_keep_the_tiles_order(target):
    c = np.arange(256, dtype=np.int32).reshape(4, 64) * 7
    d = np.arange(128, dtype=np.int32).reshape(2, 64) * 3
    out, out2 = np.zeros((4, 64), np.int32), np.zeros((2, 64), np.int32)
    x = np.arange(256, dtype=np.int32).reshape(64, 4)
    want_c, want_d = c + x.T, d + np.stack([np.arange(64), np.arange(64) + 1000])
    old_c, old_d = c.copy(), d.copy()
    lpir.compile(REORDERED, target=target)(c, d, out, out2, x)
    np.testing.assert_array_equal(out, old_c)
    np.testing.assert_array_equal(out2, old_d)
    np.testing.assert_array_equal(c, want_c)
    np.testing.assert_array_equal(d, want_d)


def test_replicas_read_old_values_back_only_where_something_reads_them():
    """A replicated fetch whose old values are only stored (or not used) needs no shared
    copy: only the primary copies store. The IR text printed after layout-selection, compiled
    again, keeps its one copy (it was another copy each time)."""
    unused = """
kernel k[](c: global i32[4], y: global i32[4]) blocks(1) threads(128) {
    w = atomic_add(c[0 :+ 4], ones<i32>[4])
    store(y[0 :+ 4], atomic_add(c[0 :+ 4], ones<i32>[4]))
}
"""
    ir = lpir.compile(unused, target="cuda").ir("after:layout-selection")
    assert "alloc_shared" not in ir and "sync" not in ir, ir
    first = lpir.compile(TICKETS, target="cuda").ir("after:layout-selection")
    assert first.count("alloc_shared") == 2  # s and the ticket's copy (o is only stored)
    again = lpir.compile(first, target="cuda").ir("after:layout-selection")
    assert again.count("alloc_shared") == 2
