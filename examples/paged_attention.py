"""Run paged_attention.lp and check it against numpy:  python examples/paged_attention.py

One decode step of attention over a paged KV cache: the cache is [pages, HKV, PS, D] (each
page holds each KV head's PS tokens together, head-major as vLLM stores it); sequence b's keys
and values for token t are page block_table[b, t / PS], slot t % PS, ctx_len[b] tokens of
them; G query heads share each KV head. The reference gathers the pages and takes
softmax(q k^T * scale) v in float64. Cache slots no sequence uses hold NaN, so a kernel that
reads (or weights) one fails the check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def context_lengths(params, rng) -> np.ndarray:
    """The edge lengths 0, 1, PS and PS + 1 first (within the capacity), then random ones."""
    batch, capacity, page = params["B"], params["MAXP"] * params["PS"], params["PS"]
    edges = [min(n, capacity) for n in (0, 1, page, page + 1)]
    lengths = list(rng.integers(1, capacity + 1, size=batch))
    lengths[: len(edges)] = edges[:batch]
    return np.array(lengths, np.int32)


def make_inputs(params, rng):
    batch, heads, kv_heads, depth = (params[n] for n in ("B", "H", "HKV", "D"))
    page, pages_per_sequence, pages_in_cache = params["PS"], params["MAXP"], params["PAGES"]
    dt = np.dtype(params["KT"].numpy_dtype)
    lengths = context_lengths(params, rng)
    needed = -(-lengths // page)
    pages = rng.permutation(pages_in_cache)[: needed.sum()]  # each sequence's pages, shuffled
    table = np.full((batch, pages_per_sequence), -1, np.int32)
    used = np.zeros((pages_in_cache, page), bool)  # the slots some sequence's tokens fill
    for b, start in enumerate(np.cumsum(needed) - needed):
        table[b, : needed[b]] = pages[start : start + needed[b]]
        t = np.arange(lengths[b])
        used[table[b, t // page], t % page] = True
    cache = rng.standard_normal((2, pages_in_cache, kv_heads, page, depth)).astype(dt)
    cache[:, ~np.broadcast_to(used[:, None, :], cache.shape[1:4])] = np.nan
    q = rng.standard_normal((batch, heads, depth)).astype(dt)
    out = np.zeros((batch, heads, depth), np.dtype(params["OT"].numpy_dtype))
    return [q, cache[0], cache[1], table, lengths, out, np.float32(1 / np.sqrt(depth))]


def gather(cache, pages, slots) -> np.ndarray:
    """The [L, HKV, D] keys (values) of the tokens in `pages` at `slots`, as float64."""
    return cache[pages, :, slots].astype(np.float64)


def reference(params, args):
    q, k_cache, v_cache, table, lengths, out, scale = args
    page, group = params["PS"], params["H"] // params["HKV"]
    expected = np.zeros(out.shape, np.float64)
    for b, length in enumerate(lengths):
        t = np.arange(length)
        pages, slots = table[b, t // page], t % page
        k = np.repeat(gather(k_cache, pages, slots), group, axis=1)  # [L, H, D]
        v = np.repeat(gather(v_cache, pages, slots), group, axis=1)
        scores = np.einsum("lhd,hd->hl", k, q[b].astype(np.float64)) * np.float64(scale)
        if length:
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            expected[b] = np.einsum("hl,lhd->hd", weights, v)
    return {5: expected.astype(out.dtype)}


def tolerance(params):
    # Scores, weights and sums are f32 (the inputs' f16/bf16 values are exact in f32), so the
    # f32 rounding of a few thousand terms' sums and of exp stays near 1e-5 of the output
    # (a weighted mean of v: |v| < ~5); an output of KT then rounds once more (relative u,
    # u = 2^-11 for f16, 2^-8 for bf16).
    out = params["OT"]
    u = 2.0 ** -(out.mantissa_bits + 1) if out.name != "f32" else 0.0
    return 2 * u + 1e-5, 1e-4 + 4 * u, f"f32 scores and sums; outputs of {out.name}"


CASES = [
    {},  # contexts 0, 1, PS, PS + 1 (every case's first four) and random ones; GQA, G = 4
    # bf16, G = 1, D and the contexts no multiple of a tile; a step spans 4 pages; GPU-shaped
    {"KT": "bf16", "OT": "bf16", "B": 5, "HKV": 8, "D": 96, "PS": 8, "BT": 32, "THREADS": 64},
    {"KT": "f32", "B": 4, "H": 6, "HKV": 2, "D": 40, "MAXP": 3},  # G = 3, D = 8 x 5
    # a step is half a page; 128 threads; outputs rounded to f16
    {"B": 6, "H": 2, "HKV": 1, "D": 128, "PS": 32, "MAXP": 4, "OT": "f16", "THREADS": 128},
]

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
