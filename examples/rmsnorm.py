"""Run rmsnorm.lp and check it against numpy:  python examples/rmsnorm.py [--target cpu]"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    dt = np.dtype(params["T"].numpy_dtype)
    shape = (params["M"], params["N"])
    x = rng.standard_normal(shape).astype(dt)
    residual = (rng.standard_normal(shape) * 4).astype(dt)
    w = (1 + 0.1 * rng.standard_normal(params["N"])).astype(dt)
    return [x, residual, w, np.float32(1e-6), np.zeros(shape, dt)]


def reference(params, args):
    x, residual, w, eps = (np.asarray(a, np.float64) for a in args[:4])
    h = (x + residual).astype(np.float32).astype(np.float64)  # the f32 sum of two T values
    y = h / np.sqrt((h * h).mean(axis=1, keepdims=True) + eps) * w
    dt = args[0].dtype
    return {1: h.astype(dt), 4: y.astype(dt)}


def tolerance(params):
    if params["T"].nbits < 32:
        return 1e-2, 1e-2, "f16/bf16 outputs: one rounding (bf16 half ulp 2^-9) of values near 1"
    return 1e-5, 1e-6, "f32: the row's sum of squares in another order, rsqrt within an ulp"


CASES = [
    {"M": 8, "N": 256},
    {"M": 37, "N": 1000, "T": "f32"},  # rows not a multiple of BM, N not a power of two
    {"M": 5, "N": 4096, "BM": 1, "THREADS": 256, "T": "bf16"},  # 256 threads a row
    {"M": 10, "N": 2048, "BM": 2},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
