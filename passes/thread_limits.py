"""How much of a tile one CPU thread may hold: lower-to-threads refuses more, located.

A CPU thread's share of a register tile is one LLVM vector. LLVM's x86 code generator takes
time that grows faster than the vector's length: a thread's [64, 256] comparison (16384
lanes, `threads(1)`) compiled for more than a minute, [128, 256] for more than five, and at
131072 lanes LLVM aborted the process ("too many operands to fit into SDNode"). A tile
whose layout gives a thread more than `CPU_THREAD_ELEMENTS` elements is an error at the op
that makes it, naming the threads that would bring it within the limit, before LLVM sees it.
"""

from __future__ import annotations

from lpir.errors import VerifyError
from lpir.ir.core import Module
from lpir.ir.types import TileType

#: the most elements of one register tile a CPU thread holds (16 KiB of f32): a thread's
#: comparison of 16384 lanes compiled for more than a minute
CPU_THREAD_ELEMENTS = 4096


def check_cpu_thread_tiles(module: Module) -> None:
    """Raise a located `VerifyError` at the first op whose tile result gives a thread more
    than `CPU_THREAD_ELEMENTS` elements."""
    for kernel in module.kernels:
        threads = kernel.threads
        for op in kernel.walk():
            for result in op.results:
                tile = result.type
                if not isinstance(tile, TileType) or tile.layout is None:
                    continue
                layout = tile.layout
                if layout.slots <= CPU_THREAD_ELEMENTS:
                    continue
                enough = _power_of_two(-(-tile.size // CPU_THREAD_ELEMENTS))
                raise VerifyError(
                    f"'{op.name}': each of the {threads} threads would hold {layout.slots} "
                    f"elements of this {tile} tile, more than the {CPU_THREAD_ELEMENTS} "
                    "a CPU thread's vector may have (LLVM compiles longer ones for minutes, or "
                    "aborts)",
                    op.location,
                    f"give the block more threads (threads({enough}) or more) or make the tile "
                    "smaller",
                )


def _power_of_two(n: int) -> int:
    """The least power of two at least `n`."""
    return 1 << (n - 1).bit_length()
