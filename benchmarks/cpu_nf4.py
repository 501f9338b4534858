"""NF4 (bitsandbytes' 4-bit NormalFloat) GEMV on the CPU, beside the built-in u4 GEMV and numpy.

    python benchmarks/cpu_nf4.py                     # N x K = 4096 x 4096 and 8192 x 8192
    python benchmarks/cpu_nf4.py --shapes 4096x4096 --repeat 50

examples/gemv_nf4.lp (two codes a byte, a 16-value codebook gathered with the codes, an f32
absmax per 64 weights) is timed in the same run as:

* u4: examples/gemv_wq.lp with u4 weights and an f32 scale per 128 (the same 4 bits a weight:
  what an NF4 read of its codebook costs beyond a built-in type's decode);
* numpy: f32 `W @ x` on the already dequantized matrix (4 bytes a weight);
* the floor: the NF4 bytes (weights and absmax) / memory bandwidth, the bandwidth measured by a
  large numpy copy in the same run.

Each is timed in turn, one call each per round, for --repeat rounds after a warm-up; medians
(ms). The last column is lpir's largest error relative to the largest |y| of a float64 product.
"""

from __future__ import annotations

import os

from cpu_gemv import PEER_THREADS_SLEEP

for _name, _value in PEER_THREADS_SLEEP.items():
    os.environ.setdefault(_name, _value)  # before numpy loads its BLAS

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from cpu_gemv import copy_bandwidth, round_robin  # noqa: E402

import lpir  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

from gemv_nf4 import NF4  # noqa: E402

BLOCK = 64


def bench(n: int, k: int, repeat: int, bandwidth: float, rng) -> None:
    x = rng.standard_normal(k).astype(np.float32)
    codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
    w = (codes[:, 0::2] << 4) | codes[:, 1::2]
    absmax = rng.uniform(0.5, 2.0, (n, k // BLOCK)).astype(np.float32)
    y = np.zeros(n, np.float32)
    nf4 = lpir.compile(EXAMPLES / "gemv_nf4.lp", target="cpu", N=n, K=k)
    u4 = lpir.compile(EXAMPLES / "gemv_wq.lp", target="cpu", N=n, K=k, WT="u4")
    u4_weights = lpir.pack_codes(codes, "u4")
    scales, y_u4 = np.full((n, k // 128), 0.01, np.float32), np.zeros(n, np.float32)
    dense = NF4[codes] * np.repeat(absmax, BLOCK, axis=1)
    seconds = round_robin(
        {
            "nf4": lambda: nf4(x, w, absmax, NF4, y),
            "u4": lambda: u4(x, u4_weights, scales, y_u4),
            "numpy": lambda: dense @ x,
        },
        repeat,
    )
    exact = dense.astype(np.float64) @ x.astype(np.float64)
    error = np.abs(y - exact).max() / np.abs(exact).max()
    floor = (w.nbytes + absmax.nbytes) / bandwidth
    print(
        f"nf4 {n:6d} {k:6d} {seconds['nf4'] * 1e3:9.3f} {seconds['u4'] * 1e3:9.3f} "
        f"{seconds['nf4'] / seconds['u4']:7.2f} {floor * 1e3:9.3f} {seconds['nf4'] / floor:7.2f} "
        f"{seconds['numpy'] * 1e3:9.3f} {seconds['nf4'] / seconds['numpy']:7.2f} {error:9.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="4096x4096,8192x8192", help="NxK,NxK,...")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    print(f"    {'N':>6} {'K':>6} {'nf4 ms':>9} {'u4 ms':>9} {'/u4':>7} {'floor':>9} {'/floor':>7}"
          f" {'numpy':>9} {'/numpy':>7} {'rel err':>9}")  # fmt: skip
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        bench(n, k, args.repeat, bandwidth, rng)


if __name__ == "__main__":
    main()
