"""The shared memory a block may have on each GPU architecture, checked before compiling.

A kernel whose shared tiles (with the copies a pipelined loop stages) need more than its
architecture lets one block have compiles, then fails at launch with a driver error that names
no tile. `check_shared_memory` says so first, at the largest tiles' places in the source.
"""

from __future__ import annotations

import re

from lpir.errors import LpirError
from lpir.ir.core import Kernel
from lpir.ir.ops import AllocSharedOp, ForOp

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
        hint=_hint(kernel, allocations[:3]),
    )


def _hint(kernel: Kernel, largest: list[AllocSharedOp]) -> str:
    """Smaller tiles (by the parameters that size the largest, where they are found), fewer
    stages where a loop may stage tiles, or tiles exchanged in parts."""
    names = _sizing_parameters(kernel, largest)
    if names:
        smaller = f"the largest are sized by {' and '.join(names)}"
    else:
        smaller = "smaller values of the parameters that size them"
    stages = any(isinstance(op, ForOp) for op in kernel.walk())
    return (
        f"use smaller shared tiles ({smaller})"
        + (", fewer pipeline stages (each keeps a copy of the tiles it stages)" if stages else "")
        + ", or exchange tiles in parts (or through a global scratch tensor)"
    )


def _sizing_parameters(kernel: Kernel, allocations: list[AllocSharedOp]) -> list[str]:
    """The kernel's integer parameters that size `allocations`: those written in a tile's
    place in the source (`shared<f32>[S, S]`), those a dimension equals, and those a dimension
    rounds up to a multiple of another (`cdiv(V, BV) * BV`)."""
    # (a dimension of 2 or 4 equal to a parameter says little)
    params = {
        name: value
        for name, value in kernel.params.items()
        if isinstance(value, int) and not isinstance(value, bool) and value >= 8
    }
    found: list[str] = []
    for op in allocations:
        location = op.location
        if location is not None and location.source_line:
            end = location.end_column or len(location.source_line) + 1
            written = location.source_line[location.column - 1 : end - 1]
            found += [w for w in re.findall(r"[A-Za-z_]\w*", written) if w in params]
        for size in op.shared_type.shape:
            found += [
                name
                for name, value in params.items()
                if size == value
                or any(value < size < value + step and size % step == 0 for step in params.values())
            ]
    return list(dict.fromkeys(found))


def _kib(nbytes: int) -> str:
    return f"{nbytes / KIB:g} KiB" if nbytes % KIB == 0 else f"{nbytes} bytes"
