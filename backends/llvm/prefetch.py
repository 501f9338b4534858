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

A walk that skips memory between iterations (a loop whose threads split each step's tile: a
thread of greedy.lp at 256 logits a step over 2 threads reads 512 bytes of every 1 KiB) is a
new stream at every step for the hardware, so such a load prefetches every cache line it
reads, not only its first, where PREFETCH_BYTES ahead is at least two steps
(`prefetch_distances`; the step is the bytes its address moves an iteration, known where the
address is the induction variable times a constant plus what the loop does not change):
greedy at 64 x 128256 with that tile 2.0-2.4 -> 1.4-2.0 ms, alternated three times on a noisy
VM. At 2048 logits a step (8 KiB) prefetching every line one step ahead was 15 % slower, and
further ahead (64 and 128 KiB) slower still: such loads keep one prefetch. So does a load that
walks on without gaps (a GEMV's row): the LLVM IR of every other example is unchanged.

A kernel without loops prefetches across blocks instead (`block_prefetches`): where the
blocks a core runs one after another move a load's address by less than a page (in the order
of block_order.py), each of its 64-byte lines is prefetched BLOCKS_AHEAD blocks on. rope.lp's
16-token tile reads 16 rows of 256 bytes 8 KiB apart, a walk of short pieces that the
hardware picks up late: rope 4096 tokens x 32 heads went from 10.6-11.8 ms (heads first, no
prefetch) to 6.8 with two blocks ahead (4 and 8: 6.9-7.4), a token a block from 5.2-5.6 to
4.1-4.2. Blocks that move a page or more (vector_add, rmsnorm, softmax: one contiguous walk)
get none: into the first level it made vector_add 20 % slower.

Steps of a page or more now run interleaved (`Plan.interleaves`: the block's threads take each
step in turn), and there each thread prefetches every cache line it reads, two steps ahead:
greedy 64 x 128256 at 2048/128 took 4-5 ms with one prefetch a load (the first line, 8 KiB
ahead), 1.0-1.6 with every line two steps ahead, 0.9-1.4 one step and 1.2-1.6 four steps
ahead, in three alternated rounds.

A walk whose steps are longer than PREFETCH_BYTES (down the columns of a row-major matrix:
GPTQ's qweight[k / 8, n], 16 rows of 16 KiB a step, 32 bytes of each a thread) would
prefetch into a gap, another block's columns: it prefetches each line it reads two steps
ahead (STEPS_AHEAD). On a GPTQ GEMV stripped of its zero points, scales and permuted x, at
4096 x 4096 on one core: 1.68x the u4 GEMV's time before, 1.30x one step ahead, 1.27x two,
1.28x four (run interleaved instead, 1.21x; not taken: its accumulators fill the first-level
cache's share). A thread that reads only a sliver of each line it touches (a dot's share of a
tile the block's threads read together: moe_gemm's weights, a byte of every 64) keeps one
prefetch: prefetching its every line was 7 % slower at moe_gemm's default sizes.

Gathers get none. Prefetching the rows the next step of paged_attention.lp gathers (the
block-table loads and index arithmetic of the loop's body emitted again one step on, then a
prefetch of each row's lines: the addresses checked to be exactly the next step's rows) left
its time unchanged (ratios 0.99-1.05 in every variant: 1, 2 and 4 steps ahead, t0/t1/t2/nta,
all rows at once or each at its load) and cost 12-30 % where the rows were in the caches.
That loop is bound by the cache lines one core can have in flight from memory (random lines:
about 9.5 ns each here), which a prefetch takes as a load does; longer contiguous runs help
instead (docs/benchmarks.md, "Decode attention (paged) on the CPU").
"""

from __future__ import annotations

from lpir.backends.llvm.block_order import block_coefficient, block_order
from lpir.backends.llvm.linear_index import linear_coefficient

from lpir.dtypes import DType
from lpir.ir.analysis import loop_slice, served_from_cache
from lpir.ir.core import Kernel, Operation, Value
from lpir.ir.ops import ConstantOp, ForOp, LoadThreadOp
from lpir.ir.types import GlobalType, VectorType

PREFETCH_BYTES = 8192  # ahead of the load: two pages, past a page's end well before the walk
LOCALITY = 2  # llvm.prefetch's: into the second-level cache (x86 prefetcht1), not the first
MIN_BYTES = 16
STEPS_AHEAD = 2  # how far ahead a walk of long steps prefetches, in steps
MAX_PREFETCHES = 8  # cache lines prefetched for one load, the first of each 64 bytes it reads
BLOCKS_AHEAD = 2  # how far ahead a loop-free kernel's loads prefetch, in blocks
BLOCK_LOCALITY = 3  # into every level: the block after next reads it
PAGE_BYTES = 4096


def streamed_loads(kernel: Kernel) -> dict[int, int | None]:
    """The ids of the kernel's `ld` ops that stream through memory (see the module's doc),
    each with the bytes its address moves a step of its loop (None where unknown)."""
    streamed: dict[int, int | None] = {}
    for loop in kernel.walk():
        if not isinstance(loop, ForOp):
            continue
        for op in loop.body.walk():
            if isinstance(op, LoadThreadOp) and _streams(op, loop, kernel):
                streamed[id(op)] = step_bytes(op, loop)
    return streamed


def block_prefetches(kernel: Kernel) -> dict[int, int]:
    """The ids of the global loads of a loop-free kernel that a block-ahead prefetch serves
    (see the module's doc), each with the bytes its address moves from one block to the next
    in the order the CPU runs them (`block_order`)."""
    if any(isinstance(op, ForOp) for op in kernel.walk()):
        return {}
    fastest = block_order(kernel)[0]
    steps: dict[int, int] = {}
    memo: dict[int, int | None] = {}
    for op in kernel.walk():
        if not isinstance(op, LoadThreadOp) or not _wide_global_load(op):
            continue
        moved = block_coefficient(op.operands[1], fastest, memo) or 0
        step = abs(moved) * op.access_dtype.nbits // 8
        if 0 < step < PAGE_BYTES and not served_from_cache(op, kernel):
            steps[id(op)] = step
    return steps


def block_prefetch_distances(offsets: list[int], dt: DType, step_bytes: int) -> list[int]:
    """How far past a block-ahead prefetched load's first element to prefetch: every 64
    bytes it reads (up to MAX_PREFETCHES), BLOCKS_AHEAD blocks on."""
    first = min(offsets)
    lines = sorted({(offset - first) * dt.nbits // 8 // 64 for offset in offsets})
    return [BLOCKS_AHEAD * step_bytes + 64 * line for line in lines[:MAX_PREFETCHES]]


def prefetch_distances(
    offsets: list[int], dt: DType, step_bytes: int | None, interleaved: bool = False
) -> list[int]:
    """How far past a streamed load's first element to prefetch, in bytes: PREFETCH_BYTES,
    and where its walk skips memory between steps and that is at least two steps ahead, also
    the first of every other 64 bytes it reads; in an `interleaved` loop (the block's threads
    take each step in turn, `Plan.interleaves`), and where the walk's gaps are longer than
    PREFETCH_BYTES (down a column of a row-major matrix: PREFETCH_BYTES ahead lies in a
    gap), every 64 bytes it reads, STEPS_AHEAD steps ahead; one where the thread reads a
    sliver of each line (see the module's doc)."""
    first = min(offsets)
    extent = (max(offsets) - first + 1) * dt.nbits // 8
    lines = sorted({(offset - first) * dt.nbits // 8 // 64 for offset in offsets})
    step = None if step_bytes is None else abs(step_bytes)
    if not interleaved and 2 * len(set(offsets)) * dt.nbits < 8 * 64 * len(lines):
        return [PREFETCH_BYTES]  # a sliver of each line, the rest other threads' to read
    if step is not None and (interleaved or step > max(PREFETCH_BYTES, extent)):
        ahead = STEPS_AHEAD * step
    elif step is not None and extent < step <= PREFETCH_BYTES // 2:
        ahead = PREFETCH_BYTES
    else:
        return [PREFETCH_BYTES]
    return [ahead + 64 * line for line in lines[:MAX_PREFETCHES]]


def step_bytes(op: LoadThreadOp, loop: ForOp) -> int | None:
    """The bytes the address of load `op` moves a step of `loop` (None: not known, as where
    the step is not a constant or the address is not linear in the induction variable)."""
    step = loop.step.owner
    if not isinstance(step, ConstantOp):
        return None
    coefficient = induction_coefficient(op.operands[1], loop, {}, int(step.value))
    if coefficient is None:
        return None
    return coefficient * op.access_dtype.nbits // 8


def induction_coefficient(
    value: Value, loop: ForOp, memo: dict[int, int | None], step: int = 1
) -> int | None:
    """c where `value` is c times the loop's induction variable plus values that stay the same
    through the loop (constants, the thread and block indices, what is defined outside it);
    None where it is anything else. With the loop's `step`, c is per step rather than per
    unit of the variable, so that a division by a constant that divides the step is known
    (GPTQ's row of 32-bit words k0 / 8 at a step of 128 moves 16 rows a step)."""

    def known(candidate: Value) -> int | None:
        if candidate is loop.induction_variable:
            return step
        owner = candidate.owner
        if not isinstance(owner, Operation) or owner.parent is not loop.body:
            return 0  # defined outside the loop's body
        return None

    return linear_coefficient(value, known, memo)


def _wide_global_load(op: LoadThreadOp) -> bool:
    """A load of global memory, of whole bytes and at least MIN_BYTES a thread, from one base
    (a gather, with a base per lane, reads no run to prefetch ahead of)."""
    if not isinstance(op.memory.type, GlobalType) or isinstance(op.base.type, VectorType):
        return False
    nbits = op.access_dtype.nbits
    return nbits % 8 == 0 and len(op.offsets) * nbits >= 8 * MIN_BYTES


def _streams(op: LoadThreadOp, loop: ForOp, kernel: Kernel) -> bool:
    if not _wide_global_load(op):
        return False
    moving = loop_slice(op.operands[1:2], loop)  # None: a loaded or carried value feeds it
    return moving is not None and moving.reads_induction and not served_from_cache(op, kernel)


__all__ = [
    "BLOCKS_AHEAD",
    "BLOCK_LOCALITY",
    "LOCALITY",
    "MAX_PREFETCHES",
    "MIN_BYTES",
    "PAGE_BYTES",
    "PREFETCH_BYTES",
    "STEPS_AHEAD",
    "block_prefetch_distances",
    "block_prefetches",
    "induction_coefficient",
    "prefetch_distances",
    "step_bytes",
    "streamed_loads",
]
