"""The CPU backend: thread IR -> LLVM IR (llvmlite) -> host machine code (MCJIT).

`compile_kernel(module, params)` returns a `CompiledKernel`; calling its `run(arguments)` runs
the whole grid: blocks are split into one contiguous range per core, and each range runs on a
native thread (ctypes releases the GIL during the call).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import itertools
import os
import threading
from typing import Any

import numpy as np
from llvmlite import ir
from lpir.backends.llvm.jit import Executable
from lpir.backends.llvm.kernel import RUN_FUNCTION, KernelEmitter

from lpir.errors import ArgumentError
from lpir.ir.core import Module
from lpir.ir.types import GlobalType
from lpir.runtime.arguments import byte_buffer

_RUN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_STACK_BYTES = 256 * 2**20  # context arrays and shared memory live on the worker's stack


def llvm_module(module: Module) -> ir.Module:
    """The LLVM module (unoptimized) of a one-kernel thread-IR module."""
    llvm = ir.Module(name=module.kernels[0].name)
    KernelEmitter(module.kernels[0], llvm).emit()
    return llvm


class CompiledKernel:
    def __init__(self, module: Module, params: dict):
        self.kernel = module.kernels[0]
        self.params = params
        self.llvm_ir = str(llvm_module(module))
        self.executable = Executable(self.llvm_ir)
        self.function = _RUN(self.executable.address(RUN_FUNCTION))
        gx, gy, gz = self.kernel.grid
        self.blocks = gx * gy * gz

    @property
    def llvm_ir_optimized(self) -> str:
        return self.executable.optimized()

    def assembly(self) -> str:
        return self.executable.assembly()

    def run(self, arguments: list[Any]) -> None:
        keep_alive, pointers = self.pointers(arguments)
        table = (ctypes.c_void_p * len(pointers))(*pointers)
        address = ctypes.addressof(table)
        workers = min(threads_to_use(), self.blocks)
        bounds = np.linspace(0, self.blocks, workers + 1).astype(np.int64).tolist()
        ranges = [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]
        # The caller's thread takes the first range; pool threads take the others.
        pending = [_pool().submit(self.function, address, lo, hi) for lo, hi in ranges[1:]]
        self.function(address, *ranges[0])
        for future in pending:
            future.result()
        del keep_alive

    def pointers(self, arguments: list[Any]):
        keep_alive, pointers, spans = [], [], []
        for arg, value in zip(self.kernel.args, arguments):
            if isinstance(arg.type, GlobalType):
                buffer = byte_buffer(value)
                if buffer.size < arg.type.nbytes:
                    raise ArgumentError(f"argument {arg.name_hint} is smaller than its declaration")
                keep_alive.append(buffer)
                address = buffer.ctypes.data
                spans.append((arg.name_hint, address, address + max(buffer.size, 1)))
                pointers.append(address)
            else:
                scalar = _scalar_array(arg.type.dtype, value)
                keep_alive.append(scalar)
                pointers.append(scalar.ctypes.data)
        _refuse_overlap(spans)
        return keep_alive, pointers


_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def threads_to_use() -> int:
    """Native threads per call: `$LPIR_NUM_THREADS`, or every core."""
    configured = os.environ.get("LPIR_NUM_THREADS", "")
    return max(1, int(configured)) if configured.isdigit() else os.cpu_count() or 1


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """Worker threads kept for the life of the process, with stacks big enough for a block's
    context arrays and shared memory."""
    global _POOL
    if _POOL is None:
        previous = threading.stack_size(_STACK_BYTES)
        try:
            _POOL = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="lpir"
            )
            # Start every worker now, while the stack size is set.
            list(_POOL.map(lambda _: None, range(_POOL._max_workers)))
        finally:
            threading.stack_size(previous)
    return _POOL


def _scalar_array(dt, value) -> np.ndarray:
    """One scalar argument in the backend's register representation (floats under 32 bits
    as their code)."""
    if dt.is_float and dt.nbits < 32:
        return np.asarray(dt.encode(np.array([value], np.float64)), dt.code_numpy_dtype)
    return np.array([value], dtype=dt.numpy_dtype)


def _refuse_overlap(spans) -> None:
    """Tensor arguments are compiled as non-aliasing: two views of one buffer would be wrong."""
    ordered = sorted(spans, key=lambda span: span[1])
    for (name_a, _, end_a), (name_b, start_b, _) in itertools.pairwise(ordered):
        if start_b < end_a:
            raise ArgumentError(
                f"arguments {name_a} and {name_b} overlap in memory",
                hint="pass distinct arrays (copy one of them)",
            )


def compile_kernel(module: Module, params: dict) -> CompiledKernel:
    return CompiledKernel(module, params)


__all__ = ["CompiledKernel", "compile_kernel", "llvm_module"]
