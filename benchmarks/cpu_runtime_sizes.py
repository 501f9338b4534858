"""What a first dimension read at run time costs on the CPU: examples/rmsnorm.lp with its rows
M a compile-time parameter, beside the same kernel with the rows an i32 argument m, in one run.

    python benchmarks/cpu_runtime_sizes.py                        # M = 1, 37, 512 x N = 4096
    python benchmarks/cpu_runtime_sizes.py --rows 7,4096 --repeat 30

Both compute the fused residual add and RMSNorm of f16 rows (vLLM's fused_add_rms_norm). The
run-time variant is compiled once and called at every size; the compile-time one is compiled
per size (its compile time is not counted). Also timed: numpy (the same math in f32), and the
floor, the bytes the kernel moves (x and the residual read, the residual and y written, w
read) / memory bandwidth measured by a numpy copy in the same run. Contenders run in turn, one
call each per round, --repeat rounds after a warm-up; medians. The ratio is run-time / compile-
time (above 1: the run-time size costs that much). Both results must equal, bit for bit.
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
from pathlib import Path

# cpu_gemv sets the peers' thread-sleep variables before numpy loads its libraries
from cpu_gemv import copy_bandwidth, round_robin
import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "rmsnorm.lp"


def runtime_rows_source() -> str:
    """rmsnorm.lp with its rows M read at run time from an argument m."""
    text = KERNEL.read_text()
    replaced = (
        text.replace("M = 37, ", "")
        .replace("[M, N]", "[m, N]")
        .replace("cdiv(M, BM)", "cdiv(m, BM)")
        .replace("    y: global T[m, N],\n", "    y: global T[m, N],\n    m: i32,\n")
    )
    if replaced.count("m: i32") != 1 or "[M, N]" in replaced or "cdiv(M" in replaced:
        raise SystemExit("examples/rmsnorm.lp changed: update runtime_rows_source()")
    return replaced


def numpy_rmsnorm(x, residual, w, eps):
    h = x.astype(np.float32) + residual.astype(np.float32)
    r = 1.0 / np.sqrt((h * h).mean(axis=1, keepdims=True) + np.float32(eps))
    return (h * r * w.astype(np.float32)).astype(x.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1,37,512", help="comma-separated row counts")
    parser.add_argument("--n", type=int, default=4096, help="features per row")
    parser.add_argument("--repeat", type=int, default=15, help="rounds (medians)")
    args = parser.parse_args()
    rows = [int(r) for r in args.rows.split(",")]
    if min(rows) < 1 or args.n < 1:
        parser.error("--rows and --n take positive sizes")
    bandwidth = copy_bandwidth(5)
    runtime = lpir.compile(runtime_rows_source(), target="cpu", N=args.n)
    rng = np.random.default_rng(0)
    print(f"rmsnorm f16, N = {args.n}; memory bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'M':>6} {'compile-time':>13} {'run-time':>10} {'ratio':>6} {'numpy':>9} {'floor':>9}")
    for m in rows:
        fixed = lpir.compile(KERNEL, target="cpu", M=m, N=args.n)
        bench_rows(m, args.n, fixed, runtime, args.repeat, bandwidth, rng)


def bench_rows(m, n, fixed, runtime, repeat, bandwidth, rng) -> None:
    """One line of the table: m rows through both kernels and numpy."""
    x = rng.standard_normal((m, n)).astype(np.float16)
    w = rng.standard_normal(n).astype(np.float16)
    start = rng.standard_normal((m, n)).astype(np.float16)
    outputs = []
    for kernel, extra in ((fixed, ()), (runtime, (m,))):
        residual, y = start.copy(), np.empty_like(x)
        kernel(x, residual, w, 1e-6, y, *extra)
        outputs.append((residual, y))
    if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(*outputs)):
        raise SystemExit(f"M = {m}: the run-time variant's results differ")
    residual, y = start.copy(), np.empty_like(x)
    seconds = round_robin(
        {
            "fixed": lambda: fixed(x, residual, w, 1e-6, y),
            "runtime": lambda: runtime(x, residual, w, 1e-6, y, m),
            "numpy": lambda: numpy_rmsnorm(x, residual, w, 1e-6),
        },
        repeat,
    )
    floor = (4 * m * n + n) * 2 / bandwidth
    print(
        f"{m:>6} {seconds['fixed'] * 1e3:>10.3f} ms {seconds['runtime'] * 1e3:>7.3f} ms "
        f"{seconds['runtime'] / seconds['fixed']:>6.2f} {seconds['numpy'] * 1e3:>6.3f} ms "
        f"{floor * 1e3:>6.3f} ms"
    )


if __name__ == "__main__":
    main()
