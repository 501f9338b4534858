"""Batch-1 GEMV of microscaled weights on an NVIDIA GPU: lpir's examples/gemv_mx.lp beside
cuBLAS and the copy-bandwidth floor, measured in the same run.

    python benchmarks/gpu_gemv_mx.py            # N x K = 28672 x 8192 and 8192 x 8192
    python benchmarks/gpu_gemv_mx.py --quick    # 8192 x 8192, MXFP4 and NVFP4

y = dequant(W) @ x with f32 x, each block of G weights sharing one scale: MXFP4, MXFP6 and MXFP8
(f4e2m1, f6e3m2, f6e2m3, f8e4m3 weights, e8m0 scales stored as u8 exponents, G = 32) and NVFP4
(f4e2m1 weights, f8e4m3 scales, G = 16). Beside it, timed the same way (gpu_gemv.py's Timer: L2
scrubbed before each launch, CUDA events, medians): torch f16 `x @ W.T` (cuBLAS, 2 bytes a
weight) and the floor, lpir's bytes (weights, scales, x, y) over the device-to-device copy
bandwidth. lpir is timed at each BN of --tiles (BK = 128) and pipeline depth of --stages, the
fastest reported; each result is checked against a float64 reference (relative error).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from gpu_gemv import Timer, bench_cublas_f16, compiled_kernel, copy_bandwidth, torch_cuda

import lpir

KERNEL = str(Path(__file__).resolve().parent.parent / "examples" / "gemv_mx.lp")
# (name, weights, scales, block size)
FORMATS = [
    ("MXFP4", "f4e2m1", "u8", 32),
    ("NVFP4", "f4e2m1", "f8e4m3", 16),
    ("MXFP6 e3m2", "f6e3m2", "u8", 32),
    ("MXFP6 e2m3", "f6e2m3", "u8", 32),
    ("MXFP8 e4m3", "f8e4m3", "u8", 32),
]
QUICK_FORMATS = ["MXFP4", "NVFP4"]
SHAPES = [(28672, 8192), (8192, 8192)]


def finite_codes(dt, shape, rng) -> np.ndarray:
    codes = rng.integers(0, 1 << dt.nbits, size=shape, dtype=np.uint16).astype(np.uint8)
    return np.where(np.isfinite(dt.decode(codes)), codes, 0).astype(np.uint8)


def scale_arguments(torch, scale_type: str, shape, rng):
    """(the kernel's scale tensor on the GPU, the scales' f64 values on the GPU, bytes)."""
    from lpir.backends.cuda.arrays import DevicePacked

    if scale_type == "u8":  # e8m0 exponents near 2^0
        exponents = rng.integers(120, 134, size=shape).astype(np.uint8)
        values = np.exp2(exponents.astype(np.float64) - 127)
        return torch.from_numpy(exponents).cuda(), torch.from_numpy(values).cuda(), exponents.nbytes
    dt = lpir.dtype(scale_type)
    codes = dt.encode(rng.uniform(0.01, 2.0, size=shape).astype(np.float32))
    packed = lpir.pack_codes(codes, dt)
    values = dt.decode(codes).astype(np.float64)
    tensor = DevicePacked(torch.from_numpy(packed.data).cuda(), dt, shape)
    return tensor, torch.from_numpy(values).cuda(), packed.nbytes


def bench_format(torch, timer, fmt, n: int, k: int, tiles, stages, rng) -> dict:
    from lpir.backends.cuda.arrays import DevicePacked

    name, weights, scale_type, block = fmt
    wt = lpir.dtype(weights)
    codes = finite_codes(wt, (n, k), rng)
    packed = lpir.pack_codes(codes, wt)
    w = DevicePacked(torch.from_numpy(packed.data).cuda(), wt, (n, k))
    s, scale_values, scale_bytes = scale_arguments(torch, scale_type, (n, -(-k // block)), rng)
    x = torch.randn(k, dtype=torch.float32, device="cuda")
    y = torch.zeros(n, dtype=torch.float32, device="cuda")
    arguments, stream = [x, w, s, y], torch.cuda.current_stream()
    timed = []
    for bn in tiles:
        for depth in stages:
            params = {"WT": weights, "ST": scale_type, "G": block, "N": n, "K": k, "BN": bn}
            params |= {"BK": 128, "STAGES": depth}
            kernel = compiled_kernel(KERNEL, params)
            seconds = timer(lambda kernel=kernel: kernel.run(arguments, stream=stream))
            timed.append((seconds, f"{bn}/{depth}", kernel))
    seconds, label, kernel = min(timed, key=lambda entry: entry[0])
    kernel.run(arguments, stream=stream)
    torch.cuda.synchronize()
    values = torch.from_numpy(wt.decode(codes).astype(np.float64)).cuda()
    values *= scale_values.repeat_interleave(block, dim=1)[:, :k]
    reference = values @ x.double()
    error = float((y.double() - reference).abs().max() / reference.abs().max())
    nbytes = packed.nbytes + scale_bytes + 4 * (k + n)
    tried = ", ".join(f"{tile} {t * 1e6:.1f}" for t, tile, _ in timed)
    return {"format": name, "seconds": seconds, "bytes": nbytes, "error": error, "tile": label,
            "tried": tried}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8192 x 8192, MXFP4 and NVFP4")
    parser.add_argument("--repeat", type=int, default=50, help="timed launches (median)")
    parser.add_argument("--tiles", default="64,32,16", help="BN values tried (BK = 128)")
    parser.add_argument("--stages", default="2,4", help="pipeline depths tried")
    args = parser.parse_args()
    torch = torch_cuda()
    timer = Timer(torch, args.repeat)
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(torch, args.repeat)
    print(f"{torch.cuda.get_device_name()}: copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    shapes = [(8192, 8192)] if args.quick else SHAPES
    formats = [f for f in FORMATS if not args.quick or f[0] in QUICK_FORMATS]
    tiles = [int(t) for t in args.tiles.split(",")]
    stages = [int(s) for s in args.stages.split(",")]
    for n, k in shapes:
        cublas = bench_cublas_f16(torch, timer, n, k)
        print(f"\nN = {n}, K = {k}: cuBLAS f16 {cublas['seconds'] * 1e6:.1f} us")
        print(f"  {'format':>11} {'lpir us':>8} {'GB/s':>6} {'/floor':>7} {'/cuBLAS':>8} "
              f"{'rel err':>8}  BN/stages (us of each tried)")  # fmt: skip
        for fmt in formats:
            try:
                row = bench_format(torch, timer, fmt, n, k, tiles, stages, rng)
            except Exception as failure:  # one row, not the run: report and go on
                print(f"  ({fmt[0]}: {type(failure).__name__}: {failure})")
                continue
            seconds, floor = row["seconds"], row["bytes"] / bandwidth
            print(
                f"  {row['format']:>11} {seconds * 1e6:8.1f} {row['bytes'] / seconds / 1e9:6.0f}"
                f" {seconds / floor:7.2f} {seconds / cublas['seconds']:8.2f} {row['error']:8.1e}"
                f"  {row['tile']} ({row['tried']})",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
