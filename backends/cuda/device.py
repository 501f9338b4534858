"""The GPU itself, through `cuda.core` and the driver bindings: detection, memory, launches.

Nothing here runs at import time, and every probe of the driver is guarded: on a machine
without an NVIDIA driver (CI) `gpu_available()` is simply False.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from lpir.backends.cuda.compiler import cuda_core

from lpir.errors import LpirError

# cuda.core and cuda.bindings are untyped: their devices, streams and kernels are Any here.


class CudaError(LpirError):
    """A CUDA driver call failed."""


def _driver() -> ModuleType:
    from cuda.bindings import driver

    return driver


def check(result: object) -> Any:
    """Unpack a cuda.bindings result tuple, raising CudaError unless it reports success."""
    driver = _driver()
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(error)
        raise CudaError(f"CUDA driver error {name.decode() if name else error}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


@functools.cache
def gpu_available() -> bool:
    """Whether an NVIDIA GPU and a working driver are present (False instead of any error)."""
    if os.environ.get("LPIR_CUDA_DISABLE"):
        return False
    try:
        cuda_core()
        driver = _driver()
        if driver.cuInit(0)[0] != driver.CUresult.CUDA_SUCCESS:
            return False
        error, count = driver.cuDeviceGetCount()
        return error == driver.CUresult.CUDA_SUCCESS and count > 0
    except Exception:
        return False


@functools.cache
def current_device() -> Any:
    """The `cuda.core` Device, made current (its primary context)."""
    if not gpu_available():
        raise LpirError("no CUDA GPU is available", hint="run on a machine with an NVIDIA GPU")
    device = cuda_core().Device()
    device.set_current()
    return device


@functools.cache
def device_arch() -> str:
    """The current GPU's architecture for the compiler, e.g. "sm_90" (asked on every launch:
    remembered, like the device itself)."""
    capability = current_device().compute_capability
    major, minor = tuple(capability)[:2]
    return f"sm_{major}{minor}"


def default_stream() -> Any:
    return current_device().default_stream


class DeviceBuffer:
    """Device memory owned by lpir (for arguments passed as host arrays)."""

    def __init__(self, nbytes: int):
        current_device()
        self.nbytes = nbytes
        # Round up to whole 32-bit words: `st_bits` updates the word holding its byte.
        self.pointer = int(check(_driver().cuMemAlloc(max(4, -(-nbytes // 4) * 4))))

    def copy_from_host(self, address: int, nbytes: int) -> None:
        if nbytes:
            check(_driver().cuMemcpyHtoD(self.pointer, address, nbytes))

    def copy_to_host(self, address: int, nbytes: int) -> None:
        if nbytes:
            check(_driver().cuMemcpyDtoH(address, self.pointer, nbytes))

    def free(self) -> None:
        if self.pointer:
            check(_driver().cuMemFree(self.pointer))
            self.pointer = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.free()


def pointer_device(pointer: int) -> int | None:
    """The device ordinal that owns a device pointer (None if the driver cannot tell)."""
    driver = _driver()
    attribute = driver.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
    try:
        return int(check(driver.cuPointerGetAttribute(attribute, pointer)))
    except Exception:
        return None


def synchronize() -> None:
    check(_driver().cuCtxSynchronize())


class LoadedKernel:
    """A kernel loaded from a cubin, ready to launch with its grid (or one computed at the
    call) and block."""

    def __init__(
        self, cubin: bytes, name: str, grid: Sequence[int], threads: int, dynamic_shared: int
    ):
        core = cuda_core()
        current_device()
        self.module = core.ObjectCode.from_cubin(cubin)
        self.kernel = self.module.get_kernel(name)
        if dynamic_shared > 48 * 1024:
            _allow_dynamic_shared(self.kernel, dynamic_shared)
        self.threads, self.dynamic_shared = threads, dynamic_shared
        self.config = self.config_for(grid)
        self.configs: dict[tuple, Any] = {}  # of grids computed at calls: sizes recur

    def config_for(self, grid: Sequence[int]) -> Any:
        return cuda_core().LaunchConfig(
            grid=tuple(grid), block=(self.threads, 1, 1), shmem_size=self.dynamic_shared
        )

    def config_of_call(self, grid: tuple) -> Any:
        """The launch configuration of a grid computed at a call, made once per grid (a
        decode loop meets the same few sizes again and again; at most 256 are kept)."""
        config = self.configs.get(grid)
        if config is None:
            if len(self.configs) >= 256:
                self.configs.clear()
            config = self.configs[grid] = self.config_for(grid)
        return config

    def launch(
        self, arguments: list, stream: object = None, grid: Sequence[int] | None = None
    ) -> None:
        """Launch on `stream`; `grid`: the blocks of a grid computed at this call (else the
        grid it was loaded with)."""
        config = self.config if grid is None else self.config_of_call(tuple(grid))
        cuda_core().launch(as_stream(stream), config, self.kernel, *arguments)


def as_stream(stream: object) -> Any:
    """A `cuda.core` Stream for None (the default stream), a Stream, or a foreign stream
    object (torch: `.cuda_stream`; anything with `__cuda_stream__`)."""
    core = cuda_core()
    if stream is None:
        return default_stream()
    if isinstance(stream, core.Stream):
        return stream
    handle = getattr(stream, "cuda_stream", None)
    if handle is None and hasattr(stream, "__cuda_stream__"):
        _, handle = stream.__cuda_stream__()
    if handle is not None and hasattr(core.Stream, "from_handle"):
        return _wrapped_stream(int(handle))
    return stream


@functools.lru_cache(maxsize=64)
def _wrapped_stream(handle: int) -> Any:
    """cuda.core's (non-owning) Stream of a foreign stream handle, made once per handle:
    a decode loop launches on the same torch stream every time."""
    return cuda_core().Stream.from_handle(handle)


def _allow_dynamic_shared(kernel: Any, nbytes: int) -> None:
    driver = _driver()
    attribute = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    handle = kernel.handle
    if isinstance(handle, driver.CUkernel):
        device = check(driver.cuCtxGetDevice())
        check(driver.cuKernelSetAttribute(attribute, nbytes, handle, device))
    else:
        check(driver.cuFuncSetAttribute(handle, attribute, nbytes))
