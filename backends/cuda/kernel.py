"""`CompiledKernel`: one specialization's CUDA C, compiled on demand and launched.

The source is generated at construction (no GPU or compiler needed: `lpir emit --target cuda`
works anywhere); the cubin is compiled for the current GPU on the first `run`, PTX on `ptx()`
and SASS on `sass()` (for the architecture asked, else the current GPU's, else
`$LPIR_CUDA_ARCH`, default sm_80), all cached.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np
from lpir.backends.cuda import arrays
from lpir.backends.cuda.compiler import compile_source
from lpir.backends.cuda.register_limits import check_register_tiles
from lpir.backends.cuda.shared_limits import check_shared_memory
from lpir.backends.cuda.source import KernelSource, emit_kernel, translation_unit

from lpir.errors import ArgumentError, LpirError
from lpir.ir.core import Module
from lpir.ir.effects import stored_arguments
from lpir.ir.grid import grid_function, is_static, static_grid
from lpir.ir.types import GlobalType

if TYPE_CHECKING:
    from lpir.backends.cuda.device import LoadedKernel

DEFAULT_ARCH = "sm_80"


ARCH = re.compile(r"sm_\d{2,3}[af]?")


# The architectures lpir compiles for: NVIDIA's compute capabilities from 8.0 (Ampere), whose
# tensor-core instructions (bf16 mma, m16n8k16) and cp.async the generated code uses; sm_75
# and older fail in ptxas. CUDA 13's nvcc knows these (nvcc --list-gpu-arch), and sm_101,
# which CUDA 13 renamed sm_110, for CUDA 12.8-12.9.
SUPPORTED_ARCHS = (80, 86, 87, 88, 89, 90, 100, 101, 103, 110, 120, 121)
_ARCH_EXAMPLES = "sm_80 (A100), sm_89 (L4), sm_90 (H100)"
# The first capability of each suffixed variant: architecture-specific features (sm_90a) and
# family-portable ones (sm_100f).
SUFFIX_FROM = {"a": 90, "f": 100}


def checked_arch(arch: str) -> str:
    """`arch` if it names a real-architecture target that lpir supports, such as sm_80 or
    sm_90a: a compute capability of 8.0 or later (`SUPPORTED_ARCHS`)."""
    if not ARCH.fullmatch(arch):
        raise LpirError(
            f"{arch!r} is not a GPU architecture",
            hint=f"name one as sm_<compute capability>: {_ARCH_EXAMPLES}",
        )
    capability = int(arch[3:].rstrip("af"))
    if capability < SUPPORTED_ARCHS[0]:
        raise LpirError(
            f"{arch} is older than lpir supports: its CUDA code needs sm_80 or later "
            "(cp.async and bf16 tensor cores)",
            hint=f"name sm_80 or a later architecture: {_ARCH_EXAMPLES}",
        )
    if capability not in SUPPORTED_ARCHS:
        known = ", ".join(f"sm_{c}" for c in SUPPORTED_ARCHS)
        raise LpirError(f"{arch} is not an NVIDIA GPU architecture", hint=f"name one of {known}")
    suffix = arch[-1] if arch[-1] in SUFFIX_FROM else ""
    if suffix and capability < SUFFIX_FROM[suffix]:
        raise LpirError(
            f"{arch} is not an NVIDIA GPU architecture: the '{suffix}' variants start at "
            f"sm_{SUFFIX_FROM[suffix]}{suffix}",
            hint=f"name sm_{capability}",
        )
    return arch


def target_arch() -> str:
    """The architecture to compile for: the current GPU's, else $LPIR_CUDA_ARCH or sm_80."""
    from lpir.backends.cuda.device import device_arch, gpu_available

    if gpu_available():
        return device_arch()
    configured = os.environ.get("LPIR_CUDA_ARCH", "").strip()
    if not configured:
        return DEFAULT_ARCH
    try:
        return checked_arch(configured)
    except LpirError as error:
        raise LpirError(f"LPIR_CUDA_ARCH: {error.message}", hint=error.hint) from None


class CompiledKernel:
    """A thread-IR kernel as CUDA C, with `run(arguments)`, `cuda_source` and `ptx()`."""

    def __init__(self, module: Module, params: dict | None = None):
        self.module = module
        self.params = dict(params or {})
        self._setup(emit_kernel(module.kernels[0]), None)

    def _setup(self, emitted: KernelSource, source: str | None) -> None:
        self.kernel = emitted.kernel
        self.emitted = emitted
        self.cuda_source = source or translation_unit([emitted])
        self.name = emitted.name
        self._loaded: dict[str, LoadedKernel] = {}
        stored = stored_arguments(self.kernel)
        self.stored = [id(arg) in stored for arg in self.kernel.args]
        self.grid = grid_function(self.kernel)  # (a grid computed at each call)

    @classmethod
    def group(cls, kernels: list[KernelSource]) -> list[CompiledKernel]:
        """Kernels of distinct names sharing one translation unit (compiled once)."""
        source = translation_unit(kernels)
        compiled = []
        for emitted in kernels:
            kernel = cls.__new__(cls)
            kernel.module = Module([emitted.kernel])
            kernel.params = dict(emitted.kernel.params)
            kernel._setup(emitted, source)
            compiled.append(kernel)
        return compiled

    def ptx(self, arch: str | None = None) -> str:
        arch = checked_arch(arch) if arch is not None else target_arch()
        self._check_resources(arch)
        return compile_source(self.cuda_source, _virtual(arch), "ptx").decode()

    def cubin(self, arch: str | None = None) -> bytes:
        arch = checked_arch(arch) if arch is not None else target_arch()
        self._check_resources(arch)
        return compile_source(self.cuda_source, arch, "cubin")

    def _check_resources(self, arch: str) -> None:
        """Refuse, at its place in the source, a kernel whose shared tiles or register values
        the GPU cannot hold, before the compiler runs on it."""
        check_shared_memory(self.kernel, self.emitted.shared_bytes, arch)
        check_register_tiles(self.kernel)

    def sass(self, arch: str | None = None) -> str:
        """The machine code ptxas makes for `arch`, as cuobjdump prints it."""
        from lpir.backends.cuda.sass import disassemble, find_cuobjdump

        cubin = self.cubin(arch)
        if find_cuobjdump() is None:
            raise LpirError(
                "showing SASS needs cuobjdump and nvdisasm, which are not installed",
                hint='pip install "cuda-toolkit[cuobjdump,nvdisasm]" (or the CUDA toolkit)',
            )
        return disassemble(cubin)

    def loaded(self) -> LoadedKernel:
        from lpir.backends.cuda.device import LoadedKernel, device_arch

        arch = device_arch()
        if arch not in self._loaded:
            self._loaded[arch] = LoadedKernel(
                self.cubin(arch),
                self.name,
                static_grid(self.kernel.grid) or (1, 1, 1),  # (else computed at each call)
                self.kernel.threads,
                self.emitted.dynamic_shared_bytes,
            )
        return self._loaded[arch]

    def run(self, arguments: list[Any], stream: object = None) -> None:
        """Launch on the current GPU. Host arrays are copied in, and back if the kernel
        stores into them (then the call waits for the kernel); device arrays are used in
        place and the launch is asynchronous on `stream` (default: the default stream).
        `kernel(...)` passes the `DeviceView`s it has checked, which are not checked again."""
        from lpir.backends.cuda.device import DeviceBuffer, current_device, synchronize

        loaded = self.loaded()
        device = current_device().device_id
        parameters, copies = [], []
        for arg, value, stored in zip(self.kernel.args, arguments, self.stored):
            if not isinstance(arg.type, GlobalType):
                parameters.append(arrays.scalar_argument(value, arg.type.dtype))
                continue
            view = value if isinstance(value, arrays.DeviceView) else arrays.device_view(value)
            if view is not None:
                name = arg.name_hint or "?"
                if view.checked_as is arg.type:  # by kernel(...): only the device is left
                    arrays.check_device(view, name, device)
                else:
                    arrays.check_device_array(view, arg.type, name, device)
                parameters.append(np.uint64(view.pointer))
                continue
            host = _host_bytes(value, arg.name_hint or "?")
            buffer = DeviceBuffer(host.nbytes)
            buffer.copy_from_host(host.ctypes.data, host.nbytes)
            parameters.append(np.uint64(buffer.pointer))
            copies.append((buffer, host, stored))
        if is_static(self.kernel.grid):
            loaded.launch(parameters, stream)
        else:
            grid = self.grid(arguments)
            if 0 in grid:  # an empty batch: no block runs (the copies in are freed unused)
                for buffer, _, _ in copies:
                    buffer.free()
                return
            loaded.launch(parameters, stream, grid)
        if copies:
            synchronize()
            for buffer, host, stored in copies:
                if stored:
                    buffer.copy_to_host(host.ctypes.data, host.nbytes)
                buffer.free()


def _host_bytes(value: Any, name: str) -> np.ndarray:
    from lpir.packing import PackedArray

    if isinstance(value, PackedArray):
        return value.data
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous:
            raise ArgumentError(f"argument {name} is not C-contiguous")
        return value.reshape(-1).view(np.uint8)
    raise ArgumentError(
        f"argument {name} must be a numpy array, a PackedArray or a device array "
        f"(DLPack or __cuda_array_interface__), got {type(value).__name__}"
    )


def _virtual(arch: str) -> str:
    """PTX is generated for the virtual architecture (compute_90 for sm_90)."""
    return arch.replace("sm_", "compute_") if arch.startswith("sm_") else arch
