"""A decoder layer's residual add and RMSNorm on the CPU: lpir's examples/rmsnorm.lp side by
side with its peers.

    python benchmarks/cpu_norm.py                       # M = 1, 16, 4096 tokens; N = 4096
    python benchmarks/cpu_norm.py --rows 256 --widths 8192 --tiles 4/64,1/256

residual += x; y = residual / sqrt(mean(residual^2) + eps) * w, row by row, f16 (or --dtype
bf16/f32) data with f32 arithmetic, timed in the same run as numpy (the same in f32 on the
upcast rows: what a script without a kernel writes) and torch (`residual.add_(x)` then
`F.rms_norm`, in the data's dtype, when torch is installed). A norm is bound by memory: the
floor is its bytes (x, the residual and w read, the residual and y written) over the copy
bandwidth. Contenders are timed in turn (`cpu_gemv.round_robin`, whose thread settings this
script shares); medians of the rounds; ratios below 1: lpir is faster. lpir runs with each
tile BM / THREADS of `--tiles` (rows a block, threads a block) and the table shows the fastest.
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
import os
from pathlib import Path

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import copy_bandwidth, round_robin, timing_columns, torch_tensors
import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "rmsnorm.lp"
EPS = 1e-6
DEFAULT_TILES = "4/128,4/64,2/64,1/256"


def parse_tile(text: str) -> dict:
    """ "BM/THREADS" -> the kernel's tile parameters."""
    rows, threads = text.split("/")
    return {"BM": int(rows), "THREADS": int(threads)}


def make_operands(dt: np.dtype, m: int, n: int, rng):
    x = rng.standard_normal((m, n)).astype(dt)
    residual = (rng.standard_normal((m, n)) * 4).astype(dt)
    w = (1 + 0.1 * rng.standard_normal(n)).astype(dt)
    return x, residual, w


def expected(x, residual, w) -> np.ndarray:
    """y in float64 from the f32 sum of the inputs (which the kernel computes exactly so)."""
    h = (x.astype(np.float32) + residual.astype(np.float32)).astype(np.float64)
    return h / np.sqrt((h * h).mean(axis=1, keepdims=True) + EPS) * w.astype(np.float64)


def numpy_norm(x, residual, w):
    """The same in numpy: f32 rows, the residual stored back, y in the data's dtype."""

    def call():
        h = x.astype(np.float32) + residual.astype(np.float32)
        residual[...] = h
        r = 1 / np.sqrt(np.mean(h * h, axis=1, keepdims=True) + np.float32(EPS))
        return (h * r * w.astype(np.float32)).astype(x.dtype)

    return call


def torch_norm(x, residual, w):
    """torch's in-place add and `F.rms_norm` in the data's dtype; None without torch."""
    tensors = torch_tensors(x, residual, w)
    if tensors is None:
        return None
    import torch

    tx, tr, tw = tensors

    def call():
        tr.add_(tx)
        return torch.nn.functional.rms_norm(tr, (x.shape[1],), tw, EPS)

    return call


def bench(m: int, n: int, type_name: str, tiles: list, repeat: int, bandwidth: float, rng):
    dt = np.dtype(lpir.dtype(type_name).numpy_dtype)
    x, residual, w = make_operands(dt, m, n, rng)
    wanted = expected(x, residual, w)
    calls, error = {}, 0.0
    for tile in tiles:
        kernel = lpir.compile(KERNEL, target="cpu", T=type_name, M=m, N=n, **parse_tile(tile))
        stream, y = residual.copy(), np.zeros((m, n), dt)
        kernel(x, stream, w, np.float32(EPS), y)
        difference = np.abs(y.astype(np.float64) - wanted)
        error = max(error, float(difference.max() / np.abs(wanted).max()))
        # each timed call adds x into the stream again: the values grow, the work does not
        calls[tile] = lambda f=kernel, s=stream, out=y: f(x, s, w, np.float32(EPS), out)
    calls["numpy"] = numpy_norm(x, residual.copy(), w)
    torch_call = torch_norm(x, residual, w)
    if torch_call is not None:
        calls["torch"] = torch_call
    seconds = round_robin(calls, repeat)
    best = min(tiles, key=lambda t: seconds[t])
    floor = (4 * m * n + n) * dt.itemsize / bandwidth
    columns = timing_columns(seconds, best, floor)
    print(f"  {m:>6} {n:>6} {type_name:>5} {best:>7}{columns} {error:8.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,16,4096", help="comma-separated M values (tokens)")
    parser.add_argument("--widths", default="4096", help="comma-separated N values")
    parser.add_argument("--dtype", default="f16", help="f16, bf16 or f32")
    parser.add_argument("--tiles", default=DEFAULT_TILES, help="BM/THREADS,...")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    print(
        f"  {'M':>6} {'N':>6} {'dtype':>5} {'tile':>7} {'lpir ms':>9} {'floor ms':>9} {'/floor':>7}"
        f" {'numpy ms':>9} {'/numpy':>7} {'torch ms':>9} {'/torch':>7} {'rel err':>8}"
    )
    tiles = args.tiles.split(",")
    for n in (int(v) for v in args.widths.split(",")):
        for m in (int(v) for v in args.rows.split(",")):
            bench(m, n, args.dtype, tiles, args.repeat, bandwidth, rng)


if __name__ == "__main__":
    main()
