"""Run greedy.lp and check it against numpy:  python examples/greedy.py [--target cpu]"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    """Logits on a coarse grid, so that rows hold equal largest values; a NaN in row 0 and,
    where there are three rows or more, a row of NaNs only."""
    dt = np.dtype(params["T"].numpy_dtype)
    m, v = params["M"], params["V"]
    logits = (np.round(rng.standard_normal((m, v)) * 2) / 2).astype(dt)
    logits[0, rng.integers(0, v)] = np.nan
    if m >= 3:
        logits[2, :] = np.nan
    return [logits, np.full(m, -1, np.int32)]


def reference(params, args):
    logits = args[0].astype(np.float32)
    # NaNs passed over; a row of NaNs gives 0, as numpy's argmax of a row of -inf does
    return {1: np.argmax(np.where(np.isnan(logits), -np.inf, logits), axis=1).astype(np.int32)}


def tolerance(params):
    return 0.0, 0.0, "positions compare exactly"


CASES = [
    {},
    {"M": 5, "V": 1000, "BV": 256, "T": "f16"},  # a vocabulary that the chunks do not divide
    {"M": 3, "V": 50257, "BM": 2, "T": "bf16"},  # GPT-2's vocabulary; rows past M
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
