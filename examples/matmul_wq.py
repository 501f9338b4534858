"""Run matmul_wq.lp and check it against numpy:  python examples/matmul_wq.py [--target cpu]

C = A @ dequant(B) with f16 (or, T = bf16, bf16) activations, low-bit weights and group scales
of the activations' type.
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
    t = params["T"].numpy_dtype
    a = (rng.standard_normal((m, k)) * 0.5).astype(t)
    b, _ = random_weights(params["WT"], (k, n), rng)
    s = rng.uniform(0.01, 0.05, size=(-(-k // g), n)).astype(t)
    return [a, b, s, np.zeros((m, n), t)]


def reference(params, args):
    a, b, s, _ = args
    k, g = params["K"], params["G"]
    dt = params["WT"]
    values = dt.decode(b.codes()) if dt.is_float else b.unpack()
    # The kernel dequantizes in T (each product rounded to T) and accumulates in f32.
    t = params["T"].numpy_dtype
    scales = np.repeat(s, g, axis=0)[:k]
    shifted = (values.astype(t) - np.asarray(params["ZERO"], t)).astype(t)
    dequantized = (shifted * scales).astype(t)
    return {3: (a.astype(np.float32) @ dequantized.astype(np.float32)).astype(t)}


def tolerance(params):
    if params["T"].name == "bf16":
        return 1e-2, 1e-2, "bf16 result (half ulp 2^-8 relative) of an f32 sum in another order"
    return 1e-2, 1e-2, "f16 result (half ulp 2^-11 relative) of an f32 sum in another order"


CASES = [
    {"M": 64, "N": 64, "K": 128},
    {"M": 100, "N": 64, "K": 256, "WT": "u3", "ZERO": 4},  # M not a multiple of BM
    {"M": 16, "N": 96, "K": 128, "WT": "f4e2m1", "ZERO": 0},  # N not a multiple of BN
    {"M": 70, "N": 128, "K": 256, "T": "bf16"},  # bf16 activations and scales
    {"M": 40, "N": 80, "K": 256, "WT": "u8", "ZERO": 128, "T": "bf16", "BN": 128},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
