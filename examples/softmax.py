"""Run softmax.lp and check it against numpy:  python examples/softmax.py [--target cpu]"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    dt = np.dtype(params["T"].numpy_dtype)
    shape = (params["M"], params["N"])
    x = (rng.standard_normal(shape) * 3).astype(dt)
    return [x, np.zeros(shape, dt)]


def reference(params, args):
    x = args[0].astype(np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    return {1: y.astype(args[1].dtype)}


def tolerance(params):
    if params["T"].nbits < 32:
        return 1e-2, 1e-3, "f16/bf16 result: one rounding of a value near 1e-3..1 (half ulp 2^-11)"
    return 1e-5, 1e-7, "f32: exp within an ulp and the row sum in a different order"


CASES = [
    {"M": 64, "N": 256},
    {"M": 37, "N": 100},  # rows not a multiple of BM, row length not a power of two
    {"M": 300, "N": 512, "T": "f16"},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
