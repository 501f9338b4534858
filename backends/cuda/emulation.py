"""Run the generated CUDA C on the host, to test the CUDA backend where there is no GPU.

The kernel's source is compiled by the host C++ compiler (g++ or clang++, C++20) against
`lpir_host.cuh`, which stands in for the CUDA headers and intrinsics: every thread of a block
is an OS thread, `__syncthreads()` a barrier, `mma` a rendezvous of the warp's threads. What
this checks is the emitted C — indexing, vector accesses, masks, bit manipulation, casts,
control flow, barriers, the mma fragment order — against the interpreter; what it cannot check
is the GPU compiler and the hardware (see tests/test_cuda_launch.py for that).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from lpir.backends.cuda import arrays, c_types
from lpir.backends.cuda.kernel import CompiledKernel, _host_bytes
from lpir.backends.cuda.precompiled_header import precompiled_header_folder
from lpir.backends.cuda.source import INCLUDE_DIR, KernelSource, translation_unit

from lpir.errors import LpirError
from lpir.ir.core import Kernel
from lpir.ir.effects import stored_arguments
from lpir.ir.grid import launch_grid
from lpir.ir.types import GlobalType
from lpir.runtime.fork_safe import ForkSafeLock

if TYPE_CHECKING:
    from _ctypes import CFuncPtr


def host_compiler() -> tuple[str, ...] | None:
    """The host C++ compiler's command: `$CXX` (a command and its words, `ccache g++`), else
    g++ or clang++ from PATH; None where there is none. A `$CXX` that names no command is an
    error, not passed over for another compiler."""
    configured = os.environ.get("CXX", "").strip()
    if configured:
        words = shlex.split(configured)
        found = shutil.which(words[0])
        if found is None:
            raise LpirError(
                f"CXX is {configured!r}, and {words[0]!r} is not a command on PATH",
                hint="set CXX to a C++20 compiler (g++ or clang++), or unset it to use one "
                "from PATH",
            )
        return (found, *words[1:])
    found = shutil.which("g++") or shutil.which("clang++")
    return (found,) if found else None


def emulation_available() -> bool:
    try:
        return host_compiler() is not None
    except LpirError:
        return False


def _wrapper(kernel: KernelSource, entry: str) -> str:
    """`extern "C" void entry(void** arguments, const unsigned* grid)`: run the kernel over
    the blocks `grid` gives along x, y, z (computed at each call: `lpir.ir.grid`)."""
    arguments = []
    for index, arg in enumerate(kernel.kernel.args):
        if isinstance(arg.type, GlobalType):
            ctype = c_types.memory_type(arg.type.dtype) + "*"
        else:
            ctype = c_types.c_type(arg.type.dtype)
        arguments.append(f"*reinterpret_cast<{ctype}*>(arguments[{index}])")
    call = f"{kernel.name}({', '.join(arguments)});"
    threads = kernel.kernel.threads
    return (
        f'\nextern "C" void {entry}(void** arguments, const unsigned* grid) {{\n'
        f"    lpir_host::run_grid(grid[0], grid[1], grid[2], {threads}, [&] {{ {call} }});\n"
        "}\n"
    )


def _source_directory() -> Path | None:
    """Where each built library's C++ is kept to read (`emulation/<key>.cpp` in lpir's cache
    directory, `$LPIR_CACHE_DIR`), or None where that folder cannot be made."""
    from lpir.runtime import cache

    directory = cache.directory() / "emulation"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory


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

_HEADER_FLAGS = tuple(flag for flag in _FLAGS if flag != "-shared")  # as the headers compile

_libraries: dict[str, ctypes.CDLL] = {}  # by key: loaded once per process
_libraries_lock = ForkSafeLock()  # new in a forked child


@functools.cache
def _compiler_version(compiler: tuple[str, ...]) -> str:
    """What the compiler says it is (part of the key: an upgrade at the same path rebuilds)."""
    result = subprocess.run([*compiler, "--version"], capture_output=True, text=True, check=False)
    return result.stdout


def build(source: str, symbols: Sequence[str] = ()) -> ctypes.CDLL:
    """A shared library of `source` (kernels plus their `lpir_emulate` wrappers) that exports
    `symbols`: loaded already, or from lpir's disk cache, or compiled and stored there.

    Libraries are cache entries (`lpir.runtime.cache`, kind "emulation") keyed by a hash of the
    source, the headers, the compiler and its flags, so an entry cut short or damaged on disk
    fails its checksum and is built again: the dynamic loader never maps it (a truncated
    library killed the process with SIGBUS). A verified entry that does not load or lacks one
    of `symbols` is built again too. Each load maps a private copy of the bytes, which the
    loader cannot confuse with a library of the same name loaded before.
    """
    from lpir.runtime import cache

    compiler = host_compiler()
    if compiler is None:
        raise LpirError("no host C++ compiler (g++ or clang++) for the CUDA emulation")
    headers = "".join(
        (INCLUDE_DIR / name).read_text() for name in ("lpir_cuda.cuh", "lpir_host.cuh")
    )
    key_text = source + headers + " ".join(compiler) + _compiler_version(compiler)
    key_text += " ".join(_FLAGS)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    with _libraries_lock:
        library = _libraries.get(key)
    if library is not None:
        return library
    stored = cache.load("emulation", key)
    library = None if stored is None else _open(stored, symbols)
    if library is None:
        built, readable_source = _compile(compiler, source, key)
        library = _open(built, symbols)
        if library is None:
            raise LpirError(
                f"the host compiler built {readable_source} into a library that does not "
                f"load or lacks one of {', '.join(symbols)}"
            )
        cache.store("emulation", key, built)
    with _libraries_lock:
        return _libraries.setdefault(key, library)


def _open(library_bytes: bytes, symbols: Sequence[str]) -> ctypes.CDLL | None:
    """`library_bytes` loaded from a file of this call's own (removed once mapped), or None
    where they do not load or lack one of `symbols`."""
    name = _private_copy(library_bytes)
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
    return library if all(hasattr(library, symbol) for symbol in symbols) else None


def _private_copy(library_bytes: bytes) -> str:
    """A new file holding `library_bytes`: in the cache folder, as the temporary folder may
    forbid mapping code (mounted noexec), else (that folder not writable, or full) in the
    temporary one."""
    failures = []
    cache_folder = _source_directory()
    for folder in ([cache_folder] if cache_folder else []) + [None]:
        handle, name = None, None
        try:
            handle, name = tempfile.mkstemp(prefix=".lpir-", suffix=".so", dir=folder)
            with os.fdopen(handle, "wb") as file:
                file.write(library_bytes)
            return name
        except OSError as error:
            failures.append(f"{folder or tempfile.gettempdir()}: {error.strerror or error}")
            if name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(name)
    raise LpirError(
        "no folder to write the CUDA emulation's library to (" + "; ".join(failures) + ")",
        hint="free some space there, or set LPIR_CACHE_DIR to a writable folder",
    )


def _compile(compiler: tuple[str, ...], source: str, key: str) -> tuple[bytes, str]:
    """(the library built from `source` in a folder of this build's own, where its C++ is
    kept to read). The C++ is also kept as `emulation/<key>.cpp` of the cache directory."""
    with tempfile.TemporaryDirectory(prefix="lpir-emulation-") as folder:
        source_path, library_path = Path(folder) / f"{key}.cpp", Path(folder) / f"{key}.so"
        source_path.write_text(source)
        readable_source = _keep_source(source, key) or "not kept: no writable cache folder"
        command = [*compiler, *_FLAGS, f"-I{INCLUDE_DIR}", "-x", "c++", str(source_path)]
        command += ["-o", str(library_path)]
        precompiled = precompiled_header_folder(
            compiler, _compiler_version(compiler), _HEADER_FLAGS, _source_directory()
        )
        result = None
        if precompiled is not None:  # searched before the headers' folder
            faster = [*command[: len(compiler)], f"-I{precompiled}", *command[len(compiler) :]]
            result = subprocess.run(faster, capture_output=True, text=True, check=False)
        if result is None or result.returncode != 0:  # (a damaged header file, say: without)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LpirError(
                f"host compilation of generated CUDA C ({readable_source}) failed:\n{result.stderr}"
            )
        if not library_path.exists():
            raise LpirError(
                f"the host compiler {' '.join(compiler)} exited without error but wrote no "
                f"library for {readable_source}",
                hint="set CXX to a C++20 compiler (g++ or clang++), or unset it",
            )
        return library_path.read_bytes(), readable_source


def _keep_source(source: str, key: str) -> str | None:
    """Write `source` to `emulation/<key>.cpp` of the cache directory (atomically: another
    process may be writing the same name); its path, or None where it cannot be written."""
    from lpir.runtime import cache

    directory = _source_directory()
    if directory is None:
        return None
    kept = directory / f"{key}.cpp"
    return str(kept) if cache.write_bytes_atomically(kept, source.encode()) else None


# The emulation's barriers, warp barriers and __shared__ arrays are process-wide (lpir_host.cuh):
# two calls at once from two Python threads waited on each other's barriers forever (found by
# an explorer). One emulated grid runs at a time (and a forked child gets a new lock).
_RUNNING = ForkSafeLock(held_across_fork=True)  # a fork waits for a running grid


class _Runner:
    """Runs one emulated kernel of a built library on host arrays, like `CompiledKernel.run`."""

    def __init__(self, kernel: Kernel, function: CFuncPtr, misaligned: CFuncPtr, race: CFuncPtr):
        self.kernel = kernel
        self.function = function
        self.misaligned = misaligned
        self.race = race
        self.function.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint)]
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
        grid = launch_grid(self.kernel, arguments)
        with _RUNNING:  # (the checks read what this run recorded)
            self.function(pointers, (ctypes.c_uint * 3)(*grid))
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
    entries = [f"lpir_emulate_{i}" for i in range(len(kernels))]
    library = build(source, [*entries, "lpir_emulation_misaligned", "lpir_emulation_race"])
    misaligned = library.lpir_emulation_misaligned
    misaligned.restype = ctypes.c_size_t
    misaligned.argtypes = [ctypes.POINTER(ctypes.c_int)]
    race = library.lpir_emulation_race
    race.restype = ctypes.c_int
    race.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return [
        _Runner(k.kernel, getattr(library, entry), misaligned, race)
        for entry, k in zip(entries, kernels)
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
