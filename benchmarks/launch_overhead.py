"""Host time of one lpir GPU launch: what `CompiledKernel.run` costs in Python per call.

    python benchmarks/launch_overhead.py            # no GPU needed: the launch itself left out
    python benchmarks/launch_overhead.py --gpu      # on a GPU: the whole call with torch tensors

A batch-1 GEMV runs for ~30 us on an H200, so a launch that takes longer than that to enqueue
leaves the GPU waiting in a decode loop (and, in a benchmark whose events do not cover it, is
timed as if it were the kernel's). Without a GPU this times `run` on stand-in device arrays
(objects exposing `__cuda_array_interface__`, as torch and cupy tensors do) with the launch
replaced by nothing: lpir's own argument handling, in `run()` and in the user's call
`kernel(...)` (deduction and checks, then `run()` on the views it checked). With `--gpu` it
times the real calls on torch tensors (no synchronization: the host side only), beside
torch's own `F.linear`.
Medians of --repeat calls after a warm-up; gemv_wq with u4 weights, N = K = 8192.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

from lpir.backends.cuda import compile_kernel
from lpir.backends.cuda.arrays import DevicePacked

import lpir

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_gemv import median_seconds

KERNEL = Path(__file__).resolve().parent.parent / "examples" / "gemv_wq.lp"
N = K = 8192
PARAMS = {"WT": "u4", "ZERO": 8, "N": N, "K": K, "BN": 16, "BK": 128}


class StandInDeviceArray:
    """What lpir reads of a GPU tensor: shape, element type, pointer (each stand-in its own
    GiB of addresses: arrays that overlapped where the kernel stores into one are refused)."""

    count = 0

    def __init__(self, shape, typestr="<f4"):
        StandInDeviceArray.count += 1
        self.__cuda_array_interface__ = {
            "shape": tuple(shape),
            "typestr": typestr,
            "data": (StandInDeviceArray.count << 30, False),
            "strides": None,
            "version": 3,
        }


def gemv_kernel():
    specialization = lpir.compile(KERNEL, target="cuda", **PARAMS).specialize(None)
    return compile_kernel(specialization.module, specialization.params)


def median_us(call, repeat: int) -> float:
    for _ in range(100):  # warm: the first calls fill lpir's caches
        call()
    return median_seconds(call, repeat) * 1e6


def without_gpu(repeat: int) -> None:
    from lpir.backends.cuda import device
    from lpir.backends.cuda.kernel import CompiledKernel

    # the launch left out: every compiled kernel's `loaded()` launches nothing
    nothing = types.SimpleNamespace(launch=lambda parameters, stream: None)
    CompiledKernel.loaded = lambda self: nothing
    device.current_device = lambda: types.SimpleNamespace(device_id=0)
    arguments = [
        StandInDeviceArray((K,)),
        DevicePacked(StandInDeviceArray((N * K // 2,), "|u1"), "u4", (N, K)),
        StandInDeviceArray((N, K // 128)),
        StandInDeviceArray((N,)),
    ]
    kernel = gemv_kernel()
    us = median_us(lambda: kernel.run(arguments), repeat)
    print(f"gemv_wq run() on 4 stand-in device arrays, launch left out: {us:.1f} us per call")
    called = lpir.compile(KERNEL, target="cuda", **PARAMS)
    us = median_us(lambda: called(*arguments), repeat)
    print(f"gemv_wq kernel(...) on the same arrays (checks, then run()): {us:.1f} us per call")


def with_gpu(repeat: int) -> None:
    import torch

    kernel = gemv_kernel()
    packed = torch.zeros(N * K // 2, dtype=torch.uint8, device="cuda")
    arguments = [
        torch.zeros(K, device="cuda"),
        DevicePacked(packed, "u4", (N, K)),
        torch.ones(N, K // 128, device="cuda"),
        torch.zeros(N, device="cuda"),
    ]
    stream = torch.cuda.current_stream()
    us = median_us(lambda: kernel.run(arguments, stream=stream), repeat)
    torch.cuda.synchronize()
    called = lpir.compile(KERNEL, target="cuda", **PARAMS)
    whole = median_us(lambda: called(*arguments), repeat)  # the default stream
    torch.cuda.synchronize()
    weight = torch.zeros(N, K, dtype=torch.float16, device="cuda")
    x = torch.zeros(1, K, dtype=torch.float16, device="cuda")
    peer = median_us(lambda: torch.nn.functional.linear(x, weight), repeat)
    torch.cuda.synchronize()
    print(
        f"gemv_wq run() with torch tensors: {us:.1f} us per call (host); kernel(...): "
        f"{whole:.1f} us; F.linear: {peer:.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="time real launches on torch tensors")
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    (with_gpu if args.gpu else without_gpu)(args.repeat)


if __name__ == "__main__":
    main()
