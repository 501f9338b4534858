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

A second table (`--no-int8` leaves it out) times i8 x i8 -> i32 matmuls of the same shapes
(`INT8_GEMM`): lpir's i8 dot (two steps of k per `vpmaddwd`/`vpdpwssd` lane, exact) beside the
same kernel with `dot(cast<f32>(a), cast<f32>(b), acc)` and numpy's f32 matmul of the values;
"rel err" is 0 where the result is exact.
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
from pathlib import Path

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import batch_parser, batch_sweep, round_robin, torch_int4, zero_point
import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "matmul_wq.lp"
GROUP = 128
DEFAULT_TILES = "64x64x32/128,128x128x32/128,128x128x64/128,256x128x64/128,64x128x32/64"

# C = A @ B of i8 into i32, the dot's operands cast to T first (T = i8: none), summed in ACC
INT8_GEMM = """
kernel int8_gemm[M = 256, N = 256, K = 256, BM = 64, BN = 64, BK = 32, THREADS = 128,
                 T = i8, ACC = i32](
    a: global i8[M, K],
    b: global i8[K, N],
    c: global i32[M, N],
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(THREADS) {
    rows = block.x * BM
    cols = block.y * BN
    acc = zeros<ACC>[BM, BN]
    for k0 in range(0, K, BK) {
        at = load(a[rows :+ BM, k0 :+ BK])
        bt = load(b[k0 :+ BK, cols :+ BN])
        acc = dot(cast<T>(at), cast<T>(bt), acc)
    }
    store(c[rows :+ BM, cols :+ BN], cast<i32>(acc))
}
"""
# (row name, the dot's operand type, its accumulator)
INT8_DOTS = (("i8", "i8", "i32"), ("f32-cast", "f32", "f32"))


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


def bench_int8(m, n, k, tiles, repeat, rng):
    """i8 x i8 -> i32: lpir's i8 dot and its f32-cast variant at each tile (the fastest shown),
    numpy's f32 matmul of the values, timed in the same rounds."""
    a = rng.integers(-128, 128, size=(m, k), dtype=np.int8)
    b = rng.integers(-128, 128, size=(k, n), dtype=np.int8)
    a[0], b[:, 0] = -128, 127  # the extremes
    expected = a.astype(np.int64) @ b.astype(np.int64)
    calls, errors = {}, {}
    for name, operand, accumulator in INT8_DOTS:
        errors[name] = 0.0
        for tile in tiles:
            kernel = lpir.compile(
                INT8_GEMM, target="cpu", M=m, N=n, K=k, T=operand, ACC=accumulator,
                **parse_tile(tile),
            )  # fmt: skip
            c = np.zeros((m, n), np.int32)
            kernel(a, b, c)
            error = float(np.max(np.abs(c - expected)) / np.max(np.abs(expected)))
            errors[name] = max(errors[name], error)
            calls[(name, tile)] = lambda f=kernel, out=c: f(a, b, out)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    calls["numpy"] = lambda: a32 @ b32
    seconds = round_robin(calls, repeat)
    ops = 2 * m * n * k
    print(f"\nM = {m}, N = {n}, K = {k}, i8 x i8 -> i32")
    numpy = seconds["numpy"]
    print(f"  {'numpy f32':>10}: {numpy * 1e3:8.3f} ms {ops / numpy / 1e9:7.1f} GOP/s")
    print(f"  {'dot':>8} {'tile':>16} {'lpir ms':>9} {'GOP/s':>8} {'/numpy':>7} {'rel err':>8}")
    for name, _, _ in INT8_DOTS:
        tile = min(tiles, key=lambda t: seconds[(name, t)])
        best = seconds[(name, tile)]
        line = f"  {name:>8} {tile:>16} {best * 1e3:9.3f} {ops / best / 1e9:8.1f}"
        print(line + f" {best / numpy:7.2f} {errors[name]:8.1e}")


def main() -> None:
    parser = batch_parser(__doc__.splitlines()[0], rows="64,256", shapes="4096x4096")
    parser.add_argument("--tiles", default=DEFAULT_TILES, help="BMxBNxBK/THREADS,...")
    parser.add_argument(
        "--int8", action=argparse.BooleanOptionalAction, default=True, help="the i8 table"
    )
    args = parser.parse_args()
    batch_sweep(args, args.tiles.split(","), bench)
    if args.int8:
        rng = np.random.default_rng(0)
        for shape in args.shapes.split(","):
            n, k = (int(v) for v in shape.split("x"))
            for m in (int(v) for v in args.rows.split(",")):
                bench_int8(m, n, k, args.tiles.split(","), args.repeat, rng)


if __name__ == "__main__":
    main()
