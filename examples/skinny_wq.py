"""Run skinny_wq.lp and check it against numpy:  python examples/skinny_wq.py [--target cpu]

y = x @ dequant(W).T for a few rows of activations x (f16, or bf16 with T = bf16) and weights
of any 1..8-bit type with one f32 scale per group of G (f32 accumulation on tensor cores on the
GPU, bf16 dot-product instructions on CPUs with AVX512-BF16; with SPLIT > 1 added into y,
which starts at zero here).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from common import random_weights  # noqa: E402
from gemv_wq import dequantized, tolerance  # noqa: E402, F401  (the same f32 sums over K)


def make_inputs(params, rng):
    m, n, k, g = params["M"], params["N"], params["K"], params["G"]
    x = rng.standard_normal((m, k)).astype(params["T"].numpy_dtype)
    w, _ = random_weights(params["WT"], (n, k), rng)
    s = rng.uniform(0.005, 0.02, size=(n, -(-k // g))).astype(np.float32)
    return [x, w, s, np.zeros((m, n), np.float32)]


def reference(params, args):
    x, w, s, _ = args
    return {3: (x.astype(np.float64) @ dequantized(params, w, s).T).astype(np.float32)}


CASES = [
    {"M": 16, "N": 256, "K": 512},
    {"M": 5, "N": 100, "K": 384, "WT": "u3", "ZERO": 4},  # M, N not multiples of the tile
    {"M": 1, "N": 64, "K": 1000, "WT": "f4e2m1", "ZERO": 0},  # K not a multiple of BK
    {"M": 40, "N": 128, "K": 256, "WT": "i6", "ZERO": 0},  # three blocks of rows of x
    {"M": 8, "N": 128, "K": 256, "WT": "f8e4m3", "ZERO": 0, "MB": 8},
    {"M": 20, "N": 100, "K": 1000, "WT": "u4", "ZERO": 8, "SPLIT": 3},  # K over 3 blocks
    {"M": 70, "N": 100, "K": 384, "WT": "u5", "ZERO": 16, "MB": 64, "XS": 1},  # x via shared
    {"M": 4, "N": 128, "K": 512, "WT": "u4", "T": "bf16"},  # bf16 activations
    {"M": 3, "N": 100, "K": 1000, "WT": "u8", "ZERO": 128, "T": "bf16", "XS": 1},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
