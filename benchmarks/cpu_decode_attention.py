"""Paged decode attention on the CPU: lpir's examples/paged_attention.lp side by side with
numpy and torch.

    python benchmarks/cpu_decode_attention.py                   # B = 16, H = 8, D = 128, f16
    python benchmarks/cpu_decode_attention.py --kv-heads 2 --configs 1x16,1x32

One query token per sequence and head over a KV cache in pages of PS tokens, each sequence's
pages shuffled over the cache and its context drawn from [--min-context, MAXP * PS]
(MAXP * PS = 1024 by default: contexts of 811 tokens on average), timed in the same run as:

* numpy: each sequence's pages gathered (`cache[rows]`), then softmax(q k^T * scale) v in f32;
* torch: `scaled_dot_product_attention` on the gathered K/V in KT (enable_gqa for H > HKV),
  when torch is installed (the gather is torch's too, `index_select`);
* the floor: the K/V bytes the contexts hold / memory bandwidth, the bandwidth measured by a
  large numpy copy in the same run (`cpu_gemv.copy_bandwidth`: bytes read + bytes written).

lpir runs each THREADSxBT of `--configs` (threads a block, tokens a step). The contenders are
timed in turn (`cpu_gemv.round_robin`, whose thread settings this script shares: the peers'
threads sleep between calls), medians of the rounds; ratios are lpir time / peer time (below
1: lpir is faster). Each result is checked against float64 (the largest error relative to the
largest |o|).
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
import os
from pathlib import Path

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import copy_bandwidth, round_robin
import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "paged_attention.lp"
DEFAULT_CONFIGS = "1x16,1x32,64x32"


def make_cache(args, kv_heads: int, dtype, rng) -> dict:
    """q, the paged K/V cache, the block table and the context lengths."""
    batch, pages = args.batch, args.max_pages
    lengths = rng.integers(max(args.min_context, 1), pages * args.page + 1, batch).astype(np.int32)
    rows = batch * pages * args.page
    shape = (rows, kv_heads, args.depth)
    return {
        "q": rng.standard_normal((batch, args.heads, args.depth)).astype(dtype),
        "k": rng.standard_normal(shape).astype(dtype),
        "v": rng.standard_normal(shape).astype(dtype),
        "table": rng.permutation(batch * pages).reshape(batch, pages).astype(np.int32),
        "lengths": lengths,
    }


def gathered_rows(data: dict, page: int, b: int) -> np.ndarray:
    t = np.arange(data["lengths"][b])
    return data["table"][b, t // page] * page + t % page


def numpy_attention(data: dict, page: int, scale: np.float32) -> np.ndarray:
    """The peer: gather each sequence's pages, then softmax(q k^T) v in f32."""
    q = data["q"].astype(np.float32)
    out = np.empty(q.shape, np.float32)
    group = q.shape[1] // data["k"].shape[1]
    for b in range(q.shape[0]):
        rows = gathered_rows(data, page, b)
        k = data["k"][rows].astype(np.float32).repeat(group, axis=1)  # [L, H, D]
        v = data["v"][rows].astype(np.float32).repeat(group, axis=1)
        scores = np.einsum("lhd,hd->hl", k, q[b]) * scale
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        out[b] = np.einsum("hl,lhd->hd", weights, v) / weights.sum(axis=1)[:, None]
    return out


def reference(data: dict, page: int, scale: float) -> np.ndarray:
    q = data["q"].astype(np.float64)
    out = np.empty(q.shape)
    group = q.shape[1] // data["k"].shape[1]
    for b in range(q.shape[0]):
        rows = gathered_rows(data, page, b)
        k = data["k"][rows].astype(np.float64).repeat(group, axis=1)
        v = data["v"][rows].astype(np.float64).repeat(group, axis=1)
        scores = np.einsum("lhd,hd->hl", k, q[b]) * scale
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        out[b] = np.einsum("hl,lhd->hd", weights, v) / weights.sum(axis=1)[:, None]
    return out


def torch_attention(data: dict, page: int, scale: float):
    """A call of torch's attention on the gathered K/V (None without torch)."""
    try:
        import torch
        import torch.nn.functional as functional
    except ImportError:
        return None
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    as_torch = {
        name: torch.from_numpy(data[name].astype(np.float32)).to(dtype[data[name].dtype.name])
        for name in ("q", "k", "v")
    }
    rows = [torch.from_numpy(gathered_rows(data, page, b)) for b in range(len(data["lengths"]))]
    gqa = data["q"].shape[1] != data["k"].shape[1]

    def call():
        outs = []
        for b, index in enumerate(rows):
            k = as_torch["k"].index_select(0, index).transpose(0, 1)  # [HKV, L, D]
            v = as_torch["v"].index_select(0, index).transpose(0, 1)
            q = as_torch["q"][b][:, None, :]  # [H, 1, D]
            outs.append(
                functional.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)
            )
        return torch.stack(outs)[:, :, 0, :]

    return call


def relative_error(got, expected) -> float:
    difference = np.abs(np.asarray(got, np.float64) - expected)
    return float(difference.max() / np.abs(expected).max())


def bench(args, kv_heads: int, dtype_name: str, bandwidth: float, rng) -> None:
    dt = lpir.dtype(dtype_name)
    data = make_cache(args, kv_heads, dt.numpy_dtype, rng)
    scale = np.float32(1 / np.sqrt(args.depth))
    expected = reference(data, args.page, float(scale))
    arguments = [data["q"], data["k"], data["v"], data["table"], data["lengths"]]
    calls, errors = {}, {}
    for config in args.configs.split(","):
        threads, step = (int(n) for n in config.split("x"))
        kernel = lpir.compile(
            KERNEL, target="cpu", KT=dtype_name, PS=args.page, BT=step, THREADS=threads
        )
        out = np.zeros(data["q"].shape, np.float32)
        kernel(*arguments, out, scale)
        errors[config] = relative_error(out, expected)
        calls[config] = lambda kernel=kernel, out=out: kernel(*arguments, out, scale)
    calls["numpy"] = lambda: numpy_attention(data, args.page, scale)
    errors["numpy"] = relative_error(calls["numpy"](), expected)
    peer = torch_attention(data, args.page, float(scale))
    if peer is not None:
        calls["torch"] = peer
        errors["torch"] = relative_error(peer().float().numpy(), expected)
    seconds = round_robin(calls, args.repeat)
    kv_bytes = 2 * int(data["lengths"].sum()) * kv_heads * args.depth * dt.nbits // 8
    floor = kv_bytes / bandwidth
    print(
        f"\nKT = {dtype_name}, H = {args.heads}, HKV = {kv_heads}, "
        f"contexts {data['lengths'].mean():.0f} tokens on average, K/V {kv_bytes / 1e6:.1f} MB, "
        f"floor {floor * 1e3:.2f} ms"
    )
    print(
        f"  {'contender':>9} {'ms':>8} {'GB/s':>6} {'/floor':>7} {'/numpy':>7} {'/torch':>7} "
        f"{'rel err':>8}"
    )
    for name, time_ in seconds.items():
        to_torch = f"{time_ / seconds['torch']:7.2f}" if "torch" in seconds else f"{'-':>7}"
        print(
            f"  {name:>9} {time_ * 1e3:8.2f} {kv_bytes / time_ / 1e9:6.1f} {time_ / floor:7.2f} "
            f"{time_ / seconds['numpy']:7.2f} {to_torch} {errors[name]:8.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="sequences (B)")
    parser.add_argument("--heads", type=int, default=8, help="query heads (H)")
    parser.add_argument("--kv-heads", default="8,2", help="comma-separated HKV values")
    parser.add_argument("--depth", type=int, default=128, help="D")
    parser.add_argument("--page", type=int, default=16, help="tokens a page (PS)")
    parser.add_argument("--max-pages", type=int, default=64, help="pages a sequence (MAXP)")
    parser.add_argument("--min-context", type=int, default=600, help="at least 1")
    parser.add_argument("--dtypes", default="f16", help="comma-separated KT values")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="THREADSxBT,...")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for kv_heads in (int(n) for n in args.kv_heads.split(",")):
        if kv_heads < 1 or args.heads % kv_heads:
            parser.error(f"--heads {args.heads} must be a multiple of each --kv-heads ({kv_heads})")
    if not 1 <= args.min_context <= args.max_pages * args.page:
        parser.error(
            f"--min-context must be 1 to --max-pages x --page ({args.max_pages * args.page})"
        )
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    for dtype_name in args.dtypes.split(","):
        for kv_heads in (int(n) for n in args.kv_heads.split(",")):
            bench(args, kv_heads, dtype_name, bandwidth, rng)


if __name__ == "__main__":
    main()
