"""Where each op of a thread-IR kernel runs on the CPU: once per block, or in a thread loop.

A block's threads run one after another in `for tid in range(threads)` loops ("segments"). A
`barrier` ends a segment: every thread finishes the code before it before any thread starts the
code after it, which is exactly the barrier's meaning. Control flow that contains a barrier runs
once per block (lpir control flow is block-uniform) and is split recursively.

A loop without a barrier runs inside its thread loop, each thread through all of it, except
where that walks memory badly (`Plan.interleaves`): greedy.lp's 2048 logits a step split over
128 threads (16 after fold-threads) had each thread read 512 bytes of every 8 KiB, a new page
at every step for the hardware prefetchers; run once per block with a thread loop in each
step, the threads read each step's 8 KiB one after another. 64 rows of 128256 logits went from
2.1-3.2 ms to 1.0-1.3 ms with the tiles 2048/128, 1024/64 and 4096/256 (docs/benchmarks.md).
A block-level loop's carried values live in context arrays; where the body's last segment
makes all of them, it stores them there itself (`carries_in_place`).

The plan records, for every op, its segment (None: block level), which ops are *uniform*
(pure, computed from uniform values only: constants, block indices, kernel arguments, block-level
loop counters, shared-memory addresses — these run once per block, outside thread loops), and
which per-thread values cross from one segment to another: those live in per-thread context
arrays between segments.
"""

from __future__ import annotations

from lpir.backends.llvm.prefetch import step_bytes
from lpir.backends.llvm.types import storage_bytes, value_type

from lpir.ir.core import Kernel, Operation, Region, Value
from lpir.ir.ops import ForOp, IfOp, LoadThreadOp, YieldOp
from lpir.ir.types import GlobalType

THREAD_DEPENDENT = {"thread_index", "ld", "st", "st_bits", "barrier", "mma"}


def contains_barrier(op: Operation) -> bool:
    return any(inner.name == "barrier" for inner in op.walk())


PAGE_BYTES = 4096
# what an interleaved loop may carry (all threads' context arrays): the first-level cache's
# share, as each step reads and writes all of it (greedy.lp at 2048 logits a step, 16 KiB)
CARRIED_BYTES = 32 * 1024


def gapped_walk(op: Operation, loop: ForOp, threads: int) -> bool:
    """`op` is a global load that moves a page or more (`PAGE_BYTES`) a step of `loop`, of
    which one thread reads less than half while the block's threads together read at least
    the step: each thread alone skips most of every step, the block skips nothing."""
    if not isinstance(op, LoadThreadOp) or not isinstance(op.operands[0].type, GlobalType):
        return False
    step = step_bytes(op, loop)
    if step is None or abs(step) < PAGE_BYTES:
        return False
    thread_bytes = len(op.offsets) * op.access_dtype.nbits // 8
    return 2 * thread_bytes < abs(step) <= threads * thread_bytes


class Plan:
    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.segment_of_op: dict[int, int | None] = {}
        self.segment_of_value: dict[int, int | None] = {}
        self.uniform: set[int] = set()
        self.block_level: set[int] = set()  # control-flow ops that contain a barrier
        # block-level loops whose body's last segment makes every carried value: it stores
        # them into the carried values' context arrays itself (see `carries_in_place`)
        self.in_place: set[int] = set()
        self.interleaved_loads: set[int] = set()  # the global loads of `interleaves` loops
        self.uses: dict[int, set[int | None]] = {}
        self.segment_uses: dict[int, list[Value]] = {}  # segment -> context values it reads
        self.next_segment = 0
        # thread_index is every thread loop's own counter: never carried between segments.
        self.thread_indices = {id(op.result) for op in kernel.walk() if op.name == "thread_index"}
        for arg in kernel.args:
            self.define(arg, None, uniform=True)
        self.block_region(kernel.body)
        self.contextual = self.find_contextual()

    # ---- classification ---------------------------------------------------------------------
    def define(self, value: Value, segment: int | None, uniform: bool = False) -> None:
        self.segment_of_value[id(value)] = segment
        if uniform:
            self.uniform.add(id(value))

    def is_uniform_op(self, op: Operation) -> bool:
        if op.regions or op.name in THREAD_DEPENDENT or op.name == "yield":
            return False
        if op.name == "alloc_shared":
            return True
        return all(id(v) in self.uniform for v in op.operands)

    def new_segment(self) -> int:
        self.next_segment += 1
        return self.next_segment

    def block_region(self, region: Region, loop: ForOp | None = None) -> None:
        """Classify the ops of a region that runs once per block (the body of `loop`)."""
        segment = self.new_segment()
        for op in region.ops:
            if op.name == "barrier":
                self.segment_of_op[id(op)] = None
                segment = self.new_segment()
            elif isinstance(op, YieldOp):
                self.segment_of_op[id(op)] = None
                if loop is not None and self.carries_in_place(op, segment):
                    self.in_place.add(id(loop))
                    self.record_uses(op, segment)
                else:
                    self.record_uses(op, None)
            elif self.is_uniform_op(op):
                self.segment_of_op[id(op)] = None
                self.record_uses(op, None)
                for result in op.results:
                    self.define(result, None, uniform=True)
            elif op.regions and (contains_barrier(op) or self.interleaves(op)):
                self.block_control(op)
                segment = self.new_segment()
            else:
                self.thread_op(op, segment)

    def interleaves(self, op: Operation) -> bool:
        """Whether loop `op` runs once per block with a thread loop inside each iteration,
        as a loop with a barrier does, though it has none: where a thread running the whole
        loop alone would walk a stream with gaps of a page or more (`gapped_walk`, a tile
        split across the threads at every step), which the cores' prefetchers do not follow,
        while the block's threads together walk it without gaps. Only where what the loop
        carries, which then lives in context arrays, fits in `CARRIED_BYTES`. An interleaved
        loop's global loads go into `interleaved_loads` (their prefetches differ)."""
        if not isinstance(op, ForOp) or self.kernel.threads == 1:
            return False
        threads = self.kernel.threads
        if not any(gapped_walk(load, op, threads) for load in op.body.walk()):
            return False
        carried = sum(storage_bytes(value_type(arg.type)) for arg in op.iter_args)
        if carried * threads > CARRIED_BYTES:
            return False
        for load in op.body.walk():
            if isinstance(load, LoadThreadOp) and isinstance(load.operands[0].type, GlobalType):
                self.interleaved_loads.add(id(load))
        return True

    def block_control(self, op: Operation) -> None:
        self.block_level.add(id(op))
        self.segment_of_op[id(op)] = None
        self.record_uses(op, None)
        if isinstance(op, ForOp):
            self.define(op.induction_variable, None, uniform=True)
            for arg in op.iter_args:
                self.define(arg, None)
        for region in op.regions:
            self.block_region(region, op if isinstance(op, ForOp) else None)
        for result in op.results:
            self.define(result, None)

    def carries_in_place(self, yield_op: YieldOp, last_segment: int) -> bool:
        """Whether the loop body's `last_segment` makes every value `yield_op` carries on.
        Then that segment's thread loop stores them into the carried values' context arrays
        as it goes, instead of a thread loop of its own copying them after it (two loads and
        two stores of every carried value an iteration, where a matmul carries its whole
        accumulator). Each thread writes only its own slot after it read it, so no thread
        sees another's next value; a value from elsewhere (a constant, an earlier segment,
        another carried value) takes the copying loop, for all of them."""
        return all(self.segment_of_value.get(id(v)) == last_segment for v in yield_op.operands)

    def thread_op(self, op: Operation, segment: int) -> None:
        """`op` and everything nested in it run inside `segment`'s thread loop."""
        self.segment_of_op[id(op)] = segment
        self.record_uses(op, segment)
        for region in op.regions:
            for arg in region.args:
                self.define(arg, segment)
            for inner in region.ops:
                self.thread_op(inner, segment)
        for result in op.results:
            self.define(result, segment)

    def record_uses(self, op: Operation, segment: int | None) -> None:
        for value in op.operands:
            self.uses.setdefault(id(value), set()).add(segment)

    # ---- values that cross segments ---------------------------------------------------------
    def find_contextual(self) -> set[int]:
        """Per-thread values used outside the segment that defines them (or defined at block
        level, like the iteration values of block-level loops)."""
        contextual: set[int] = set()
        for key, segment in self.segment_of_value.items():
            if key in self.uniform or key in self.thread_indices:
                continue
            uses = self.uses.get(key, set())
            if segment is None or any(use != segment for use in uses):
                contextual.add(key)
        return contextual

    def context_reads(self, ops: list[Operation]) -> list[Value]:
        """Context values that the ops of one segment (with nested ops) read, in first-use order."""
        seen: dict[int, Value] = {}
        for op in ops:
            segment = self.segment_of_op[id(op)]
            for inner in op.walk():
                for value in inner.operands:
                    key = id(value)
                    crosses = self.segment_of_value.get(key) != segment
                    if key in self.contextual and key not in seen and crosses:
                        seen[key] = value
        return list(seen.values())


__all__ = ["IfOp", "Plan", "contains_barrier"]
