"""Run gemv_zeros.lp and check it against numpy:  python examples/gemv_zeros.py [--target cpu]

y = x @ dequant(W).T for weights of any 1..8-bit type with a zero point and a scale per group
of G (GPTQ's and AWQ's asymmetric quantization, stored along K).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from common import random_weights  # noqa: E402


def make_inputs(params, rng):
    n, k, g = params["N"], params["K"], params["G"]
    groups = -(-k // g)
    x = rng.standard_normal(k).astype(np.float32)
    w, _ = random_weights(params["WT"], (n, k), rng)
    s = rng.uniform(0.005, 0.02, size=(n, groups)).astype(np.float32)
    zt = params["ZT"]
    if zt.is_float:  # zero points of f16/f32: within the codes' range, not whole numbers
        z = rng.uniform(0, 2 ** params["WT"].nbits - 1, size=(n, groups)).astype(zt.numpy_dtype)
    else:
        z, _ = random_weights(zt, (n, groups), rng)
    return [x, w, s, z, np.zeros(n, np.float32)]


def _values(dt, array):
    """The values a tensor of `dt` holds (packed codes decoded), in float64."""
    if hasattr(array, "codes"):
        return (dt.decode(array.codes()) if dt.is_float else array.unpack()).astype(np.float64)
    return array.astype(np.float64)


def reference(params, args):
    x, w, s, z, _ = args
    k, g = params["K"], params["G"]
    values = _values(params["WT"], w)
    zeros = np.repeat(_values(params["ZT"], z), g, axis=1)[:, :k]
    scales = np.repeat(s.astype(np.float64), g, axis=1)[:, :k]
    return {4: ((values - zeros) * scales @ x.astype(np.float64)).astype(np.float32)}


def tolerance(params):
    # Each output is a sum of K f32 products (the subtraction and the scaling exact or
    # rounded once in f32); the bound grows with K as gemv_wq's does.
    atol = max(1e-3, 2.5e-7 * params["K"])
    return 1e-4, atol, f"f32 products summed over K = {params['K']} in another order than numpy"


CASES = [
    {"N": 256, "K": 512},
    {"N": 100, "K": 384, "WT": "u3", "ZT": "f16"},  # N not a multiple of BN; 3-bit weights
    {"N": 64, "K": 320, "WT": "i4", "ZT": "f32", "G": 64, "BK": 64},  # K not a multiple of BK
    {"N": 128, "K": 256, "WT": "u8", "ZT": "u8"},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
