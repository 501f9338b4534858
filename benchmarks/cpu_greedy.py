"""Greedy decoding's choice of token on the CPU: lpir's examples/greedy.lp side by side with
numpy's and torch's argmax over the rows of logits.

    python benchmarks/cpu_greedy.py                    # M = 1, 8, 64 rows; V = 32000, 128256
    python benchmarks/cpu_greedy.py --rows 16 --vocabularies 50257 --dtype bf16

ids[m] = the first position of row m's largest logit (NaNs passed over), for f32 (or --dtype
f16/bf16) logits: numpy's `argmax(axis=1)` on the array itself (for f16 and bf16 numpy
compares them in software), torch's `argmax(dim=1)` on a tensor of the same dtype when torch is
installed. An argmax reads each logit once: the floor is the logits' bytes over the copy
bandwidth. Contenders are timed in turn (`cpu_gemv.round_robin`, whose thread settings this
script shares); medians of the rounds; ratios below 1: lpir is faster. lpir runs with each
tile BV / THREADS of `--tiles` (logits a row per step, threads a block) and the table shows the
fastest, and a line under it every tile's time; the last column counts the rows whose id
differs from numpy's on the NaN-free logits.
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
import os
from pathlib import Path

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import copy_bandwidth, round_robin, timing_columns, torch_tensors
import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "greedy.lp"
DEFAULT_TILES = "2048/128,256/32,128/1"


def parse_tile(text: str) -> dict:
    """ "BV/THREADS" -> the kernel's tile parameters."""
    logits, threads = text.split("/")
    return {"BV": int(logits), "THREADS": int(threads)}


def torch_argmax(logits: np.ndarray):
    """torch's argmax over the rows, in the logits' dtype; None without torch."""
    tensors = torch_tensors(logits)
    if tensors is None:
        return None
    return lambda: tensors[0].argmax(dim=1)


def bench(m: int, v: int, type_name: str, tiles: list, repeat: int, bandwidth: float, rng):
    dt = np.dtype(lpir.dtype(type_name).numpy_dtype)
    logits = (rng.standard_normal((m, v)) * 3).astype(dt)
    wanted = np.argmax(logits.astype(np.float32), axis=1)
    calls, wrong = {}, 0
    for tile in tiles:
        kernel = lpir.compile(KERNEL, target="cpu", T=type_name, M=m, V=v, **parse_tile(tile))
        ids = np.full(m, -1, np.int32)
        kernel(logits, ids)
        wrong = max(wrong, int(np.count_nonzero(ids != wanted)))
        calls[tile] = lambda f=kernel, out=ids: f(logits, out)
    calls["numpy"] = lambda: np.argmax(logits, axis=1)
    torch_call = torch_argmax(logits)
    if torch_call is not None:
        calls["torch"] = torch_call
    seconds = round_robin(calls, repeat)
    best = min(tiles, key=lambda t: seconds[t])
    floor = m * v * dt.itemsize / bandwidth
    columns = timing_columns(seconds, best, floor)
    print(f"  {m:>5} {v:>7} {type_name:>5} {best:>9}{columns} {wrong:6d}")
    if len(tiles) > 1:  # every tile's time: GPU-shaped ones run interleaved on the CPU
        print("        each tile (ms): " + ", ".join(f"{t} {seconds[t] * 1e3:.3f}" for t in tiles))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,8,64", help="comma-separated M values (sequences)")
    parser.add_argument("--vocabularies", default="32000,128256", help="comma-separated V values")
    parser.add_argument("--dtype", default="f32", help="f32, f16 or bf16")
    parser.add_argument("--tiles", default=DEFAULT_TILES, help="BV/THREADS,...")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    print(
        f"  {'M':>5} {'V':>7} {'dtype':>5} {'tile':>9} {'lpir ms':>9} {'floor ms':>9}"
        f" {'/floor':>7} {'numpy ms':>9} {'/numpy':>7} {'torch ms':>9} {'/torch':>7} {'wrong':>6}"
    )
    tiles = args.tiles.split(",")
    for v in (int(value) for value in args.vocabularies.split(",")):
        for m in (int(value) for value in args.rows.split(",")):
            bench(m, v, args.dtype, tiles, args.repeat, bandwidth, rng)


if __name__ == "__main__":
    main()
