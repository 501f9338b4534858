"""Decode attention over a 4-bit KV cache on the CPU: the cache read through the u4 dtype
against the same bytes read as u8 and unpacked by hand (`kb & 0x0F`, `kb >> 4`, stacked).

    python benchmarks/cpu_kv_u4.py                  # B = 4, H = 32, HKV = 8, D = 128, L = 2048
    python benchmarks/cpu_kv_u4.py --context 256 --repeat 3

KIVI-style quantization: keys per channel (a scale and a minimum per group of GT tokens),
values per token (per group of GD channels), x = code * scale + min. A block reads BT tokens of
one KV head a step; its key tile, loaded row by row, is held column by column for the dot,
so the thread reads its bytes out of order. Both kernels compute the same values; the u4 one
should not cost more than the bytes unpacked by hand (it took 1.4-1.5x before the LLVM
backend cut such fields at byte width: `unpack_ordered_bytes` in backends/llvm/vectors.py).
The two are timed in turn (`cpu_gemv.round_robin`), medians of the rounds, each checked
against float64 (the largest error relative to the largest |o|).
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import round_robin
import numpy as np

import lpir

STEP = """
    for t0 in range(0, n, BT) {
        t = t0 + arange(BT)
        valid = t < n
        grp = t / GT
        KQ
        ksc = cast<f32>(load(k_scale[b, kv, grp, :], mask = valid[:, None]))
        kmn = cast<f32>(load(k_min[b, kv, grp, :], mask = valid[:, None]))
        k = kq * ksc + kmn
        VQ
        vsc = cast<f32>(load(v_scale[b, kv, t0 :+ BT, :], mask = valid[:, None]))
        vmn = cast<f32>(load(v_min[b, kv, t0 :+ BT, :], mask = valid[:, None]))
        v = reshape(reshape(vq, BT, D / GD, GD) * vsc[:, :, None] + vmn[:, :, None], BT, D)
        s = where(valid[None, :], dot(qt, transpose(k)), -inf)
        top = max(m, max(s, axis = 1))
        p = exp(s - top[:, None])
        rescale = exp(m - top)
        l = l * rescale + sum(p, axis = 1)
        acc = dot(p, v, acc * rescale[:, None])
        m = top
    }
"""

KERNEL = """
kernel decode[B = 2, H = 8, HKV = 2, G = H / HKV, D = 64, MAXL = 64, GT = 32, GD = 32, BT = 16](
    q: global f32[B, H, D],
    k_cache: global CACHE,
    v_cache: global CACHE,
    k_scale: global f16[B, HKV, cdiv(MAXL, GT), D],
    k_min: global f16[B, HKV, cdiv(MAXL, GT), D],
    v_scale: global f16[B, HKV, MAXL, cdiv(D, GD)],
    v_min: global f16[B, HKV, MAXL, cdiv(D, GD)],
    ctx_len: global i32[B],
    out: global f32[B, H, D],
    scale: f32,
) blocks(B, HKV) threads(1) {
    b = block.x
    kv = block.y
    let n = load(ctx_len[b])
    qt = load(q[b, kv * G :+ G, :]) * scale
    m = full<f32>[G](-inf)
    l = zeros<f32>[G]
    acc = zeros<f32>[G, D]
    STEP
    o = where(l[:, None] > 0.0, acc / l[:, None], 0.0)
    store(out[b, kv * G :+ G, :], o)
}
"""

THROUGH_U4 = {
    "CACHE": "u4[B, HKV, MAXL, D]",
    "KQ": "kq = cast<f32>(load(k_cache[b, kv, t0 :+ BT, :], mask = valid[:, None]))",
    "VQ": "vq = cast<f32>(load(v_cache[b, kv, t0 :+ BT, :], mask = valid[:, None]))",
}
BY_HAND = {
    "CACHE": "u8[B, HKV, MAXL, D / 2]",
    "KQ": "kb = load(k_cache[b, kv, t0 :+ BT, :], mask = valid[:, None])\n"
    "        kq = cast<f32>(reshape(stack(kb & 0x0F, kb >> 4, axis = -1), BT, D))",
    "VQ": "vb = load(v_cache[b, kv, t0 :+ BT, :], mask = valid[:, None])\n"
    "        vq = cast<f32>(reshape(stack(vb & 0x0F, vb >> 4, axis = -1), BT, D))",
}


def kernel_text(parts: dict) -> str:
    text = KERNEL.replace("STEP", STEP.strip())
    for key, value in parts.items():
        text = text.replace(key, value)
    return text


def quantize(grouped: np.ndarray, axis: int) -> tuple:
    """(codes u8, scales f16, minimums f16, the values they give in float64): 4-bit codes of
    `grouped`, one scale and minimum per line along `axis` (a group)."""
    low, high = grouped.min(axis, keepdims=True), grouped.max(axis, keepdims=True)
    scales, minimums = ((high - low) / 15).astype(np.float16), low.astype(np.float16)
    s, m = scales.astype(np.float64), minimums.astype(np.float64)
    codes = np.clip(np.round((grouped - m) / np.where(s > 0, s, 1)), 0, 15).astype(np.uint8)
    return codes, scales.squeeze(axis), minimums.squeeze(axis), codes * s + m


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """float64 softmax(q k^T * scale) v over each sequence's whole context, grouped heads."""
    batch, heads, _ = q.shape
    groups = heads // k.shape[1]
    out = np.zeros(q.shape)
    for b in range(batch):
        for h in range(heads):
            scores = k[b, h // groups] @ q[b, h] * scale
            weights = np.exp(scores - scores.max())
            out[b, h] = weights / weights.sum() @ v[b, h // groups]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--context", type=int, default=2048, help="tokens, a multiple of 32")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if args.context % 32 or args.depth % 32 or args.heads % args.kv_heads:
        parser.error("--context and --depth must be multiples of 32, --heads of --kv-heads")
    rng = np.random.default_rng(6)
    batch, heads, kv_heads, depth, context = (
        args.batch,
        args.heads,
        args.kv_heads,
        args.depth,
        args.context,
    )
    q = rng.standard_normal((batch, heads, depth)).astype(np.float32)
    shape = (batch, kv_heads, context, depth)
    # keys per channel over groups of 32 tokens, values per token over groups of 32 channels
    keys = rng.standard_normal((batch, kv_heads, context // 32, 32, depth))
    k_codes, k_scale, k_min, k_values = quantize(keys, 3)
    values = rng.standard_normal((batch, kv_heads, context, depth // 32, 32))
    v_codes, v_scale, v_min, v_values = quantize(values, 4)
    k_codes, k_values, v_codes, v_values = (
        a.reshape(shape) for a in (k_codes, k_values, v_codes, v_values)
    )
    scale = np.float32(1 / np.sqrt(depth))
    expected = attention(q.astype(np.float64), k_values, v_values, float(scale))
    lengths = np.full(batch, context, np.int32)
    caches = {
        "u4 dtype": (lpir.pack(k_codes, "u4"), lpir.pack(v_codes, "u4"), THROUGH_U4),
        "u8 by hand": (
            (k_codes[..., 0::2] | k_codes[..., 1::2] << 4).astype(np.uint8),
            (v_codes[..., 0::2] | v_codes[..., 1::2] << 4).astype(np.uint8),
            BY_HAND,
        ),
    }
    calls, errors = {}, {}
    for name, (k_cache, v_cache, parts) in caches.items():
        kernel = lpir.compile(kernel_text(parts), target="cpu")
        out = np.zeros(q.shape, np.float32)
        arguments = (q, k_cache, v_cache, k_scale, k_min, v_scale, v_min, lengths, out, scale)
        kernel(*arguments)
        errors[name] = float(np.max(np.abs(out - expected)) / np.max(np.abs(expected)))
        calls[name] = lambda kernel=kernel, arguments=arguments: kernel(*arguments)
    seconds = round_robin(calls, args.repeat)
    print(f"B {batch}, H {heads}, HKV {kv_heads}, D {depth}, context {context}")
    print(f"{'cache':<12} {'ms':>8} {'error':>10}")
    for name, time in seconds.items():
        print(f"{name:<12} {time * 1e3:>8.3f} {errors[name]:>10.2e}")
    print(f"ratio u4 dtype / u8 by hand: {seconds['u4 dtype'] / seconds['u8 by hand']:.2f}")


if __name__ == "__main__":
    main()
