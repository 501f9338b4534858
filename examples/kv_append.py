"""Run kv_append.lp and check it against numpy:  python examples/kv_append.py [--target cpu]

t new key rows per head, quantized per group of G features to QT codes with an f16 scale and
zero point, written at rows pos .. pos + t - 1 of the cache; every other row keeps its bytes.
The number of new tokens t is read at run time: each check draws its own (1 to 16: a decode
step, a tile of BT, a tile and a part).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    import lpir

    h, s, d, g, qt = (params[n] for n in ("H", "S", "D", "G", "QT"))
    t = int(rng.choice([n for n in (1, 3, 4, 7, 13, 16) if n <= s]))  # tokens of this step
    k = rng.standard_normal((t, h, d)).astype(np.float16)
    if t > 1:
        k[1, 0, :g] = 0.5  # a constant group: scale 0
    codes = rng.integers(0, 2**qt.nbits, (h, s, d), dtype=qt.code_numpy_dtype)
    old = rng.standard_normal((2, h, s, d // g)).astype(np.float16)  # rows a call must keep
    pos = int(rng.integers(0, s - t + 1))
    return [k, lpir.pack_codes(codes, qt), old[0], old[1], pos, t]


def reference(params, args):
    import lpir

    k, cache, scales, zeros, pos, t = args
    d, g, qt = (params[n] for n in ("D", "G", "QT"))
    top = np.float32(qt.max)
    x = k.astype(np.float32).reshape(t, -1, d // g, g)
    scale = ((x.max(axis=3) - x.min(axis=3)) / top).astype(np.float16)
    s = scale.astype(np.float32)
    safe = np.where(s > 0, s, np.float32(1.0))
    zp = np.clip(np.rint(-x.min(axis=3) / safe), 0, top)
    q = np.clip(np.rint(x / safe[..., None]) + zp[..., None], 0, top)
    cache, scales, zeros = lpir.unpack(cache).copy(), scales.copy(), zeros.copy()
    rows = slice(pos, pos + t)
    cache[:, rows] = q.reshape(t, -1, d).transpose(1, 0, 2)
    scales[:, rows] = scale.transpose(1, 0, 2)
    zeros[:, rows] = zp.astype(np.float16).transpose(1, 0, 2)
    return {1: cache, 2: scales, 3: zeros}


def tolerance(params):
    return 0.0, 0.0, "exact: max, min, one division per value and round half to even, as numpy"


CASES = [
    {},
    {"S": 64},
    {"QT": "u3", "D": 64, "G": 16, "H": 2, "S": 40},  # 3-bit codes straddle bytes
    {"QT": "u8", "H": 1, "S": 16},  # a cache of 16 rows: t may fill it
]

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
