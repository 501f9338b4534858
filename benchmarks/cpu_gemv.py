"""Batch-1 weight-only quantized GEMV on the CPU: lpir side by side with its peers.

    python benchmarks/cpu_gemv.py                 # the full table (docs/benchmarks.md)
    python benchmarks/cpu_gemv.py --quick         # N = K = 4096, u4/u3 only

For each shape N x K and weight type, y = dequant(W) @ x with one f32 scale per group of 128
weights (examples/gemv_wq.lp), timed in the same run as:

* numpy: f32 `W @ x` on the already dequantized matrix (reads 4 bytes per weight);
* torch: `aten._weight_int4pack_mm_for_cpu` (bf16 activations, 4-bit weights, group 128), when
  torch is installed;
* the floor: packed weight bytes / memory bandwidth, the bandwidth measured by a large numpy copy
  in the same run (bytes read + bytes written).

Every contender is timed in turn, one call each per round, for --repeat rounds after a warm-up
(so a slow spell of a noisy machine slows them all alike); medians of the rounds. Ratios are
lpir time / peer time (below 1: lpir is faster). Compile times (cold, cached in memory, cached
on disk) are printed at the end.

The peers' worker threads are told to sleep as soon as a call ends (`PEER_THREADS_SLEEP`):
OpenBLAS's (numpy) spin for about 2^28 cycles after each call and OpenMP's (torch) for 300,000
spins, on the cores the next contender needs, and in turn-by-turn timing the next contender is
always another one. Left spinning, they took one of this machine's two cores from every lpir
call (u4 8192 x 8192: 5.9 ms timed beside numpy, 3.2 ms alone).
"""

from __future__ import annotations

import os

PEER_THREADS_SLEEP = {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "PASSIVE"}
for _name, _value in PEER_THREADS_SLEEP.items():
    os.environ.setdefault(_name, _value)  # read once, when numpy and torch load their libraries

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import lpir  # noqa: E402

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "gemv_wq.lp"
GROUP = 128
ALL_WEIGHTS = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "f4e2m1", "f6e3m2", "f8e4m3"]
ALL_SHAPES = [(8192, 8192), (4096, 4096), (14336, 4096)]


def median_seconds(function, repeat: int) -> float:
    function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def copy_bandwidth(repeat: int) -> float:
    """Bytes per second of a 512 MB numpy copy (read + write)."""
    source = np.ones(64 * 2**20, np.float64)
    target = np.empty_like(source)
    seconds = median_seconds(lambda: np.copyto(target, source), repeat)
    return 2 * source.nbytes / seconds


def batch_parser(description: str, rows: str, shapes: str) -> argparse.ArgumentParser:
    """The options of a sweep over rows of activations and weight shapes (cpu_skinny.py,
    cpu_matmul.py); the caller adds its tile option."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", default=rows, help="comma-separated M values")
    parser.add_argument("--shapes", default=shapes, help="NxK,NxK,...")
    parser.add_argument("--weights", default="u4,u3,u8", help="comma-separated weight types")
    parser.add_argument(
        "--activations", default="f16,bf16", help="comma-separated activation types (lpir's T)"
    )
    parser.add_argument("--repeat", type=int, default=10)
    return parser


def batch_sweep(args, tiles: list, bench) -> None:
    """Times the copy bandwidth, then calls `bench(m, n, k, weights, activations, tiles, repeat,
    bandwidth, rng)` for every shape of --shapes and M of --rows."""
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    weights, activations = args.weights.split(","), args.activations.split(",")
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        for m in (int(v) for v in args.rows.split(",")):
            bench(m, n, k, weights, activations, tiles, args.repeat, bandwidth, rng)


def zero_point(dt) -> int:
    return 1 << (dt.nbits - 1) if dt.kind == "uint" else 0


def make_weights(dt, n: int, k: int, rng):
    codes = rng.integers(0, 1 << dt.nbits, size=(n, k), dtype=np.uint16).astype(dt.code_numpy_dtype)
    if dt.is_float:
        values = dt.decode(codes)
        codes = np.where(np.isfinite(values), codes, 0).astype(codes.dtype)
    return lpir.pack_codes(codes, dt)


def dequantize(dt, packed, scales) -> np.ndarray:
    codes = packed.codes()
    values = dt.decode(codes) if dt.is_float else dt.from_codes(codes).astype(np.float32)
    values = values.astype(np.float32) - np.float32(zero_point(dt))
    return values * np.repeat(scales, GROUP, axis=1)[:, : values.shape[1]]


def torch_int4(n: int, k: int, rng, rows: int = 1):
    """A call of torch's CPU int4 kernel on random weights (`rows` rows of x), or None
    without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    weights = torch.randint(0, 16, (n, k), dtype=torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(weights, 1)
    scales = torch.rand(k // GROUP, n) * 0.01 + 0.005
    scales_and_zeros = torch.stack([scales, torch.zeros_like(scales)], 2).to(torch.bfloat16)
    x = torch.randn(rows, k, dtype=torch.bfloat16)
    return lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, GROUP, scales_and_zeros)


def torch_tensors(*arrays: np.ndarray) -> list | None:
    """The arrays as torch CPU tensors of their own dtypes (f32, f16, bf16: numpy has no bf16
    torch reads directly, so they pass through f32, exactly); None without torch."""
    try:
        import torch
    except ImportError:
        return None
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    return [torch.from_numpy(a.astype(np.float32)).to(dtypes[a.dtype.name]) for a in arrays]


def timing_columns(seconds: dict, best: str, floor: float, peers=("numpy", "torch")) -> str:
    """The columns of a CPU benchmark's row: lpir's best time, the floor and lpir's ratio to
    it, then each peer's time and lpir's ratio to it ("-" for a peer not timed); ms."""
    line = f" {seconds[best] * 1e3:9.3f} {floor * 1e3:9.3f} {seconds[best] / floor:7.2f}"
    for peer in peers:
        line += (
            f" {seconds[peer] * 1e3:9.3f} {seconds[best] / seconds[peer]:7.2f}"
            if peer in seconds
            else f" {'-':>9} {'-':>7}"
        )
    return line


def round_robin(calls: dict, repeat: int) -> dict:
    """Median seconds of each call, timed in turn, one call of each per round: a slow spell of
    a noisy machine then slows every contender alike instead of whichever ran in it."""
    for call in calls.values():
        call()  # warm-up
    samples = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def bench_shape(n, k, weights, target, repeat, bandwidth, rng):
    """(rows of (weights, seconds, GB/s, floor, error), numpy seconds, torch seconds or None)."""
    x = rng.standard_normal(k).astype(np.float32)
    scales = rng.uniform(0.005, 0.02, size=(n, -(-k // GROUP))).astype(np.float32)
    calls, packed_of, errors = {}, {}, {}
    for name in weights:
        dt = lpir.dtype(name)
        packed = make_weights(dt, n, k, rng)
        kernel = lpir.compile(KERNEL, target=target, WT=name, ZERO=zero_point(dt))
        y = np.zeros(n, np.float32)
        kernel(x, packed, scales, y)
        dense = dequantize(dt, packed, scales)
        expected = dense @ x
        errors[name] = float(np.max(np.abs(y - expected)) / (np.max(np.abs(expected)) + 1e-30))
        if "numpy" not in calls:
            calls["numpy"] = lambda d=dense: d @ x  # the first type's dequantized matrix
        del dense, expected
        calls[name] = lambda c=kernel, w=packed, out=y: c(x, w, scales, out)
        packed_of[name] = packed
    torch_call = torch_int4(n, k, rng)
    if torch_call is not None:
        calls["torch"] = torch_call
    seconds = round_robin(calls, repeat)
    rows = []
    for name in weights:
        packed = packed_of[name]
        floor = (packed.nbytes + scales.nbytes + 2 * x.nbytes) / bandwidth
        time_ = seconds[name]
        rows.append((name, time_, packed.nbytes / time_ / 1e9, floor, errors[name]))
    return rows, seconds["numpy"], seconds.get("torch")


def compile_times(target: str) -> tuple[float, float, float]:
    """Cold compile, in-memory cached call, and a fresh process reusing the disk cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, LPIR_CACHE_DIR=cache)
        script = (
            "import time, lpir, sys; t = time.perf_counter(); "
            f"k = lpir.compile(r'{KERNEL}', target='{target}', WT='u3', ZERO=4, N=4096, K=4096); "
            "k.specialize(None); print(time.perf_counter() - t)"
        )
        run = [sys.executable, "-c", script]
        cold = float(
            subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
        )
        warm = float(
            subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
        )
    kernel = lpir.compile(KERNEL, target=target, WT="u3", ZERO=4, N=4096, K=4096)
    kernel.specialize(None)
    start = time.perf_counter()
    kernel.specialize(None)
    memory = time.perf_counter() - start
    return cold, memory, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = K = 4096, u4 and u3 only")
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--weights", help="comma-separated weight types")
    parser.add_argument("--shapes", help="comma-separated NxK shapes, e.g. 8192x8192")
    args = parser.parse_args()
    shapes = [(4096, 4096)] if args.quick else ALL_SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in shape.split("x")) for shape in args.shapes.split(",")]
    weights = ["u4", "u3"] if args.quick else ALL_WEIGHTS
    if args.weights:
        weights = args.weights.split(",")
    rng = np.random.default_rng(0)
    bandwidth = copy_bandwidth(args.repeat)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); {os.cpu_count()} cores")
    for n, k in shapes:
        rows, numpy_seconds, torch_seconds = bench_shape(
            n, k, weights, args.target, args.repeat, bandwidth, rng
        )
        print(f"\nN = {n}, K = {k}, group {GROUP}")
        print(f"  numpy f32 W @ x (dequantized): {numpy_seconds * 1e3:8.3f} ms")
        if torch_seconds is not None:
            print(f"  torch int4 (bf16, tinygemm):   {torch_seconds * 1e3:8.3f} ms")
        header = f"  {'weights':>8} {'lpir ms':>9} {'GB/s':>6} {'floor ms':>9} {'/numpy':>7}"
        header += f" {'/torch':>7}" if torch_seconds else ""
        header += f" {'/floor':>7} {'rel err':>8}"
        print(header)
        u4 = next((r[1] for r in rows if r[0] == "u4"), None)
        for name, seconds, gbps, floor, error in rows:
            line = f"  {name:>8} {seconds * 1e3:9.3f} {gbps:6.1f} {floor * 1e3:9.3f}"
            line += f" {seconds / numpy_seconds:7.2f}"
            if torch_seconds:
                line += f" {seconds / torch_seconds:7.2f}"
            line += f" {seconds / floor:7.2f} {error:8.1e}"
            if u4 and name != "u4":
                line += f"   ({seconds / u4:.2f} x u4)"
            print(line)
    cold, memory, disk = compile_times(args.target)
    print(
        f"\ncompile u3 4096x4096: cold {cold:.2f} s, cached in memory {memory * 1e3:.2f} ms, "
        f"new process with disk cache {disk:.2f} s"
    )


if __name__ == "__main__":
    main()
