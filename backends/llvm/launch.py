"""Run a compiled kernel's grid on all cores.

The entry `lpir_run(ptr args, i64 first_block, i64 end_block)` runs a contiguous range of
linear block ids. A call splits the grid into one range per native thread and runs them at
once: ctypes releases the GIL for the duration of each call, so the ranges really run in
parallel. A worker thread starts when a call first needs it (never more than the blocks of
the largest call, and at most `MAX_THREADS`) and lives for the whole process.

A block's context arrays and shared memory are stack slots of the block function, so a block
needs `frame_bytes` of stack. Workers are started with `WORKER_STACK_BYTES` of stack; the
caller's own thread (whose stack size we do not control) takes the first range only when the
frame is small.

Handing a range to a worker and waiting for it costs tens of microseconds (a futex wake-up
each way: 56 us on the 2-core development VM), more than a small grid's whole run (a
10000-element vector_add took 120 us on two threads, 30 on one). Each launcher therefore
times the blocks its caller runs and runs the grid on the caller alone while the blocks'
estimated time on one thread is at most what splitting it would save
(`Launcher.serial_is_faster`).
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures.thread import ThreadPoolExecutor  # (concurrent.futures loads it lazily)
from typing import Any

import numpy as np

from lpir.dtypes import DType
from lpir.errors import ArgumentError, CompileError, LpirError
from lpir.ir.core import Kernel
from lpir.ir.effects import stored_arguments
from lpir.ir.grid import grid_function, static_grid
from lpir.ir.types import GlobalType
from lpir.packing import PackedArray
from lpir.runtime.arguments import refuse_overlap

RUN_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
WORKER_STACK_BYTES = 256 * 2**20
CALLER_FRAME_LIMIT = 512 * 2**10  # more than this and the caller's thread only waits
FRAME_LIMIT = WORKER_STACK_BYTES - 8 * 2**20


CORES = os.cpu_count() or 1  # asked once: it reads /sys, 6 us a call on the development VM
# Threads past the cores only share them; each reserves WORKER_STACK_BYTES of address space,
# and tens of thousands of them exhaust the process limits of the whole machine.
MAX_THREADS = max(64, 4 * CORES)


def threads_to_use() -> int:
    """Native threads per call: `$LPIR_NUM_THREADS` (1 to `MAX_THREADS`), or one per core."""
    configured = os.environ.get("LPIR_NUM_THREADS", "").strip()
    if not configured:
        return CORES
    digits = configured.lstrip("0")
    if not (configured.isascii() and configured.isdigit()) or not digits:
        raise LpirError(
            f"LPIR_NUM_THREADS is {configured!r}, not a positive whole number",
            hint=f"set it to the number of threads to run blocks on (this machine has {CORES} "
            "cores), or unset it for one per core",
        )
    count = int(digits) if len(digits) <= 9 else MAX_THREADS + 1  # no 5000-digit int()
    if count > MAX_THREADS:
        raise LpirError(
            f"LPIR_NUM_THREADS is {configured}; blocks run on at most {MAX_THREADS} threads "
            f"(64 or 4 per core, whichever is more; this machine has {CORES} cores)",
            hint=f"set it to at most {MAX_THREADS}; threads past the core count only share "
            "the cores, so unset it for one per core",
        )
    return count


class WorkerPool:
    """Worker threads with stacks big enough for a block's frame, started as calls need them.

    A `ThreadPoolExecutor` starts a thread in `submit` when no worker is idle, so a call's
    ranges start at most as many threads as they are. The stack size is process-wide state
    read when a thread starts: `submit` sets it around the start and puts it back.
    """

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="lpir")
        self.lock = threading.Lock()

    def submit(self, function: Any, *arguments: Any) -> Future:
        with self.lock:
            previous = threading.stack_size(WORKER_STACK_BYTES)
            try:
                return self.executor.submit(function, *arguments)
            finally:
                threading.stack_size(previous)


_pool: WorkerPool | None = None
_pool_latency = 0.0  # seconds to hand a worker a call and learn that it has returned
_pool_lock = threading.Lock()


def _forget_the_pool_in_a_child() -> None:
    """A forked child has none of the parent's worker threads, while the inherited pool
    believes it has idle ones: its first split call waited forever (found by an explorer).
    The child starts a pool of its own when it needs one."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_the_pool_in_a_child)


def worker_pool() -> WorkerPool:
    """The process-wide workers (none started until a call submits to them)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool()
            _measure_pool_latency(_pool)
        return _pool


def _measure_pool_latency(pool: WorkerPool) -> None:
    """The fastest of a few round trips of an empty call through a worker."""
    global _pool_latency
    trips = []
    for _ in range(5):
        start = time.perf_counter()
        pool.submit(int).result()
        trips.append(time.perf_counter() - start)
    _pool_latency = min(trips)


def pool_latency() -> float:
    """Seconds a round trip through a worker takes (measured when the pool starts)."""
    worker_pool()
    return _pool_latency


class Launcher:
    """Calls one kernel's `lpir_run` over its grid with checked arguments."""

    def __init__(self, kernel: Kernel, address: int, frame_bytes: int):
        if frame_bytes > FRAME_LIMIT:
            raise CompileError(
                f"a block of {kernel.name} needs {frame_bytes >> 20} MiB of per-block storage "
                f"(context arrays and shared memory); the CPU backend allows "
                f"{FRAME_LIMIT >> 20} MiB",
                hint="use fewer threads per block or smaller per-thread tiles",
            )
        # A bad $LPIR_NUM_THREADS is an error here, at the compile: read only where a call
        # splits its grid, it let a one-block kernel run and failed the first large batch.
        threads_to_use()
        self.kernel = kernel
        self.stored = stored_arguments(kernel)
        # each argument's part in a call, worked out once: its name, the bytes a tensor must
        # have (None for a scalar), whether the kernel stores into it, its dtype, and for a
        # tensor whose rows are read at run time the position of that size and a row's bits
        self.argument_plan = [
            (
                arg.name_hint,
                arg.type.nbytes if isinstance(arg.type, GlobalType) else None,
                id(arg) in self.stored,
                arg.type.dtype,
                *_runtime_rows(arg.type, kernel),
            )
            for arg in kernel.args
        ]
        # a grid computed at each call travels after the arguments, one count an entry
        static = static_grid(kernel.grid)
        entries = len(kernel.args) + (3 if static is None else 0)
        self.table_type = ctypes.c_void_p * max(1, entries)
        self.grid = grid_function(kernel)
        self.static_blocks = math.prod(static) if static is not None else None
        self.function = RUN_SIGNATURE(address)
        self.frame_bytes = frame_bytes
        self.block_seconds: float | None = None  # a block's time on the caller, smoothed

    def run(self, arguments: list[Any]) -> None:
        keep_alive, pointers = self.pointers(arguments)
        blocks = self.static_blocks
        if blocks is None:  # a grid computed at the call (each call its own: calls may overlap)
            grid = self.grid(arguments)
            blocks = math.prod(grid)
            if blocks == 0:  # (an empty batch: no block runs)
                return
            pointers += grid
        table = self.table_type(*pointers)
        address = ctypes.addressof(table)
        ranges = self.ranges(blocks)
        caller_runs = self.frame_bytes <= CALLER_FRAME_LIMIT
        if caller_runs and len(ranges) > 1 and self.serial_is_faster(blocks, len(ranges)):
            ranges = [(0, blocks)]
        if len(ranges) == 1 and caller_runs:
            self.run_on_caller(address, *ranges[0])
        else:
            mine = ranges[0] if caller_runs else None
            others = ranges[1:] if caller_runs else ranges
            pending = [worker_pool().submit(self.function, address, lo, hi) for lo, hi in others]
            if mine is not None:
                self.run_on_caller(address, *mine)
            for future in pending:
                future.result()
        del keep_alive, table

    def run_on_caller(self, address: int, first: int, end: int) -> None:
        """Run blocks [first, end) on this thread and remember how long a block took."""
        start = time.perf_counter()
        self.function(address, first, end)
        seconds = (time.perf_counter() - start) / (end - first)
        previous = self.block_seconds
        self.block_seconds = seconds if previous is None else (previous + seconds) / 2

    def serial_is_faster(self, blocks: int, workers: int) -> bool:
        """Whether the grid on the caller alone (its blocks' time so far) takes no longer than
        split over `workers` threads plus a round trip through a worker. Unknown until the
        caller has run some blocks: the first call splits."""
        if self.block_seconds is None:
            return False
        alone = self.block_seconds * blocks
        return alone <= alone / workers + pool_latency()

    def ranges(self, blocks: int) -> list[tuple[int, int]]:
        if blocks == 1:  # the common small launch: nothing to split
            return [(0, 1)]
        workers = min(threads_to_use(), blocks)
        bounds = [blocks * i // workers for i in range(workers + 1)]
        return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]

    def pointers(self, arguments: list[Any]) -> tuple[list, list[int]]:
        """Tensors: their data; scalars: a pointer to the value in register form."""
        if len(arguments) != len(self.argument_plan):
            raise ArgumentError(
                f"{self.kernel.name} takes {len(self.kernel.args)} arguments, got {len(arguments)}"
            )
        keep_alive: list[Any] = []
        pointers: list[int] = []
        spans: list[tuple[str, int, int, bool]] = []
        for (name, required, stored, dt, rows_at, row_bits), value in zip(
            self.argument_plan, arguments
        ):
            if rows_at is not None:  # rows read at run time (checked to be 0 or more)
                required = (max(0, int(arguments[rows_at])) * row_bits + 7) // 8
            if required is None:
                scalar, address = scalar_pointer(dt, value)
                keep_alive.append(scalar)
                pointers.append(address)
                continue
            buffer = value.data if isinstance(value, PackedArray) else value
            nbytes = buffer.nbytes
            if nbytes < required:
                raise ArgumentError(
                    f"argument {name} has {nbytes} bytes; the kernel reads {required}"
                )
            keep_alive.append(buffer)
            start = data_address(buffer)
            if nbytes:  # an empty view shares no byte (numpy gives it its base's address)
                spans.append((name or "?", start, start + nbytes, stored))
            pointers.append(start)
        refuse_overlap(spans)
        return keep_alive, pointers


def _runtime_rows(arg_type: Any, kernel: Kernel) -> tuple[int | None, int]:
    """(the position of the argument holding a tensor's rows, the bits of a row) where its
    first dimension is read at run time; (None, 0) otherwise."""
    rows = getattr(arg_type, "extent", None)
    if rows is None:
        return None, 0
    position = next(i for i, arg in enumerate(kernel.args) if arg.name_hint == rows)
    return position, math.prod(arg_type.shape[1:]) * arg_type.dtype.nbits


def data_address(array: np.ndarray) -> int:
    """The address of an array's first byte. A writable array's through ctypes' buffer view
    (0.3 us, where numpy's `array.ctypes.data` builds an object: 1 us, a third of a small
    launch's pointer work); read-only and empty arrays through numpy."""
    try:
        # numpy arrays export the buffer protocol; numpy's stubs do not say so
        return ctypes.addressof(ctypes.c_char.from_buffer(array))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return array.ctypes.data


def scalar_array(dt: DType, value: Any) -> np.ndarray:
    """One scalar argument in the backend's register form (floats under 32 bits as codes)."""
    if dt.is_float and dt.nbits < 32:
        return np.asarray(dt.encode(np.array([value], np.float64)), dt.code_numpy_dtype)
    if dt.is_bool:
        return np.array([bool(value)], np.uint8)
    if dt.is_int:
        # Wrap into range the way a cast would (the runtime has checked the value already).
        return np.asarray(dt.from_codes(dt.encode(np.array([int(value)]))), dt.numpy_dtype)
    return np.array([value], dtype=dt.numpy_dtype)


#: ctypes types of the scalars a call passes as they are (C's conversion: f32 rounds to
#: nearest like numpy's, integers wrap like a cast)
_CTYPES: dict[str, type[ctypes._SimpleCData[Any]]] = {
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
    "i8": ctypes.c_int8,
    "i16": ctypes.c_int16,
    "i32": ctypes.c_int32,
    "i64": ctypes.c_int64,
    "u8": ctypes.c_uint8,
    "u16": ctypes.c_uint16,
    "u32": ctypes.c_uint32,
    "u64": ctypes.c_uint64,
}


def scalar_pointer(dt: DType, value: Any) -> tuple[Any, int]:
    """A scalar argument in register form (`scalar_array`'s bytes) and its address: a ctypes
    object for the common dtypes (a fifth of the time), else `scalar_array`."""
    known = _CTYPES.get(dt.name)
    if known is not None:
        scalar = known(int(value) if dt.is_int else value)
        return scalar, ctypes.addressof(scalar)
    array = scalar_array(dt, value)
    return array, array.ctypes.data


__all__ = [
    "Launcher",
    "pool_latency",
    "scalar_array",
    "scalar_pointer",
    "threads_to_use",
    "worker_pool",
]
