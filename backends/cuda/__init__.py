"""The CUDA backend: thread IR -> CUDA C -> cubin (NVRTC or nvcc) -> launch (cuda.core).

`compile_kernel(module, params)` returns a `CompiledKernel` with `run(arguments)`,
`cuda_source` and `ptx()`. `emit_module(module)` gives the CUDA C alone.
"""

from lpir.backends.cuda.kernel import CompiledKernel
from lpir.backends.cuda.source import emit_module

from lpir.ir.core import Module


def compile_kernel(module: Module, params: dict | None = None) -> CompiledKernel:
    """The CUDA form of a thread-IR module's kernel (compiled for the GPU when first run)."""
    return CompiledKernel(module, params)


__all__ = ["CompiledKernel", "compile_kernel", "emit_module"]
