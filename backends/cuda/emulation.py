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
from typing import TYPE_CHECKING, Any

import numpy as np
from lpir.backends.cuda import arrays, c_types
from lpir.backends.cuda.kernel import CompiledKernel, _host_bytes
from lpir.backends.cuda.source import INCLUDE_DIR, KernelSource, translation_unit

from lpir.errors import LpirError
from lpir.ir.core import Kernel
from lpir.ir.effects import stored_arguments
from lpir.ir.types import GlobalType

if TYPE_CHECKING:
    from _ctypes import CFuncPtr


def host_compiler() -> str | None:
    configured = os.environ.get("CXX")
    if configured and shutil.which(configured):
        return shutil.which(configured)
    return shutil.which("g++") or shutil.which("clang++")


def emulation_available() -> bool:
    return host_compiler() is not None


def _wrapper(kernel: KernelSource, entry: str) -> str:
    """`extern "C" void entry(void** arguments)`: run the kernel over its grid."""
    arguments = []
    for index, arg in enumerate(kernel.kernel.args):
        if isinstance(arg.type, GlobalType):
            ctype = c_types.memory_type(arg.type.dtype) + "*"
        else:
            ctype = c_types.c_type(arg.type.dtype)
        arguments.append(f"*reinterpret_cast<{ctype}*>(arguments[{index}])")
    gx, gy, gz = kernel.kernel.grid
    call = f"{kernel.name}({', '.join(arguments)});"
    threads = kernel.kernel.threads
    return (
        f'\nextern "C" void {entry}(void** arguments) {{\n'
        f"    lpir_host::run_grid({gx}, {gy}, {gz}, {threads}, [&] {{ {call} }});\n"
        "}\n"
    )


def _build_directory() -> Path:
    """Where built emulation libraries are kept: `emulation/` of lpir's cache directory
    (`$LPIR_CACHE_DIR`), or a folder of the temporary directory where that cannot be made."""
    from lpir.runtime import cache

    for directory in (
        cache.directory() / "emulation",
        Path(tempfile.gettempdir()) / f"lpir-emulation-{os.getuid()}",
    ):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        except OSError:
            continue
    raise LpirError("no writable folder for the CUDA emulation's libraries")


@functools.cache
def _load_library(path: str) -> ctypes.CDLL:
    return ctypes.CDLL(path)


# How the host compiler builds an emulation library (part of the cache key).
_FLAGS = (
    "-std=c++20",
    "-O1",
    "-fPIC",
    "-shared",
    "-pthread",
    "-w",
    "-DLPIR_HOST_EMULATION",
)


def build(source: str) -> ctypes.CDLL:
    """Compile `source` (a kernel plus its `lpir_emulate` wrapper) into a shared library."""
    compiler = host_compiler()
    if compiler is None:
        raise LpirError("no host C++ compiler (g++ or clang++) for the CUDA emulation")
    headers = "".join(
        (INCLUDE_DIR / name).read_text() for name in ("lpir_cuda.cuh", "lpir_host.cuh")
    )
    key_text = source + headers + compiler + " ".join(_FLAGS)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    library = _build_directory() / f"{key}.so"
    if library.exists():
        try:
            return _load_library(str(library))
        except OSError:  # a damaged library (cut short, emptied): build it again
            library.unlink(missing_ok=True)
    if not library.exists():
        source_path = _build_directory() / f"{key}.cpp"
        source_path.write_text(source)
        temporary = library.with_suffix(f".{os.getpid()}.tmp")
        command = [
            compiler,
            *_FLAGS,
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


class _Runner:
    """Runs one emulated kernel of a built library on host arrays, like `CompiledKernel.run`."""

    def __init__(self, kernel: Kernel, function: CFuncPtr, misaligned: CFuncPtr, race: CFuncPtr):
        self.kernel = kernel
        self.function = function
        self.misaligned = misaligned
        self.race = race
        self.function.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        stored = stored_arguments(kernel)
        self.stored = [id(arg) in stored for arg in kernel.args]

    def run(self, arguments: list[Any]) -> None:
        keep: list[Any] = []
        pointers = (ctypes.c_void_p * len(arguments))()
        copies = []
        for index, (arg, value) in enumerate(zip(self.kernel.args, arguments)):
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
                copies.append((host, device, self.stored[index]))
            else:
                scalar = np.array([arrays.scalar_argument(value, arg.type.dtype)])
                keep.append(scalar)
                pointers[index] = scalar.ctypes.data
        self.function(pointers)
        self._check_alignment()
        self._check_races()
        for host, device, stored in copies:
            if stored:
                host[:] = device

    def _check_alignment(self) -> None:
        """Raise where the run made a vector access that a GPU would fault on."""
        bytes_ = ctypes.c_int(0)
        address = self.misaligned(ctypes.byref(bytes_))
        if address:
            raise LpirError(
                f"misaligned address: kernel {self.kernel.name} made a {bytes_.value}-byte "
                f"vector access at 0x{address:x}, not a multiple of {bytes_.value} (a GPU faults)"
            )

    def _check_races(self) -> None:
        """Raise where two threads accessed a byte of shared memory in one barrier phase, one
        of them writing (lpir_host.cuh): a GPU's result would depend on their timing."""
        text = ctypes.create_string_buffer(512)
        if self.race(text, len(text)):
            raise LpirError(f"kernel {self.kernel.name}: {text.value.decode()}")


def emulate_kernels(kernels: list[KernelSource]) -> list[_Runner]:
    """Build kernels of distinct names into one library; one runner per kernel."""
    source = translation_unit(kernels)
    source += "".join(_wrapper(k, f"lpir_emulate_{i}") for i, k in enumerate(kernels))
    source += _RUN_CHECKS
    library = build(source)
    misaligned = library.lpir_emulation_misaligned
    misaligned.restype = ctypes.c_size_t
    misaligned.argtypes = [ctypes.POINTER(ctypes.c_int)]
    race = library.lpir_emulation_race
    race.restype = ctypes.c_int
    race.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return [
        _Runner(k.kernel, getattr(library, f"lpir_emulate_{i}"), misaligned, race)
        for i, k in enumerate(kernels)
    ]


# Read and clear the first misaligned vector access and the first shared-memory race of the
# last run (lpir_host.cuh).
_RUN_CHECKS = """
extern "C" size_t lpir_emulation_misaligned(int* bytes) {
    *bytes = lpir_host::misaligned_bytes;
    return lpir_host::misaligned_address.exchange(0);
}

extern "C" int lpir_emulation_race(char* text, int size) {
    if (!lpir_host::race_found.exchange(false)) return 0;
    std::snprintf(text, (size_t)size, "%s", lpir_host::race_text);
    return 1;
}
"""


class EmulatedKernel:
    """A `CompiledKernel` run on the host: `run(arguments)` like the GPU's."""

    def __init__(self, compiled: CompiledKernel):
        (self.runner,) = emulate_kernels([compiled.emitted])

    def run(self, arguments: list[Any]) -> None:
        self.runner.run(arguments)
