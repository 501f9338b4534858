"""Scans and sorts on the CPU: lpir's `cumsum` and `argsort` side by side with numpy's.

    python benchmarks/cpu_scans.py                            # rows of 4096 and 64
    python benchmarks/cpu_scans.py --rows 256 --widths 1024 --repeat 5

cumsum: each row of an f32 matrix [M, N] scanned, one row a block over 128 threads (each
thread scans a run of N / 128 and the runs' totals are combined through shared memory), beside
`np.cumsum(x, axis=1)`; it is bound by memory: the floor is its bytes (x read, y written) over
the copy bandwidth. argsort: each row of [M, W] sorted descending (a top-k's first step), 64
rows a block, beside `np.argsort(-x, axis=1, kind="stable")`. Contenders are timed in turn
(`cpu_gemv.round_robin`); medians of the rounds; ratios below 1: lpir is faster. The last
column is the largest relative error of the cumsum (f32 sums in another order than float64's)
and, for the sort, the fraction of positions that differ from numpy's (0: the same order).
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
import os

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import copy_bandwidth, round_robin, timing_columns
import numpy as np

import lpir

CUMSUM = """
kernel rows_cumsum[M = 64, N = 4096](x: global f32[M, N], y: global f32[M, N])
    blocks(M) threads(128) {
    store(y[block.x, 0 :+ N], cumsum(load(x[block.x, 0 :+ N])))
}
"""

ARGSORT = """
kernel rows_argsort[M = 64, W = 64, BM = 64](x: global f32[M, W], ids: global i32[M, W])
    blocks(cdiv(M, BM)) threads(64) {
    rows = block.x * BM
    order = argsort(load(x[rows :+ BM, 0 :+ W]), axis = 1, descending = true)
    store(ids[rows :+ BM, 0 :+ W], order)
}
"""


def bench_cumsum(m: int, n: int, repeat: int, bandwidth: float, rng) -> None:
    x = rng.standard_normal((m, n)).astype(np.float32)
    y = np.zeros_like(x)
    kernel = lpir.compile(CUMSUM, target="cpu", M=m, N=n)
    kernel(x, y)
    wanted = np.cumsum(x.astype(np.float64), axis=1)
    error = float(np.abs(y - wanted).max() / np.abs(wanted).max())
    seconds = round_robin(
        {"lpir": lambda: kernel(x, y), "numpy": lambda: np.cumsum(x, axis=1)}, repeat
    )
    columns = timing_columns(seconds, "lpir", 2 * x.nbytes / bandwidth, peers=("numpy",))
    print(f"  {'cumsum':>7} {m:>6} {n:>6}{columns} {error:8.1e}")


def bench_argsort(m: int, w: int, repeat: int, bandwidth: float, rng) -> None:
    x = rng.integers(-50, 50, size=(m, w)).astype(np.float32)  # ties: stability counts
    ids = np.zeros((m, w), np.int32)
    kernel = lpir.compile(ARGSORT, target="cpu", M=m, W=w)
    kernel(x, ids)
    differ = float(np.mean(ids != np.argsort(-x, axis=1, kind="stable")))
    seconds = round_robin(
        {
            "lpir": lambda: kernel(x, ids),
            "numpy": lambda: np.argsort(-x, axis=1, kind="stable"),
        },
        repeat,
    )
    columns = timing_columns(seconds, "lpir", 2 * x.nbytes / bandwidth, peers=("numpy",))
    print(f"  {'argsort':>7} {m:>6} {w:>6}{columns} {differ:8.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="4096", help="comma-separated M values")
    parser.add_argument("--widths", default="4096", help="comma-separated cumsum row lengths")
    parser.add_argument("--sorted", default="64", help="comma-separated argsort row lengths")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    print(
        f"  {'op':>7} {'M':>6} {'N':>6} {'lpir ms':>9} {'floor ms':>9} {'/floor':>7}"
        f" {'numpy ms':>9} {'/numpy':>7} {'error':>8}"
    )
    for m in (int(v) for v in args.rows.split(",")):
        for n in (int(v) for v in args.widths.split(",")):
            bench_cumsum(m, n, args.repeat, bandwidth, rng)
        for w in (int(v) for v in args.sorted.split(",")):
            bench_argsort(m, w, args.repeat, bandwidth, rng)


if __name__ == "__main__":
    main()
