"""Run gemv_mx.lp and check it against numpy:  python examples/gemv_mx.py [--target cpu]

y = x @ dequant(W).T for microscaled weights: blocks of G weights of type WT sharing one scale,
an e8m0 exponent (ST = u8, the OCP MX formats) or a float (ST = f8e4m3 for NVFP4).
"""

from __future__ import annotations

import sys
from pathlib import Path

import ml_dtypes
import numpy as np

import lpir

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from common import random_weights  # noqa: E402


def make_inputs(params, rng):
    n, k, g, st = params["N"], params["K"], params["G"], params["ST"]
    x = rng.standard_normal(k).astype(np.float32)
    w, _ = random_weights(params["WT"], (n, k), rng)
    blocks = (n, -(-k // g))
    if st.is_float:  # positive scales, packed codes like the weights
        s = lpir.pack_codes(st.encode(rng.uniform(0.01, 2.0, size=blocks).astype(np.float32)), st)
    else:  # e8m0 exponents around 2^0, a few 2^-127 (subnormal in f32) and 2^73 (large, yet
        # 448 x 2^73 times x still far from f32's overflow)
        s = rng.integers(117, 137, size=blocks).astype(np.uint8)
        s.flat[:: max(1, s.size // 7)] = 0
        s.flat[1 :: max(1, s.size // 5)] = 200
    return [x, w, s, np.zeros(n, np.float32)]


def block_scales(params, s) -> np.ndarray:
    """The scales' values in float64: e8m0 through ml_dtypes, float codes decoded."""
    if params["ST"].is_float:
        return params["ST"].decode(s.codes()).astype(np.float64)
    return s.view(ml_dtypes.float8_e8m0fnu).astype(np.float64)


def _dequantized(params, w, s) -> np.ndarray:
    """The weights' values times their blocks' scales, in float64."""
    k, g, wt = params["K"], params["G"], params["WT"]
    values = wt.decode(w.codes()).astype(np.float64)
    scales = np.repeat(block_scales(params, s), g, axis=1)[:, :k]
    with np.errstate(over="ignore", invalid="ignore"):
        return values * scales


def reference(params, args):
    x, w, s, _ = args
    with np.errstate(over="ignore", invalid="ignore"):
        y = _dequantized(params, w, s) @ x.astype(np.float64)
    return {3: y.astype(np.float32)}


def tolerance(params, args):
    # Each output is a sum of K f32 products (w * scale exact in f32, times x one rounding)
    # in another order than numpy's. Rows mix blocks of 2^-127 to 2^73 and their terms
    # cancel, so an output may be far smaller than its terms: the bound is on the sum of the
    # terms' magnitudes, 8 sqrt(K) units of f32 roundoff of it (a sum in any order errs by
    # about sqrt(K) roundings of its partial sums; one wrong term of an average row is
    # sqrt(K) / 8 times that), besides 1e-4 of the output itself.
    x, w, s, _ = args
    magnitudes = np.abs(_dequantized(params, w, s)) @ np.abs(x.astype(np.float64))
    atol = 8 * np.sqrt(params["K"]) * 2.0**-24 * magnitudes + 1e-30
    why = f"f32 products summed over K = {params['K']} in another order"
    return 1e-4, atol, why + ": 8 sqrt(K) roundings of each sum of |terms|"


CASES = [
    {"N": 256, "K": 512},
    {"N": 100, "K": 400, "WT": "f6e3m2"},  # N, K not multiples of the tile; K of its block
    {"N": 64, "K": 256, "WT": "f8e4m3", "BK": 64},
    {"N": 96, "K": 384, "WT": "f4e2m1", "ST": "f8e4m3", "G": 16},  # NVFP4
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
