"""Batch-1 weight-only quantized GEMV on an NVIDIA GPU: lpir beside cuBLAS, torch's int4 kernel
and the copy-bandwidth floor, all measured in the same run.

    python benchmarks/gpu_gemv.py              # N x K = 28672 x 8192 and 8192 x 8192, all weights
    python benchmarks/gpu_gemv.py --quick      # 8192 x 8192; u4, u3, f4e2m1; fewer repeats

y = dequant(W) @ x (examples/gemv_wq.lp): f32 activations, weights of any type with one f32
scale per group of 128 weights of a row. Beside it, timed the same way:

* cuBLAS: torch f16 `x @ W.T` (F.linear) on an f16 W (2 bytes per weight);
* torch int4: `torch._weight_int4pack_mm` (bf16 activations, 4-bit weights, group 128, the
  tinygemm kernel), packed by `torch._convert_weight_to_int4pack(uint8 [N, K/2], 8)`;
* the floor: the bytes lpir must move (weights, scales, x, y) over the device-to-device copy
  bandwidth measured here (bytes read + written by a 1 GiB `copy_`).

Timing: CUDA events around each launch, a 256 MiB scrub read before each launch so that no
run finds the weights in L2 (read, not written: evicting dirty lines would add their write-back
to the timed kernel's traffic), then a spin that keeps the GPU busy while Python enqueues the
launch (so host time is never timed; the host time of lpir's launch call is reported beside
it), warm-up first, medians of --repeat launches. GB/s counts the bytes each kernel must
move. lpir's kernel is timed at each row x column tile of --tiles and each pipeline depth of
--stages (the loads of STAGES - 1 iterations in flight ahead), and the fastest reported; the
fastest is timed again with its per-block tiles in registers instead of shared memory
(LPIR_CUDA_ASYNC_COPY=0, the "registers" column), unless --no-registers. A third lpir GEMV,
examples/gemv_splitk.lp, splits K over --splits blocks per tile of rows that add their sums
into y atomically (more blocks in flight where N is small); its timing includes zeroing y.
A fourth, examples/gemv_tc.lp, runs on tensor cores with f16 x, the weights loaded straight
into the mma's fragments (--gemv-tc-tiles at every --stages, and where N gives few row tiles
also split over K by --splits). Every lpir result is checked against a float64 reference on
the GPU (relative error).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import lpir

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "gemv_wq.lp"
MATMUL_KERNEL = KERNEL.with_name("matmul_wq.lp")
SPLITK_KERNEL = KERNEL.with_name("gemv_splitk.lp")
TC_KERNEL = KERNEL.with_name("gemv_tc.lp")
# BN x BK tiles of gemv_tc (tensor cores, weights straight into k-permuted mma fragments)
TC_TILES = [(64, 128), (128, 128)]
# a grid of fewer row tiles than this is split over K too (2 per SM of an H100/H200)
FEW_BLOCKS = 2 * 132
# the row tile of the split-K GEMV (the most blocks per row of tiles; K supplies the rest)
SPLITK_TILE = (16, 128)
# BM x BN x BK tiles of matmul_wq tried for its M = 1 (tensor-core) GEMV; 32 columns give an
# 8192-row GEMV 256 blocks to spread over 132 SMs, where 64 give 128
TENSOR_CORE_TILES = [(16, 32, 128), (16, 128, 32), (16, 64, 128), (16, 128, 64), (16, 128, 128)]
GROUP = 128
# the weights issue #5's targets name first (a run cut short still has them)
ALL_WEIGHTS = ["u4", "u3", "u5", "u6", "u2", "u7", "u8", "f4e2m1", "f6e3m2", "f8e4m3"]
QUICK_WEIGHTS = ["u4", "u3", "f4e2m1"]
# the shape issue #5's targets are set at first, so that a run cut short still has it
ALL_SHAPES = [(28672, 8192), (8192, 8192)]
QUICK_SHAPE = (8192, 8192)
SCRUB_BYTES = 256 * 2**20
# shared memory a block's staged weight tiles may take (backends/cuda/staging.py stages them
# within the static 48 KB, beside the kernel's own shared arrays)
STAGING_BYTES = 40 * 1024
# ~0.5 ms at an H200's 1.98 GHz: longer than any launch takes to enqueue from Python
SLEEP_CYCLES = 1_000_000


def torch_cuda():
    try:
        import torch
    except ImportError:
        sys.exit("gpu benchmarks need torch with CUDA (for events, peers and references)")
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to torch")
    return torch


class Timer:
    """Median GPU time of a launch, with L2 scrubbed before each one.

    The GPU is kept busy (the scrub, then a spin of `SLEEP_CYCLES`) while Python enqueues the
    start event, the launch and the end event, so the time between the events is the kernel's
    even when enqueuing takes longer than the kernel runs (lpir's `run` checks its arguments in
    Python: tens of microseconds, against a 30 us GEMV). `host_seconds` is the median time
    the launch call itself took on the host, for the report.
    """

    def __init__(self, torch, repeat: int, warmup: int = 3):
        self.torch = torch
        self.repeat = repeat
        self.warmup = warmup
        self.scrub = torch.zeros(SCRUB_BYTES // 4, dtype=torch.float32, device="cuda")
        self.sink = torch.empty((), dtype=torch.float32, device="cuda")
        self.host_seconds = 0.0

    def __call__(self, launch) -> float:
        torch = self.torch
        for _ in range(self.warmup):
            launch()
        torch.cuda.synchronize()
        events, host = [], []
        for _ in range(self.repeat):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.sum(self.scrub, dim=0, out=self.sink)  # reads: leaves L2 clean
            torch.cuda._sleep(SLEEP_CYCLES)
            start.record()
            began = time.perf_counter()
            launch()
            host.append(time.perf_counter() - began)
            end.record()
            events.append((start, end))
        torch.cuda.synchronize()
        self.host_seconds = statistics.median(host)
        return statistics.median(s.elapsed_time(e) for s, e in events) / 1e3


def copy_bandwidth(torch, repeat: int) -> float:
    """Bytes per second of a 1 GiB device-to-device copy (read + write)."""
    source = torch.empty(2**30 // 4, dtype=torch.float32, device="cuda").uniform_()
    target = torch.empty_like(source)
    timer = Timer(torch, repeat)
    seconds = timer(lambda: target.copy_(source))
    return 2 * 2**30 / seconds


def zero_point(dt) -> int:
    return 1 << (dt.nbits - 1) if dt.kind == "uint" else 0


def random_codes(dt, shape, rng) -> np.ndarray:
    codes = rng.integers(0, 1 << dt.nbits, size=shape, dtype=dt.code_numpy_dtype)
    if dt.is_float:
        finite = np.isfinite(dt.decode(codes))
        codes = np.where(finite, codes, 0).astype(codes.dtype)
    return codes


def decode_table(torch, dt):
    """Every code's value (f32, on the GPU), zero point subtracted."""
    codes = np.arange(1 << dt.nbits)
    if dt.is_float:
        values = dt.decode(codes.astype(np.uint8))
    else:
        values = dt.from_codes(codes.astype(dt.code_numpy_dtype)).astype(np.float32)
    return torch.from_numpy(values.astype(np.float32) - zero_point(dt)).cuda()


def compiled_kernel(name: str, params: dict, async_copy: bool = True):
    """lpir's CUDA kernel for `params`, as the backend object (device arrays, streams);
    `async_copy=False` keeps every pipelined tile in registers (LPIR_CUDA_ASYNC_COPY=0)."""
    from lpir.backends.cuda import compile_kernel

    spec = lpir.compile(KERNEL if name == "gemv_wq" else name, target="cuda", **params)
    specialization = spec.specialize(None)
    saved = os.environ.get("LPIR_CUDA_ASYNC_COPY")
    os.environ["LPIR_CUDA_ASYNC_COPY"] = "1" if async_copy else "0"
    try:  # the CUDA C is written when the backend object is made
        return compile_kernel(specialization.module, specialization.params)
    finally:
        if saved is None:
            del os.environ["LPIR_CUDA_ASYNC_COPY"]
        else:
            os.environ["LPIR_CUDA_ASYNC_COPY"] = saved


def registers_us(timer, name: str, params: dict, arguments, stream) -> float:
    """The time of the same kernel with its pipelined tiles kept in registers, in us."""
    kernel = compiled_kernel(name, params, async_copy=False)
    return round(timer(lambda: kernel.run(arguments, stream=stream)) * 1e6, 1)


def _cubin(candidate: tuple[str, dict], arch: str) -> str | None:
    """Compile one (kernel, params) candidate into lpir's disk cache; the error, if any."""
    try:
        compiled_kernel(*candidate).cubin(arch)
    except Exception as failure:  # reported; the timed loop meets it again and stops there
        return f"{candidate[0]} {candidate[1]}: {type(failure).__name__}: {failure}"
    return None


def precompile(candidates: list[tuple[str, dict]], jobs: int | None = None) -> None:
    """Compile every candidate kernel in parallel before anything is timed, so that the timed
    loop only loads cubins from lpir's disk cache: NVRTC takes ~0.5 s a kernel and a full
    table has a few hundred, on a machine whose GPU time is scarcer than its cores."""
    from lpir.backends.cuda.device import device_arch

    arch = device_arch()
    jobs = jobs or os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")  # this process already holds a CUDA context
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        failures = [f for f in pool.map(_cubin, candidates, itertools.repeat(arch)) if f]
    print(f"compiled {len(candidates)} kernels for {arch} on {jobs} processes", flush=True)
    for failure in failures:
        print(f"  compile failed: {failure}", flush=True)


def gemv_configs(dt, tiles, stages) -> list[tuple[int, int, int]]:
    """(BN, BK, stages) to time: every tile at every depth whose weight tiles in flight fit
    lpir's shared-memory staging (STAGING_BYTES); deeper ones would fall back to S register
    copies of the tile, which spill."""
    return [
        (bn, bk, depth)
        for (bn, bk), depth in itertools.product(tiles, stages)
        if depth * bn * bk * dt.nbits // 8 <= STAGING_BYTES
    ]


def gemv_params(dt, n: int, k: int, bn: int, bk: int, depth: int) -> dict:
    params = {"WT": dt.name, "ZERO": zero_point(dt), "N": n, "K": k, "BN": bn, "BK": bk}
    return {**params, "STAGES": depth}


def matmul_params(dt, m: int, n: int, k: int, tile: tuple[int, ...], depth: int) -> dict:
    """matmul_wq's parameters for a tile (BM, BN, BK) or (BM, BN, BK, threads)."""
    bm, bn, bk, *threads = tile
    params = {"WT": dt.name, "ZERO": zero_point(dt), "M": m, "N": n, "K": k}
    params = {**params, "BM": bm, "BN": bn, "BK": bk, "STAGES": depth}
    return {**params, "THREADS": threads[0]} if threads else params


def matmul_candidates(dt, m: int, n: int, k: int, tiles, stages) -> list[tuple[str, dict]]:
    """matmul_wq's (kernel, params) timed for M rows: each tensor-core tile at each depth."""
    chosen = tensor_core_tiles(dt.name, m, n, k, tuple(tiles))
    return [
        (str(MATMUL_KERNEL), matmul_params(dt, m, n, k, tile, depth))
        for tile, depth in itertools.product(chosen, stages)
        # A's and the weights' tiles in flight within the staging budget (2 stages: always)
        if depth == 2
        or depth * (tile[0] * tile[2] * 2 + tile[2] * tile[1] * dt.nbits // 8) <= STAGING_BYTES
    ]


def matmul_tile_name(params: dict) -> str:
    """`64x64x32`, or `128x128x32@256` for a block of other than 128 threads."""
    name = f"{params['BM']}x{params['BN']}x{params['BK']}"
    threads = params.get("THREADS", 128)
    return name if threads == 128 else f"{name}@{threads}"


def bench_lpir(torch, timer, dt, n: int, k: int, rng, tiles, stages=(2,), registers=True):
    """The fastest of the row x column tiles (BN, BK) and pipeline depths for this weight type,
    checked."""
    configs = [
        ("gemv_wq", gemv_params(dt, n, k, bn, bk, depth), tile_name(f"{bn}x{bk}", depth, stages))
        for bn, bk, depth in gemv_configs(dt, tiles, stages)
    ]
    return _bench_gemv(torch, timer, dt, n, k, rng, configs, registers, accumulates=False)


def bench_lpir_gemv_tc(torch, timer, dt, n: int, k: int, rng, tiles, stages=(2,), splits=()):
    """examples/gemv_tc.lp (f16 x, the weights' fragments loaded straight from memory and
    multiplied on tensor cores) at each tile and depth, and split over K (`splits`, the first
    tile, y zeroed in the timing), checked."""
    configs = gemv_tc_configs(dt, n, k, tiles, stages, splits)
    return _bench_gemv(torch, timer, dt, n, k, rng, configs, accumulates=False, x_half=True)


def gemv_tc_configs(dt, n: int, k: int, tiles, stages, splits=()) -> list[tuple[str, dict, str]]:
    """(kernel, params, label) of gemv_tc: every tile at every depth, then split K (the first
    tile, where N gives fewer than FEW_BLOCKS row tiles)."""
    whole = [
        (
            str(TC_KERNEL),
            gemv_params(dt, n, k, bn, bk, depth),
            tile_name(f"{bn}x{bk}", depth, stages),
        )
        for bn, bk, depth in gemv_configs(dt, tiles, stages)
    ]
    split = [
        (
            str(TC_KERNEL),
            {**gemv_params(dt, n, k, bn, bk, depth), "SPLIT": parts},
            f"{bn}x{bk}/s{depth}/k{parts}",
        )
        for parts, (bn, bk, depth) in itertools.product(splits, gemv_configs(dt, tiles[:1], stages))
        if -(-n // bn) < FEW_BLOCKS  # enough blocks without a split: not worth timing
    ]
    return whole + split


def bench_lpir_splitk(torch, timer, dt, n: int, k: int, rng, splits, stages=(2,)):
    """gemv_splitk at each split of K and pipeline depth (16 x 128 tiles), y zeroed before
    each launch (inside the timing: the split GEMV needs it)."""
    return _bench_gemv(torch, timer, dt, n, k, rng, splitk_configs(dt, n, k, splits, stages))


def splitk_configs(dt, n: int, k: int, splits, stages) -> list[tuple[str, dict, str]]:
    bn, bk = SPLITK_TILE
    return [
        (
            str(SPLITK_KERNEL),
            {**gemv_params(dt, n, k, bn, bk, depth), "SPLIT": split},
            f"{bn}x{bk}/s{depth}/k{split}",
        )
        for split, (_, _, depth) in itertools.product(
            splits, gemv_configs(dt, [SPLITK_TILE], stages)
        )
    ]


def _bench_gemv(
    torch, timer, dt, n, k, rng, configs, registers=False, accumulates=True, x_half=False
):
    """The fastest of `configs` ((kernel, params, label)) on one set of arguments, checked
    against float64; kernels that accumulate into y have it zeroed before each launch; x is
    f16 for `x_half` kernels, else f32."""
    from lpir.backends.cuda.arrays import DevicePacked

    codes = random_codes(dt, (n, k), rng)
    packed = lpir.pack_codes(codes, dt)
    x = torch.randn(k, dtype=torch.float16 if x_half else torch.float32, device="cuda")
    scales = torch.rand(n, -(-k // GROUP), device="cuda") * 0.015 + 0.005
    y = torch.zeros(n, dtype=torch.float32, device="cuda")
    w = DevicePacked(torch.from_numpy(packed.data).cuda(), dt, (n, k))
    stream = torch.cuda.current_stream()
    arguments = [x, w, scales, y]

    def launcher(candidate, params):
        if accumulates or params.get("SPLIT", 1) > 1:
            return lambda: (y.zero_(), candidate.run(arguments, stream=stream))
        return lambda: candidate.run(arguments, stream=stream)

    timed = []
    for name, params, label in configs:
        candidate = compiled_kernel(name, params)
        timed.append((timer(launcher(candidate, params)), label, candidate, name, params))
    seconds, tile, kernel, name, params = min(timed, key=lambda entry: entry[0])
    in_registers = registers_us(timer, name, params, arguments, stream) if registers else None
    table = decode_table(torch, dt)
    dense = table[torch.from_numpy(codes).cuda().long()]
    dense *= scales.repeat_interleave(GROUP, dim=1)[:, :k]
    reference = dense.double() @ x.double()
    y.zero_()
    kernel.run(arguments, stream=stream)
    torch.cuda.synchronize()
    error = float((y.double() - reference).abs().max() / reference.abs().max())
    nbytes = packed.nbytes + scales.numel() * 4 + x.numel() * x.element_size() + y.numel() * 4
    del dense, reference
    return {
        "weights": dt.name,
        "seconds": seconds,
        "bytes": nbytes,
        "error": error,
        "tile": tile,
        "tried_us": {label: round(t * 1e6, 1) for t, label, *_ in timed},
        "registers_us": in_registers,
        "host_us": round(timer.host_seconds * 1e6, 1),
    }


def checked_row(bench, torch, timer, dt, *args) -> dict | None:
    """One row of the table, printed as soon as it is measured; None (with the reason
    printed) if it fails, so that the rest of the table still comes out."""
    try:
        row = bench(torch, timer, dt, *args)
    except Exception as failure:  # a benchmark row, not the run: report and go on
        print(f"  ({bench.__name__}, {dt.name}: {type(failure).__name__}: {failure})")
        return None
    registers = row.get("registers_us")
    print(
        f"  {bench.__name__} {row['weights']}: {row['seconds'] * 1e6:.1f} us ({row['tile']}; "
        + (f"{registers} us with its tiles in registers; " if registers else "")
        + f"the launch call took {row['host_us']:.0f} us on the host)",
        flush=True,
    )
    return row


def parse_tiles(text: str) -> list[tuple[int, ...]]:
    """`64x128,32x128` -> [(64, 128), (32, 128)] (the --tiles options); a matmul tile may name
    its block's threads: `128x128x32@256` -> (128, 128, 32, 256)."""
    tiles = []
    for tile in text.split(","):
        sizes, _, threads = tile.partition("@")
        tiles.append(tuple(int(v) for v in sizes.split("x")) + ((int(threads),) if threads else ()))
    return tiles


def tile_name(tile: str, depth: int, stages) -> str:
    """`64x128`, or `64x128/s3` when several pipeline depths are tried."""
    return tile if len(stages) == 1 else f"{tile}/s{depth}"


@functools.cache
def tensor_core_tiles(weights: str, m: int, n: int, k: int, tiles: tuple[tuple[int, ...], ...]):
    """The (BM, BN, BK[, threads]) tiles of matmul_wq worth timing for M rows: tensor cores
    used (the block's warps fit the tile's m16n8 atoms; other tiles fall back to SIMT FMA) and no
    more than one tile of rows beyond M (a 64-row tile for M = 16 computes three quarters
    zeros)."""
    dt = lpir.dtype(weights)
    chosen = []
    for tile in tiles:
        bm, _, bk, *_ = tile
        if bm > max(16, m) or k % bk or GROUP % bk:
            continue
        params = matmul_params(dt, m, n, k, tile, 2)
        final = lpir.compile(str(MATMUL_KERNEL), target="cuda", **params).ir("final")
        if "mma(" in final:
            chosen.append(tile)
    return chosen or [(64, 64, 32)]


def fastest_matmul_wq(
    torch, timer, dt, m: int, n: int, k: int, arguments, tiles, stages=(2,), registers=False
):
    """(seconds, tile name, kernel, {tile: us}, us with the tiles in registers or None) of the
    fastest matmul_wq tile and pipeline depth for these arguments [a, b, scales, c] (device
    arrays), timed on the current stream."""
    stream = torch.cuda.current_stream()
    timed = []
    for name, params in matmul_candidates(dt, m, n, k, tiles, stages):
        candidate = compiled_kernel(name, params)
        seconds = timer(lambda c=candidate: c.run(arguments, stream=stream))
        tile = matmul_tile_name(params)
        timed.append((seconds, tile_name(tile, params["STAGES"], stages), candidate, name, params))
    seconds, tile, kernel, name, params = min(timed, key=lambda entry: entry[0])
    in_registers = registers_us(timer, name, params, arguments, stream) if registers else None
    tried = {label: round(t * 1e6, 1) for t, label, *_ in timed}
    return seconds, tile, kernel, tried, in_registers


def dequantized_f16(torch, dt, codes, scales, k: int):
    """matmul_wq's B as it computes it: (code value - zero point) * group scale, in f16."""
    dense = decode_table(torch, dt)[torch.from_numpy(codes).cuda().long()]
    return (dense.half() * scales.repeat_interleave(GROUP, dim=0)[:k]).half()


def bench_lpir_tensor_cores(
    torch,
    timer,
    dt,
    n: int,
    k: int,
    rng,
    tiles=tuple(TENSOR_CORE_TILES),
    stages=(2,),
    registers=True,
) -> dict:
    """lpir's other batch-1 GEMV: examples/matmul_wq.lp with M = 1, i.e. y = x @ dequant(W)^T
    with f16 x and f16 group scales, W stored K-major, f32 accumulation on tensor cores, f16 y.
    Fewer instructions per weight than gemv_wq's f32 arithmetic (benchmarks/cuda_sass.py), at
    f16's precision for the scaled weights."""
    from lpir.backends.cuda.arrays import DevicePacked

    codes = random_codes(dt, (k, n), rng)
    packed = lpir.pack_codes(codes, dt)
    x = (torch.randn(1, k, device="cuda") * 0.5).half()
    scales = (torch.rand(-(-k // GROUP), n, device="cuda") * 0.04 + 0.01).half()
    y = torch.zeros(1, n, dtype=torch.float16, device="cuda")
    w = DevicePacked(torch.from_numpy(packed.data).cuda(), dt, (k, n))
    arguments = [x, w, scales, y]
    seconds, tile, kernel, tried, in_registers = fastest_matmul_wq(
        torch, timer, dt, 1, n, k, arguments, tiles, stages, registers
    )
    dense = dequantized_f16(torch, dt, codes, scales, k)
    reference = x.double() @ dense.double()
    y.zero_()
    kernel.run(arguments, stream=torch.cuda.current_stream())
    torch.cuda.synchronize()
    error = float((y.double() - reference).abs().max() / reference.abs().max())
    del dense, reference
    return {
        "weights": dt.name,
        "seconds": seconds,
        "bytes": packed.nbytes + (x.numel() + scales.numel() + y.numel()) * 2,
        "error": error,
        "tile": tile,
        "tried_us": tried,
        "registers_us": in_registers,
        "host_us": round(timer.host_seconds * 1e6, 1),
    }


def bench_cublas_f16(torch, timer, n: int, k: int) -> dict:
    weight = torch.randn(n, k, dtype=torch.float16, device="cuda")
    x = torch.randn(1, k, dtype=torch.float16, device="cuda")
    functional = torch.nn.functional
    seconds = timer(lambda: functional.linear(x, weight))
    return {"seconds": seconds, "bytes": weight.numel() * 2 + 2 * (k + n)}


def bench_torch_int4(torch, timer, n: int, k: int) -> dict | None:
    """torch's tinygemm int4 kernel, or None where this torch build has none for the GPU."""
    try:
        codes = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
        try:
            as_bytes = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
            packed = torch._convert_weight_to_int4pack(as_bytes, 8)
        except RuntimeError:  # torch < 2.5 takes the int32 codes
            packed = torch._convert_weight_to_int4pack(codes, 8)
        scales = torch.rand(k // GROUP, n, device="cuda") * 0.01 + 0.005
        scales_and_zeros = torch.stack([scales, torch.zeros_like(scales)], 2).to(torch.bfloat16)
        x = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
        seconds = timer(lambda: torch._weight_int4pack_mm(x, packed, GROUP, scales_and_zeros))
    except (RuntimeError, AttributeError) as error:
        print(f"  (torch int4 unavailable: {str(error).splitlines()[0]})")
        return None
    return {"seconds": seconds, "bytes": n * k // 2 + scales_and_zeros.numel() * 2 + 2 * (k + n)}


def report(
    n, k, rows, cublas, int4, bandwidth, tensor_rows=(), splitk_rows=(), tc_rows=()
) -> list[str]:
    lines = [f"\nN = {n}, K = {k}, group {GROUP}"]
    lines.append(
        f"  cuBLAS f16 x @ W.T        {cublas['seconds'] * 1e6:9.1f} us "
        f"{cublas['bytes'] / cublas['seconds'] / 1e9:7.0f} GB/s"
    )
    if int4:
        lines.append(
            f"  torch int4 (tinygemm)     {int4['seconds'] * 1e6:9.1f} us "
            f"{int4['bytes'] / int4['seconds'] / 1e9:7.0f} GB/s"
        )
    header = f"  {'weights':>8} {'lpir us':>9} {'GB/s':>6} {'floor us':>9} {'/floor':>7}"
    header += f" {'/cuBLAS':>8}" + (f" {'/int4':>7}" if int4 else "") + f" {'rel err':>8}"
    header += f" {'registers':>9}  tile BNxBK (us of each tried)"
    lines.append(header)
    lines += report_rows(rows, cublas, int4, bandwidth)
    if tc_rows:
        lines.append("  lpir on tensor cores (gemv_tc, f16 x, fragments from memory; BNxBK):")
        lines += report_rows(tc_rows, cublas, int4, bandwidth)
    if tensor_rows:
        lines.append("  lpir on tensor cores (matmul_wq, M = 1, f16 x; tile BMxBNxBK):")
        lines += report_rows(tensor_rows, cublas, int4, bandwidth)
    if splitk_rows:
        lines.append("  lpir split-K (gemv_splitk, y zeroed in the timing; BNxBK/stages/splits):")
        lines += report_rows(splitk_rows, cublas, int4, bandwidth)
    return lines


def report_rows(rows, cublas, int4, bandwidth) -> list[str]:
    lines = []
    for row in rows:
        seconds = row["seconds"]
        floor = row["bytes"] / bandwidth
        line = f"  {row['weights']:>8} {seconds * 1e6:9.1f} {row['bytes'] / seconds / 1e9:6.0f}"
        line += f" {floor * 1e6:9.1f} {seconds / floor:7.2f} {seconds / cublas['seconds']:8.2f}"
        if int4:
            line += f" {seconds / int4['seconds']:7.2f}"
        tried = ", ".join(f"{tile} {us}" for tile, us in row["tried_us"].items())
        registers = row.get("registers_us")
        line += f" {row['error']:8.1e} {registers if registers else '-':>9}"
        lines.append(line + f"  {row['tile']} ({tried})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8192 x 8192, three weight types")
    parser.add_argument("--repeat", type=int, default=None, help="timed launches (median)")
    parser.add_argument("--weights", help="comma-separated weight types")
    parser.add_argument(
        "--shapes", help="comma-separated NxK shapes (default: 28672x8192,8192x8192)"
    )
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument(
        "--tiles",
        default="64x128,32x128,16x128",
        help="BNxBK tiles of gemv_wq to try (the fastest is reported; BK must divide 128): "
        "narrower row tiles put more blocks in flight, which a batch-1 GEMV needs to fill "
        "the memory pipeline",
    )
    parser.add_argument(
        "--stages",
        default="2",
        help="pipeline depths to try with every tile (range(..., stages = S): the global loads "
        "of S - 1 iterations in flight ahead), e.g. 2,3,4",
    )
    parser.add_argument(
        "--gemv-tc-tiles",
        default=",".join(f"{bn}x{bk}" for bn, bk in TC_TILES),
        help="BNxBK tiles of gemv_tc (tensor cores, k-permuted fragments) to try; '' skips it",
    )
    parser.add_argument(
        "--no-tensor-cores",
        action="store_true",
        help="skip the second lpir GEMV (matmul_wq with M = 1 on tensor cores)",
    )
    parser.add_argument(
        "--tensor-core-tiles",
        default=",".join("x".join(map(str, tile)) for tile in TENSOR_CORE_TILES),
        help="BMxBNxBK tiles of matmul_wq to try for the tensor-core GEMV",
    )
    parser.add_argument(
        "--tensor-core-stages",
        help="pipeline depths to try with the tensor-core tiles (default: --stages)",
    )
    parser.add_argument(
        "--splits",
        default="",
        help="splits of K to try with the split-K GEMV (gemv_splitk), e.g. 2,4,8 (default: "
        "none, the split-K GEMV is not timed)",
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="processes compiling kernels (default: all cores)"
    )
    parser.add_argument(
        "--no-registers",
        action="store_true",
        help="do not time the fastest kernel again with its tiles in registers",
    )
    args = parser.parse_args()
    torch = torch_cuda()
    repeat = args.repeat or (20 if args.quick else 50)
    shapes = [QUICK_SHAPE] if args.quick else ALL_SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in shape.split("x")) for shape in args.shapes.split(",")]
    weights = (
        args.weights.split(",") if args.weights else (QUICK_WEIGHTS if args.quick else ALL_WEIGHTS)
    )
    tiles = parse_tiles(args.tiles)
    stages = [int(v) for v in args.stages.split(",")]
    tc_tiles = parse_tiles(args.tensor_core_tiles)
    gemv_tc_tiles = parse_tiles(args.gemv_tc_tiles) if args.gemv_tc_tiles else []
    tc_stages = [int(v) for v in (args.tensor_core_stages or args.stages).split(",")]
    splits = [int(v) for v in args.splits.split(",") if v]
    properties = torch.cuda.get_device_properties(0)
    bandwidth = copy_bandwidth(torch, repeat)
    print(f"{properties.name}, {properties.multi_processor_count} SMs; lpir {lpir.__name__}")
    print(f"device-to-device copy: {bandwidth / 1e9:.0f} GB/s (read + write)")
    candidates = []
    for (n, k), name in itertools.product(shapes, weights):
        dt = lpir.dtype(name)
        candidates += [
            ("gemv_wq", gemv_params(dt, n, k, bn, bk, depth))
            for bn, bk, depth in gemv_configs(dt, tiles, stages)
        ]
        candidates += [
            (name, params)
            for name, params, _ in gemv_tc_configs(dt, n, k, gemv_tc_tiles, stages, splits)
        ]
        if not args.no_tensor_cores:
            candidates += matmul_candidates(dt, 1, n, k, tc_tiles, tc_stages)
        candidates += [
            (name, params) for name, params, _ in splitk_configs(dt, n, k, splits, stages)
        ]
    precompile(candidates, args.jobs)
    timer = Timer(torch, repeat)
    rng = np.random.default_rng(0)
    results = {"device": properties.name, "copy_bandwidth": bandwidth, "shapes": []}
    for n, k in shapes:
        cublas = bench_cublas_f16(torch, timer, n, k)
        int4 = bench_torch_int4(torch, timer, n, k)
        print(f"N = {n}, K = {k}: cuBLAS f16 {cublas['seconds'] * 1e6:.1f} us", flush=True)
        tc_rows = [
            row
            for name in weights
            if gemv_tc_tiles
            and (
                row := checked_row(
                    bench_lpir_gemv_tc,
                    torch,
                    timer,
                    lpir.dtype(name),
                    n,
                    k,
                    rng,
                    gemv_tc_tiles,
                    stages,
                    splits,
                )
            )
        ]
        rows = [
            row
            for name in weights
            if (
                row := checked_row(
                    bench_lpir,
                    torch,
                    timer,
                    lpir.dtype(name),
                    n,
                    k,
                    rng,
                    tiles,
                    stages,
                    not args.no_registers,
                )
            )
        ]
        tensor_rows = [
            row
            for name in weights
            if not args.no_tensor_cores
            and (
                row := checked_row(
                    bench_lpir_tensor_cores,
                    torch,
                    timer,
                    lpir.dtype(name),
                    n,
                    k,
                    rng,
                    tc_tiles,
                    tc_stages,
                    not args.no_registers,
                )
            )
        ]
        splitk_rows = [
            row
            for name in weights
            if splits
            and (
                row := checked_row(
                    bench_lpir_splitk, torch, timer, lpir.dtype(name), n, k, rng, splits, stages
                )
            )
        ]
        lines = report(n, k, rows, cublas, int4, bandwidth, tensor_rows, splitk_rows, tc_rows)
        print("\n".join(lines), flush=True)
        results["shapes"].append(
            {
                "n": n,
                "k": k,
                "lpir": rows,
                "lpir_gemv_tc": tc_rows,
                "lpir_tensor_cores": tensor_rows,
                "lpir_splitk": splitk_rows,
                "cublas_f16": cublas,
                "torch_int4": int4,
            }
        )
        torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
