"""Weight-only quantized matmul on an NVIDIA GPU: lpir's matmul_wq beside torch's f16 matmul.

    python benchmarks/gpu_matmul.py             # M = 16, 64, 256; N = K = 8192; u4, u3, f4e2m1
    python benchmarks/gpu_matmul.py --quick     # N = K = 4096, u4 only, fewer repeats

C = A @ dequant(B) (examples/matmul_wq.lp): f16 A [M, K], low-bit B [K, N] with one f16 scale
per group of 128 rows, f32 accumulation on tensor cores, f16 C. Beside it, in the same run:

* torch f16 `A @ B16` (cuBLAS) on the dequantized f16 B (2 bytes per weight);
* lpir's other matmul, for few rows: examples/skinny_wq.lp (y = x @ dequant(W)^T with W
  [N, K] and f32 scales and output, the weights' fragments straight from memory; MB rows of x
  per block), beside torch f16 `F.linear(x, W16)` on its own arguments;
* two floors: the bytes lpir must move (A, packed B, scales, C) over the measured copy
  bandwidth, and 2*M*N*K flops over the f16 tensor-core rate measured by an 8192^3 torch matmul.

Same timing as gpu_gemv.py (CUDA events, L2 scrubbed before each launch, medians). Each lpir
result is checked against A @ dequant(B) computed on the GPU in float64 (relative error). The
fastest tile is timed again with its pipelined tiles in registers instead of shared memory
("registers", LPIR_CUDA_ASYNC_COPY=0).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_gemv import (
    Timer,
    compiled_kernel,
    copy_bandwidth,
    decode_table,
    dequantized_f16,
    fastest_matmul_wq,
    gemv_params,
    matmul_candidates,
    parse_tiles,
    precompile,
    random_codes,
    tile_name,
    torch_cuda,
)

import lpir

GROUP = 128
ALL_M = [16, 64, 256]
SKINNY_KERNEL = Path(__file__).resolve().parent.parent / "examples" / "skinny_wq.lp"
# MB x BN x BK of skinny_wq (rows of x, rows of w and k per block) and XS. With XS = 0 each
# warp holds its share of x's tile (MB x BK) in registers, a tile ahead, so BK shrinks as MB
# grows (64 x 64 x 128 and 32 x 128 x 128 need over 255 registers and spill; these need
# 125-198 on sm_90); XS = 1 passes x through shared memory (64 x 64 x 128: 156-196).
SKINNY_TILES = [
    (16, 64, 128, 0),
    (16, 128, 128, 0),
    (32, 64, 128, 0),
    (64, 64, 32, 0),
    (64, 64, 64, 0),
    (64, 128, 32, 0),
    (128, 64, 32, 0),
    (64, 64, 128, 1),
    (128, 64, 32, 1),
    (128, 64, 64, 1),
]
SKINNY_SPLITS = [1, 2, 4]  # K over blocks (N = 8192 gives only 128 blocks of 64 rows)


def skinny_candidates(dt, m: int, n: int, k: int, stages) -> list[tuple[str, dict, str]]:
    """(kernel, params, label) of skinny_wq for M rows (the M / MB blocks of a tile of
    weights are neighbours in the grid: one reads it from memory, the others mostly from L2):
    every tile of SKINNY_TILES whose MB is at most max(16, M), every depth, and K split where
    the grid has few blocks."""
    return [
        (
            str(SKINNY_KERNEL),
            {
                **gemv_params(dt, n, k, bn, bk, depth),
                **{"M": m, "MB": rows, "SPLIT": split, "XS": shared},
            },
            tile_name(f"{rows}x{bn}x{bk}", depth, stages)
            + ("/xs" if shared else "")
            + (f"/k{split}" if split > 1 else ""),
        )
        for (rows, bn, bk, shared), depth, split in itertools.product(
            SKINNY_TILES, stages, SKINNY_SPLITS
        )
        if rows <= max(16, m)
        and (split == 1 or -(-n // bn) * -(-m // rows) < 2 * 132)  # few blocks: split K too
        and depth * bn * bk * dt.nbits // 8 + shared * rows * bk * 2 <= 40 * 1024
        and not (shared and rows * bk >= 8192 and depth > 3)  # 255 registers, spills
    ]


def bench_skinny(torch, timer, dt, m: int, n: int, k: int, rng, stages=(2,)) -> dict | None:
    """The fastest skinny_wq configuration for M rows beside torch f16 F.linear; checked."""
    from lpir.backends.cuda.arrays import DevicePacked

    candidates = skinny_candidates(dt, m, n, k, stages)
    if not candidates:
        return None
    codes = random_codes(dt, (n, k), rng)
    packed = lpir.pack_codes(codes, dt)
    x = (torch.randn(m, k, device="cuda") * 0.5).half()
    scales = torch.rand(n, -(-k // GROUP), device="cuda") * 0.015 + 0.005
    y = torch.zeros(m, n, dtype=torch.float32, device="cuda")
    w = DevicePacked(torch.from_numpy(packed.data).cuda(), dt, (n, k))
    stream = torch.cuda.current_stream()
    arguments = [x, w, scales, y]

    def launcher(kernel, params):
        if params["SPLIT"] > 1:  # the blocks add into y: it starts at zero (inside the timing)
            return lambda: (y.zero_(), kernel.run(arguments, stream=stream))
        return lambda: kernel.run(arguments, stream=stream)

    timed = []
    for name, params, label in candidates:
        kernel = compiled_kernel(name, params)
        timed.append((timer(launcher(kernel, params)), label, kernel))
    seconds, tile, kernel = min(timed, key=lambda entry: entry[0])
    dense = decode_table(torch, dt)[torch.from_numpy(codes).cuda().long()]
    dense *= scales.repeat_interleave(GROUP, dim=1)[:, :k]
    w16 = dense.half()
    peer = timer(lambda: torch.nn.functional.linear(x, w16))
    reference = x.double() @ dense.double().T
    y.zero_()
    kernel.run(arguments, stream=stream)
    torch.cuda.synchronize()
    error = float((y.double() - reference).abs().max() / reference.abs().max())
    nbytes = packed.nbytes + scales.numel() * 4 + x.numel() * 2 + y.numel() * 4
    return {
        "weights": dt.name,
        "m": m,
        "tile": tile,
        "tried_us": {label: round(t * 1e6, 1) for t, label, _ in timed},
        "seconds": seconds,
        "torch_f16_seconds": peer,
        "bytes": nbytes,
        "flops": 2 * m * n * k,
        "error": error,
    }


def tensor_core_rate(torch, timer) -> float:
    """f16 flops per second of an 8192^3 torch matmul (the compute ceiling)."""
    a = torch.randn(8192, 8192, dtype=torch.float16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.float16, device="cuda")
    seconds = timer(lambda: a @ b)
    return 2 * 8192**3 / seconds


def bench(torch, timer, dt, m: int, n: int, k: int, rng, tiles, stages=(2,)) -> dict:
    """The fastest tensor-core tile for this M, beside torch f16; checked against float64."""
    from lpir.backends.cuda.arrays import DevicePacked

    codes = random_codes(dt, (k, n), rng)
    packed = lpir.pack_codes(codes, dt)
    a = (torch.randn(m, k, device="cuda") * 0.5).half()
    scales = (torch.rand(-(-k // GROUP), n, device="cuda") * 0.04 + 0.01).half()
    c = torch.zeros(m, n, dtype=torch.float16, device="cuda")
    b = DevicePacked(torch.from_numpy(packed.data).cuda(), dt, (k, n))
    stream = torch.cuda.current_stream()
    arguments = [a, b, scales, c]
    seconds, tile, kernel, tried, in_registers = fastest_matmul_wq(
        torch, timer, dt, m, n, k, arguments, tiles, stages, registers=True
    )
    dense = dequantized_f16(torch, dt, codes, scales, k)
    peer = timer(lambda: a @ dense)
    reference = a.double() @ dense.double()
    c.zero_()
    kernel.run(arguments, stream=stream)
    torch.cuda.synchronize()
    error = float((c.double() - reference).abs().max() / reference.abs().max())
    nbytes = packed.nbytes + (a.numel() + scales.numel() + c.numel()) * 2
    return {
        "weights": dt.name,
        "m": m,
        "tile": tile,
        "tried_us": tried,
        "registers_us": in_registers,
        "seconds": seconds,
        "torch_f16_seconds": peer,
        "bytes": nbytes,
        "flops": 2 * m * n * k,
        "error": error,
    }


def print_row(row: dict, bandwidth: float, rate: float, kernel: str = "matmul_wq") -> None:
    floor = max(row["bytes"] / bandwidth, row["flops"] / rate)
    seconds, torch_seconds = row["seconds"], row["torch_f16_seconds"]
    registers = row.get("registers_us")
    print(
        f"  {row['weights']:>8} {row['m']:>5} {kernel:>9} {row['tile']:>14} {seconds * 1e6:9.1f} "
        f"{row['flops'] / seconds / 1e12:8.1f} {torch_seconds * 1e6:9.1f} "
        f"{seconds / torch_seconds:7.2f} {floor * 1e6:9.1f} {seconds / floor:7.2f} "
        f"{row['error']:8.1e} {registers if registers else '-':>9}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = K = 4096, u4 only")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--weights", help="comma-separated weight types")
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument(
        "--tiles",
        default="16x32x128,16x64x32,16x64x128,16x128x64,32x64x32,32x64x64,32x128x32,64x64x32,"
        "64x64x64,64x128x32,128x128x32,64x128x32@256,128x128x32@256",
        help="BMxBNxBK tiles of matmul_wq to try at each M, @T for blocks of T threads (default "
        "128): those that use tensor cores and do not exceed M by a whole tile; the fastest is "
        "reported",
    )
    parser.add_argument(
        "--stages", default="2", help="pipeline depths to try with every tile, e.g. 2,3"
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="processes compiling kernels (default: all cores)"
    )
    args = parser.parse_args()
    tiles = parse_tiles(args.tiles)
    stages = [int(v) for v in args.stages.split(",")]
    torch = torch_cuda()
    repeat = args.repeat or (10 if args.quick else 30)
    size = 4096 if args.quick else 8192
    weights = (
        args.weights.split(",")
        if args.weights
        else (["u4"] if args.quick else ["u4", "u3", "f4e2m1"])
    )
    precompile(
        [
            candidate
            for weight, m in itertools.product(weights, ALL_M)
            for candidate in matmul_candidates(lpir.dtype(weight), m, size, size, tiles, stages)
        ]
        + [
            (name, params)
            for weight, m in itertools.product(weights, ALL_M)
            for name, params, _ in skinny_candidates(lpir.dtype(weight), m, size, size, stages)
        ],
        args.jobs,
    )
    timer = Timer(torch, repeat)
    bandwidth = copy_bandwidth(torch, repeat)
    rate = tensor_core_rate(torch, timer)
    name = torch.cuda.get_device_properties(0).name
    print(
        f"{name}: copy {bandwidth / 1e9:.0f} GB/s (read + write), f16 matmul {rate / 1e12:.0f} "
        f"TFLOP/s (8192^3)"
    )
    print(f"N = K = {size}, group {GROUP}")
    print(
        f"  {'weights':>8} {'M':>5} {'kernel':>9} {'tile':>14} {'lpir us':>9} {'TFLOP/s':>8} "
        f"{'torch us':>9} {'/torch':>7} {'floor us':>9} {'/floor':>7} {'rel err':>8} "
        f"{'registers':>9}"
    )
    rng = np.random.default_rng(0)
    rows, skinny_rows = [], []
    for weight in weights:
        for m in ALL_M:
            row = bench(torch, timer, lpir.dtype(weight), m, size, size, rng, tiles, stages)
            print_row(row, bandwidth, rate)
            rows.append(row)
            skinny = bench_skinny(torch, timer, lpir.dtype(weight), m, size, size, rng, stages)
            if skinny:
                print_row(skinny, bandwidth, rate, "skinny_wq")
                skinny_rows.append(skinny)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": name,
                    "copy_bandwidth": bandwidth,
                    "f16_rate": rate,
                    "rows": rows,
                    "skinny_rows": skinny_rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
