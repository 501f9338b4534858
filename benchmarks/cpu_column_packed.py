"""u4 GEMV with weights packed along N (AWQ) or along K (gemv_wq) on the CPU, side by side.

    python benchmarks/cpu_column_packed.py                  # 4096 x 4096 and 11008 x 4096
    python benchmarks/cpu_column_packed.py --tiles 64x128,32x64 --shapes 4096x4096

y = W @ x for one f32 x, W = (q - z) * s with u4 codes q, group 128 along K. The same codes
are stored two ways and each is timed with its lpir kernel, in the same run:

* column-packed, AWQ's GEMM format: `qweight` i32[K, N / 8], each word 8 neighbouring
  output columns of one k, in AWQ's nibble order (columns 0 2 4 6 1 3 5 7), zero points packed
  alike in i32[K / G, N / 8], f16 scales [K / G, N]; the kernel (COLUMN_KERNEL) reduces a
  [BK, BN] tile over axis 0, once per BN x BK choice of --tiles;
* row-packed: examples/gemv_wq.lp, u4 [N, K] (each byte 2 neighbouring k of one row), f32
  scales [N, K / G] and the zero point a constant. The benchmark draws every zero point 8 so
  that both compute the same y (its scales are f16 values, exact in f32);
* numpy, dequantize-then-matvec of the AWQ tensors (unpack, reorder, subtract, scale, x @ W),
  and numpy's f32 matvec of the already dequantized matrix (4 bytes a weight);
* the floor: the column-packed kernel's bytes (weights, zero points, scales, x, y) / memory
  bandwidth, measured by a large numpy copy in the same run.

Contenders are timed in turn, one call each per round, --repeat rounds after a warm-up; medians.
Ratios are lpir time / peer time (below 1: lpir is faster). The relative error of each lpir
result against numpy's is printed beside it.
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
import os
from pathlib import Path

# cpu_gemv sets the peers' thread-sleep variables before numpy loads its libraries
from cpu_gemv import copy_bandwidth, round_robin
import numpy as np

import lpir

ROW_KERNEL = Path(__file__).resolve().parent.parent / "examples" / "gemv_wq.lp"
GROUP = 128
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble i of a word holds column AWQ_ORDER[i] of its 8
COLUMN_KERNEL = """
# AWQ: 8 nibbles a word hold columns 0,2,4,6,1,3,5,7 of the word's 8; back to natural order.
def unawq(t, R, C) {
    r = reshape(t, R, C / 8, 2, 4)                   # [.., c, h, j] = column 8c + 2j + h
    return reshape(stack(r[:, :, 0, :], r[:, :, 1, :], axis = -1), R, C)
}

# y[n] = sum_k x[k] * (q[k, n] - z[k / G, n]) * s[k / G, n]
kernel awq_gemv[N = 4096, K = 4096, G = 128, BN = 64, BK = 128](
    x: global f32[K],
    qweight: global i32[K, N / 8],
    qzeros: global i32[K / G, N / 8],
    scales: global f16[K / G, N],
    y: global f32[N],
) blocks(cdiv(N, BN)) threads(128) {
    static_assert(G % BK == 0, "a tile lies in one group")
    n0 = block.x * BN
    acc = zeros<f32>[BK, BN]
    for k0 in range(0, K, BK) {
        q = cast<f32>(unawq(view<u4>(load(qweight[k0 :+ BK, n0 / 8 :+ BN / 8])), BK, BN))
        zr = reshape(view<u4>(load(qzeros[k0 / G, n0 / 8 :+ BN / 8])), 1, BN)
        z = cast<f32>(unawq(zr, 1, BN))
        s = cast<f32>(load(scales[k0 / G, n0 :+ BN]))
        acc += (q - z) * s[None, :] * load(x[k0 :+ BK])[:, None]
    }
    store(y[n0 :+ BN], sum(acc, axis = 0))
}
"""


def pack_columns(codes: np.ndarray) -> np.ndarray:
    """u4 codes [R, C] -> i32 [R, C / 8], 8 neighbouring columns a word in AWQ's order."""
    words = np.zeros((codes.shape[0], codes.shape[1] // 8), np.uint32)
    for nibble, column in enumerate(AWQ_ORDER):
        words |= codes[:, column::8].astype(np.uint32) << (4 * nibble)
    return words.view(np.int32)


def unpack_columns(words: np.ndarray) -> np.ndarray:
    """The inverse of pack_columns, as numpy code reading AWQ tensors does it."""
    nibbles = np.stack([(words >> (4 * i)) & 15 for i in range(8)], -1)
    return nibbles[..., np.argsort(AWQ_ORDER)].reshape(words.shape[0], -1)


def numpy_awq(x, qweight, qzeros, scales) -> np.ndarray:
    """numpy's dequantize-then-matvec of the AWQ tensors."""
    k = qweight.shape[0]
    q = unpack_columns(qweight).astype(np.float32).reshape(k // GROUP, GROUP, -1)
    z = unpack_columns(qzeros).astype(np.float32)
    weights = (q - z[:, None, :]) * scales.astype(np.float32)[:, None, :]
    return x @ weights.reshape(k, -1)


def relative_error(y: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(y - expected)) / (np.max(np.abs(expected)) + 1e-30))


def bench_shape(n: int, k: int, tiles: list, repeat: int, bandwidth: float, rng) -> None:
    codes = rng.integers(0, 16, size=(n, k), dtype=np.uint8)
    scales = rng.uniform(0.005, 0.02, size=(n, k // GROUP)).astype(np.float16)
    x = rng.standard_normal(k).astype(np.float32)
    qweight = pack_columns(np.ascontiguousarray(codes.T))
    qzeros = pack_columns(np.full((k // GROUP, n), 8, np.uint8))
    scales_t = np.ascontiguousarray(scales.T)
    dense = (codes.astype(np.float32) - 8) * np.repeat(scales.astype(np.float32), GROUP, axis=1)
    expected = numpy_awq(x, qweight, qzeros, scales_t)

    calls, errors = {}, {}
    for bn, bk in tiles:
        name = f"column BN={bn} BK={bk}"
        kernel = lpir.compile(COLUMN_KERNEL, target="cpu", BN=bn, BK=bk)
        y = np.zeros(n, np.float32)
        kernel(x, qweight, qzeros, scales_t, y)
        errors[name] = relative_error(y, expected)
        calls[name] = lambda c=kernel, out=y: c(x, qweight, qzeros, scales_t, out)
    row_kernel = lpir.compile(ROW_KERNEL, target="cpu", WT="u4", ZERO=8)
    packed = lpir.pack_codes(codes, lpir.dtype("u4"))
    row_scales = scales.astype(np.float32)
    y_row = np.zeros(n, np.float32)
    row_kernel(x, packed, row_scales, y_row)
    errors["row (gemv_wq)"] = relative_error(y_row, expected)
    calls["row (gemv_wq)"] = lambda: row_kernel(x, packed, row_scales, y_row)
    calls["numpy dequantize + matvec"] = lambda: numpy_awq(x, qweight, qzeros, scales_t)
    calls["numpy f32 matvec"] = lambda: dense @ x
    seconds = round_robin(calls, repeat)

    nbytes = qweight.nbytes + qzeros.nbytes + scales_t.nbytes + x.nbytes + 4 * n
    floor = nbytes / bandwidth
    row = seconds["row (gemv_wq)"]
    dequantize = seconds["numpy dequantize + matvec"]
    print(f"\nN = {n}, K = {k}, group {GROUP}: {qweight.nbytes / 2**20:.1f} MiB of weights")
    matvec = seconds["numpy f32 matvec"]
    print(f"  floor {floor * 1e3:.3f} ms; numpy f32 matvec {matvec * 1e3:.3f} ms")
    columns = f"{'ms':>8} {'GB/s':>6} {'/floor':>7} {'/row':>6} {'/np deq':>7} {'rel err':>8}"
    print(f"  {'':24} {columns}")
    for name in errors:
        time_ = seconds[name]
        print(
            f"  {name:24} {time_ * 1e3:8.3f} {nbytes / time_ / 1e9:6.1f} {time_ / floor:7.2f}"
            f" {time_ / row:6.2f} {time_ / dequantize:7.3f} {errors[name]:8.1e}"
        )
    print(f"  {'numpy dequantize + matvec':24} {dequantize * 1e3:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="4096x4096,11008x4096", help="NxK,NxK,...")
    parser.add_argument(
        "--tiles", default="64x128,32x64,32x128,64x32", help="the column kernel's BNxBK,..."
    )
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    tiles = [tuple(int(v) for v in tile.split("x")) for tile in args.tiles.split(",")]
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    threads = os.environ.get("LPIR_NUM_THREADS", "one per core")
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores,")
    print(f"LPIR_NUM_THREADS {threads}; ratios: lpir time / the column's time")
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        bench_shape(n, k, tiles, args.repeat, bandwidth, rng)


if __name__ == "__main__":
    main()
