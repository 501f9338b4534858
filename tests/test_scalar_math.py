"""Math functions of a kernel's scalar argument, on every host target.

A scalar is a 0-d value in the reference interpreter, where `erf` once returned a Python
float and failed (`'float' object has no attribute 'astype'`); the other targets see a
per-thread value. Results are compared with Python's `math` in float64 within 4 ulps of f32
(the compiled code calls libm or LLVM's expansions; see test_llvm_elementwise.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

FUNCTIONS = {
    "exp": math.exp,
    "exp2": lambda x: 2.0**x,
    "log": math.log,
    "log2": math.log2,
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tanh": math.tanh,
    "erf": math.erf,
}
ARGUMENTS = [0.5, 1.75, 3.0]

SOURCE = """
kernel scalar_math[N = 32](y: global f32[N], a: f32) blocks(1) threads(32) {
    store(y[0 :+ N], full<f32>[N](FUNCTION(a)))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_math_function_of_a_scalar_argument(target, name):
    kernel = lpir.compile(SOURCE.replace("FUNCTION", name), target=target)
    for argument in ARGUMENTS:
        y = np.zeros(32, np.float32)
        kernel(y, argument)
        expected = np.float32(FUNCTIONS[name](argument))
        np.testing.assert_array_max_ulp(y, np.full(32, expected), maxulp=4)
