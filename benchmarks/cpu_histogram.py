"""A block histogram in shared memory on the CPU, beside numpy's bincount.

    python benchmarks/cpu_histogram.py                    # 2**20 u8 values into 256 bins
    python benchmarks/cpu_histogram.py --n 65536 --block 1024 --repeat 200

Each block counts its BN u8 values into 256 shared u32 bins (`atomic_add` into a shared tile:
bins repeat within a thread and across threads), then adds its bins into the global counts.
Timed in turn with `np.bincount(x, minlength = 256)` (one call of each per round, --repeat
rounds after a warm-up, medians in ms, LPIR_NUM_THREADS=1 unless set); the counts are checked
against bincount's first. tests/test_shared_atomics.py's kernel also keeps each bin's extremes
and a float sum (and bins by `v % BINS`, 0 for a u8 BINS of 256), so it is not this one.
"""

from __future__ import annotations

import os

os.environ.setdefault("LPIR_NUM_THREADS", "1")

import argparse

import numpy as np
from cpu_gemv import round_robin

import lpir

HISTOGRAM = """
kernel histogram[N = 1000, BN = 4096, BINS = 256](x: global u8[N], counts: global u32[BINS])
    blocks(cdiv(N, BN)) threads(64) {
    c = shared<u32>[BINS]
    store(c, zeros<u32>[BINS])
    n = block.x * BN
    v = load(x[n :+ BN])
    inside = arange(BN) < N - n
    atomic_add(c[cast<i32>(v)], ones<u32>[BN], mask = inside)
    atomic_add(counts[0 :+ BINS], load(c))
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2**20, help="values to count")
    parser.add_argument("--block", type=int, default=4096, help="values a block counts (BN)")
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    x = np.random.default_rng(0).integers(0, 256, args.n).astype(np.uint8)
    kernel = lpir.compile(HISTOGRAM, target="cpu", N=args.n, BN=args.block)
    counts = np.zeros(256, np.uint32)
    kernel(x, counts)
    assert np.array_equal(counts, np.bincount(x, minlength=256))
    calls = {"lpir": lambda: kernel(x, counts), "bincount": lambda: np.bincount(x, minlength=256)}
    times = round_robin(calls, args.repeat)
    lpir_ms, numpy_ms = times["lpir"] * 1e3, times["bincount"] * 1e3
    print(f"{'n':>9}{'BN':>7}{'lpir ms':>10}{'bincount ms':>13}{'ratio':>8}")
    print(f"{args.n:>9}{args.block:>7}{lpir_ms:>10.3f}{numpy_ms:>13.3f}{lpir_ms / numpy_ms:>8.2f}")


if __name__ == "__main__":
    main()
