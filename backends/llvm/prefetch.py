"""Software prefetches for the global loads that stream through memory (CPU).

A CPU block runs its threads one after another, each through its whole loop, so a GEMV's
thread walks one row of weights from end to end and the next rows follow in memory. The
cores' hardware prefetchers follow such a walk only inside a 4 KiB page and learn it again on
every new page: with 4 KiB rows (u4 weights, K = 8192) each row starts with a few reads that
wait the whole memory latency. A prefetch `PREFETCH_BYTES` ahead of each streamed load, into
the second-level cache (`LOCALITY`), keeps the walk ahead across page (and row) ends: the
8192 x 8192 GEMV took 20-30 % less time (docs/benchmarks.md). Into the first level and
2048 bytes ahead (the first choice) gave u4 2.58 ms, u6 4.0, u8 4.5; into the second, 8192
ahead 2.23-2.35, 3.0, 3.8 (2048-32768 bytes and levels 1-3 tried, twice each).

A load streams when it is inside a loop and its address moves with the loop's counter (and
no loaded value feeds it: a gather from a table of pages is no stream), and
each block reads its own data (the address depends on the block index and the load is not
`served_from_cache`: x, which every block reads, stays in the caches and is not prefetched),
and it reads at least `MIN_BYTES` per thread (a scalar per iteration crosses a cache line
rarely enough for the hardware to follow). Prefetches never fault and change no result: a
prefetch past the end of an array (the last rows) is harmless.
"""

from __future__ import annotations

from lpir.ir.analysis import loop_slice, served_from_cache
from lpir.ir.core import Kernel, Operation
from lpir.ir.ops import ForOp
from lpir.ir.types import GlobalType

PREFETCH_BYTES = 8192  # ahead of the load: two pages, past a page's end well before the walk
LOCALITY = 2  # llvm.prefetch's: into the second-level cache (x86 prefetcht1), not the first
MIN_BYTES = 16


def streamed_loads(kernel: Kernel) -> set[int]:
    """The ids of the kernel's `ld` ops that stream through memory (see the module's doc)."""
    streamed = set()
    for loop in kernel.walk():
        if not isinstance(loop, ForOp):
            continue
        for op in loop.body.walk():
            if _streams(op, loop, kernel):
                streamed.add(id(op))
    return streamed


def _streams(op: Operation, loop: ForOp, kernel: Kernel) -> bool:
    if op.name != "ld" or not isinstance(op.operands[0].type, GlobalType):
        return False
    dtype = op.attributes.get("dtype") or op.operands[0].type.dtype
    if dtype.nbits % 8 or len(op.attributes["offsets"]) * dtype.nbits < 8 * MIN_BYTES:
        return False
    moving = loop_slice(op.operands[1:2], loop)  # None: a loaded or carried value feeds it
    return moving is not None and moving.reads_induction and not served_from_cache(op, kernel)


__all__ = ["LOCALITY", "MIN_BYTES", "PREFETCH_BYTES", "streamed_loads"]
