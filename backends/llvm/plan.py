"""Where each op of a thread-IR kernel runs on the CPU: once per block, or in a thread loop.

A block's threads run one after another in `for tid in range(threads)` loops ("segments"). A
`barrier` ends a segment: every thread finishes the code before it before any thread starts the
code after it, which is exactly the barrier's meaning. Control flow that contains a barrier runs
once per block (lpir control flow is block-uniform) and is split recursively.

The plan records, for every op, its segment (None: block level), which ops are *uniform*
(pure, computed from uniform values only: constants, block indices, kernel arguments, block-level
loop counters, shared-memory addresses — these run once per block, outside thread loops), and
which per-thread values cross from one segment to another: those live in per-thread context
arrays between segments.
"""

from __future__ import annotations

from lpir.ir.core import Kernel, Operation, Region, Value
from lpir.ir.ops import ForOp, IfOp, YieldOp

THREAD_DEPENDENT = {"thread_index", "ld", "st", "st_bits", "barrier", "mma"}


def contains_barrier(op: Operation) -> bool:
    return any(inner.name == "barrier" for inner in op.walk())


class Plan:
    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.segment_of_op: dict[int, int | None] = {}
        self.segment_of_value: dict[int, int | None] = {}
        self.uniform: set[int] = set()
        self.block_level: set[int] = set()  # control-flow ops that contain a barrier
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

    def block_region(self, region: Region) -> None:
        """Classify the ops of a region that runs once per block."""
        segment = self.new_segment()
        for op in region.ops:
            if op.name == "barrier":
                self.segment_of_op[id(op)] = None
                segment = self.new_segment()
            elif isinstance(op, YieldOp):
                self.segment_of_op[id(op)] = None
                self.record_uses(op, None)
            elif self.is_uniform_op(op):
                self.segment_of_op[id(op)] = None
                self.record_uses(op, None)
                for result in op.results:
                    self.define(result, None, uniform=True)
            elif op.regions and contains_barrier(op):
                self.block_control(op)
                segment = self.new_segment()
            else:
                self.thread_op(op, segment)

    def block_control(self, op: Operation) -> None:
        self.block_level.add(id(op))
        self.segment_of_op[id(op)] = None
        self.record_uses(op, None)
        if isinstance(op, ForOp):
            self.define(op.induction_variable, None, uniform=True)
            for arg in op.iter_args:
                self.define(arg, None)
        for region in op.regions:
            self.block_region(region)
        for result in op.results:
            self.define(result, None)

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
