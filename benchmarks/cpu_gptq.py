"""GPTQ (4-bit, act-order) GEMV on the CPU, beside the built-in u4 GEMV and numpy.

    python benchmarks/cpu_gptq.py                     # N x K = 4096 x 4096 and 11008 x 4096
    python benchmarks/cpu_gptq.py --shapes 4096x4096 --repeat 50 --tiles 64,256

examples/gemv_gptq.lp (GPTQ's storage: qweight[K / 8, N] of i32 words holding 8 rows of
4-bit codes, qzeros[K / G, N / 8], f16 scales, x read through the act-order permutation; each
--tiles value a BN) is timed in the same run as:

* u4: examples/gemv_wq.lp with u4 weights and an f32 scale per 128 (the same 4 bits a weight,
  stored along K: what GPTQ's layout, zero points and permuted x cost beyond it);
* numpy: f32 `x @ W` on the already dequantized matrix (4 bytes a weight);
* the floor: the GPTQ bytes (qweight, qzeros, scales) / memory bandwidth, the bandwidth
  measured by a large numpy copy in the same run.

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

from gemv_gptq import make_inputs, reference, unpack  # noqa: E402

GROUP = 128


def bench(n: int, k: int, tiles: list[int], repeat: int, bandwidth: float, rng) -> None:
    params = {"N": n, "K": k, "G": GROUP}
    args = make_inputs(params, rng)
    x, perm, qweight, qzeros, scales, _ = args
    kernels = {
        bn: lpir.compile(EXAMPLES / "gemv_gptq.lp", target="cpu", N=n, K=k, G=GROUP, BN=bn)
        for bn in tiles
    }
    outputs = {bn: np.zeros(n, np.float32) for bn in tiles}
    u4 = lpir.compile(EXAMPLES / "gemv_wq.lp", target="cpu", N=n, K=k, WT="u4")
    u4_weights = lpir.pack_codes(rng.integers(0, 16, (n, k), dtype=np.uint8), "u4")
    u4_scales, y_u4 = np.full((n, k // 128), 0.01, np.float32), np.zeros(n, np.float32)
    x32 = x.astype(np.float32)
    dense = _dequantized(args)
    contenders = {
        f"gptq/{bn}": (lambda bn=bn: kernels[bn](x, perm, qweight, qzeros, scales, outputs[bn]))
        for bn in tiles
    }
    contenders["u4"] = lambda: u4(x32, u4_weights, u4_scales, y_u4)
    contenders["numpy"] = lambda: x32 @ dense
    seconds = round_robin(contenders, repeat)
    exact = reference(params, args)[5].astype(np.float64)
    floor = (qweight.nbytes + qzeros.nbytes + scales.nbytes) / bandwidth
    for bn in tiles:
        mine = seconds[f"gptq/{bn}"]
        error = np.abs(outputs[bn] - exact).max() / np.abs(exact).max()
        print(
            f"gptq {n:6d} {k:6d} {bn:4d} {mine * 1e3:9.3f} {seconds['u4'] * 1e3:9.3f} "
            f"{mine / seconds['u4']:7.2f} {floor * 1e3:9.3f} {mine / floor:7.2f} "
            f"{seconds['numpy'] * 1e3:9.3f} {mine / seconds['numpy']:7.2f} {error:9.2e}"
        )


def _dequantized(args: list[np.ndarray]) -> np.ndarray:
    """W[k, n] in f32, in the original row order (x @ W is y)."""
    _, perm, qweight, qzeros, scales, _ = args
    codes = unpack(qweight, 0).astype(np.float32)  # rows sorted by group
    zeros = unpack(qzeros, 1).astype(np.float32) + 1
    groups = np.arange(len(perm)) // GROUP
    dense = np.empty(codes.shape, np.float32)
    dense[perm] = (codes - zeros[groups]) * scales.astype(np.float32)[groups]
    return dense


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="4096x4096,11008x4096", help="NxK,NxK,...")
    parser.add_argument("--tiles", default="64,256", help="comma-separated BN values")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    bandwidth = copy_bandwidth(args.repeat)
    tiles = [int(v) for v in args.tiles.split(",")]
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    print(f"     {'N':>6} {'K':>6} {'BN':>4} {'gptq ms':>9} {'u4 ms':>9} {'/u4':>7} {'floor':>9}"
          f" {'/floor':>7} {'numpy':>9} {'/numpy':>7} {'rel err':>9}")  # fmt: skip
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        bench(n, k, tiles, args.repeat, bandwidth, rng)


if __name__ == "__main__":
    main()
