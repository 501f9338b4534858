"""Run attention.lp and check it against numpy:  python examples/attention.py [--target cpu]

o = softmax(q k^T * scale) v per head, with the kernel's optional causal mask, in float64.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    dt = np.dtype(params["T"].numpy_dtype)
    shape = (params["H"], params["L"], params["D"])
    q, k, v = (rng.standard_normal(shape).astype(dt) for _ in range(3))
    return [q, k, v, np.zeros(shape, dt), np.float32(1 / np.sqrt(params["D"]))]


def reference(params, args):
    q, k, v, o, scale = args
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    scores = np.einsum("hqd,hkd->hqk", q, k) * np.float64(scale)
    length = params["L"]
    if params["CAUSAL"]:
        hidden = np.arange(length)[None, :] > np.arange(length)[:, None]
        scores = np.where(hidden[None], -np.inf, scores)
    weights = np.exp(scores - scores.max(axis=2, keepdims=True))
    weights /= weights.sum(axis=2, keepdims=True)
    return {3: np.einsum("hqk,hkd->hqd", weights, v).astype(o.dtype)}


def tolerance(params):
    # The kernel rounds the weights exp(s - m) to T before multiplying them with v (the tensor
    # cores' operands): each weight is off by up to half a unit in T's last place, so the
    # output, a weighted mean of v (|v| < ~5 for these normal samples), is off by up to u * 5;
    # then the output itself rounds to T (relative u). u = 2^-11 (f16) or 2^-8 (bf16).
    u = 2.0 ** -(params["T"].mantissa_bits + 1)
    return 2 * u, 6 * u, f"weights and outputs rounded to {params['T'].name} (u = {u:g})"


CASES = [
    {"H": 2, "L": 128},
    # L not a multiple of BQ or BKV; causal; 32 query rows over 4 warps (2 x 2 on tensor cores)
    {"H": 3, "L": 100, "CAUSAL": 1, "BQ": 32},
    {"H": 1, "L": 200, "D": 32, "T": "bf16", "BQ": 64, "BKV": 16},
    {"H": 2, "L": 96, "D": 128, "CAUSAL": 1, "BQ": 16, "BKV": 64},
    {"H": 2, "L": 130, "SHARED_KV": 0},  # each warp reads k and v itself
]

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
