"""The CPU backend: thread IR -> LLVM IR (llvmlite) -> host machine code (MCJIT).

`compile_kernel(module, params)` returns a `CompiledKernel`; `run(arguments)` runs the whole
grid, one contiguous range of blocks per core on native threads (see launch.py). The files:

    types.py       how dtypes are held in LLVM registers and memory
    plan.py        which ops run per block and which per thread, what crosses a barrier
    kernel.py      the block function (thread loops split at barriers) and the run entry
    ops.py         one emitter per thread-IR op
    arith.py       elementwise arithmetic          casts.py, floats.py   conversions
    memory.py      ld / st / st_bits               vectors.py            shuffles, bit fields
    packed.py      ld / st of sub-byte elements    fusion.py             exact cross-op rewrites
    dot_pairs.py   bf16 dots, 2 steps of k a lane  integer_pairs.py      i8/i16 dots, likewise
    intrinsics.py  LLVM intrinsic declarations     jit.py                optimize, compile, cache
    launch.py      arguments, worker threads       one_lane_stores.py    a fix-up of O3's output
"""

from __future__ import annotations

import functools
from typing import Any

from llvmlite import ir
from lpir.backends.llvm import jit
from lpir.backends.llvm.kernel import RUN_FUNCTION, KernelEmitter, frame_bytes
from lpir.backends.llvm.launch import Launcher

from lpir.ir.core import Module
from lpir.ir.printer import print_module


def llvm_module(module: Module) -> ir.Module:
    """The LLVM module (unoptimized) of a one-kernel thread-IR module."""
    llvm = ir.Module(name=module.kernels[0].name)
    KernelEmitter(module.kernels[0], llvm).emit()
    return llvm


class CompiledKernel:
    """A thread-IR kernel compiled for this machine.

    Attributes:
        kernel: the thread-IR kernel.
        params: the specialization's parameters.
        key: the cache key of its machine code.
    """

    def __init__(self, module: Module, params: dict):
        self.module = module
        self.kernel = module.kernels[0]
        self.params = params
        self.key = jit.cache_key(print_module(module))
        self.executable = jit.load(self.key, lambda: self.llvm_ir, self.kernel.name)
        self.address = self.executable.address(RUN_FUNCTION)  # where the run function is loaded
        self.launcher = Launcher(self.kernel, self.address, frame_bytes(self.kernel))

    @functools.cached_property
    def llvm_ir(self) -> str:
        """The LLVM IR as generated (readable, unoptimized)."""
        return str(llvm_module(self.module))

    @functools.cached_property
    def llvm_ir_optimized(self) -> str:
        """The LLVM IR after the O3 pipeline, as compiled."""
        return jit.optimized_text(self.llvm_ir)

    def assembly(self) -> str:
        """Host assembly of the kernel."""
        return jit.assembly(self.llvm_ir)

    def run(self, arguments: list[Any]) -> None:
        """Run the grid. Tensors: numpy arrays or `PackedArray`s (written in place); scalars:
        Python numbers."""
        self.launcher.run(arguments)


def compile_kernel(module: Module, params: dict) -> CompiledKernel:
    return CompiledKernel(module, params)


__all__ = ["CompiledKernel", "compile_kernel", "llvm_module"]
