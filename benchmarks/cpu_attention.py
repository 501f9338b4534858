"""Prefill attention on the CPU: lpir's examples/attention.lp side by side with torch's
`scaled_dot_product_attention`.

    python benchmarks/cpu_attention.py                        # 32 heads, L = 1024, D = 64, 128
    python benchmarks/cpu_attention.py --lengths 2048 --depths 128 --dtypes bf16 --causal 1

o = softmax(q k^T / sqrt(D)) v per head, f16 or bf16 data (`--dtypes`), f32 scores and sums,
with and without the causal mask. Attention is bound by arithmetic: the table gives GFLOP/s
(4 H L^2 D flops, half with the mask) beside the time. lpir runs every tile BQ x BKV of
`--tiles` and the table shows the fastest; the contenders are timed in turn
(`cpu_gemv.round_robin`, whose thread settings this script shares: the peers' threads sleep
between calls), medians of the rounds; ratios below 1: lpir is faster. Each result is checked
against float64 (the largest error relative to the largest |o|): both lpir and torch round the
weights exp(s - m) to the data's type before multiplying them with v, so about one unit in its
last place (2^-8 for bf16, 2^-11 for f16).
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
import math
import os
from pathlib import Path

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import round_robin
import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "attention.lp"
DEFAULT_TILES = "64x64,128x32,64x128"


def reference(q, k, v, causal: bool) -> np.ndarray:
    """o in float64."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    scores = np.einsum("hqd,hkd->hqk", q, k) / math.sqrt(q.shape[-1])
    if causal:
        length = q.shape[1]
        hidden = np.arange(length)[None, :] > np.arange(length)[:, None]
        scores = np.where(hidden[None], -np.inf, scores)
    weights = np.exp(scores - scores.max(axis=2, keepdims=True))
    weights /= weights.sum(axis=2, keepdims=True)
    return np.einsum("hqk,hkd->hqd", weights, v)


def torch_attention(q, k, v, causal: bool):
    """A call of torch's attention on the same data (None without torch)."""
    try:
        import torch
        import torch.nn.functional as functional
    except ImportError:
        return None
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[q.dtype.name]
    tq, tk, tv = (torch.from_numpy(a.astype(np.float32)).to(dtype) for a in (q, k, v))
    return lambda: functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)


def relative_error(got, expected) -> float:
    difference = np.abs(np.asarray(got, np.float64) - expected)
    return float(difference.max() / np.abs(expected).max())


def bench(heads, length, depth, causal, dtype_name, tiles, repeat, rng) -> None:
    dt = lpir.dtype(dtype_name)
    shape = (heads, length, depth)
    q, k, v = (rng.standard_normal(shape).astype(dt.numpy_dtype) for _ in range(3))
    expected = reference(q, k, v, causal)
    scale = np.float32(1 / math.sqrt(depth))
    calls, errors = {}, {}
    for tile in tiles:
        bq, bkv = (int(n) for n in tile.split("x"))
        kernel = lpir.compile(
            KERNEL, target="cpu", T=dtype_name, H=heads, L=length, D=depth, BQ=bq, BKV=bkv,
            CAUSAL=int(causal),
        )  # fmt: skip
        o = np.zeros(shape, dt.numpy_dtype)
        kernel(q, k, v, o, scale)
        errors[tile] = relative_error(o, expected)
        calls[tile] = lambda kernel=kernel, o=o: kernel(q, k, v, o, scale)
    peer = torch_attention(q, k, v, causal)
    if peer is not None:
        calls["torch"] = peer
        errors["torch"] = relative_error(peer().float().numpy(), expected)
    seconds = round_robin(calls, repeat)
    best = min(tiles, key=lambda t: seconds[t])
    flops = 4 * heads * length * length * depth / (2 if causal else 1)
    torch_ms = f"{seconds['torch'] * 1e3:9.2f}" if peer is not None else f"{'-':>9}"
    ratio = f"{seconds[best] / seconds['torch']:7.2f}" if peer is not None else f"{'-':>7}"
    print(
        f"  {dtype_name:>5} {length:6d} {depth:4d} {int(causal):6d} {best:>7} "
        f"{seconds[best] * 1e3:9.2f} {flops / seconds[best] / 1e9:8.1f} {torch_ms} {ratio} "
        f"{errors.get('torch', float('nan')):9.1e} {errors[best]:8.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--lengths", default="1024", help="comma-separated L values")
    parser.add_argument("--depths", default="64,128", help="comma-separated D values")
    parser.add_argument("--causal", default="0,1", help="comma-separated 0 / 1")
    parser.add_argument("--dtypes", default="bf16,f16", help="comma-separated T values")
    parser.add_argument("--tiles", default=DEFAULT_TILES, help="BQxBKV,...")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.heads} heads; {os.cpu_count()} cores")
    print(
        f"  {'T':>5} {'L':>6} {'D':>4} {'causal':>6} {'tile':>7} {'lpir ms':>9} {'GFLOP/s':>8} "
        f"{'torch ms':>9} {'/torch':>7} {'torch err':>9} {'rel err':>8}"
    )
    tiles = args.tiles.split(",")
    for dtype_name in args.dtypes.split(","):
        for length in (int(n) for n in args.lengths.split(",")):
            for depth in (int(n) for n in args.depths.split(",")):
                for causal in (bool(int(c)) for c in args.causal.split(",")):
                    bench(args.heads, length, depth, causal, dtype_name, tiles, args.repeat, rng)


if __name__ == "__main__":
    main()
