"""Paged decode attention on the CPU: lpir's examples/paged_attention.lp side by side with
numpy and torch.

    python benchmarks/cpu_decode_attention.py                   # B = 16, H = 8, D = 128, f16
    python benchmarks/cpu_decode_attention.py --kv-heads 2 --configs 1x16,1x32
    python benchmarks/cpu_decode_attention.py --layouts head-major,token-major

One query token per sequence and head over a KV cache in pages of PS tokens, each sequence's
pages shuffled over the cache and its context drawn from [--min-context, MAXP * PS]
(MAXP * PS = 1024 by default: contexts of 811 tokens on average). The cache is laid out as
each `--layouts` says, every layout holding the same values:

* head-major, the example's: [pages, HKV, PS, D], a page holding each KV head's PS tokens
  together (vLLM's layout), so a KV head's page is one run of PS * D elements;
* token-major, the example's layout before (`TOKEN_MAJOR_KERNEL`): [pages * PS, HKV, D], the
  KV heads of a token side by side, so a KV head's rows are D elements HKV * D apart.

Timed in the same run, each in the same layout as the lpir kernel it is set beside:

* numpy: each sequence's pages gathered (`cache[pages]`), then softmax(q k^T * scale) v in f32;
* torch: `scaled_dot_product_attention` on the gathered K/V in KT (enable_gqa for H > HKV),
  when torch is installed (the gather is torch's too, `index_select`);
* the floor: the K/V bytes the contexts hold / memory bandwidth, the bandwidth measured by a
  large numpy copy in the same run (`cpu_gemv.copy_bandwidth`: bytes read + bytes written).

lpir runs each THREADSxBT of `--configs` (threads a block, tokens a step). The contenders are
timed in turn (`cpu_gemv.round_robin`, whose thread settings this script shares: the peers'
threads sleep between calls), medians of the rounds; ratios are lpir time / peer time (below
1: lpir is faster). Each result is checked against float64 (the largest error relative to the
largest |o|). With several layouts, each contender's time in the first layout over its time in
the others closes the run.
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
LAYOUTS = ("head-major", "token-major")

# examples/paged_attention.lp before its cache became head-major (at 66a25b5): the KV heads of
# one token side by side, so a block reading one KV head reads D-element rows HKV * D apart.
TOKEN_MAJOR_KERNEL = """\
kernel paged_attention[
    KT = f16, OT = f32, B = 3, H = 8, HKV = 2, G = H / HKV, D = 64, PS = 16, MAXP = 6,
    ROWS = B * MAXP * PS, BT = 16, THREADS = 1
](
    q: global KT[B, H, D],
    k_cache: global KT[ROWS, HKV, D],
    v_cache: global KT[ROWS, HKV, D],
    block_table: global i32[B, MAXP],
    ctx_len: global i32[B],
    out: global OT[B, H, D],
    scale: f32,
) blocks(B, HKV) threads(THREADS) {
    static_assert(H == HKV * G, "G query heads share each of the HKV KV heads")
    b = block.x
    kv = block.y
    let n = load(ctx_len[b])
    qt = cast<f32>(load(q[b, kv * G :+ G, :])) * scale    # f32[G, D]: the block's query heads
    m = full<f32>[G](-inf)                                # running max of each head's scores
    l = zeros<f32>[G]                                     # running sum of exp(score - m)
    acc = zeros<f32>[G, D]                                # running sum of exp(score - m) v
    for t0 in range(0, n, BT) {
        t = t0 + arange(BT)
        valid = t < n
        rows = load(block_table[b, t / PS], mask = valid) * PS + t % PS
        k = cast<f32>(load(k_cache[rows, kv, :], mask = valid[:, None]))   # f32[BT, D]
        v = cast<f32>(load(v_cache[rows, kv, :], mask = valid[:, None]))
        s = where(valid[None, :], dot(qt, transpose(k)), -inf)             # f32[G, BT]
        top = max(m, max(s, axis = 1))                    # finite: a step has a valid token
        p = exp(s - top[:, None])
        rescale = exp(m - top)                            # 0 at the first step (m = -inf)
        l = l * rescale + sum(p, axis = 1)
        acc = dot(p, v, acc * rescale[:, None])
        m = top
    }
    o = where(l[:, None] > 0.0, acc / l[:, None], 0.0)
    store(out[b, kv * G :+ G, :], cast<OT>(o))
}
"""


def make_cache(args, kv_heads: int, dtype, rng) -> dict:
    """q, the paged K/V cache in each of `args.layouts`, the block table and the context
    lengths. The head-major cache is [pages, HKV, PS, D]; the token-major one holds the same
    values as [pages * PS, HKV, D]."""
    batch, pages, page = args.batch, args.max_pages, args.page
    lengths = rng.integers(max(args.min_context, 1), pages * page + 1, batch).astype(np.int32)
    shape = (batch * pages, kv_heads, page, args.depth)
    data = {
        "q": rng.standard_normal((batch, args.heads, args.depth)).astype(dtype),
        "table": rng.permutation(batch * pages).reshape(batch, pages).astype(np.int32),
        "lengths": lengths,
    }
    for name in ("k", "v"):
        head_major = rng.standard_normal(shape).astype(dtype)
        data[name] = {}
        if "head-major" in args.layouts:
            data[name]["head-major"] = head_major
        if "token-major" in args.layouts:
            data[name]["token-major"] = np.ascontiguousarray(
                head_major.transpose(0, 2, 1, 3)
            ).reshape(batch * pages * page, kv_heads, args.depth)
    return data


def gathered(cache: np.ndarray, layout: str, data: dict, page: int, b: int) -> np.ndarray:
    """Sequence b's keys (values) gathered from `cache` in `layout`: [HKV, L, D]."""
    length = data["lengths"][b]
    if layout == "head-major":
        pages = cache[data["table"][b, : -(-length // page)]]  # [pages, HKV, PS, D]
        return pages.transpose(1, 0, 2, 3).reshape(cache.shape[1], -1, cache.shape[3])[:, :length]
    t = np.arange(length)
    return cache[data["table"][b, t // page] * page + t % page].transpose(1, 0, 2)


def attention(data: dict, layout: str, page: int, scale, float_type) -> np.ndarray:
    """softmax(q k^T * scale) v of each sequence's gathered pages, in `float_type`."""
    q = data["q"].astype(float_type)
    out = np.empty(q.shape, float_type)
    group = q.shape[1] // data["k"][layout].shape[1]
    for b in range(q.shape[0]):
        k, v = (
            gathered(data[name][layout], layout, data, page, b).astype(float_type)
            for name in ("k", "v")
        )
        k, v = k.repeat(group, axis=0), v.repeat(group, axis=0)  # [H, L, D]
        scores = np.einsum("hld,hd->hl", k, q[b]) * scale
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        out[b] = np.einsum("hl,hld->hd", weights, v) / weights.sum(axis=1)[:, None]
    return out


def numpy_attention(data: dict, layout: str, page: int, scale: np.float32) -> np.ndarray:
    """The peer: gather each sequence's pages, then softmax(q k^T) v in f32."""
    return attention(data, layout, page, scale, np.float32)


def reference(data: dict, page: int, scale: float) -> np.ndarray:
    return attention(data, next(iter(data["k"])), page, scale, np.float64)


def torch_attention(data: dict, layout: str, page: int, scale: float):
    """A call of torch's attention on the K/V gathered from `layout` (None without torch)."""
    try:
        import torch
        import torch.nn.functional as functional
    except ImportError:
        return None
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

    def as_torch(array: np.ndarray):
        return torch.from_numpy(array.astype(np.float32)).to(dtype[array.dtype.name])

    q_all, k_cache, v_cache = (as_torch(a) for a in (data["q"], *(data[n][layout] for n in "kv")))
    lengths = [int(n) for n in data["lengths"]]
    if layout == "head-major":
        index = [torch.from_numpy(data["table"][b, : -(-n // page)]) for b, n in enumerate(lengths)]
    else:
        index = [
            torch.from_numpy(data["table"][b, t // page] * page + t % page)
            for b, t in enumerate(np.arange(n) for n in lengths)
        ]
    gqa = data["q"].shape[1] != data["k"][layout].shape[1]

    def gather(cache, b: int):
        """[HKV, L, D]"""
        rows = cache.index_select(0, index[b])
        if layout == "token-major":
            return rows.transpose(0, 1)
        heads, depth = cache.shape[1], cache.shape[3]
        return rows.transpose(0, 1).reshape(heads, -1, depth)[:, : lengths[b]]

    def call():
        outs = []
        for b in range(len(lengths)):
            k, v = gather(k_cache, b), gather(v_cache, b)
            q = q_all[b][:, None, :]  # [H, 1, D]
            outs.append(
                functional.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)
            )
        return torch.stack(outs)[:, :, 0, :]

    return call


def relative_error(got, expected) -> float:
    difference = np.abs(np.asarray(got, np.float64) - expected)
    return float(difference.max() / np.abs(expected).max())


def lpir_kernel(layout: str, dtype_name: str, page: int, config: str):
    """The example (head-major) or its token-major predecessor at THREADSxBT `config`."""
    threads, step = (int(n) for n in config.split("x"))
    source = KERNEL if layout == "head-major" else TOKEN_MAJOR_KERNEL
    return lpir.compile(source, target="cpu", KT=dtype_name, PS=page, BT=step, THREADS=threads)


def layout_calls(args, data: dict, layout: str, dtype_name: str, scale, expected) -> tuple:
    """({contender: call}, {contender: relative error}) of the contenders in `layout`."""
    k, v = (data[name][layout] for name in ("k", "v"))
    arguments = [data["q"], k, v, data["table"], data["lengths"]]
    calls, errors = {}, {}
    for config in args.configs.split(","):
        kernel = lpir_kernel(layout, dtype_name, args.page, config)
        out = np.zeros(data["q"].shape, np.float32)
        kernel(*arguments, out, scale)
        errors[config] = relative_error(out, expected)
        calls[config] = lambda kernel=kernel, out=out: kernel(*arguments, out, scale)
    calls["numpy"] = lambda: numpy_attention(data, layout, args.page, scale)
    errors["numpy"] = relative_error(calls["numpy"](), expected)
    peer = torch_attention(data, layout, args.page, float(scale))
    if peer is not None:
        calls["torch"] = peer
        errors["torch"] = relative_error(peer().float().numpy(), expected)
    return calls, errors


def bench(args, kv_heads: int, dtype_name: str, bandwidth: float, rng) -> None:
    dt = lpir.dtype(dtype_name)
    data = make_cache(args, kv_heads, dt.numpy_dtype, rng)
    scale = np.float32(1 / np.sqrt(args.depth))
    expected = reference(data, args.page, float(scale))
    calls, errors = {}, {}
    for layout in args.layouts:
        layout_call, layout_errors = layout_calls(args, data, layout, dtype_name, scale, expected)
        calls |= {(layout, name): call for name, call in layout_call.items()}
        errors |= {(layout, name): error for name, error in layout_errors.items()}
    seconds = round_robin(calls, args.repeat)
    kv_bytes = 2 * int(data["lengths"].sum()) * kv_heads * args.depth * dt.nbits // 8
    floor = kv_bytes / bandwidth
    print(
        f"\nKT = {dtype_name}, H = {args.heads}, HKV = {kv_heads}, "
        f"contexts {data['lengths'].mean():.0f} tokens on average, K/V {kv_bytes / 1e6:.1f} MB, "
        f"floor {floor * 1e3:.2f} ms"
    )
    print(
        f"  {'contender':>9} {'layout':>11} {'ms':>8} {'GB/s':>6} {'/floor':>7} {'/numpy':>7} "
        f"{'/torch':>7} {'rel err':>8}"
    )
    for (layout, name), time_ in seconds.items():
        torch_time = seconds.get((layout, "torch"))
        to_torch = f"{time_ / torch_time:7.2f}" if torch_time else f"{'-':>7}"
        print(
            f"  {name:>9} {layout:>11} {time_ * 1e3:8.2f} {kv_bytes / time_ / 1e9:6.1f} "
            f"{time_ / floor:7.2f} {time_ / seconds[layout, 'numpy']:7.2f} {to_torch} "
            f"{errors[layout, name]:8.1e}"
        )
    first, *others = args.layouts
    for other in others:
        ratios = "  ".join(
            f"{name} {time_ / seconds[other, name]:.2f}"
            for (layout, name), time_ in seconds.items()
            if layout == first
        )
        print(f"  {first} / {other}: {ratios}")


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
    parser.add_argument(
        "--layouts", default="head-major", help=f"comma-separated cache layouts: {LAYOUTS}"
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    args.layouts = args.layouts.split(",")
    for layout in args.layouts:
        if layout not in LAYOUTS:
            parser.error(f"--layouts: {layout!r} is none of {', '.join(LAYOUTS)}")
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
