"""Run quantize.lp and check it against numpy:  python examples/quantize.py [--target cpu]

Per group of G elements of a row: s = max|x| / (max(WT) - ZERO), q = encode(x / s).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    import lpir

    m, n, g = params["M"], params["N"], params["G"]
    x = rng.standard_normal((m, n)).astype(np.float32)
    x[0, :g] = 0.0  # an all-zero group: its scale is 0
    dt = params["WT"]
    q = lpir.pack_codes(np.zeros((m, n), dtype=dt.code_numpy_dtype), dt)
    return [x, q, np.zeros((m, -(-n // g)), np.float32)]


def reference(params, args):
    x = args[0]
    dt, g, zero = params["WT"], params["G"], params["ZERO"]
    m, n = x.shape
    groups = -(-n // g)
    padded = np.zeros((m, groups * g), np.float32)
    padded[:, :n] = x
    amax = np.abs(padded).reshape(m, groups, g).max(axis=2)
    scale = (amax / np.float32(dt.max - zero)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
    v = (x / np.repeat(safe, g, axis=1)[:, :n]).astype(np.float32)
    if dt.is_float:
        q = dt.decode(dt.encode(v))
    else:
        q = np.clip(np.rint(v) + zero, dt.min, dt.max).astype(dt.numpy_dtype)
    return {1: q, 2: scale}


def tolerance(params):
    return 0.0, 0.0, "exact: max, one division and a correctly rounded encode, as in numpy"


CASES = [
    {"M": 64, "N": 128},
    {"M": 50, "N": 100, "WT": "i3"},  # partial groups; 3-bit codes straddle bytes
    {"M": 32, "N": 64, "WT": "f4e2m1"},
    {"M": 32, "N": 96, "WT": "u5", "ZERO": 16},
    {"M": 16, "N": 64, "WT": "f6e2m3"},
]

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
