"""Run gemv_splitk.lp and check it against numpy:  python examples/gemv_splitk.py [--target cpu]

y += x @ dequant(W).T for weights of any 1..8-bit type with one f32 scale per group of G, K
split over SPLIT blocks that add their partial sums into y atomically (y starts at zero here,
so the reference is gemv_wq's; so are the inputs and the tolerance: the split's partial sums
arrive in whatever order the blocks finish, one more order of f32 additions).
"""

from __future__ import annotations

import sys
from pathlib import Path

KERNEL = Path(__file__).with_suffix(".lp")
sys.path.insert(0, str(Path(__file__).parent))

from gemv_wq import make_inputs, reference, tolerance  # noqa: E402, F401

CASES = [
    {"N": 256, "K": 512},
    {"N": 100, "K": 1000, "WT": "u3", "ZERO": 4, "SPLIT": 3},  # edges in N and in K
    {"N": 64, "K": 384, "WT": "f4e2m1", "ZERO": 0, "SPLIT": 5},  # a split past K: adds 0
    {"N": 128, "K": 256, "WT": "u4", "SPLIT": 1, "BN": 64},
]

if __name__ == "__main__":
    from common import main

    sys.exit(main(KERNEL, sys.modules[__name__], CASES))
