"""What docs/language.md says a float `dot` gives at f32's edges, where the reference
interpreter (exact products summed in float64, rounded once) and the targets (f32 arithmetic in
their own order) differ by design: sums past f32's largest value, products below its smallest
subnormal, and bf16 subnormals that AVX512-BF16 flushes to zero on the CPU.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.llvm import jit

import lpir

HAS_BF16 = "+avx512bf16" in jit.host()[2].split(",")

DOT = """
kernel d[T = f32](a: global T[16, 32], b: global T[32, 16], c: global f32[16, 16])
        blocks(1) threads(128) {
    store(c[0 :+ 16, 0 :+ 16], dot(load(a[0 :+ 16, 0 :+ 32]), load(b[0 :+ 32, 0 :+ 16])))
}
"""


def _first_of_dot(target: str, row: list[float], column: list[float], numpy_dtype=np.float32):
    """c[0, 0] of a dot whose a's row 0 repeats `row` and b's column 0 repeats `column`."""
    a = np.zeros((16, 32), numpy_dtype)
    b = np.zeros((32, 16), numpy_dtype)
    a[0, :] = np.resize(np.array(row, numpy_dtype), 32)
    b[:, 0] = np.resize(np.array(column, numpy_dtype), 32)
    c = np.zeros((16, 16), np.float32)
    lpir.compile(DOT, target=target)(a, b, c)
    return c[0, 0]


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_partial_sums_past_f32s_largest(target: str):
    """3e38 x (2, -2, 2, ...): 0 exactly, or +-inf or NaN where f32 products or partial sums
    overflow."""
    result = _first_of_dot(target, [3e38], [2.0, -2.0])
    if target == "interp":
        assert result == 0.0
    else:
        assert np.isinf(result) or np.isnan(result)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_products_below_f32s_smallest_subnormal(target: str):
    """1.4e-45 (f32's smallest subnormal) x 0.5, 32 times: the interpreter's exact sum is 16
    smallest subnormals; in f32 each product rounds to 0 (half way, to even)."""
    smallest = float(np.finfo(np.float32).smallest_subnormal)
    result = _first_of_dot(target, [smallest], [0.5])
    assert result == (np.float32(16 * smallest) if target == "interp" else 0.0)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_infinity_times_a_bf16_subnormal(target: str):
    """inf x 9.2e-41 (a bf16 subnormal) is inf, except on the CPU with AVX512-BF16, which
    flushes the subnormal to 0: inf x 0 is NaN there."""
    result = _first_of_dot(target, [np.inf], [9.18355e-41], ml_dtypes.bfloat16)
    if target == "cpu" and HAS_BF16:
        assert np.isnan(result)
    else:
        assert result == np.inf
