"""Which tensor-core tiles and pipeline depths of matmul_wq (M = 1) fault on this GPU.

    python benchmarks/gpu_tile_faults.py u5 8192 8192
    TILE=16x64x32/s3 DUMP=u5 compute-sanitizer --tool memcheck --report-api-errors no \\
        python benchmarks/gpu_tile_faults.py u5 8192 8192

Runs each candidate of the GEMV benchmark's tensor-core tiles (stages 2 and 3; `TILE` picks
one) once on random weights and prints `OK weights tile` or `FAIL weights tile: error`. It stops
at the first failure, since a fault leaves the CUDA context unusable; with `DUMP` naming the
weight type, the failing kernel's CUDA C and cubin are written to $OUT (or here) for
`cuobjdump -sass`. A device session found 16x64x32/s3 faulting for u5 and u7 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_gemv
from lpir.backends.cuda.arrays import DevicePacked

import lpir


def main() -> None:
    import torch  # after the arguments: --help needs no GPU stack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="a weight type, e.g. u5")
    parser.add_argument("n", type=int, help="rows of the weight matrix (N)")
    parser.add_argument("k", type=int, help="its columns (K)")
    args = parser.parse_args()
    name, n, k = args.weights, args.n, args.k
    dt = lpir.dtype(name)
    nbytes = -(-k * n * dt.nbits // 8)
    storage = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device="cuda")
    arguments = [
        (torch.randn(1, k, device="cuda") * 0.5).half(),
        DevicePacked(storage, dt, (k, n)),
        (torch.rand(-(-k // gpu_gemv.GROUP), n, device="cuda") * 0.04 + 0.01).half(),
        torch.zeros(1, n, dtype=torch.float16, device="cuda"),
    ]
    candidates = gpu_gemv.matmul_candidates(dt, 1, n, k, gpu_gemv.TENSOR_CORE_TILES, (2, 3))
    for path, params in candidates:
        tile = f"{params['BM']}x{params['BN']}x{params['BK']}/s{params['STAGES']}"
        if os.environ.get("TILE", tile) != tile:
            continue
        kernel = gpu_gemv.compiled_kernel(path, params)
        try:
            kernel.run(arguments)
            torch.cuda.synchronize()
        except Exception as failure:  # the fault is the finding: report it and stop
            print(f"FAIL {name} {tile}: {type(failure).__name__}: {str(failure).splitlines()[0]}")
            if os.environ.get("DUMP") == name:
                out = Path(os.environ.get("OUT", "."))
                (out / f"fault_{name}.cu").write_text(kernel.cuda_source)
                (out / f"fault_{name}.cubin").write_bytes(kernel.cubin())
            sys.exit(1)
        print(f"OK {name} {tile}", flush=True)


if __name__ == "__main__":
    main()
