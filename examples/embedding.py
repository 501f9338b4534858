"""Run embedding.lp and check it against numpy:  python examples/embedding.py [--target cpu]

A batch of token ids (some outside the table: padding) looked up in a quantized embedding
table. The number of tokens is not a parameter: each call draws its own (1 to 40 tokens), and
one compiled kernel serves them all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from common import random_weights  # noqa: E402


def make_inputs(params, rng):
    v, d, g = params["V"], params["D"], params["G"]
    table, _ = random_weights(params["WT"], (v, d), rng)
    scales = (rng.random((v, d // g)) * 0.1).astype(np.float16)
    n = int(rng.integers(1, 41))  # tokens of this call: read at run time
    ids = rng.integers(-2, v + 2, n).astype(np.int32)  # a few outside the table
    out = np.full((n, d), np.nan, np.dtype(params["OT"].numpy_dtype))
    return [table, scales, ids, out, n]


def reference(params, args):
    table, scales, ids = args[:3]
    v, d, g, zero, dt = (params[name] for name in ("V", "D", "G", "ZERO", "WT"))
    values = dt.decode(table.codes()) if dt.is_float else table.unpack()
    values = values.astype(np.float32)
    inside = (ids >= 0) & (ids < v)
    rows = np.clip(ids, 0, v - 1)
    codes = np.where(inside[:, None], values[rows], np.float32(0.0)).reshape(-1, d // g, g)
    s = np.where(inside[:, None], scales[rows].astype(np.float32), np.float32(0.0))
    result = ((codes - np.float32(zero)) * s[:, :, None]).reshape(-1, d)
    return {3: result.astype(np.dtype(params["OT"].numpy_dtype))}


def tolerance(params):
    return 0.0, 0.0, "exact: one f32 subtraction and product per value, rounded once to OT"


CASES = [
    {"V": 300, "D": 256},
    {"WT": "u3", "V": 50, "D": 192, "G": 64, "ZERO": 4, "OT": "f32"},  # 3-bit rows in bytes
    {"WT": "f4e2m1", "V": 40, "D": 128, "G": 32, "ZERO": 0, "OT": "bf16", "BT": 4},
    {"WT": "u8", "V": 20, "D": 512, "ZERO": 128, "BT": 1},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
