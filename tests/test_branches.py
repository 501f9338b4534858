"""Runtime `if`s in the language run alike on every target: names reassigned in a branch and
names first assigned in both branches flow out of the `if`, per block (block.x) and per call
(a scalar argument); a constant assigned to a tile name fills the tile."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

BRANCHES = """
kernel branches[N = 1000, B = 128](x: global f32[N], y: global f32[N], mode: i32, alpha: f32)
        blocks(cdiv(N, B)) threads(32) {
    t = load(x[block.x * B :+ B])
    if mode == 0 {
        r = t * alpha
        scale = 2.0
    } else if mode == 1 {
        r = max(t, 0.0)
        scale = alpha
    } else {
        r = 0.5
        scale = 1.0
    }
    if block.x % 2 == 1 {
        r = r + 1.0
    } else {
        t = 3.0
    }
    store(y[block.x * B :+ B], r * scale + t)
}
"""


def expected(x: np.ndarray, mode: int, alpha: float, block: int = 128) -> np.ndarray:
    """The kernel in numpy: one branch per call, the second `if` per block of `block`."""
    x = x.astype(np.float32)
    alpha = np.float32(alpha)
    r, scale = {
        0: (x * alpha, np.float32(2.0)),
        1: (np.maximum(x, np.float32(0)), alpha),
    }.get(mode, (np.full_like(x, 0.5), np.float32(1.0)))
    odd = (np.arange(x.size) // block) % 2 == 1
    return np.where(odd, (r + np.float32(1)) * scale + x, r * scale + np.float32(3))


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("mode", [0, 1, 7])
def test_names_flow_out_of_runtime_ifs(target, mode):
    x = np.random.default_rng(mode).standard_normal(1000).astype(np.float32)
    y = np.zeros(1000, np.float32)
    lpir.compile(BRANCHES, target=target)(x, y, mode, 1.5)
    # One multiply and one add per element: an FMA rounds once where numpy rounds twice.
    np.testing.assert_allclose(y, expected(x, mode, 1.5), rtol=1e-6, atol=1e-6)


ZEROS = """
kernel zeros_[N = 64](y: global f32[N], mode: i32) blocks(1) threads(32) {
    if mode == 0 {
        z = -0.0
    } else {
        z = 0.0
    }
    store(y[0:N], zeros<f32>[N] * -1.0 + z)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_constants_equal_in_value_but_not_in_bits_stay_apart(target):
    """-0.0 and 0.0 compare equal, but each branch's own is what flows out: -0.0 + -0.0 is
    -0.0 and -0.0 + 0.0 is 0.0."""
    for mode, negative in ((0, True), (1, False)):
        y = np.ones(64, np.float32)
        lpir.compile(ZEROS, target=target)(y, mode)
        assert (y == 0).all() and np.signbit(y).all() == negative
