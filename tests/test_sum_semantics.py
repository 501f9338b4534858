"""What `sum` computes, the same on every target: IEEE addition from -0.0 (a sum of -0.0s is
-0.0), in any order (the tolerance of a check covers the order, not the precision)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

SUMS = """
kernel sums[T = f32](x: global T[64], y: global T[2]) blocks(1) threads(32) {
    t = load(x[:])
    store(y[0], sum(t))
    store(y[1], sum(reshape(t, 8, 8), axis = 1)[3])
}
"""

FLOATS = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16, "f64": np.float64}


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("name", FLOATS)
def test_a_sum_of_negative_zeros_is_negative_zero(target, name):
    """The interpreter once started from +0.0 (np.sum) and gave +0.0 where compiled code,
    adding the elements themselves, gave -0.0."""
    y = np.ones(2, FLOATS[name])
    lpir.compile(SUMS, target=target, T=name)(np.full(64, -0.0, FLOATS[name]), y)
    assert np.all(y == 0) and np.all(np.signbit(y.astype(np.float32)))
