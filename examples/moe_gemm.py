"""Run moe_gemm.lp and check it against numpy:  python examples/moe_gemm.py [--target cpu]

A batch of tokens (its size drawn per call, 1 to 24: read at run time) routed to TOPK of E
experts, the (token, slot) pairs sorted by expert and padded to tiles as vLLM's
moe_align_block_size does, then one grouped GEMM over the experts' low-bit weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from common import random_weights  # noqa: E402


def align(experts: np.ndarray, e: int, bm: int, numel: int) -> tuple:
    """sorted_ids, expert_ids and the used length: each expert's pairs in order, padded with
    numel to a multiple of bm, then numel up to the host's bound em = numel + e * (bm - 1)
    (the grid's size, known without reading the routing back)."""
    sorted_ids, expert_ids = [], []
    for expert in range(e):
        mine = list(np.nonzero(experts == expert)[0])
        mine += [numel] * (-len(mine) % bm)
        sorted_ids += mine
        expert_ids += [expert] * (len(mine) // bm)
    used = len(sorted_ids)
    em = numel + e * (bm - 1)
    sorted_ids += [numel] * (em - used)
    expert_ids += [0] * (-(-em // bm) - len(expert_ids))
    return np.array(sorted_ids, np.int32), np.array(expert_ids, np.int32), used, em


def make_inputs(params, rng):
    e, k, n, g, topk, bm = (params[x] for x in ("E", "K", "N", "G", "TOPK", "BM"))
    dt = np.dtype(params["T"].numpy_dtype)
    t = int(rng.integers(1, 25))  # tokens of this step: read at run time
    a = (rng.standard_normal((t, k)) * 0.5).astype(dt)
    w, _ = random_weights(params["WT"], (e, k, n), rng)
    s = rng.uniform(0.01, 0.05, size=(e, k // g, n)).astype(dt)
    experts = np.array([rng.choice(e, topk, replace=False) for _ in range(t)]).reshape(-1)
    numel = t * topk
    sorted_ids, expert_ids, used, em = align(experts, e, bm, numel)
    c = np.full((numel, n), np.nan, dt)
    used_ = np.array([used], np.int32)
    return [a, w, s, sorted_ids, expert_ids, used_, c, t, em, len(expert_ids), numel]


def reference(params, args):
    a, w, s, sorted_ids, expert_ids = args[:5]
    k, g, topk, bm = (params[x] for x in ("K", "G", "TOPK", "BM"))
    dt, t = params["WT"], params["T"].numpy_dtype
    values = dt.decode(w.codes()) if dt.is_float else w.unpack()
    # dequantized in T (each product rounded to T), as the kernel does; f32 accumulation
    shifted = (values.astype(t) - np.asarray(params["ZERO"], t)).astype(t)
    dequantized = (shifted * np.repeat(s, g, axis=1)[:, :k]).astype(t).astype(np.float32)
    numel = args[-1]
    c = np.zeros((numel, args[6].shape[1]), np.float32)
    for position, pair in enumerate(sorted_ids):
        if pair < numel:
            expert = expert_ids[position // bm]
            c[pair] = a[pair // topk].astype(np.float32) @ dequantized[expert]
    return {6: c.astype(t)}


def tolerance(params):
    return 1e-2, 1e-2, f"{params['T'].name} result of an f32 sum in another order"


CASES = [
    {"E": 4, "K": 256, "N": 128},
    {"WT": "u3", "E": 3, "K": 128, "N": 96, "G": 64, "ZERO": 4, "TOPK": 1},  # N past a tile
    {"WT": "f4e2m1", "T": "bf16", "E": 4, "K": 128, "N": 64, "G": 32, "ZERO": 0, "BM": 8},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
