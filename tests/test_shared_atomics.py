"""`atomic_add`, `atomic_max` and `atomic_min` into a shared tile: a block's threads combine
into the same elements (a histogram whose bins repeat within a thread and across threads),
each element atomically on the GPU (`atom.shared`), lane by lane on the CPU. Checked on every
host target and the GPU's thread IR against numpy, in loops and with masks, plus the PTX."""

from __future__ import annotations

import re

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import find_nvcc

import lpir

TARGETS = [*HOST_TARGETS, "threads-cuda"]

# Each block counts its BN values into BINS bins (many repeats a thread), keeps each bin's
# largest and smallest value and the sum of halves (exact: small multiples of 0.5), then
# adds its bins into the global result.
HISTOGRAM = """
kernel histogram[N = 1000, BN = 256, BINS = 16, T = i32](
    x: global T[N], counts: global u32[BINS], top: global T[BINS], low: global T[BINS],
    halves: global f32[BINS],
) blocks(cdiv(N, BN)) threads(64) {
    c = shared<u32>[BINS]
    hi = shared<T>[BINS]
    lo = shared<T>[BINS]
    h = shared<f32>[BINS]
    store(c, zeros<u32>[BINS])
    store(hi, full<T>[BINS](min_value(T)))
    store(lo, full<T>[BINS](max_value(T)))
    store(h, zeros<f32>[BINS])
    n = block.x * BN
    v = load(x[n :+ BN])
    inside = arange(BN) < N - n
    bins = cast<i32>(v % cast<T>(BINS))
    atomic_add(c[bins], ones<u32>[BN], mask = inside)
    atomic_max(hi[bins], v, mask = inside)
    atomic_min(lo[bins], v, mask = inside)
    atomic_add(h[bins], cast<f32>(v) * 0.5, mask = inside)
    atomic_add(counts[0 :+ BINS], load(c))
    atomic_max(top[0 :+ BINS], load(hi))
    atomic_min(low[0 :+ BINS], load(lo))
    atomic_add(halves[0 :+ BINS], load(h))
}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["i32", "i64", "u32"])
def test_a_block_histogram_in_shared_memory(target, dtype):
    numpy_dtype = {"i32": np.int32, "i64": np.int64, "u32": np.uint32}[dtype]
    x = np.random.default_rng(3).integers(0, 1000, 1000).astype(numpy_dtype)
    info = np.iinfo(numpy_dtype)
    counts, halves = np.zeros(16, np.uint32), np.zeros(16, np.float32)
    top, low = np.full(16, info.min, numpy_dtype), np.full(16, info.max, numpy_dtype)
    lpir.compile(HISTOGRAM, target=target, T=dtype)(x, counts, top, low, halves)
    bins = x % 16
    np.testing.assert_array_equal(counts, np.bincount(bins, minlength=16))
    np.testing.assert_array_equal(top, [x[bins == b].max() for b in range(16)])
    np.testing.assert_array_equal(low, [x[bins == b].min() for b in range(16)])
    # (sums of multiples of 0.5 below 2**24: exact in any order)
    np.testing.assert_array_equal(halves, [(x[bins == b] * 0.5).sum() for b in range(16)])


# A whole tile, rows gathered with repeats, across the iterations of a loop, then read back
# in another layout (transposed).
TILE_AND_ROWS = """
kernel rows[STEPS = 3](x: global i32[64, 32], y: global i32[32, 64]) blocks(1) threads(128) {
    s = shared<i32>[64, 32]
    store(s, load(x[0 :+ 64, 0 :+ 32]))
    for step in range(STEPS) {
        atomic_add(s, load(x[0 :+ 64, 0 :+ 32]) * 2)
        atomic_add(s[(arange(64) + step) % 8, :], ones<i32>[64, 32])
    }
    store(y[0 :+ 32, 0 :+ 64], transpose(load(s)))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_atomics_into_a_whole_shared_tile_and_gathered_rows_in_a_loop(target):
    x = np.arange(64 * 32, dtype=np.int32).reshape(64, 32)
    y = np.zeros((32, 64), np.int32)
    lpir.compile(TILE_AND_ROWS, target=target)(x, y)
    expected = x * 7
    for step in range(3):
        np.add.at(expected, (np.arange(64) + step) % 8, 1)
    np.testing.assert_array_equal(y, expected.T)


# vLLM's moe_align_block_size, one block: each expert's token count (a shared histogram),
# then each expert's first slot in the sorted order (an exclusive cumsum of the counts).
EXPERT_OFFSETS = """
kernel offsets[T = 300, E = 8, BT = 512](ids: global i32[T], starts: global i32[E])
    blocks(1) threads(128) {
    counts = shared<i32>[E]
    store(counts, zeros<i32>[E])
    atomic_add(counts[load(ids[0 :+ BT])], ones<i32>[BT], mask = arange(BT) < T)
    n = load(counts)
    store(starts[0 :+ E], cumsum(n) - n)
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_expert_offsets_from_a_shared_count(target):
    ids = np.random.default_rng(8).integers(0, 8, 300).astype(np.int32)
    starts = np.zeros(8, np.int32)
    lpir.compile(EXPERT_OFFSETS, target=target)(ids, starts)
    counts = np.bincount(ids, minlength=8)
    np.testing.assert_array_equal(starts, np.cumsum(counts) - counts)


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_gpu_combines_in_shared_memory():
    ptx = lpir.compile(HISTOGRAM, target="cuda").source("ptx", "sm_90")
    for operation in ("add.u32", "max.s32", "min.s32", "add.f32"):
        assert f"atom.shared.{operation}" in ptx or f"red.shared.{operation}" in ptx, operation


def test_the_cpu_combines_in_shared_memory_without_locked_instructions():
    """A block's threads run one after another on one native thread: its shared tile needs
    no atomic read-modify-write (lock-prefixed, 20x slower in a histogram); the global
    results, which blocks on other native threads add into, do."""
    llvm = lpir.compile(HISTOGRAM, target="cpu").source("llvm")
    combined = re.findall(r"atomicrmw (\w+)", llvm)
    assert sorted(set(combined)) == ["add", "fadd", "max", "min"], set(combined)
    # the 4 global results' 16 bins; each thread's 4 values a shared combine are plain
    assert len(combined) == 4 * 16, len(combined)
