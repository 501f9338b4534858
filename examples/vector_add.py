"""Run vector_add.lp and check it against numpy:  python examples/vector_add.py [--target cpu]"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    dt = np.dtype(params["T"].numpy_dtype)
    n = params["N"]
    x = rng.standard_normal(n).astype(dt)
    y = rng.standard_normal(n).astype(dt)
    return [x, y, np.zeros(n, dt)]


def reference(params, args):
    x, y, _ = args
    return {2: x + y}


def tolerance(params):
    return 0.0, 0.0, "exact: one correctly rounded addition per element"


CASES = [
    {"N": 4096},
    {"N": 1000},  # the last block is partial
    {"N": 70001, "BLOCK": 512, "T": "f16"},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
