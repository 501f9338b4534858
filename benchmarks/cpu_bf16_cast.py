"""f32 -> bf16 and f32 -> f16 casts of rows on the CPU, beside ml_dtypes' and numpy's astype.

    python benchmarks/cpu_bf16_cast.py                    # m = 256, K = 4096, 5120, 7168
    python benchmarks/cpu_bf16_cast.py --rows 64 --k 7168 --repeat 200

The kernel casts BM = 4 rows a block over 128 threads, so a thread holds 4 K / 128 lanes: 128
for K = 4096, 160 for 5120, 224 for 7168 (the activations of a 7168-wide model, quantized for
its next GEMM). Each call is timed in turn (one call of each per round, --repeat rounds after a
warm-up; medians of the thread's CPU time in ms, LPIR_NUM_THREADS=1 unless set). The outputs
are checked bit for bit against ml_dtypes' and numpy's. With AVX512-BF16 the bf16 cast is
vcvtne2ps2bf16; a lane count that is not a power of two once took its codes across a branch
word by word (420 vpextrw at 224 lanes), 2-4x the f16 cast. (The few vpinsrw left build the
rows' mask, once a thread.)
"""

from __future__ import annotations

import os

os.environ.setdefault("LPIR_NUM_THREADS", "1")

import argparse
import re
import statistics
import time

import ml_dtypes
import numpy as np

import lpir

KERNEL = """
kernel cast_rows[S = f32, D = bf16, K = 4096, BM = 4](
    x: global S[m, K],
    y: global D[m, K],
    m: i32,
) blocks(cdiv(m, BM)) threads(128) {
    rows = block.x * BM
    store(y[rows :+ BM, :], cast<D>(load(x[rows :+ BM, :])))
}
"""

TYPES = {"bf16": ml_dtypes.bfloat16, "f16": np.float16}


def round_robin(calls: dict, repeat: int) -> dict:
    """Median CPU seconds of this thread for each call, timed in turn, one call of each per
    round (CPU time: the machine may be shared; one lpir thread runs in the caller's)."""
    for call in calls.values():
        call()  # warm-up
    samples: dict = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.thread_time()
            call()
            samples[name].append(time.thread_time() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def bench(m: int, k: int, repeat: int) -> None:
    x = np.random.default_rng(0).standard_normal((m, k)).astype(np.float32)
    calls, word_moves = {}, {}
    for name, numpy_type in TYPES.items():
        kernel = lpir.compile(KERNEL, target="cpu", D=name, K=k)
        y = np.zeros((m, k), numpy_type)
        kernel(x, y, m)
        assert np.array_equal(y.view(np.uint16), x.astype(numpy_type).view(np.uint16))
        asm = kernel.source("asm")
        word_moves[name] = len(re.findall(r"\bvp(?:extr|insr)w\b", asm))
        calls[f"lpir {name}"] = lambda kernel=kernel, y=y: kernel(x, y, m)
        calls[f"astype {name}"] = lambda t=numpy_type: x.astype(t)
    times = round_robin(calls, repeat)
    lanes = 4 * k // 128
    print(
        f"m={m} K={k} ({lanes} lanes a thread): "
        + ", ".join(f"{name} {1e3 * t:.3f}" for name, t in times.items())
        + f" ms; vpextrw+vpinsrw bf16 {word_moves['bf16']}, f16 {word_moves['f16']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--k", type=int, nargs="+", default=[4096, 5120, 7168])
    parser.add_argument("--repeat", type=int, default=51)
    args = parser.parse_args()
    for k in args.k:
        bench(args.rows, k, args.repeat)


if __name__ == "__main__":
    main()
