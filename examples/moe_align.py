"""Run moe_align.lp and check it against numpy:  python examples/moe_align.py [--target cpu]"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).with_suffix(".lp")


def make_inputs(params, rng):
    """Expert ids of M tokens' TOPK slots, a few of them -1 (an expert on another rank)."""
    m, topk, e, bs = params["M"], params["TOPK"], params["E"], params["BS"]
    pairs = m * topk
    size = pairs + e * (bs - 1)
    ids = rng.integers(0, e, pairs).astype(np.int32)
    ids[rng.random(pairs) < 0.05] = -1
    return [
        ids,
        np.full(size, -7, np.int32),
        np.full(-(-size // bs), -7, np.int32),
        np.zeros(1, np.int32),
    ]


def expert_ranges(params, ids):
    """Each expert's [start, end) in sorted_ids: its pairs, padded to a multiple of BS."""
    e, bs = params["E"], params["BS"]
    counts = np.bincount(ids[(ids >= 0) & (ids < e)], minlength=e)
    padded = -(-counts // bs) * bs
    ends = np.cumsum(padded)
    return ends - padded, ends


def reference(params, args):
    ids = args[0]
    e, bs = params["E"], params["BS"]
    starts, ends = expert_ranges(params, ids)
    sorted_ids = np.full(len(args[1]), len(ids), np.int32)
    expert_ids = np.full(len(args[2]), -1, np.int32)
    for expert in range(e):
        pairs = np.flatnonzero(ids == expert)  # (ascending: the canonical order)
        sorted_ids[starts[expert] : starts[expert] + len(pairs)] = pairs
        expert_ids[starts[expert] // bs : ends[expert] // bs] = expert
    return {1: sorted_ids, 2: expert_ids, 3: np.array([ends[-1]], np.int32)}


def canonical(params, outputs):
    """Each expert's pairs in ascending order: which pair takes which slot of its range is
    up to the threads' atomics."""
    ids, sorted_ids = outputs[0], outputs[1]
    for start, end in zip(*expert_ranges(params, ids)):
        sorted_ids[start:end] = np.sort(sorted_ids[start:end])
    return outputs


def tolerance(params):
    return (0.0, 0.0, "integers: exact, up to the order within each expert's range")


CASES = [
    {},
    {"M": 100, "TOPK": 2, "E": 6, "BS": 16},  # experts not a power of two; ranges of 0 pairs
    {"M": 333, "TOPK": 8, "E": 64, "BE": 64, "BS": 64},  # DeepSeek's 8 of 64, tiles of 64
    {"M": 1, "TOPK": 6, "E": 60, "BE": 64, "BS": 16, "BT": 64},  # one token (a decode step)
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
