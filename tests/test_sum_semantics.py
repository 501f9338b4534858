"""What `sum` computes, the same on every target: IEEE addition from -0.0 (a sum of -0.0s is
-0.0), in any order (the tolerance of a check covers the order, not the precision), in f32 for
float tiles narrower than f32, rounded once to their dtype."""

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


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize(
    ("name", "values", "total"),
    [
        ("bf16", np.ones(64), 64.0),  # in bf16, a running sum of ones stalls at 256
        ("f16", [60000.0, 60000.0, -60000.0, -60000.0] * 16, 0.0),  # f16 partials overflow
        ("f16", [2048.0] + [1.0] * 63, 2112.0),  # 2111 in f32, rounded once to f16
        ("f8e4m3", [448.0, 448.0, -448.0, -448.0] * 16, 0.0),
    ],
)
def test_a_narrow_float_tile_is_summed_in_f32(target, name, values, total):
    """The targets added f16 in f16 (NaN from partial sums past 65504) and the interpreter
    bf16 one element at a time in bf16 (256 for 4096 ones): now every target sums in f32."""
    dt = lpir.dtype(name)
    x = np.asarray(values, np.float32).astype(dt.ml_dtype or dt.numpy_dtype)
    y = np.zeros(2, x.dtype)
    lpir.compile(SUMS, target=target, T=name)(x, y)
    assert y[0].astype(np.float32) == total
    row = np.asarray(values, np.float64).reshape(8, 8)[3].sum()
    assert y[1].astype(np.float32) == np.float32(row).astype(x.dtype).astype(np.float32)
