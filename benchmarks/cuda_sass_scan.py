"""Check the machine code of every kernel the GPU benchmarks may time, without a GPU.

    python benchmarks/cuda_sass_scan.py            # ~500 configurations, ~20 min on 2 cores
    python benchmarks/cuda_sass_scan.py --quick    # u4 and u3 only
    python benchmarks/cuda_sass_scan.py --gemv-tc  # gemv_tc only (~3 min)
    python benchmarks/cuda_sass_scan.py --skinny   # skinny_wq only

For each configuration of benchmarks/gpu_gemv.py (gemv_wq, gemv_splitk, gemv_tc and matmul_wq
as a tensor-core GEMV at every weight type, tile, depth and split) and benchmarks/gpu_matmul.py
(matmul_wq and skinny_wq at M = 16, 64, 256), compiles the CUDA C with nvcc for sm_90 and
disassembles it (cuobjdump), then reports configurations whose SASS

* reads memory through an address register that nothing before it wrote
  (`lpir.backends.cuda.sass.undefined_address_registers`: the pattern of the ptxas fault found
  in stop 10, an illegal address on the GPU), or
* uses local memory (registers spilled: slow, not wrong).

A device session is short; this finds what would fault or crawl before it starts.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_gemv import (
    ALL_WEIGHTS,
    KERNEL,
    MATMUL_KERNEL,
    TC_TILES,
    TENSOR_CORE_TILES,
    gemv_configs,
    gemv_params,
    gemv_tc_configs,
    matmul_params,
    parse_tiles,
    splitk_configs,
)
from gpu_matmul import ALL_M, skinny_candidates
from lpir.backends.cuda.compiler import find_nvcc
from lpir.backends.cuda.sass import disassemble, find_cuobjdump, undefined_address_registers
from lpir.backends.cuda.source import INCLUDE_DIR

import lpir

GEMV_SHAPE = (28672, 8192)
SPLIT_SHAPE = (8192, 8192)
# what gpu_session.sh device times: gpu_gemv.py's default tiles, STAGES and SPLITS
GEMV_TILES = parse_tiles("64x128,32x128,16x128")
STAGES = (2, 4, 8, 16)
SPLITS = (2, 4, 8)
MATMUL_WEIGHTS = ("u4", "u3", "f4e2m1")  # what gpu_matmul.py times
MATMUL_TILES = "16x32x128,16x64x128,32x64x64,64x64x64,64x128x32,64x64x32,128x128x32@256"


def gemv_tc_configurations(weights: list[str]) -> list[tuple[Path, dict]]:
    """gemv_tc (tensor cores, k-permuted fragments) at both shapes, every tile, depth and (at
    8192 x 8192) split, as gpu_gemv.py times it."""
    return [
        (Path(path), params)
        for name, shape in itertools.product(weights, (GEMV_SHAPE, SPLIT_SHAPE))
        for path, params, _ in gemv_tc_configs(lpir.dtype(name), *shape, TC_TILES, STAGES, SPLITS)
    ]


def skinny_configurations(weights: list[str]) -> list[tuple[Path, dict]]:
    """skinny_wq at every M, tile, depth and split gpu_matmul.py times (u4, u3, f4e2m1)."""
    return [
        (Path(path), params)
        for name, m in itertools.product(MATMUL_WEIGHTS, ALL_M)
        if name in weights
        for path, params, _ in skinny_candidates(lpir.dtype(name), m, 8192, 8192, (2, 3, 4))
    ]


def configurations(weights: list[str]) -> list[tuple[Path, dict]]:
    found = gemv_tc_configurations(weights) + skinny_configurations(weights)
    for name in weights:
        dt = lpir.dtype(name)
        for bn, bk, depth in gemv_configs(dt, GEMV_TILES, STAGES):
            found.append((KERNEL, gemv_params(dt, *GEMV_SHAPE, bn, bk, depth)))
        for path, params, _ in splitk_configs(dt, *SPLIT_SHAPE, SPLITS, STAGES):
            found.append((Path(path), params))
        for tile, depth in itertools.product(TENSOR_CORE_TILES, (2,)):
            found.append((MATMUL_KERNEL, matmul_params(dt, 1, *GEMV_SHAPE, tile, depth)))
    for name in [w for w in MATMUL_WEIGHTS if w in weights]:
        dt = lpir.dtype(name)
        for m, tile, depth in itertools.product(ALL_M, parse_tiles(MATMUL_TILES), (2, 3, 4)):
            if tile[0] <= max(16, m):
                found.append((MATMUL_KERNEL, matmul_params(dt, m, 8192, 8192, tile, depth)))
    return found


def verdict(config: tuple[Path, dict], nvcc: str, cuobjdump: str) -> str:
    """'' for clean SASS, else what is wrong."""
    path, params = config
    source = lpir.compile(path, target="cuda", **params).source("cuda")
    with tempfile.TemporaryDirectory() as directory:
        unit, cubin = Path(directory) / "kernel.cu", Path(directory) / "kernel.cubin"
        unit.write_text(source)
        command = [nvcc, "-cubin", "-arch=sm_90", "-O3", f"-I{INCLUDE_DIR}", "-o", cubin, unit]
        compiled = subprocess.run(command, capture_output=True, text=True)
        if compiled.returncode:
            return "nvcc failed: " + compiled.stderr[-300:]
        sass = disassemble(cubin.read_bytes(), cuobjdump)
    problems = []
    undefined = undefined_address_registers(sass)
    if undefined:
        problems.append(f"address registers read before written: {undefined[:2]}")
    if "LDL" in sass or "STL" in sass:
        problems.append("local memory")
    return "; ".join(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="u4 and u3 only")
    parser.add_argument("--gemv-tc", action="store_true", help="only gemv_tc's configurations")
    parser.add_argument("--skinny", action="store_true", help="only skinny_wq's configurations")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    nvcc, cuobjdump = find_nvcc(), find_cuobjdump()
    if not nvcc or not cuobjdump:
        sys.exit("needs nvcc and cuobjdump (pip install 'cuda-toolkit[cuobjdump,nvdisasm]')")
    weights = ["u4", "u3"] if args.quick else ALL_WEIGHTS
    if args.gemv_tc:
        configs = gemv_tc_configurations(weights)
    elif args.skinny:
        configs = skinny_configurations(weights)
    else:
        configs = configurations(weights)
    print(f"{len(configs)} configurations", flush=True)
    flagged = undefined = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        verdicts = pool.map(lambda c: verdict(c, nvcc, cuobjdump), configs)
        for (path, params), problem in zip(configs, verdicts):
            if problem:
                flagged += 1
                undefined += "address registers" in problem
                print(f"{path.stem} {params}: {problem}", flush=True)
    print(f"{flagged} flagged, {undefined} with address registers read before written")


if __name__ == "__main__":
    main()
