"""Run gemv_nf4.lp and check it against numpy:  python examples/gemv_nf4.py [--target cpu]

A batch-1 GEMV over NF4 weights as bitsandbytes stores them: two 4-bit codes a byte (the first
in the high nibble), bitsandbytes' 16-value NormalFloat codebook, one f32 absmax per block of
B weights. The reference looks the codes up in numpy and multiplies in f64.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")

#: bitsandbytes' NF4 codebook: the quantiles of a standard normal, scaled to [-1, 1].
NF4 = np.array(
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933235168, 0.5626170039176941, 0.7229568362236023, 1.0,
    ],
    np.float32,
)  # fmt: skip


def make_inputs(params, rng):
    n, k, b = params["N"], params["K"], params["B"]
    x = rng.standard_normal(k).astype(np.float32)
    codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
    w = (codes[:, 0::2] << 4) | codes[:, 1::2]
    absmax = rng.uniform(0.5, 2.0, (n, -(-k // b))).astype(np.float32)
    return [x, w, absmax, NF4.copy(), np.zeros(n, np.float32)]


def reference(params, args):
    x, w, absmax, codebook, _ = args
    n, k, b = params["N"], params["K"], params["B"]
    codes = np.empty((n, k), np.uint8)
    codes[:, 0::2], codes[:, 1::2] = w >> 4, w & 0x0F
    scales = np.repeat(absmax.astype(np.float64), b, axis=1)[:, :k]
    weights = codebook[codes].astype(np.float64) * scales
    return {4: (weights @ x.astype(np.float64)).astype(np.float32)}


def tolerance(params):
    # Each output is a sum of K f32 products; its rounding error grows with K (typically like
    # sqrt(K) ulps of the partial sums, K in the worst case), so the bound grows with K.
    atol = max(1e-3, 1e-6 * params["K"])
    return 1e-4, atol, f"f32 products summed over K = {params['K']} in another order than numpy"


CASES = [
    {"N": 256, "K": 512},
    {"N": 100, "K": 320},  # N not a multiple of BN, K not a multiple of BK
    {"N": 64, "K": 192, "B": 32, "BK": 64},
]

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
