"""`atomic_and`, `atomic_or` and `atomic_xor`: bits combined into words atomically, e.g. the
bitmap of tokens a sequence has produced (a repetition or presence penalty's set) built by
blocks and threads whose ids repeat, as a statement and as a value (the word before). Checked
on every host target and the GPU's thread IR against numpy, plus the errors and the PTX."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import find_nvcc

import lpir
from lpir.errors import LpirError

TARGETS = [*HOST_TARGETS, "threads-cuda"]

# Each token sets its bit in a global bitmap of V bits (words of 32; ids repeat within a tile
# and across blocks) and in a block's shared one, whose words it then clears with and and
# flips with xor; `first` says whether its bit was clear before (the or's old word), which a
# repeated id sees at most once.
BITMAP = """
kernel bitmap[N = 500, V = 1000, BN = 128, T = u32](
    ids: global i32[N], seen: global T[cdiv(V, 32)], first: global i32[N],
    words: global T[4], flipped: global T[4],
) blocks(cdiv(N, BN)) threads(64) {
    n0 = block.x * BN
    inside = arange(BN) < N - n0
    id = load(ids[n0 :+ BN])
    bit = cast<T>(1) << cast<T>(id % 32)
    before = atomic_or(seen[id / 32], bit, mask = inside)
    store(first[n0 :+ BN], cast<i32>((before & bit) == cast<T>(0)), mask = inside)
    s = shared<T>[4]
    store(s, full<T>[4](max_value(T)))
    atomic_and(s[id % 4], ~bit, mask = inside)
    atomic_xor(s[0], cast<T>(1))
    atomic_and(words[0 :+ 4], load(s))
    atomic_xor(flipped[block.x % 4], cast<T>(block.x + 1))
}
"""


def _expected(ids: np.ndarray, blocks: int, bn: int, dtype) -> tuple:
    seen = np.zeros(32, np.uint64)
    for i in ids:
        seen[i // 32] |= np.uint64(1) << np.uint64(i % 32)
    words = np.full(4, np.iinfo(dtype).max, np.uint64)
    for b in range(blocks):
        s = np.full(4, np.iinfo(dtype).max, np.uint64)  # (i64's max: bit 63 stays clear)
        for i in ids[b * bn : (b + 1) * bn]:
            s[i % 4] &= ~(np.uint64(1) << np.uint64(i % 32))
        s[0] ^= np.uint64(1)  # (a scalar: once a block)
        words &= s
    flipped = np.zeros(4, np.uint64)
    for b in range(blocks):
        flipped[b % 4] ^= np.uint64(b + 1)
    return seen.astype(dtype), words.astype(dtype), flipped.astype(dtype)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["u32", "i64"])
def test_a_token_bitmap_across_threads_and_blocks(target, dtype):
    numpy_dtype = {"u32": np.uint32, "i64": np.int64}[dtype]
    ids = np.random.default_rng(4).integers(0, 1000, 500).astype(np.int32)
    seen, first = np.zeros(32, numpy_dtype), np.full(500, -1, np.int32)
    words, flipped = np.full(4, np.iinfo(numpy_dtype).max, numpy_dtype), np.zeros(4, numpy_dtype)
    lpir.compile(BITMAP, target=target, T=dtype)(ids, seen, first, words, flipped)
    want_seen, want_words, want_flipped = _expected(ids, 4, 128, numpy_dtype)
    np.testing.assert_array_equal(seen, want_seen)
    np.testing.assert_array_equal(words, want_words)
    np.testing.assert_array_equal(flipped, want_flipped)
    # each distinct id found its bit clear exactly once, whichever occurrence came first
    for token in np.unique(ids):
        assert first[ids == token].sum() == 1, token


def test_bits_need_whole_words():
    source = """
kernel k[](x: global u8[64]) blocks(1) threads(32) {
    atomic_or(x[0 :+ 64], ones<u8>[64])
}
"""
    with pytest.raises(LpirError, match="atomic_or cannot or bits into x") as error:
        lpir.compile(source, target="interp").specialize(None)
    assert "i32, u32, i64, u64" in str(error.value)


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_gpu_combines_bits_with_atom_and_red():
    ptx = lpir.compile(BITMAP, target="cuda").source("ptx", "sm_90")
    assert "atom.global.or.b32" in ptx
    for operation in ("shared.and.b32", "shared.xor.b32", "global.and.b32", "global.xor.b32"):
        assert f"atom.{operation}" in ptx or f"red.{operation}" in ptx, operation
