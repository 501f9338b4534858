"""Prefill attention on an NVIDIA GPU: lpir's examples/attention.lp beside torch's
`scaled_dot_product_attention` (FlashAttention, where torch has it for the GPU).

    python benchmarks/gpu_attention.py           # 32 heads; L = 1024, 4096; D = 64, 128
    python benchmarks/gpu_attention.py --quick   # L = 1024, D = 64 (each causal and not)

o = softmax(q k^T / sqrt(D)) v per head, f16 data, f32 scores and sums. For each shape, every
BQ x BKV tile, with k and v through shared memory ("/s", SHARED_KV = 1) and without, is timed
and the fastest reported beside torch's, in the same run (same timing
as gpu_gemv.py: CUDA events, L2 scrubbed before each launch, medians), with TFLOP/s (4 H L^2 D
flops, half of them with the causal mask) and the f16 tensor-core rate of an 8192^3 torch
matmul as the ceiling. lpir's output is checked against torch's (largest absolute difference;
both round the weights to f16 before multiplying them with v).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_gemv import Timer, compiled_kernel, precompile, torch_cuda
from gpu_matmul import tensor_core_rate

KERNEL = str(Path(__file__).resolve().parent.parent / "examples" / "attention.lp")
HEADS = 32
TILES = [(64, 32), (64, 64), (128, 32), (128, 64)]  # BQ x BKV, 4 warps a block


def shapes(quick: bool) -> list[tuple[int, int, bool]]:
    """(L, D, causal) to time."""
    lengths, depths = ([1024], [64]) if quick else ([1024, 4096], [64, 128])
    return list(itertools.product(lengths, depths, (False, True)))


def candidates(length: int, depth: int, causal: bool) -> list[tuple[str, dict]]:
    """Every tile, with k and v through shared memory (SHARED_KV = 1) and without."""
    base = {"T": "f16", "H": HEADS, "L": length, "D": depth, "CAUSAL": int(causal)}
    return [
        (KERNEL, {**base, "BQ": bq, "BKV": bkv, "SHARED_KV": shared})
        for (bq, bkv), shared in itertools.product(TILES, (1, 0))
    ]


def bench(torch, timer, length: int, depth: int, causal: bool) -> dict:
    """The fastest tile for one shape, beside torch's attention; checked against it."""
    import torch.nn.functional as functional

    q, k, v = (
        torch.randn(HEADS, length, depth, device="cuda", dtype=torch.float16) for _ in range(3)
    )
    o = torch.zeros_like(q)
    arguments = [q, k, v, o, np.float32(1 / math.sqrt(depth))]
    stream = torch.cuda.current_stream()
    tried, best = {}, None
    for name, params in candidates(length, depth, causal):
        kernel = compiled_kernel(name, params)
        seconds = timer(lambda kernel=kernel: kernel.run(arguments, stream=stream))
        tile = f"{params['BQ']}x{params['BKV']}{'/s' if params['SHARED_KV'] else ''}"
        tried[tile] = round(seconds * 1e6, 1)
        if best is None or seconds < best[0]:
            best = (seconds, tile, kernel)
    seconds, tile, kernel = best  # type: ignore[misc]

    def peer():
        return functional.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=causal)

    peer_seconds = timer(peer)
    o.zero_()
    kernel.run(arguments, stream=stream)
    torch.cuda.synchronize()
    error = float((o.float() - peer()[0].float()).abs().max())
    flops = 4 * HEADS * length * length * depth // (2 if causal else 1)
    return {
        "L": length,
        "D": depth,
        "causal": causal,
        "tile": tile,
        "tried_us": tried,
        "seconds": seconds,
        "torch_seconds": peer_seconds,
        "flops": flops,
        "error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="L = 1024, D = 64 only")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument(
        "--jobs", type=int, default=None, help="processes compiling kernels (default: all cores)"
    )
    args = parser.parse_args()
    torch = torch_cuda()
    todo = shapes(args.quick)
    precompile([c for shape in todo for c in candidates(*shape)], args.jobs)
    timer = Timer(torch, args.repeat or (10 if args.quick else 20))
    rate = tensor_core_rate(torch, timer)
    print(f"{torch.cuda.get_device_properties(0).name}: f16 matmul {rate / 1e12:.0f} TFLOP/s")
    print(f"{HEADS} heads, f16; lpir's fastest of the tiles {', '.join(map(str, TILES))}")
    print(
        f"  {'L':>5} {'D':>4} {'causal':>6} {'tile':>7} {'lpir us':>9} {'TFLOP/s':>8} "
        f"{'torch us':>9} {'TFLOP/s':>8} {'lpir/torch':>10} {'max |diff|':>10}"
    )
    rows = []
    for shape in todo:
        try:
            row = bench(torch, timer, *shape)
        except Exception as failure:  # a row, not the run: report it and go on
            print(f"  ({shape}: {type(failure).__name__}: {failure})", flush=True)
            continue
        rows.append(row)
        seconds, peer = row["seconds"], row["torch_seconds"]
        print(
            f"  {row['L']:>5} {row['D']:>4} {row['causal']!s:>6} {row['tile']:>7} "
            f"{seconds * 1e6:9.1f} {row['flops'] / seconds / 1e12:8.1f} {peer * 1e6:9.1f} "
            f"{row['flops'] / peer / 1e12:8.1f} {seconds / peer:10.2f} {row['error']:10.1e}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"rate": rate, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
