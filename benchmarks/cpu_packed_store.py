"""Masked stores of u4 codes on the CPU, beside the same codes packed by hand into u8.

    python benchmarks/cpu_packed_store.py                 # rows 4096 x 128; kv_append t = 512, 1
    python benchmarks/cpu_packed_store.py --tokens 16 --repeat 500

Two pairs, each timed in turn (one call of each per round, --repeat rounds after a warm-up,
medians in ms, LPIR_NUM_THREADS=1 unless set):

* store: a tile of rows of u4 codes stored with a mask by row (`(arange(BT) < t - t0)[:, None]`),
  and the same codes packed two a byte by hand (`v[:, :, 0] | (v[:, :, 1] << 4)`) into u8;
* kv_append: examples/kv_append.lp (a KV cache's append of t rows, u4 codes with f16 scales and
  zero points, masked by row) and the same kernel packing its codes into u8 by hand.

Both members of a pair write the same bytes (checked). The ratio is what the u4 dtype costs
beyond packing by hand: bit-packing makes a store whose lanes share their mask within each byte a
plain masked byte store; it was an atomic read-modify-write of every byte (100x, 13x).
"""

from __future__ import annotations

import os

os.environ.setdefault("LPIR_NUM_THREADS", "1")

import argparse
from pathlib import Path

import numpy as np
from cpu_gemv import round_robin

import lpir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

STORE = """
kernel store_u4[R = 4096, D = 128, BT = 4](x: global u8[R, D], c: global u4[R, D], t: i32)
    blocks(cdiv(R, BT)) threads(32) {
    t0 = block.x * BT
    store(c[t0 :+ BT, :], cast<u4>(load(x[t0 :+ BT, :])), mask = (arange(BT) < t - t0)[:, None])
}
kernel store_u8[R = 4096, D = 128, BT = 4](x: global u8[R, D], c: global u8[R, D / 2], t: i32)
    blocks(cdiv(R, BT)) threads(32) {
    t0 = block.x * BT
    v = reshape(load(x[t0 :+ BT, :]), BT, D / 2, 2)
    store(c[t0 :+ BT, :], v[:, :, 0] | (v[:, :, 1] << 4), mask = (arange(BT) < t - t0)[:, None])
}
"""


def by_hand(source: str) -> str:
    """kv_append.lp with u4 codes packed two a byte into a u8 cache."""
    cache = "cache: global QT[H, S, D],"
    stored = "store(cache[head, row :+ BT, :], cast<QT>(reshape(q, BT, D)), mask = new)"
    assert cache in source and stored in source
    return source.replace(cache, "cache: global u8[H, S, D / 2],").replace(
        stored,
        "pairs = reshape(cast<u8>(reshape(q, BT, D)), BT, D / 2, 2)\n"
        "    store(cache[head, row :+ BT, :], pairs[:, :, 0] | (pairs[:, :, 1] << 4), "
        "mask = new)",
    )


def bench_store(rows: int, repeat: int, rng: np.random.Generator) -> tuple[dict, str]:
    x = rng.integers(0, 16, (rows, 128)).astype(np.uint8)
    t = np.int32(rows - 3)  # the last tile's last 3 rows masked off
    u4 = lpir.compile(STORE, target="cpu", kernel="store_u4", R=rows)
    u8 = lpir.compile(STORE, target="cpu", kernel="store_u8", R=rows)
    c4, c8 = lpir.pack_codes(np.zeros((rows, 128), np.uint8), "u4"), np.zeros((rows, 64), np.uint8)
    times = round_robin({"u4": lambda: u4(x, c4, t), "u8": lambda: u8(x, c8, t)}, repeat)
    assert np.array_equal(c4.data, c8.reshape(-1))
    return times, f"store {rows} x 128"


def bench_kv_append(tokens: int, repeat: int, rng: np.random.Generator) -> tuple[dict, str]:
    h, s, d, g, pos = 8, 4096, 128, 32, np.int32(100)
    source = (EXAMPLES / "kv_append.lp").read_text()
    u4 = lpir.compile(source, target="cpu", H=h, S=s, D=d, G=g)
    u8 = lpir.compile(by_hand(source), target="cpu", H=h, S=s, D=d, G=g)
    k = rng.standard_normal((tokens, h, d)).astype(np.float16)
    c4 = lpir.pack_codes(np.zeros((h, s, d), np.uint8), "u4")
    c8 = np.zeros((h, s, d // 2), np.uint8)
    sides = [np.zeros((h, s, d // g), np.float16) for _ in range(4)]
    calls = {
        "u4": lambda: u4(k, c4, sides[0], sides[1], pos, np.int32(tokens)),
        "u8": lambda: u8(k, c8, sides[2], sides[3], pos, np.int32(tokens)),
    }
    times = round_robin(calls, repeat)
    assert np.array_equal(c4.data, c8.reshape(-1))
    return times, f"kv_append t = {tokens}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--tokens", default="512,1", help="kv_append's t, comma-separated")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    runs = [bench_store(args.rows, args.repeat, rng)]
    runs += [bench_kv_append(int(t), args.repeat, rng) for t in args.tokens.split(",")]
    print(f"{'case':<22}{'u4 ms':>10}{'u8 by hand ms':>15}{'ratio':>8}")
    for times, name in runs:
        u4, u8 = times["u4"] * 1e3, times["u8"] * 1e3
        print(f"{name:<22}{u4:>10.4f}{u8:>15.4f}{u4 / u8:>8.2f}")


if __name__ == "__main__":
    main()
