"""Slices at the edges of tensors: elements outside read as 0 and are not written, on every
host target as in the reference interpreter, whatever the start (see docs/language.md,
Slices of tensors)."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

WRAPPED_START = """
kernel wrapped[T = f32, N = 100, STEP = 2147483616](x: global T[N], y: global T[N],
                                                    z: global T[3, 64])
    blocks(3) threads(32) {
    start = block.x * STEP
    tile = load(x[start :+ 64])
    store(z[block.x, 0 :+ 64], tile)
    store(y[start :+ 64], tile)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("T", ["f32", "u3"])
@pytest.mark.parametrize("STEP", [2147483616, 1073741800])
def test_a_start_that_wraps_below_zero_reads_zeros_and_writes_nothing(T, STEP, target):
    """block.x * 2147483616 wraps to -64 in block 2 (1073741800: 2147483600, then -96). The
    index analysis kept the unwrapped range [0, 4294967232], so the slice's lower edge mask
    was left out: the targets read the 64 elements before x and wrote them back there."""
    dt = lpir.dtype(T)
    x = lpir.pack(np.arange(1, 101) % 3 + 1, dt)
    y = lpir.pack(np.zeros(100), dt)
    z = lpir.pack(np.full((3, 64), 7), dt)
    lpir.compile(WRAPPED_START, target=target, T=T, STEP=STEP)(x, y, z)
    starts = [(block * STEP + 2**31) % 2**32 - 2**31 for block in range(3)]
    expected_z = np.zeros((3, 64))
    expected_y = np.zeros(100)
    for block, start in enumerate(starts):
        window = np.arange(start, start + 64)
        inside = (window >= 0) & (window < 100)
        expected_z[block, inside] = np.arange(1, 101)[window[inside]] % 3 + 1
        expected_y[window[inside]] = expected_z[block, inside]
    assert np.array_equal(lpir.unpack(z).astype(np.float64), expected_z)
    assert np.array_equal(lpir.unpack(y).astype(np.float64), expected_y)
