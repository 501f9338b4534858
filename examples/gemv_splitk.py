"""Run gemv_splitk.lp and check it against numpy:  python examples/gemv_splitk.py [--target cpu]

y += x @ dequant(W).T for weights of any 1..8-bit type with one f32 scale per group of G, K
split over SPLIT blocks that add their partial sums into y atomically (y starts at zero here).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from common import random_weights  # noqa: E402


def make_inputs(params, rng):
    n, k, g = params["N"], params["K"], params["G"]
    x = rng.standard_normal(k).astype(np.float32)
    w, _ = random_weights(params["WT"], (n, k), rng)
    s = rng.uniform(0.005, 0.02, size=(n, -(-k // g))).astype(np.float32)
    return [x, w, s, np.zeros(n, np.float32)]


def dequantized(params, w, s):
    k, g = params["K"], params["G"]
    values = (
        params["WT"].decode(w.codes()).astype(np.float64)
        if params["WT"].is_float
        else (w.unpack().astype(np.float64))
    )
    scales = np.repeat(s.astype(np.float64), g, axis=1)[:, :k]
    return (values - params["ZERO"]) * scales


def reference(params, args):
    x, w, s, _ = args
    return {3: (dequantized(params, w, s) @ x.astype(np.float64)).astype(np.float32)}


def tolerance(params):
    # Each output is a sum of K f32 products, in another order than numpy's and with the SPLIT
    # partial sums added in whatever order the blocks finish: the rounding error grows with K
    # (typically like sqrt(K) ulps of the partial sums, K in the worst case).
    atol = max(1e-3, 2.5e-7 * params["K"])
    return 1e-4, atol, f"f32 products summed over K = {params['K']} in another order than numpy"


CASES = [
    {"N": 256, "K": 512},
    {"N": 100, "K": 1000, "WT": "u3", "ZERO": 4, "SPLIT": 3},  # edges in N and in K
    {"N": 64, "K": 384, "WT": "f4e2m1", "ZERO": 0, "SPLIT": 5},  # a split past K: adds 0
    {"N": 128, "K": 256, "WT": "u4", "SPLIT": 1, "BN": 64},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
