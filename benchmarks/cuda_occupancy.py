"""Loads in flight per SM of lpir's GEMVs, from ptxas alone (no GPU needed).

    python benchmarks/cuda_occupancy.py                    # u4 and u3, N x K = 28672 x 8192
    python benchmarks/cuda_occupancy.py --weights u5 --shape 8192x8192 --splits 4

A GPU streams at its bandwidth only with enough bytes in flight (about 40 KB per SM on an H200:
4.3 TB/s x ~1.2 us / 132 SMs). For each configuration benchmarks/gpu_gemv.py times (gemv_wq's
and gemv_tc's BN x 128 tiles at 2 to 16 stages, and gemv_splitk with --splits), this compiles
the kernel with nvcc for sm_90, reads its registers and shared memory from `ptxas -v`, and
derives the blocks an SM holds (65536 registers, 228 KB of shared memory, 32 blocks, 2048
threads), the weight bytes the blocks on an SM have requested ahead (blocks x (stages - 1) x the
weight tile, with fewer blocks where the grid is under one wave), and the waves of the grid over
132 SMs; and whether the weight tiles are staged (cp.async into shared memory) or wait in
registers. Not a timing: it says which configurations can fill the memory pipeline at all.
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_gemv import STAGING_BYTES  # deeper pipelines are not timed
from lpir.backends.cuda.compiler import find_nvcc
from lpir.backends.cuda.source import INCLUDE_DIR

import lpir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMS, REGISTERS, SHARED, MAX_BLOCKS, MAX_THREADS = 132, 65536, 228 * 1024, 32, 2048


def resources(source: str, nvcc: str) -> tuple[int, int, int]:
    """(registers, shared bytes, spilled bytes) of the kernel, from ptxas -v."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "kernel.cu"
        path.write_text(source)
        command = [nvcc, "-cubin", "-arch=sm_90", "-O3", f"-I{INCLUDE_DIR}", "-Xptxas", "-v"]
        result = subprocess.run(
            [*command, "-o", str(path.with_suffix(".cubin")), str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
    log = result.stderr

    def number(pattern: str) -> int:
        found = re.search(pattern, log)
        return int(found.group(1)) if found else 0

    return (
        number(r"Used (\d+) registers"),
        number(r"(\d+) bytes smem"),
        number(r"(\d+) bytes spill"),
    )


def blocks_per_sm(registers: int, shared: int, threads: int) -> int:
    by_registers = REGISTERS // (-(-registers // 8) * 8 * threads)
    by_shared = SHARED // (shared + 1024) if shared else MAX_BLOCKS  # 1 KB reserved per block
    return min(by_registers, by_shared, MAX_BLOCKS, MAX_THREADS // threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="u4,u3")
    parser.add_argument("--shape", default="28672x8192", help="N x K")
    parser.add_argument("--stages", default="2,4,8,16")
    parser.add_argument("--splits", default="", help="also gemv_splitk at these splits, e.g. 4")
    args = parser.parse_args()
    nvcc = find_nvcc()
    if nvcc is None:
        sys.exit("needs nvcc")
    n, k = (int(v) for v in args.shape.split("x"))
    stages = [int(v) for v in args.stages.split(",")]
    splits = [int(v) for v in args.splits.split(",") if v]
    print(f"N x K = {n} x {k}, sm_90, {SMS} SMs; 128 threads a block")
    print(
        f"{'kernel':>28} {'regs':>5} {'smem':>6} {'blocks/SM':>9} {'KB ahead/SM':>11} {'waves':>6}"
    )
    for weights in args.weights.split(","):
        dt = lpir.dtype(weights)
        zero = 1 << (dt.nbits - 1) if dt.kind == "uint" else 0
        configs = [("gemv_wq", bn, s, 1) for bn, s in itertools.product((64, 32, 16), stages)]
        configs += [("gemv_tc", bn, s, 1) for bn, s in itertools.product((128, 64), stages)]
        configs += [("gemv_splitk", 16, s, split) for split, s in itertools.product(splits, stages)]
        for name, bn, depth, split in configs:
            tile = bn * 128 * dt.nbits // 8
            if depth * tile > STAGING_BYTES:
                continue
            params = {"WT": weights, "ZERO": zero, "N": n, "K": k, "BN": bn, "STAGES": depth}
            if name == "gemv_splitk":
                params["SPLIT"] = split
            source = lpir.compile(EXAMPLES / f"{name}.lp", target="cuda", **params).source("cuda")
            registers, shared, spilled = resources(source, nvcc)
            blocks = blocks_per_sm(registers, shared, 128)
            grid = -(-n // bn) * split
            resident = min(blocks, grid / SMS)  # a grid of under one wave: fewer
            ahead = resident * (depth - 1) * tile / 1024
            waves = grid / (SMS * blocks)
            label = f"{name} {weights} {bn}x128/s{depth}" + (f"/k{split}" if split > 1 else "")
            staged = "staged" if "w_ahead_ring" in source else "weights in registers"
            spill = f", {spilled} B spilled" if spilled else ""
            print(
                f"{label:>28} {registers:5d} {shared:6d} {blocks:9d} {ahead:11.1f} {waves:6.2f}"
                f"  ({staged}{spill})"
            )


if __name__ == "__main__":
    main()
