"""The shared memory a block may have on each GPU architecture, checked before compiling.

A kernel whose shared tiles (with the copies a pipelined loop stages) need more than its
architecture lets one block have compiles, then fails at launch with a driver error that names
no tile. `check_shared_memory` says so first, at the largest tiles' places in the source.
"""

from __future__ import annotations

import re

from lpir.errors import LpirError
from lpir.ir.core import Kernel
from lpir.ir.ops import AllocSharedOp

KIB = 1024

#: The most shared memory one block may opt into, by compute capability (major, minor): the
#: CUDA C++ Programming Guide's table of technical specifications per compute capability.
BLOCK_SHARED_LIMITS = {
    (7, 0): 96 * KIB,
    (7, 2): 96 * KIB,
    (7, 5): 64 * KIB,
    (8, 0): 163 * KIB,
    (8, 6): 99 * KIB,
    (8, 7): 163 * KIB,
    (8, 9): 99 * KIB,
    (9, 0): 227 * KIB,
    (10, 0): 227 * KIB,
    (10, 1): 227 * KIB,
    (10, 3): 227 * KIB,
    (12, 0): 99 * KIB,
    (12, 1): 99 * KIB,
}

_ARCH = re.compile(r"(?:sm|compute)_(\d+?)(\d)[af]?")


def block_shared_limit(arch: str) -> int | None:
    """The bytes of shared memory a block may have on `arch` ("sm_90", "compute_80"), or
    None for an architecture not in the table (then nothing is checked)."""
    match = _ARCH.fullmatch(arch)
    if match is None:
        return None
    return BLOCK_SHARED_LIMITS.get((int(match.group(1)), int(match.group(2))))


def check_shared_memory(kernel: Kernel, shared_bytes: int, arch: str) -> None:
    """Raise a located LpirError where the kernel's `shared_bytes` exceed what a block may
    have on `arch`."""
    limit = block_shared_limit(arch)
    if limit is None or shared_bytes <= limit:
        return
    allocations = [op for op in kernel.walk() if isinstance(op, AllocSharedOp)]
    allocations.sort(key=lambda op: -op.shared_type.nbytes)
    largest = allocations[0] if allocations else None
    tiles = ", ".join(f"{op.shared_type} ({_kib(op.shared_type.nbytes)})" for op in allocations[:3])
    raise LpirError(
        f"kernel {kernel.name} needs {_kib(shared_bytes)} of shared memory a block, more than "
        f"the {_kib(limit)} a block may have on {arch}"
        + (f"; its largest shared tiles: {tiles}" if tiles else ""),
        largest.location if largest is not None else None,
        hint="use smaller shared tiles (a smaller BK or BN), fewer pipeline stages (each keeps "
        "a copy of the tiles it stages), or exchange tiles in parts",
    )


def _kib(nbytes: int) -> str:
    return f"{nbytes / KIB:g} KiB" if nbytes % KIB == 0 else f"{nbytes} bytes"
