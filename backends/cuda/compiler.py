"""Compile CUDA C to a cubin or PTX: NVRTC through `cuda.core`, or nvcc.

`compile_source(source, arch, output)` picks the compiler (`LPIR_CUDA_COMPILER=nvrtc|nvcc`
forces one; by default NVRTC when `cuda.core` imports and the CUDA headers are found, else
nvcc), and caches the result in memory and on disk keyed by the source, the helper header,
the architecture, the output kind, the compiler and its version, and the options.

Options: C++17, full optimization, IEEE division and square root, denormals kept (no
`--use_fast_math`: lpir's semantics are exact), FMA contraction left on (the default of both
compilers; `a * b + c` may round once instead of twice).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from lpir.backends.cuda.cache import cache_key, default_cache
from lpir.backends.cuda.source import HEADER_NAME, INCLUDE_DIR, header_text

from lpir.errors import LpirError

NVCC_OPTIONS = ("-O3", "-std=c++17")
# nvcc is stopped past this: generated code it cannot compile in 10 minutes is too big to use.
NVCC_TIMEOUT_S = 600
STRICT_OPTIONS = ("-Werror", "all-warnings")


class CudaCompileError(LpirError):
    """The CUDA compiler rejected generated code (a backend bug): carries the log."""


class NvrtcUnavailable(RuntimeError):
    """NVRTC could not run at all (not a verdict on the code): nvcc may take over."""


def find_nvcc() -> str | None:
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and (Path(home) / "bin" / "nvcc").exists():
            return str(Path(home) / "bin" / "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


def subprocess_output(command: list[str]) -> str:
    """What `command` writes on standard output ('' where it cannot run)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


@functools.cache
def nvcc_version(nvcc: str) -> str:
    result = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "unknown"


def compile_with_nvcc(
    source: str,
    arch: str,
    output: str,
    strict: bool = False,
    extra: tuple[str, ...] = (),
    log: list[str] | None = None,
) -> bytes:
    """Run nvcc on `source`; return the cubin or PTX bytes. Raises CudaCompileError.

    `strict` turns every warning into an error; `log` (a list) receives nvcc's output.
    """
    nvcc = find_nvcc()
    if nvcc is None:
        raise LpirError(
            "no CUDA compiler: nvcc is not on PATH and cuda.core is not installed",
            hint="pip install 'lpir[cuda]' or install the CUDA toolkit",
        )
    with tempfile.TemporaryDirectory(prefix="lpir-cuda-") as directory:
        path = Path(directory) / "kernel.cu"
        path.write_text(source)
        target = Path(directory) / f"kernel.{output}"
        command = [
            nvcc,
            f"-arch={arch}",
            f"-{output}",
            *NVCC_OPTIONS,
            f"-I{INCLUDE_DIR}",
            *(STRICT_OPTIONS if strict else ()),
            *extra,
            "-o",
            str(target),
            str(path),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=NVCC_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise CudaCompileError(
                f"nvcc ran more than {NVCC_TIMEOUT_S} s on generated CUDA C ({arch}) and was "
                "stopped",
                hint="its kernels are too large to compile: split big register tiles (loop "
                "over parts of them), unroll fewer iterations, or give the kernel more threads",
            ) from None
        if log is not None:
            log.append(result.stderr + result.stdout)
        if result.returncode != 0 and "Unsupported gpu architecture" in result.stderr:
            release = re.search(r"release [\d.]+", subprocess_output([nvcc, "--version"]))
            shown = release.group(0) if release else nvcc_version(nvcc)
            raise LpirError(
                f"this nvcc ({shown}) does not compile for {arch.replace('compute_', 'sm_')}",
                hint="name an architecture it lists (nvcc --list-gpu-arch), or use a CUDA "
                "toolkit that knows it",
            )
        if result.returncode != 0:
            raise CudaCompileError(
                f"nvcc failed on generated CUDA C ({arch}):\n{result.stderr}{result.stdout}"
            )
        return target.read_bytes()


def cuda_include_directories() -> list[str]:
    """Directories holding cuda_fp16.h (for NVRTC, which has no default include path)."""
    candidates: list[Path] = []
    try:
        from cuda import pathfinder

        found = pathfinder.find_nvidia_header_directory("cudart")
        if found:
            candidates.append(Path(found))
    except Exception:  # an old or missing cuda-pathfinder: try the usual places
        pass
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home:
            candidates.append(Path(home) / "include")
    nvcc = find_nvcc()
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent / "include")
    candidates.append(Path("/usr/local/cuda/include"))
    return [str(c) for c in dict.fromkeys(candidates) if (c / "cuda_fp16.h").exists()]


def cuda_core() -> ModuleType:
    """The `cuda.core` namespace with Program, Device, launch, ... (1.x, or 0.x experimental)."""
    try:
        import cuda.core as core

        if hasattr(core, "Program"):
            return core
    except ImportError:
        pass
    import cuda.core.experimental as core

    return core


@functools.cache
def nvrtc_version() -> str:
    try:
        from cuda.bindings import nvrtc

        _, major, minor = nvrtc.nvrtcVersion()
        return f"nvrtc {major}.{minor}"
    except Exception:
        return "nvrtc unknown"


def compile_with_nvrtc(source: str, arch: str, output: str) -> bytes:
    core = cuda_core()
    include = [str(INCLUDE_DIR), *cuda_include_directories()]
    options = core.ProgramOptions(arch=arch, std="c++17", include_path=include)
    program = core.Program(source, code_type="c++", options=options)
    try:
        code = program.compile(output)
    except Exception as error:
        if "NVRTC_ERROR" not in str(error):
            raise NvrtcUnavailable(str(error)) from error  # e.g. no driver to ask for PTX
        raise CudaCompileError(f"NVRTC failed on generated CUDA C ({arch}):\n{error}") from error
    data = getattr(code, "code", None)
    if data is None:
        data = code._module  # cuda.core 0.x keeps the bytes here
    return data if isinstance(data, bytes) else bytes(data)


def nvrtc_usable() -> bool:
    try:
        cuda_core()
    except Exception:
        return False
    return bool(cuda_include_directories())


COMPILERS = ("nvrtc", "nvcc")


def choose_compiler() -> str:
    """The compiler $LPIR_CUDA_COMPILER names (nvrtc or nvcc), else NVRTC where it can run,
    else nvcc. A value naming neither is refused: a typo would silently pick the default."""
    configured = os.environ.get("LPIR_CUDA_COMPILER", "").strip()
    if configured.lower() in COMPILERS:
        return configured.lower()
    if configured:
        raise LpirError(
            f"LPIR_CUDA_COMPILER: {configured!r} is not a CUDA compiler lpir can use",
            hint="set it to nvrtc (cuda.core) or nvcc, or unset it to let lpir choose",
        )
    if nvrtc_usable():
        return "nvrtc"
    if find_nvcc():
        return "nvcc"
    raise LpirError(
        "no CUDA compiler found: neither cuda.core (NVRTC) nor nvcc is available",
        hint="pip install 'lpir[cuda]' (cuda-core) or install the CUDA toolkit",
    )


def compile_source(source: str, arch: str, output: str = "cubin") -> bytes:
    """The cubin or PTX of `source` for `arch` ("sm_90"), from the cache when possible."""
    if output not in ("cubin", "ptx"):
        raise ValueError(f"output must be cubin or ptx, not {output!r}")
    compiler = choose_compiler()
    if compiler == "nvrtc":
        try:
            return _cached(source, arch, output, "nvrtc", nvrtc_version(), compile_with_nvrtc)
        except NvrtcUnavailable:
            if find_nvcc() is None:
                raise
    version = nvcc_version(find_nvcc() or "nvcc")
    return _cached(source, arch, output, "nvcc", version, compile_with_nvcc)


def _cached(
    source: str,
    arch: str,
    output: str,
    compiler: str,
    version: str,
    compile: Callable[[str, str, str], bytes],
) -> bytes:
    key = cache_key(source, header_text(), arch, output, compiler, version, *NVCC_OPTIONS)
    cache = default_cache()
    data = cache.get(key)
    if data is None:
        data = compile(source, arch, output)
        cache.put(key, data)
    return data


__all__ = [
    "HEADER_NAME",
    "CudaCompileError",
    "compile_source",
    "compile_with_nvcc",
    "cuda_core",
    "find_nvcc",
]
