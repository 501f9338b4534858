"""A few rows of activations times quantized weights on the CPU (small-batch decoding): lpir's
examples/skinny_wq.lp side by side with its peers.

    python benchmarks/cpu_skinny.py                      # M = 4 and 16; 4096^2 and 8192^2
    python benchmarks/cpu_skinny.py --rows 16 --shapes 14336x4096 --weights u4,u8 --bn 64

y[m, n] = sum_k x[m, k] * (w[n, k] - ZERO) * s[n, k / 128] for M rows of x, f16 and bf16
(`--activations`; bf16 dots run as AVX512-BF16 dot products where the host has them), timed
in the same run as numpy f32 `x @ W.T` on the dequantized matrix, torch's CPU int4 kernel with
M rows of bf16 x (when torch is installed) and the floor (packed weights over the copy
bandwidth).
Contenders are timed in turn, one call each per round (see cpu_gemv.py, whose helpers and
thread settings this script shares); medians of the rounds; ratios below 1: lpir is faster.
lpir runs with each tile height BN of `--bn` (rows of w per block: a thread's accumulator slots
grow with it) and the table shows the fastest, with its BN.
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

from pathlib import Path

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import (
    GROUP,
    batch_parser,
    batch_sweep,
    dequantize,
    make_weights,
    round_robin,
    torch_int4,
    zero_point,
)
import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "skinny_wq.lp"


def bench(m, n, k, weights, activations, tiles, repeat, bandwidth, rng):
    x32 = rng.standard_normal((m, k)).astype(np.float16).astype(np.float32)
    scales = rng.uniform(0.005, 0.02, size=(n, k // GROUP)).astype(np.float32)
    calls, rows = {}, []
    for name in weights:
        dt = lpir.dtype(name)
        packed = make_weights(dt, n, k, rng)
        dense = dequantize(dt, packed, scales)
        for act in activations:
            x = x32.astype(lpir.dtype(act).numpy_dtype)
            expected = x.astype(np.float64) @ dense.T.astype(np.float64)
            error = 0.0
            for bn in tiles:
                kernel = lpir.compile(
                    KERNEL, target="cpu", WT=name, ZERO=zero_point(dt), T=act, M=m, MB=m, N=n,
                    K=k, BN=bn,
                )  # fmt: skip
                y = np.zeros((m, n), np.float32)
                kernel(x, packed, scales, y)
                error = max(error, float(np.max(np.abs(y - expected)) / np.max(np.abs(expected))))
                calls[(name, act, bn)] = lambda c=kernel, x=x, w=packed, out=y: c(x, w, scales, out)
            rows.append((name, act, packed.nbytes, error))
        if "numpy" not in calls:
            calls["numpy"] = lambda d=dense: x32 @ d.T
        del dense, expected
    torch_call = torch_int4(n, k, rng, rows=m)
    if torch_call is not None:
        calls["torch"] = torch_call
    seconds = round_robin(calls, repeat)
    print(f"\nM = {m}, N = {n}, K = {k}, group {GROUP}")
    print(f"  numpy f32 x @ W.T (dequantized): {seconds['numpy'] * 1e3:8.3f} ms")
    if "torch" in seconds:
        print(f"  torch int4 (bf16, tinygemm):     {seconds['torch'] * 1e3:8.3f} ms")
    header = f"  {'weights':>8} {'x':>5} {'BN':>4} {'lpir ms':>9} {'floor ms':>9} {'/numpy':>7}"
    header += f" {'/torch':>7}" if "torch" in seconds else ""
    print(header + f" {'/floor':>7} {'rel err':>8}")
    for name, act, nbytes, error in rows:
        bn = min(tiles, key=lambda t: seconds[(name, act, t)])
        best = seconds[(name, act, bn)]
        floor = (nbytes + scales.nbytes) / bandwidth
        line = f"  {name:>8} {act:>5} {bn:4d} {best * 1e3:9.3f} {floor * 1e3:9.3f}"
        line += f" {best / seconds['numpy']:7.2f}"
        if "torch" in seconds:
            line += f" {best / seconds['torch']:7.2f}"
        print(line + f" {best / floor:7.2f} {error:8.1e}")


def main() -> None:
    parser = batch_parser(__doc__.splitlines()[0], rows="4,16", shapes="4096x4096,8192x8192")
    parser.add_argument("--bn", default="64,128", help="comma-separated tile heights BN")
    args = parser.parse_args()
    batch_sweep(args, [int(v) for v in args.bn.split(",")], bench)


if __name__ == "__main__":
    main()
