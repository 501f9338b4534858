"""Run dequantize.lp and check it against numpy:  python examples/dequantize.py [--target cpu]"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from common import random_weights  # noqa: E402


def make_inputs(params, rng):
    m, n, g = params["M"], params["N"], params["G"]
    q, _ = random_weights(params["WT"], (m, n), rng)
    s = rng.uniform(0.5, 2.0, size=(m, -(-n // g))).astype(np.float32)
    return [q, s, np.zeros((m, n), np.float32)]


def reference(params, args):
    q, s, _ = args
    dt, g, n = params["WT"], params["G"], params["N"]
    values = (
        dt.decode(q.codes()).astype(np.float32) if dt.is_float else q.unpack().astype(np.float32)
    )
    scales = np.repeat(s, g, axis=1)[:, :n]
    return {2: ((values - np.float32(params["ZERO"])) * scales).astype(np.float32)}


def tolerance(params):
    return 0.0, 0.0, "exact: decoding is exact and each output is one f32 rounding"


CASES = [
    {"M": 64, "N": 128},
    {"M": 50, "N": 100, "WT": "f6e3m2"},  # neither dimension divides the tile
    {"M": 32, "N": 64, "WT": "u5", "ZERO": 16},
    {"M": 16, "N": 96, "WT": "f8e5m2"},
    {"M": 16, "N": 64, "WT": "f3e1m1"},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
