"""How many bytes one value may keep in each GPU thread's registers, checked before compiling.

A register tile far larger than its threads can hold (`zeros<f32>[1024, 1024]` over 128
threads: 8192 values, 32 KiB, in each thread) is valid lpir, but a thread has at most 255
32-bit registers: nvcc spills such a value to local memory, and on values of that size it
runs for many minutes (an explorer's 2^20-element tile ran nvcc past 300 s; 2^18 elements
took 21 s). `check_register_tiles` refuses a value past `THREAD_VALUE_LIMIT` first, at its
place in the source, saying how to split it.
"""

from __future__ import annotations

from lpir.backends.cuda.c_types import byte_size

from lpir.errors import LpirError
from lpir.ir.core import Kernel, Operation
from lpir.ir.types import VectorType

REGISTER_BYTES = 255 * 4  # the 32-bit registers one thread may have, on every architecture
#: The most bytes one value may hold in each thread: 8x a thread's registers. The examples
#: keep at most 768 bytes (paged attention's scores); a value past this spills so much that
#: the kernel cannot run near its memory's speed, and nvcc takes minutes over it.
THREAD_VALUE_LIMIT = 8 * 1024


def check_register_tiles(kernel: Kernel) -> None:
    """Raise a located LpirError where one value of the thread IR `kernel` keeps more than
    `THREAD_VALUE_LIMIT` bytes in each thread."""
    largest = _largest_value(kernel)
    if largest is None:
        return
    op, vector = largest
    nbytes = _bytes(vector)
    if nbytes <= THREAD_VALUE_LIMIT:
        return
    raise LpirError(
        f"kernel {kernel.name} keeps {vector.size} {vector.dtype.name} values ({_kib(nbytes)}) "
        f"in each of its {kernel.threads} threads here; a GPU thread has {REGISTER_BYTES} bytes "
        f"of registers, and lpir takes at most {_kib(THREAD_VALUE_LIMIT)} in one value (nvcc "
        "would spill it to memory, and take minutes to do so)",
        op.location,
        hint="split the tile: loop over parts of it, give the kernel more threads, or keep "
        "it in a shared tile (shared<T>[...])",
    )


def _largest_value(kernel: Kernel) -> tuple[Operation, VectorType] | None:
    """The op whose result keeps the most bytes in each thread, with that result's type."""
    largest: tuple[Operation, VectorType] | None = None
    for op in kernel.walk():
        for result in op.results:
            vector = result.type
            if not isinstance(vector, VectorType):
                continue
            if largest is None or _bytes(vector) > _bytes(largest[1]):
                largest = (op, vector)
    return largest


def _bytes(vector: VectorType) -> int:
    """What `vector` takes in each thread as the CUDA C holds it (a bool, a sub-byte or small
    float value in a byte of its own)."""
    return vector.size * byte_size(vector.dtype)


def _kib(nbytes: int) -> str:
    return f"{nbytes / 1024:g} KiB" if nbytes % 1024 == 0 else f"{nbytes} bytes"
