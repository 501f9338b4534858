"""Run gemv_wq.lp and check it against numpy:  python examples/gemv_wq.py [--target cpu]

y = x @ dequant(W).T for weights of any 1..8-bit type with one f32 scale per group of G.
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
    # Each output is a sum of K f32 products; its rounding error grows with K (typically like
    # sqrt(K) ulps of the partial sums, K in the worst case), so the bound grows with K.
    atol = max(1e-3, 2.5e-7 * params["K"])
    return 1e-4, atol, f"f32 products summed over K = {params['K']} in another order than numpy"


CASES = [
    {"N": 256, "K": 512},
    {"N": 100, "K": 384, "WT": "u3", "ZERO": 4},  # N not a multiple of BN; 3-bit weights
    {"N": 64, "K": 1000, "WT": "f4e2m1", "ZERO": 0},  # K not a multiple of BK
    {"N": 128, "K": 256, "WT": "i6", "ZERO": 0},
    {"N": 128, "K": 256, "WT": "f8e4m3", "ZERO": 0},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
