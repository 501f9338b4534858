"""Static cost of lpir's CUDA GEMVs without a GPU: SASS instructions per weight in the main loop.

    python benchmarks/cuda_sass.py                 # every weight type, N x K = 28672 x 8192
    python benchmarks/cuda_sass.py --arch sm_80 --weights u4,u3

Compiles examples/gemv_wq.lp for each weight type with nvcc (-arch, -O3), disassembles it with
cuobjdump, finds the main loop (the longest backward branch) and divides its instruction count
by the weights it handles. The kernel multiplies every weight once by its scale, so the loop's
`fmul` count is its number of weights (BN x BK / threads per iteration, times however many
iterations nvcc unrolled into it). Besides dequantizing, the loop scales (`fmul`) and
accumulates (`ffma`) every weight and loads and addresses them: 2 instructions per weight and
some overhead are the GEMV's own; the rest is dequantization. This is not a
timing: on a GPU the kernel is also bound by memory bandwidth (see gpu_gemv.py). It tells
whether a code-generation change made the loop shorter, on any machine with nvcc. The other
tables are gpu_gemv.py's other lpir GEMVs on tensor cores: matmul_wq with M = 1 (f16 x and
scales) and examples/gemv_tc.lp (f16 x, the weights' fragments loaded straight from memory in
a k order that pairs their fields for the decoder), and examples/skinny_wq.lp for 16 rows of
x (the same, per weight read for 16 rows).

    python benchmarks/cuda_sass.py --matmul        # matmul_wq and skinny_wq tiles instead

`--matmul` prints, for the tiles gpu_matmul.py tries most (u4, N = K = 4096), the registers and
static shared memory ptxas reports, the main loop's SASS instructions per `HMMA` and its
shared-memory instructions (`LDS`, `STS`, `LDSM`) and `cp.async` copies (`LDGSTS`).

cuobjdump comes with the CUDA toolkit, or `pip install "cuda-toolkit[cuobjdump,nvdisasm]"`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from lpir.backends.cuda.compiler import find_nvcc
from lpir.backends.cuda.sass import find_cuobjdump, main_loop
from lpir.backends.cuda.source import INCLUDE_DIR

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "gemv_wq.lp"
MATMUL = KERNEL.with_name("matmul_wq.lp")
GEMV_TC = KERNEL.with_name("gemv_tc.lp")
SKINNY = KERNEL.with_name("skinny_wq.lp")
WEIGHTS = ["u2", "u3", "u4", "u5", "u6", "u7", "u8", "i4", "f4e2m1", "f6e3m2", "f8e4m3"]


# (title, kernel, parameters, hmma per loop iteration or None for gemv_wq): gemv_wq multiplies
# every weight once by its scale, so the loop's fmul count is its number of weights however
# many iterations nvcc unrolled; the tensor-core loops count hmma per iteration instead
# (matmul_wq 16x256x32: 2 x 8 atoms of n, 2 k16 steps over 4 warps; gemv_tc BN 128: 2 row
# tiles of 16 per warp x 8 k16 steps; skinny_wq 16 rows of x: twice that)
TABLES = [
    ("gemv_wq BN 32", KERNEL, {"BN": 32}, None),
    ("matmul_wq M = 1, 16x256x32 tiles", MATMUL, {"M": 1, "BM": 16, "BN": 256, "BK": 32}, 16),
    ("gemv_tc BN 128 (k-permuted fragments)", GEMV_TC, {"BN": 128}, 16),
    ("skinny_wq M = 16, 16x128x128 (per weight read)", SKINNY, {"M": 16, "BN": 128}, 32),
]


def sass_of(weight: str, arch: str, n: int, k: int, cuobjdump: str, nvcc: str, path, params):
    """(opcodes of the main loop, weights a thread handles per iteration)."""
    zero = 0 if lpir.dtype(weight).is_float else 1 << (lpir.dtype(weight).nbits - 1)
    kernel = lpir.compile(str(path), target="cuda", WT=weight, N=n, K=k, ZERO=zero, **params)
    values = kernel.specialize(None).params
    per_iteration = values["BN"] * values["BK"] // kernel.specialize(None).kernel_ir.threads
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "gemv.cu"
        cubin = Path(directory) / "gemv.cubin"
        source.write_text(kernel.source("cuda"))
        command = [nvcc, "-cubin", f"-arch={arch}", "-O3", f"-I{INCLUDE_DIR}", "-o", cubin, source]
        subprocess.run(command, check=True, capture_output=True)
        sass = subprocess.run(
            [cuobjdump, "-sass", cubin], check=True, capture_output=True, text=True
        ).stdout
    return main_loop(sass), per_iteration


# (kernel, parameters) of `--matmul`: u4, N = K = 4096
MATMUL_TILES = [
    (MATMUL, {"M": 256, "BM": 64, "BN": 64, "BK": 32, "STAGES": 2}),
    (MATMUL, {"M": 256, "BM": 64, "BN": 64, "BK": 64, "STAGES": 3}),
    (MATMUL, {"M": 256, "BM": 128, "BN": 128, "BK": 32, "THREADS": 256, "STAGES": 3}),
    (MATMUL, {"M": 16, "BM": 16, "BN": 128, "BK": 64, "STAGES": 4}),
    (SKINNY, {"M": 256, "MB": 128, "BN": 64, "BK": 32, "XS": 1, "STAGES": 4}),
    (SKINNY, {"M": 256, "MB": 128, "BN": 64, "BK": 64, "XS": 1, "STAGES": 3}),
    (SKINNY, {"M": 64, "MB": 64, "BN": 64, "BK": 128, "XS": 1, "STAGES": 4}),
]


def matmul_table(arch: str, cuobjdump: str, nvcc: str) -> None:
    print(f"matmul_wq and skinny_wq, u4, N = K = 4096, {arch}: main loop")
    print(f"{'kernel':<58} {'regs':>4} {'smem':>6} {'/HMMA':>6}  LDS STS LDSM LDGSTS")
    for path, params in MATMUL_TILES:
        kernel = lpir.compile(str(path), target="cuda", WT="u4", ZERO=8, N=4096, K=4096, **params)
        with tempfile.TemporaryDirectory() as directory:
            source, cubin = Path(directory) / "k.cu", Path(directory) / "k.cubin"
            source.write_text(kernel.source("cuda"))
            command = [nvcc, "-cubin", f"-arch={arch}", "-O3", f"-I{INCLUDE_DIR}", "-Xptxas", "-v"]
            report = subprocess.run(
                [*command, "-o", cubin, source], check=True, capture_output=True, text=True
            ).stderr
            sass = subprocess.run(
                [cuobjdump, "-sass", cubin], check=True, capture_output=True, text=True
            ).stdout
        registers = re.search(r"Used (\d+) registers", report).group(1)  # type: ignore[union-attr]
        shared = re.search(r"(\d+) bytes smem", report)
        loop = main_loop(sass)
        ops = Counter(op.split(".")[0] for op in loop)
        name = f"{path.stem} " + " ".join(f"{k}={v}" for k, v in params.items())
        per_hmma = len(loop) / max(ops["HMMA"], 1)
        print(
            f"{name:<58} {registers:>4} {shared.group(1) if shared else 0:>6} {per_hmma:>6.2f}"
            f"  {ops['LDS']:>3} {ops['STS']:>3} {ops['LDSM']:>4} {ops['LDGSTS']:>6}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--weights", default=",".join(WEIGHTS))
    parser.add_argument("--shape", default="28672x8192", help="N x K")
    parser.add_argument("--matmul", action="store_true", help="matmul_wq and skinny_wq tiles")
    args = parser.parse_args()
    nvcc, cuobjdump = find_nvcc(), find_cuobjdump()
    if not nvcc or not cuobjdump:
        sys.exit("needs nvcc and cuobjdump (pip install 'cuda-toolkit[cuobjdump,nvdisasm]')")
    if args.matmul:
        matmul_table(args.arch, cuobjdump, nvcc)
        return
    n, k = (int(v) for v in args.shape.split("x"))
    for title, path, params, hmma in TABLES:
        print(f"{title}, N x K = {n} x {k}, {args.arch}: SASS of the main loop")
        print(f"{'weight':>8} {'loop':>5} {'weights':>8} {'per weight':>10}  most frequent")
        for weight in args.weights.split(","):
            loop, per_iteration = sass_of(weight, args.arch, n, k, cuobjdump, nvcc, path, params)
            opcodes = Counter(op.split(".")[0] for op in loop)
            if hmma:
                weights = per_iteration * opcodes["HMMA"] // hmma
            else:
                weights = opcodes["FMUL"]
            weights = weights or per_iteration
            top = ", ".join(f"{op} {count}" for op, count in opcodes.most_common(6))
            print(f"{weight:>8} {len(loop):>5} {weights:>8} {len(loop) / weights:>10.2f}  {top}")


if __name__ == "__main__":
    main()
