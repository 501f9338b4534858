"""Run gemv_gptq.lp and check it against numpy:  python examples/gemv_gptq.py [--target cpu]

A batch-1 GEMV over GPTQ 4-bit weights with act-order: the reference dequantizes the weights in
their original row order (row k in group g_idx[k]) and multiplies in f64; the kernel reads the
rows sorted by group and x through the permutation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def pack_rows(codes: np.ndarray) -> np.ndarray:
    """GPTQ's qweight: 8 rows of 4-bit codes per i32 word, row 8r + j in bits 4j..4j+3."""
    k, n = codes.shape
    words = np.zeros((k // 8, n), np.uint32)
    for j in range(8):
        words |= codes[j::8].astype(np.uint32) << (4 * j)
    return words.view(np.int32)


def pack_columns(codes: np.ndarray) -> np.ndarray:
    """GPTQ's qzeros: 8 columns of 4-bit codes per i32 word, column 8c + j in bits 4j..4j+3."""
    groups, n = codes.shape
    words = np.zeros((groups, n // 8), np.uint32)
    for j in range(8):
        words |= codes[:, j::8].astype(np.uint32) << (4 * j)
    return words.view(np.int32)


def unpack(words: np.ndarray, axis: int) -> np.ndarray:
    """The 4-bit codes of GPTQ words, 8 per word along `axis`."""
    fields = [(words.view(np.uint32) >> (4 * j)) & 15 for j in range(8)]
    stacked = np.stack(fields, axis=axis + 1)
    shape = list(words.shape)
    shape[axis] *= 8
    return stacked.reshape(shape)


def make_inputs(params, rng):
    n, k, g = params["N"], params["K"], params["G"]
    groups = k // g
    g_idx = rng.permutation(np.arange(k) // g).astype(np.int32)  # act-order: any row any group
    codes = rng.integers(0, 16, (k, n))  # in the original row order
    zeros = rng.integers(1, 16, (groups, n))  # stored minus one
    scales = rng.uniform(0.005, 0.02, (groups, n)).astype(np.float16)
    perm = np.argsort(g_idx, kind="stable").astype(np.int32)  # rows sorted by group
    x = rng.standard_normal(k).astype(np.float16)
    qweight = pack_rows(codes[perm])
    return [x, perm, qweight, pack_columns(zeros - 1), scales, np.zeros(n, np.float32)]


def reference(params, args):
    x, perm, qweight, qzeros, scales, _ = args
    g = params["G"]
    codes = np.empty_like(unpack(qweight, 0))
    codes[perm] = unpack(qweight, 0)  # back to the original row order
    g_idx = np.empty(len(perm), np.int64)
    g_idx[perm] = np.arange(len(perm)) // g  # the group of each original row
    zeros = unpack(qzeros, 1).astype(np.float64) + 1
    s = scales.astype(np.float64)
    w = (codes - zeros[g_idx]) * s[g_idx]
    return {5: (x.astype(np.float64) @ w).astype(np.float32)}


def tolerance(params):
    # f32 products summed over K in another order than numpy's f64 sum.
    atol = max(1e-3, 2.5e-7 * params["K"])
    return 1e-4, atol, f"f32 products summed over K = {params['K']} in another order than numpy"


CASES = [
    {"N": 256, "K": 512, "G": 128},
    {"N": 200, "K": 256, "G": 32, "BK": 32},  # N not a multiple of BN; small groups
    {"N": 8, "K": 64, "G": 64, "BN": 64, "BK": 64},  # one word of columns, one group
]

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
