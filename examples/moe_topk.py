"""Run moe_topk.lp and check it against numpy:  python examples/moe_topk.py [--target cpu]"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    """Logits on a grid of 0.5 (so rows hold equal probabilities, which the lower expert wins),
    in the kernel's dtype."""
    dt = np.dtype(params["T"].numpy_dtype)
    m, e, k = params["M"], params["E"], params["K"]
    logits = (np.round(rng.standard_normal((m, e)) * 4) / 2).astype(dt)
    return [logits, np.zeros((m, k), np.float32), np.full((m, k), -1, np.int32)]


def reference(params, args):
    logits = args[0].astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    chosen = np.argsort(-p, axis=1, kind="stable")[:, : params["K"]]
    top = np.take_along_axis(p, chosen, axis=1)
    if params["RENORM"] == 1:
        top = top / top.sum(axis=1, keepdims=True)
    return {1: top, 2: chosen.astype(np.int32)}


def tolerance(params):
    return (
        1e-5,
        1e-7,
        "the weights: f32 exp (within an ulp or two) and sums of E terms against float64; "
        "the ids compare exactly (equal logits give bitwise equal probabilities either way)",
    )


CASES = [
    {},
    {"M": 37, "E": 60, "BE": 64, "K": 4, "T": "bf16"},  # Qwen-MoE's 60 experts; rows past M
    {"M": 100, "E": 16, "BE": 16, "K": 4, "RENORM": 0, "T": "f32", "BM": 32},
    {"M": 50, "E": 64, "BE": 64, "K": 6},  # DeepSeek-V2's 6: 8 ids sorted, 6 stored
    {"M": 64, "E": 8, "BE": 8, "K": 3, "RENORM": 0, "T": "bf16", "BM": 16},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
