"""Run matmul_wq.lp and check it against numpy:  python examples/matmul_wq.py [--target cpu]

C = A @ dequant(B) with f16 activations, low-bit weights and f16 group scales.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from common import random_weights  # noqa: E402


def make_inputs(params, rng):
    m, n, k, g = params["M"], params["N"], params["K"], params["G"]
    a = (rng.standard_normal((m, k)) * 0.5).astype(np.float16)
    b, _ = random_weights(params["WT"], (k, n), rng)
    s = rng.uniform(0.01, 0.05, size=(-(-k // g), n)).astype(np.float16)
    return [a, b, s, np.zeros((m, n), np.float16)]


def reference(params, args):
    a, b, s, _ = args
    k, g = params["K"], params["G"]
    dt = params["WT"]
    values = dt.decode(b.codes()) if dt.is_float else b.unpack()
    # The kernel dequantizes in f16 (each product rounded to f16) and accumulates in f32.
    scales = np.repeat(s, g, axis=0)[:k]
    shifted = (values.astype(np.float16) - np.float16(params["ZERO"])).astype(np.float16)
    b16 = (shifted * scales).astype(np.float16)
    return {3: (a.astype(np.float32) @ b16.astype(np.float32)).astype(np.float16)}


def tolerance(params):
    return 1e-2, 1e-2, "f16 result (half ulp 2^-11 relative) of an f32 sum in another order"


CASES = [
    {"M": 64, "N": 64, "K": 128},
    {"M": 100, "N": 64, "K": 256, "WT": "u3", "ZERO": 4},  # M not a multiple of BM
    {"M": 16, "N": 96, "K": 128, "WT": "f4e2m1", "ZERO": 0},  # N not a multiple of BN
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
