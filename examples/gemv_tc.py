"""Run gemv_tc.lp and check it against numpy:  python examples/gemv_tc.py [--target cpu]

y = dequant(W) @ x on tensor cores (f16 x, f32 accumulation) for weights of any 1..8-bit type
with one f32 scale per group of G (with SPLIT > 1 added into y, which starts at zero here).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

import gemv_wq  # noqa: E402
from gemv_wq import dequantized, tolerance  # noqa: E402, F401  (the same f32 sums over K)


def make_inputs(params, rng):
    x, w, s, y = gemv_wq.make_inputs(params, rng)
    return [x.astype(np.float16), w, s, y]  # gemv_wq's inputs with f16 x


def reference(params, args):
    x, w, s, _ = args
    return {3: (dequantized(params, w, s) @ x.astype(np.float64)).astype(np.float32)}


CASES = [
    {"N": 256, "K": 512},
    {"N": 100, "K": 384, "WT": "u3", "ZERO": 4},  # N not a multiple of BN; 3-bit weights
    {"N": 64, "K": 1000, "WT": "f4e2m1", "ZERO": 0},  # K not a multiple of BK
    {"N": 128, "K": 256, "WT": "i6", "ZERO": 0},
    {"N": 128, "K": 256, "WT": "f8e4m3", "ZERO": 0},
    {"N": 100, "K": 1000, "WT": "u4", "ZERO": 8, "SPLIT": 3},  # K split over 3 blocks, edges
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
