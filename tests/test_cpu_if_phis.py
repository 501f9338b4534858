"""An `if` on a run-time condition that assigns several names, followed by more tile work: the
CPU joins each name with a phi at the `if`'s end, and a name that later tile work reads is also
stored into its per-thread context array there. LLVM wants a block's phis together at its top
(it rejected `%found = phi` after a store: "PHI nodes not grouped at top of basic block"), so
all the phis come first. Checked on every host target with two and three names (scalars, a
bool, a tile), with and without `else`, and inside a loop."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

# the explorer's repro: two scalars assigned under `if`, then a reduction of the tile
TWO_SCALARS = """
kernel first_over[N = 256](
    x: global f32[N],
    y: global i32[2],
) blocks(1) threads(128) {
    t = load(x[:])
    tok = 0
    found = false
    first = min(where(t > 0.5, arange(N), N))
    if first < N {
        tok = first
        found = true
    }
    s = sum(t)
    store(y[0], tok + cast<i32>(found) + cast<i32>(s))
    store(y[1], cast<i32>(found))
}
"""

# three names (a scalar, a bool, a tile) with an `else`, then tile work on all of them
THREE_NAMES = """
kernel scaled[N = 256](
    x: global f32[N],
    y: global f32[N],
    z: global i32[2],
) blocks(1) threads(128) {
    t = load(x[:])
    row = t
    tok = -1
    found = false
    first = min(where(t > 0.75, arange(N), N))
    if first < N {
        tok = first
        found = true
        row = t * 2.0
    } else {
        row = t - 1.0
    }
    s = sum(row)
    store(y[:], row + s)
    store(z[0], tok)
    store(z[1], cast<i32>(found))
}
"""

# the same inside a loop over chunks: the `if` merges per chunk, a sum follows
IN_A_LOOP = """
kernel chunks[V = 1024, BV = 256](
    x: global f32[V],
    y: global f32[V / BV],
    z: global i32[2],
) blocks(1) threads(128) {
    tok = -1
    hits = 0
    for v0 in range(0, V, BV) {
        t = load(x[v0 :+ BV])
        first = min(where(t > 0.9, arange(BV), BV))
        best = 0.0
        if first < BV {
            tok = v0 + first
            hits = hits + 1
            best = max(t)
        }
        store(y[v0 / BV], sum(t) + best)
    }
    store(z[0], tok)
    store(z[1], hits)
}
"""


def _values(n: int, seed: int, low: float) -> np.ndarray:
    """Values in [0, low) with a few above `low` when `low` < 1 (the condition is run-time)."""
    return (np.random.default_rng(seed).random(n) * low).astype(np.float32)


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("low", [1.0, 0.5])
def test_two_scalars_then_a_sum(target: str, low: float) -> None:
    x = _values(256, 1, low)
    y = np.zeros(2, np.int32)
    lpir.compile(TWO_SCALARS, target=target)(x, y)
    over = np.flatnonzero(x > 0.5)
    tok, found = (int(over[0]), 1) if over.size else (0, 0)
    total = np.float32(x.astype(np.float64).sum())
    assert y[1] == found
    assert abs(int(y[0]) - (tok + found + int(total))) <= 1  # the sum's order may round


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("low", [1.0, 0.7])
def test_three_names_with_else(target: str, low: float) -> None:
    x = _values(256, 2, low)
    y = np.zeros(256, np.float32)
    z = np.zeros(2, np.int32)
    lpir.compile(THREE_NAMES, target=target)(x, y, z)
    over = np.flatnonzero(x > 0.75)
    row = x * 2.0 if over.size else x - 1.0
    assert list(z) == ([int(over[0]), 1] if over.size else [-1, 0])
    np.testing.assert_allclose(y, row + row.sum(dtype=np.float64), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_inside_a_loop(target: str) -> None:
    x = _values(1024, 3, 0.95)
    x[300:512] = np.minimum(x[300:512], 0.5)  # one chunk without a hit
    y = np.zeros(4, np.float32)
    z = np.zeros(2, np.int32)
    lpir.compile(IN_A_LOOP, target=target)(x, y, z)
    chunks = x.reshape(4, 256)
    hit = (chunks > 0.9).any(axis=1)
    expected = chunks.sum(axis=1, dtype=np.float64) + np.where(hit, chunks.max(axis=1), 0.0)
    last = int(np.flatnonzero(hit)[-1])
    tok = last * 256 + int(np.flatnonzero(chunks[last] > 0.9)[0])
    assert list(z) == [tok, int(hit.sum())]
    np.testing.assert_allclose(y, expected, rtol=1e-5)
