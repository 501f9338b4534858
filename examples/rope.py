"""Run rope.lp and check it against numpy:  python examples/rope.py [--target cpu]

Rotary position embedding: each pair of a head's features turned by position * inv_freq[i],
pairs of neighbours (INTERLEAVED = 1) or of the two halves (INTERLEAVED = 0).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))


def make_inputs(params, rng):
    t, h, d, qt = params["T"], params["H"], params["D"], params["QT"]
    x = rng.standard_normal((t, h, d)).astype(qt.numpy_dtype)
    positions = rng.permutation(max(t, 1))[:t].astype(np.int32)  # any order, as in a batch
    inv_freq = (10000.0 ** (-np.arange(0, d, 2) / d)).astype(np.float32)
    return [x, positions, inv_freq, np.zeros((t, h, d), qt.numpy_dtype)]


def reference(params, args):
    x, positions, inv_freq, _ = args
    d = params["D"]
    # the angle as the kernel computes it: one f32 product; then float64 from there on
    angle = (positions.astype(np.float32)[:, None] * inv_freq[None, :]).astype(np.float64)
    c, s = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    values = x.astype(np.float64)
    if params["INTERLEAVED"]:
        a, b = values[..., 0::2], values[..., 1::2]
    else:
        a, b = values[..., : d // 2], values[..., d // 2 :]
    first, second = a * c - b * s, b * c + a * s
    out = np.empty_like(values)
    if params["INTERLEAVED"]:
        out[..., 0::2], out[..., 1::2] = first, second
    else:
        out[..., : d // 2], out[..., d // 2 :] = first, second
    return {3: out.astype(params["QT"].numpy_dtype)}


def tolerance(params):
    # f32 sin and cos within ~2 ulps, two products and a sum (maybe fused), then one rounding
    # to QT: half an ulp of QT plus a few f32 ulps of |x| (up to ~5).
    if params["QT"].name == "f32":
        return 1e-5, 4e-6, "f32 sin/cos within ulps, products maybe fused into FMAs"
    eps = float(params["QT"].eps)
    return eps, eps, f"one rounding to {params['QT'].name} after f32 math"


CASES = [
    {"T": 100, "H": 2, "D": 64},
    {"T": 37, "H": 3, "D": 128, "INTERLEAVED": 1, "QT": "f32"},  # tokens not a multiple of BT
    {"T": 50, "H": 1, "D": 32, "QT": "bf16", "BT": 8},
    {"T": 64, "H": 2, "D": 64, "INTERLEAVED": 1},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
