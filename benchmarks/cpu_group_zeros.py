"""u4 GEMV with a zero point per group (GPTQ/AWQ's quantization) beside a constant zero, on the CPU.

    python benchmarks/cpu_group_zeros.py                          # 8000 x 512, 4096 x 4096
    python benchmarks/cpu_group_zeros.py --shapes 4096x4096 --zeros u4 --repeat 50

y = W @ x for one f32 x, W[n, k] = (q[n, k] - z[n, k / G]) * s[n, k / G] (examples/gemv_zeros.lp):
u4 codes q stored along K (gemv_wq's layout), an f32 scale and a zero point per group of G = 128,
the zeros stored as u4 codes, f16 or f32 (--zeros). Each is timed in the same run as:

* const: examples/gemv_wq.lp, the same codes and scales with the zero a constant (8): what
  the zeros cost beyond it (the code tables fold either into one 16-entry table a row);
* numpy: f32 `W @ x` on the already dequantized matrix (4 bytes a weight);
* the floor: the group-zero kernel's bytes (codes, scales, zeros, x, y) / memory bandwidth,
  the bandwidth measured by a large numpy copy in the same run.

Contenders are timed in turn, one call each per round, --repeat rounds after a warm-up;
medians (ms). Ratios are lpir time / peer time. The last column is the largest error of the
group-zero kernel relative to the largest |y| of a float64 product.
"""

from __future__ import annotations

import os

from cpu_gemv import PEER_THREADS_SLEEP

for _name, _value in PEER_THREADS_SLEEP.items():
    os.environ.setdefault(_name, _value)  # before numpy loads its BLAS

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from cpu_gemv import copy_bandwidth, round_robin  # noqa: E402

import lpir  # noqa: E402

CONSTANT_ZERO = Path(__file__).resolve().parent.parent / "examples" / "gemv_wq.lp"
GROUP = 128
GROUP_ZEROS = Path(__file__).resolve().parent.parent / "examples" / "gemv_zeros.lp"
NUMPY_DTYPES = {"f16": np.float16, "f32": np.float32}


def zeros_of(zt: str, n: int, groups: int, rng):
    """(the zeros as the kernel takes them, as f64): u4 codes, or f16/f32 values with a
    fraction (AWQ's f16 zeros may have one)."""
    if zt == "u4":
        codes = rng.integers(0, 16, (n, groups))
        return lpir.pack(codes, "u4"), codes.astype(np.float64)
    values = (rng.integers(0, 64, (n, groups)) / 4).astype(NUMPY_DTYPES[zt])
    return values, values.astype(np.float64)


def bench(n: int, k: int, zero_types: list[str], repeat: int, bandwidth: float, rng) -> None:
    groups = -(-k // GROUP)
    codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
    w = lpir.pack_codes(codes, "u4")
    s = rng.uniform(0.005, 0.02, (n, groups)).astype(np.float32)
    x = rng.standard_normal(k).astype(np.float32)
    group_of = np.arange(k) // GROUP
    calls, errors, floors = {}, {}, {}
    for zt in zero_types:
        z, z64 = zeros_of(zt, n, groups, rng)
        kernel = lpir.compile(GROUP_ZEROS, target="cpu", ZT=zt, N=n, K=k, G=GROUP)
        y = np.zeros(n, np.float32)
        kernel(x, w, s, z, y)
        exact = ((codes - z64[:, group_of]) * s[:, group_of]) @ x.astype(np.float64)
        errors[zt] = float(np.abs(y - exact).max() / np.abs(exact).max())
        calls[zt] = lambda kernel=kernel, z=z, y=y: kernel(x, w, s, z, y)
        z_bytes = z.nbytes if isinstance(z, np.ndarray) else n * groups // 2
        floors[zt] = (w.nbytes + s.nbytes + z_bytes + x.nbytes + 4 * n) / bandwidth
    constant = lpir.compile(CONSTANT_ZERO, target="cpu", WT="u4", ZERO=8, N=n, K=k, G=GROUP)
    y_constant = np.zeros(n, np.float32)
    calls["const"] = lambda: constant(x, w, s, y_constant)
    dense = ((codes.astype(np.float32) - 8) * s[:, group_of]).astype(np.float32)
    calls["numpy"] = lambda: dense @ x
    seconds = round_robin(calls, repeat)
    for zt in zero_types:
        mine = seconds[zt]
        print(
            f"group {zt:>4} {n:6d} {k:6d} {mine * 1e3:9.3f} {seconds['const'] * 1e3:9.3f} "
            f"{mine / seconds['const']:7.2f} {floors[zt] * 1e3:9.3f} {mine / floors[zt]:7.2f} "
            f"{seconds['numpy'] * 1e3:9.3f} {mine / seconds['numpy']:7.2f} {errors[zt]:9.2e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="8000x512,4096x4096", help="NxK,NxK,...")
    parser.add_argument("--zeros", default="u4,f16,f32", help="the zeros' types: u4, f16, f32")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    bandwidth = copy_bandwidth(min(args.repeat, 10))
    zero_types = args.zeros.split(",")
    threads = os.environ.get("LPIR_NUM_THREADS", "one per core")
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); lpir threads: {threads}")
    print(f"      {'zeros':>4} {'N':>6} {'K':>6} {'ms':>9} {'const':>9} {'/const':>7} "
          f"{'floor':>9} {'/floor':>7} {'numpy':>9} {'/numpy':>7} {'rel err':>9}")  # fmt: skip
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        bench(n, k, zero_types, args.repeat, bandwidth, rng)


if __name__ == "__main__":
    main()
