"""A precompiled `lpir_cuda.cuh` for the host emulation's builds (GCC only).

Every cuda-host library includes the helper headers (with `lpir_host.cuh`, the C++ standard
library's threads, barriers and atomics): parsing them was about 0.8 s of the 1.3 s g++ takes
over a small kernel, paid again by each of the test suite's builds. GCC uses
`lpir_cuda.cuh.gch` in place of the header when it finds it first on the include path and it
was built with the same compiler and options; when it cannot use it, GCC reads the header
itself, so a stale or foreign file costs time, never correctness.

The file lives in a folder of lpir's cache named by a hash of the headers, the compiler, its
version and the options, built once (written to a file of its own, renamed into place).
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lpir.backends.cuda.source import INCLUDE_DIR

from lpir.runtime import cache
from lpir.runtime.fork_safe import ForkSafeLock

HEADER = "lpir_cuda.cuh"
_HEADERS = (HEADER, "lpir_host.cuh")

_folders: dict[str, Path | None] = {}  # by key: looked for or built once per process
_folders_lock = ForkSafeLock()


def precompiled_header_folder(
    compiler: Sequence[str], version: str, flags: Sequence[str], cache_folder: Path | None
) -> Path | None:
    """A folder holding `lpir_cuda.cuh.gch` for `compiler` (GCC; its `--version` text) and
    the compile `flags`, to put on the include path before the headers' own folder; None
    where the compiler is not GCC, there is no cache folder, or the build failed."""
    if cache_folder is None or "Free Software Foundation" not in version:
        return None
    headers = "".join((INCLUDE_DIR / name).read_text() for name in _HEADERS)
    key = hashlib.sha256("\0".join([headers, *compiler, version, *flags]).encode()).hexdigest()
    with _folders_lock:
        if key not in _folders:
            folder = cache_folder / f"pch-{key[:24]}"
            _folders[key] = folder if _built(compiler, flags, folder) else None
        return _folders[key]


def _built(compiler: Sequence[str], flags: Sequence[str], folder: Path) -> bool:
    """Whether `folder` holds the precompiled header, building it there if not."""
    target = folder / f"{HEADER}.gch"
    if target.exists():
        return True

    def compile_into(name: str) -> bool:
        command = [*compiler, *flags, f"-I{INCLUDE_DIR}", "-x", "c++-header"]
        command += [str(INCLUDE_DIR / HEADER), "-o", name]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    return cache.write_atomically(target, compile_into)
