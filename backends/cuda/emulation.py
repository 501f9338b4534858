"""Run the generated CUDA C on the host, to test the CUDA backend where there is no GPU.

The kernel's source is compiled by the host C++ compiler (g++ or clang++, C++20) against
`lpir_host.cuh`, which stands in for the CUDA headers and intrinsics: every thread of a block
is an OS thread, `__syncthreads()` a barrier, `mma` a rendezvous of the warp's threads. What
this checks is the emitted C — indexing, vector accesses, masks, bit manipulation, casts,
control flow, barriers, the mma fragment order — against the interpreter; what it cannot check
is the GPU compiler and the hardware (see tests/test_cuda_launch.py for that).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from lpir.backends.cuda import arrays, c_types
from lpir.backends.cuda.kernel import CompiledKernel, _host_bytes
from lpir.backends.cuda.source import INCLUDE_DIR

from lpir.errors import LpirError
from lpir.ir.types import GlobalType


def host_compiler() -> str | None:
    configured = os.environ.get("CXX")
    if configured and shutil.which(configured):
        return shutil.which(configured)
    return shutil.which("g++") or shutil.which("clang++")


def emulation_available() -> bool:
    return host_compiler() is not None


def _wrapper(compiled: CompiledKernel) -> str:
    kernel = compiled.kernel
    arguments = []
    for index, arg in enumerate(kernel.args):
        if isinstance(arg.type, GlobalType):
            ctype = c_types.memory_type(arg.type.dtype) + "*"
        else:
            ctype = c_types.c_type(arg.type.dtype)  # type: ignore[attr-defined]
        arguments.append(f"*reinterpret_cast<{ctype}*>(arguments[{index}])")
    gx, gy, gz = kernel.grid
    call = f"{compiled.name}({', '.join(arguments)});"
    return (
        '\nextern "C" void lpir_emulate(void** arguments) {\n'
        f"    lpir_host::run_grid({gx}, {gy}, {gz}, {kernel.threads}, [&] {{ {call} }});\n"
        "}\n"
    )


def _build_directory() -> Path:
    directory = Path(tempfile.gettempdir()) / f"lpir-emulation-{os.getuid()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@functools.cache
def _load_library(path: str) -> ctypes.CDLL:
    return ctypes.CDLL(path)


def build(source: str) -> ctypes.CDLL:
    """Compile `source` (a kernel plus its `lpir_emulate` wrapper) into a shared library."""
    compiler = host_compiler()
    if compiler is None:
        raise LpirError("no host C++ compiler (g++ or clang++) for the CUDA emulation")
    headers = "".join(
        (INCLUDE_DIR / name).read_text() for name in ("lpir_cuda.cuh", "lpir_host.cuh")
    )
    key = hashlib.sha256((source + headers + compiler).encode()).hexdigest()[:32]
    library = _build_directory() / f"{key}.so"
    if not library.exists():
        source_path = _build_directory() / f"{key}.cpp"
        source_path.write_text(source)
        temporary = library.with_suffix(f".{os.getpid()}.tmp")
        command = [
            compiler,
            "-std=c++20",
            "-O1",
            "-fPIC",
            "-shared",
            "-pthread",
            "-w",
            "-DLPIR_HOST_EMULATION",
            f"-I{INCLUDE_DIR}",
            "-x",
            "c++",
            str(source_path),
            "-o",
            str(temporary),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LpirError(f"host compilation of generated CUDA C failed:\n{result.stderr}")
        os.replace(temporary, library)
    return _load_library(str(library))


class EmulatedKernel:
    """A `CompiledKernel` run on the host: `run(arguments)` like the GPU's."""

    def __init__(self, compiled: CompiledKernel):
        if compiled.emitted.dynamic_shared:
            raise LpirError("the CUDA emulation has no dynamic shared memory (over 48 KB)")
        self.compiled = compiled
        self.library = build(compiled.cuda_source + _wrapper(compiled))
        self.library.lpir_emulate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]

    def run(self, arguments: list[Any]) -> None:
        kernel = self.compiled.kernel
        keep: list[Any] = []
        pointers = (ctypes.c_void_p * len(arguments))()
        copies = []
        for index, (arg, value) in enumerate(zip(kernel.args, arguments)):
            if isinstance(arg.type, GlobalType):
                host = _host_bytes(value, arg.name_hint or "?")
                # 16-byte aligned, padded to whole words (st_bits updates the word of a byte)
                storage = np.zeros(host.nbytes + 32, np.uint8)
                start = (-storage.ctypes.data) % 16
                device = storage[start : start + host.nbytes]
                device[:] = host
                pointer = ctypes.c_void_p(device.ctypes.data)
                keep += [storage, pointer]
                pointers[index] = ctypes.addressof(pointer)
                copies.append((host, device, self.compiled.stored[index]))
            else:
                scalar = np.array([arrays.scalar_argument(value, arg.type.dtype)])  # type: ignore[attr-defined]
                keep.append(scalar)
                pointers[index] = scalar.ctypes.data
        self.library.lpir_emulate(pointers)
        for host, device, stored in copies:
            if stored:
                host[:] = device
