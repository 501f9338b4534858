"""Many rows of activations times quantized weights on the CPU (prefill): lpir's
examples/matmul_wq.lp side by side with its peers.

    python benchmarks/cpu_matmul.py                         # M = 64, 256; N = K = 4096
    python benchmarks/cpu_matmul.py --rows 512 --weights u4 --tiles 128x128x32/128

C[m, n] = sum_k A[m, k] * dequant(B)[k, n] for A of f16 and of bf16 (`--activations`: bf16
dots run as AVX512-BF16 dot products where the host has them), weights B stored K-major with
one scale of A's type per group of 128 rows, timed in the same run as numpy f32 `A @ W` on the
dequantized matrix (BLAS: the compute a CPU core reaches), torch f32 and bf16 matmuls on it
and torch's CPU
int4 kernel with M rows of bf16 A (when torch is installed). A matmul of this size is bound by
arithmetic, not memory: the table gives GFLOP/s (2 M N K flops) beside the time, and the floor
(the weights over the copy bandwidth) to show how far from memory-bound it is. Contenders are
timed in turn, one call each per round (`cpu_gemv.round_robin`, whose thread settings this
script shares); medians of the rounds; ratios below 1: lpir is faster. lpir runs with each
tile BM x BN x BK / threads of `--tiles` and the table shows the fastest.
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

from pathlib import Path

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import batch_parser, batch_sweep, round_robin, torch_int4, zero_point
import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "matmul_wq.lp"
GROUP = 128
DEFAULT_TILES = "64x64x32/128,128x128x32/128,128x128x64/128,256x128x64/128,64x128x32/64"


def parse_tile(text: str) -> dict:
    """ "BMxBNxBK/THREADS" -> the kernel's tile parameters."""
    sizes, threads = text.split("/")
    bm, bn, bk = (int(v) for v in sizes.split("x"))
    return {"BM": bm, "BN": bn, "BK": bk, "THREADS": int(threads)}


def make_operands(dt, act: str, m: int, n: int, k: int, rng):
    """Activations of type `act`, packed K-major weights, `act` scales, and the dequantized
    f32 matrix (dequantized in `act`, as the kernel does)."""
    t = lpir.dtype(act).numpy_dtype
    a = (rng.standard_normal((m, k)) * 0.5).astype(t)
    codes = rng.integers(0, 1 << dt.nbits, size=(k, n), dtype=np.uint16).astype(dt.code_numpy_dtype)
    if dt.is_float:
        codes = np.where(np.isfinite(dt.decode(codes)), codes, 0).astype(codes.dtype)
    packed = lpir.pack_codes(codes, dt)
    scales = rng.uniform(0.01, 0.05, size=(k // GROUP, n)).astype(t)
    values = dt.decode(codes) if dt.is_float else dt.from_codes(codes).astype(np.float32)
    shifted = (values.astype(t) - np.asarray(zero_point(dt), t)).astype(t)
    dense = (shifted * np.repeat(scales, GROUP, axis=0)).astype(t).astype(np.float32)
    return a, packed, scales, dense


def torch_matmuls(a, dense) -> dict:
    """Calls of torch's f32 and bf16 matmuls on the dequantized weights (none without torch)."""
    try:
        import torch
    except ImportError:
        return {}
    calls = {}
    for name, torch_type in (("torch f32", torch.float32), ("torch bf16", torch.bfloat16)):
        x = torch.from_numpy(a.astype(np.float32)).to(torch_type)
        w = torch.from_numpy(dense).to(torch_type)
        calls[name] = lambda x=x, w=w: x @ w
    return calls


def bench(m, n, k, weights, activations, tiles, repeat, bandwidth, rng):
    calls, rows = {}, []
    for name in weights:
        dt = lpir.dtype(name)
        for act in activations:
            a, packed, scales, dense = make_operands(dt, act, m, n, k, rng)
            expected = a.astype(np.float64) @ dense.astype(np.float64)
            error = 0.0
            for tile in tiles:
                params = parse_tile(tile)
                kernel = lpir.compile(
                    KERNEL, target="cpu", WT=name, ZERO=zero_point(dt), T=act, M=m, N=n, K=k,
                    **params,
                )  # fmt: skip
                c = np.zeros((m, n), a.dtype)
                kernel(a, packed, scales, c)
                error = max(error, float(np.max(np.abs(c - expected)) / np.max(np.abs(expected))))
                calls[(name, act, tile)] = lambda f=kernel, x=a, w=packed, s=scales, out=c: f(
                    x, w, s, out
                )
            if "numpy" not in calls:
                a32 = a.astype(np.float32)
                calls["numpy"] = lambda d=dense, a32=a32: a32 @ d
                calls.update(torch_matmuls(a, dense))
            rows.append((name, act, packed.nbytes + scales.nbytes, error))
    torch_call = torch_int4(n, k, rng, rows=m)
    if torch_call is not None:
        calls["torch int4"] = torch_call
    seconds = round_robin(calls, repeat)
    flops = 2 * m * n * k
    print(f"\nM = {m}, N = {n}, K = {k}, group {GROUP}")
    peers = [p for p in ("numpy", "torch f32", "torch bf16", "torch int4") if p in seconds]
    for peer in peers:
        rate = flops / seconds[peer] / 1e9
        print(f"  {peer:>10}: {seconds[peer] * 1e3:8.3f} ms {rate:7.1f} GFLOP/s")
    header = f"  {'weights':>8} {'A':>5} {'tile':>16} {'lpir ms':>9} {'GFLOP/s':>8}"
    header += f" {'floor ms':>9}"
    header += "".join(f" {'/' + peer.split()[-1]:>7}" for peer in peers)  # /numpy, /bf16, ...
    print(header + f" {'rel err':>8}")
    for name, act, nbytes, error in rows:
        tile = min(tiles, key=lambda t: seconds[(name, act, t)])
        best = seconds[(name, act, tile)]
        line = f"  {name:>8} {act:>5} {tile:>16} {best * 1e3:9.3f} {flops / best / 1e9:8.1f}"
        line += f" {nbytes / bandwidth * 1e3:9.3f}"
        line += "".join(f" {best / seconds[p]:7.2f}" for p in peers)
        print(line + f" {error:8.1e}")


def main() -> None:
    parser = batch_parser(__doc__.splitlines()[0], rows="64,256", shapes="4096x4096")
    parser.add_argument("--tiles", default=DEFAULT_TILES, help="BMxBNxBK/THREADS,...")
    args = parser.parse_args()
    batch_sweep(args, args.tiles.split(","), bench)


if __name__ == "__main__":
    main()
