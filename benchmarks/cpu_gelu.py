"""The exact GELU on the CPU, 0.5 x (1 + erf(x / sqrt 2)): an lpir kernel beside torch's
`F.gelu` (approximate="none") on the same data.

    python benchmarks/cpu_gelu.py                       # 4096 x 4096, f32 and bf16
    python benchmarks/cpu_gelu.py --rows 256 --widths 11008 --dtypes bf16

x of dtype T (f32, or bf16 / f16) computed in f32 and rounded to T once, timed in turn with
torch (`cpu_gemv.round_robin`, whose thread settings this script shares); medians of the
rounds; ratios below 1: lpir is faster. The floor reads x and writes y over the copy
bandwidth. The last column is lpir's largest difference from float64's GELU of the same x
over max(|y|, 1), in units of T's epsilon (erf within an ulp of f32; rounding to T half of
one).
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
import math
import os

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import copy_bandwidth, round_robin, timing_columns, torch_tensors
import numpy as np

import lpir

KERNEL = """
kernel gelu[T = f32, M = 4096, N = 4096, BM = 4, BN = 1024](x: global T[M, N], y: global T[M, N])
    blocks(cdiv(M, BM), cdiv(N, BN)) threads(128) {
    t = cast<f32>(load(x[block.x * BM :+ BM, block.y * BN :+ BN]))
    y_tile = 0.5 * t * (1.0 + erf(t * 0.7071067811865476))
    store(y[block.x * BM :+ BM, block.y * BN :+ BN], cast<T>(y_tile))
}
"""


def exact_gelu(x: np.ndarray) -> np.ndarray:
    wide = x.astype(np.float64)
    erf = np.frompyfunc(math.erf, 1, 1)(wide / math.sqrt(2)).astype(np.float64)
    return 0.5 * wide * (1 + erf)


def torch_gelu(x: np.ndarray):
    """torch's exact GELU in x's dtype; None without torch."""
    tensors = torch_tensors(x)
    if tensors is None:
        return None
    import torch

    return lambda: torch.nn.functional.gelu(tensors[0])


def scaled_error(got: np.ndarray, exact: np.ndarray, dt: np.dtype) -> float:
    """The largest |got - exact| / max(|exact|, 1), in units of dt's epsilon: relative where
    |y| >= 1, absolute below (where x is very negative, 1 + erf(x / sqrt 2) cancels to 0 in
    f32 while the exact y is a tiny negative number; torch's is alike)."""
    epsilon = float(np.finfo(dt).eps)  # (ml_dtypes gives bf16 its finfo)
    error = np.abs(got.astype(np.float64) - exact) / np.maximum(np.abs(exact), 1.0)
    return float(error.max()) / epsilon


def bench(m: int, n: int, type_name: str, repeat: int, bandwidth: float, rng) -> None:
    dt = np.dtype(lpir.dtype(type_name).numpy_dtype)
    x = (rng.standard_normal((m, n)) * 3).astype(dt)
    y = np.zeros_like(x)
    kernel = lpir.compile(KERNEL, target="cpu", T=type_name, M=m, N=n)
    kernel(x, y)
    error = scaled_error(y, exact_gelu(x), dt)
    calls = {"lpir": lambda: kernel(x, y)}
    peer = torch_gelu(x)
    if peer is not None:
        calls["torch"] = peer
    seconds = round_robin(calls, repeat)
    floor = 2 * x.nbytes / bandwidth
    columns = timing_columns(seconds, "lpir", floor, peers=("torch",))
    print(f"  {m:>6} {n:>6} {type_name:>5}{columns} {error:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="4096", help="comma-separated M values")
    parser.add_argument("--widths", default="4096", help="comma-separated N values")
    parser.add_argument("--dtypes", default="f32,bf16", help="f32, bf16, f16")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    print(
        f"  {'M':>6} {'N':>6} {'dtype':>5} {'lpir ms':>9} {'floor ms':>9} {'/floor':>7}"
        f" {'torch ms':>9} {'/torch':>7} {'err/eps':>9}"
    )
    for type_name in args.dtypes.split(","):
        for n in (int(v) for v in args.widths.split(",")):
            for m in (int(v) for v in args.rows.split(",")):
                bench(m, n, type_name, args.repeat, bandwidth, rng)


if __name__ == "__main__":
    main()
