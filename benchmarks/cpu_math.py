"""Elementwise math on the CPU: lpir kernels of exp, log, sin cos, silu and both GELUs beside
torch's functions on the same data.

    python benchmarks/cpu_math.py                                  # 4096 x 4096 f32
    python benchmarks/cpu_math.py --functions exp,gelu --dtypes f32,bf16
    python benchmarks/cpu_math.py --compare-budget 512             # fold-threads A/B

Each kernel reads a tile of x (dtype T), computes in f32 and writes y in T; timed in turn with
torch (`cpu_gemv.round_robin`, whose thread settings this script shares); medians of the
rounds; ratios below 1: lpir is faster. The floor reads x and writes y over the copy
bandwidth. `--compare-budget B` also times the same kernels specialized with fold-threads'
`MATH_REGISTER_BYTES` set to B (the column "B ms" and lpir's time over it). The last column is
lpir's largest difference from float64 over max(|y|, 1), in units of T's epsilon.
"""

from __future__ import annotations  # noqa: I001 (cpu_gemv loads before numpy, see below)

import argparse
import math
import os

# first: cpu_gemv tells the peers' threads to sleep, which they read when numpy loads
from cpu_gemv import copy_bandwidth, round_robin, timing_columns, torch_tensors
from cpu_gelu import exact_gelu, scaled_error
import numpy as np

import lpir
from lpir.passes import fold_threads

KERNEL = """
kernel NAME[T = f32, M = 4096, N = 4096, BM = 4, BN = 1024](x: global T[M, N], y: global T[M, N])
    blocks(cdiv(M, BM), cdiv(N, BN)) threads(128) {
    t = cast<f32>(load(x[block.x * BM :+ BM, block.y * BN :+ BN]))
    store(y[block.x * BM :+ BM, block.y * BN :+ BN], cast<T>(EXPRESSION))
}
"""
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)

#: name: (lpir expression of t, float64 reference, torch function of a tensor)
FUNCTIONS = {
    "exp": ("exp(t)", np.exp, lambda torch, F, x: torch.exp(x)),
    "log": (
        "log(abs(t) + 1.0)",
        lambda x: np.log(np.abs(x) + 1),
        lambda torch, F, x: torch.log1p(x.abs()),
    ),
    "sincos": (
        "sin(t) * cos(t)",
        lambda x: np.sin(x) * np.cos(x),
        lambda torch, F, x: x.sin() * x.cos(),
    ),
    "silu": ("t / (1.0 + exp(-t))", lambda x: x / (1 + np.exp(-x)), lambda torch, F, x: F.silu(x)),
    "gelu_tanh": (
        f"0.5 * t * (1.0 + tanh({SQRT_2_OVER_PI!r} * (t + 0.044715 * t * t * t)))",
        lambda x: 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3))),
        lambda torch, F, x: F.gelu(x, approximate="tanh"),
    ),
    "gelu": (
        "0.5 * t * (1.0 + erf(t * 0.7071067811865476))",
        exact_gelu,
        lambda torch, F, x: F.gelu(x),
    ),
}


def compiled(name: str, type_name: str, m: int, n: int, budget: int | None, x, y):
    """The kernel of FUNCTIONS[name], specialized now (under fold-threads' math budget
    `budget` where given: a kernel is specialized at its first call, so the budget must hold
    then)."""
    source = KERNEL.replace("NAME", f"{name}_{budget or 'default'}")
    source = source.replace("EXPRESSION", FUNCTIONS[name][0])
    default = fold_threads.MATH_REGISTER_BYTES
    fold_threads.MATH_REGISTER_BYTES = budget or default
    try:
        kernel = lpir.compile(source, target="cpu", T=type_name, M=m, N=n)
        kernel(x, y)
    finally:
        fold_threads.MATH_REGISTER_BYTES = default
    return kernel


def torch_call(name: str, x: np.ndarray):
    """torch's version in x's dtype; None without torch."""
    tensors = torch_tensors(x)
    if tensors is None:
        return None
    import torch
    import torch.nn.functional as F

    function = FUNCTIONS[name][2]
    return lambda: function(torch, F, tensors[0])


def bench(name, m, n, type_name, repeat, bandwidth, budget, rng) -> None:
    dt = np.dtype(lpir.dtype(type_name).numpy_dtype)
    x = (rng.standard_normal((m, n)) * 3).astype(dt)
    y = np.zeros_like(x)
    kernel = compiled(name, type_name, m, n, None, x, y)
    error = scaled_error(y, FUNCTIONS[name][1](x.astype(np.float64)), dt)
    calls = {"lpir": lambda: kernel(x, y)}
    if budget is not None:
        other = compiled(name, type_name, m, n, budget, x, np.zeros_like(x))
        calls["budget"] = lambda: other(x, y)
    peer = torch_call(name, x)
    if peer is not None:
        calls["torch"] = peer
    seconds = round_robin(calls, repeat)
    floor = 2 * x.nbytes / bandwidth
    columns = timing_columns(seconds, "lpir", floor, peers=("torch",))
    if budget is not None:
        columns += f" {seconds['budget'] * 1e3:9.3f} {seconds['lpir'] / seconds['budget']:7.2f}"
    print(f"  {name:>9} {m:>6} {n:>6} {type_name:>5}{columns} {error:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", default=",".join(FUNCTIONS), help="comma-separated")
    parser.add_argument("--rows", default="4096", help="comma-separated M values")
    parser.add_argument("--widths", default="4096", help="comma-separated N values")
    parser.add_argument("--dtypes", default="f32", help="f32, bf16, f16")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--compare-budget", type=int, help="also time with this MATH_REGISTER_BYTES"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    budget = args.compare_budget
    extra = f" {f'{budget} ms':>9} {'/' + str(budget):>7}" if budget is not None else ""
    print(
        f"  {'function':>9} {'M':>6} {'N':>6} {'dtype':>5} {'lpir ms':>9} {'floor ms':>9}"
        f" {'/floor':>7} {'torch ms':>9} {'/torch':>7}{extra} {'err/eps':>9}"
    )
    for name in args.functions.split(","):
        for type_name in args.dtypes.split(","):
            for n in (int(v) for v in args.widths.split(",")):
                for m in (int(v) for v in args.rows.split(",")):
                    bench(name, m, n, type_name, args.repeat, bandwidth, budget, rng)


if __name__ == "__main__":
    main()
