"""Thread IR -> one LLVM function per block, plus the `run` entry that loops over blocks.

    void lpir_block(ptr noalias tensors..., scalars..., i32 bx, i32 by, i32 bz)
    void lpir_run(ptr args, i64 first_block, i64 end_block)

`lpir_block` follows the `Plan`: uniform ops at block level, per-thread ops in thread loops
(`for tid in 0..threads`) split at barriers, values crossing segments in per-thread context
arrays, control flow with barriers at block level. `lpir_run` reads the argument pointers from
an array (tensors: their data; scalars: a pointer to the value) and runs blocks
[first_block, end_block) of the linear order `block_order` picks (the axis whose blocks lie
closest in memory varies fastest); the launcher gives each core its own range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from llvmlite import ir
from lpir.backends.llvm import jit
from lpir.backends.llvm.arith import Arithmetic
from lpir.backends.llvm.block_order import block_order
from lpir.backends.llvm.casts import Caster, nan_payload_unseen
from lpir.backends.llvm.code_tables import CodeTables
from lpir.backends.llvm.dot_pairs import DotPairs
from lpir.backends.llvm.integer_pairs import IntegerPairs
from lpir.backends.llvm.intrinsics import Intrinsics
from lpir.backends.llvm.memory import Memory, register_bytes
from lpir.backends.llvm.plan import Plan
from lpir.backends.llvm.prefetch import block_prefetches, streamed_loads
from lpir.backends.llvm.types import I8, I32, I64, PTR, lane_type, storage_bytes, value_type
from lpir.backends.llvm.vectors import Vectors

from lpir.errors import CompileError
from lpir.ir.core import Kernel, Operation, Region, Value
from lpir.ir.grid import static_grid
from lpir.ir.loops import step_may_overflow
from lpir.ir.ops import AllocSharedOp, ForOp, IfOp, YieldOp
from lpir.ir.types import GlobalType, ScalarType, VectorType

BLOCK_FUNCTION = "lpir_block"
MASKED_OFF_BYTES = 64
RUN_FUNCTION = "lpir_run"


@dataclass
class FrameSlot:
    """One stack slot of the block function: a shared buffer or a per-thread context array."""

    name: str
    type: ir.Type
    shared: Operation | None = None
    value: Value | None = None


def frame_slots(kernel: Kernel, plan: Plan) -> list[FrameSlot]:
    slots = []
    for op in kernel.walk():
        if isinstance(op, AllocSharedOp):
            shared = op.shared_type
            size = max(64, math.ceil(shared.nbytes / 64) * 64)
            name = op.result.name_hint or "shared"
            slots.append(FrameSlot(name, ir.ArrayType(I8, size), shared=op))
    for value in _all_values(kernel):
        if id(value) in plan.contextual:
            array = ir.ArrayType(value_type(value.type), kernel.threads)
            slots.append(FrameSlot(f"ctx.{value.name_hint or ''}", array, value=value))
    return slots


def frame_bytes(kernel: Kernel, plan: Plan | None = None) -> int:
    """Stack bytes one block's slots take (an upper bound, with the masked-off store slot)."""
    slots = frame_slots(kernel, plan or Plan(kernel))
    return MASKED_OFF_BYTES + sum(storage_bytes(slot.type) + 64 for slot in slots)


def _all_values(kernel: Kernel) -> Iterator[Value]:
    for op in kernel.walk():
        for region in op.regions:
            yield from region.args
        yield from op.results


class KernelEmitter:
    """Builds the LLVM module of one thread-IR kernel."""

    def __init__(self, kernel: Kernel, module: ir.Module):
        if kernel.stage != "thread":
            raise CompileError(f"the LLVM backend needs thread IR, not {kernel.stage} IR")
        self.kernel = kernel
        self.module = module
        self.plan = Plan(kernel)
        self.intrinsics = Intrinsics(module)
        self.values: dict[int, ir.Value] = {}
        self.producers = {id(r): op for op in kernel.walk() for r in op.results}
        self.context: dict[int, ir.Value] = {}
        # the LLVM values a segment reloaded from the context (values that cross a barrier),
        # whose operands may be reloaded after them: code tables do not start from them
        self.reloaded: set[int] = set()
        self.tid: ir.Value | None = None
        self.streamed_loads = streamed_loads(kernel)
        self.block_prefetches = block_prefetches(kernel)
        self.nan_payload_unseen = nan_payload_unseen(kernel)

    # ---- module ---------------------------------------------------------------------------
    def emit(self) -> None:
        function = self.block_function()
        self.run_function(function)

    def parameter_types(self) -> list[ir.Type]:
        types = []
        for arg in self.kernel.args:
            types.append(PTR if isinstance(arg.type, GlobalType) else value_type(arg.type))
        return [*types, I32, I32, I32]

    def block_function(self) -> ir.Function:
        function_type = ir.FunctionType(ir.VoidType(), self.parameter_types())
        function = ir.Function(self.module, function_type, BLOCK_FUNCTION)
        function.linkage = "internal"
        function.attributes.add("nounwind")
        for index, arg in enumerate(self.kernel.args):
            if isinstance(arg.type, GlobalType):
                function.args[index].add_attribute("noalias")
        entry = function.append_basic_block("entry")
        body = function.append_basic_block("body")
        self.entry = ir.IRBuilder(entry)
        self.b = ir.IRBuilder(body)
        self.setup_emitters()
        for index, arg in enumerate(self.kernel.args):
            self.values[id(arg)] = function.args[index]
        self.block_index = list(function.args[-3:])
        self.allocate_context()
        self.block_region(self.kernel.body)
        self.b.ret_void()
        self.entry.branch(body)
        return function

    def setup_emitters(self) -> None:
        self.caster = Caster(self.b, self.intrinsics)
        self.arith = Arithmetic(self.b, self.intrinsics, self.caster)
        self.vectors = Vectors(self.b)
        self.code_tables = CodeTables(self, jit.host()[2])
        self.dot_pairs = DotPairs(self.b, self.intrinsics, self.vectors, jit.host()[2])
        self.integer_pairs = IntegerPairs(self, self.kernel, jit.host()[2])
        dummy = self.alloca(ir.ArrayType(I8, MASKED_OFF_BYTES), "masked_off")
        registers = register_bytes(jit.host()[2])
        self.memory = Memory(self.b, self.intrinsics, self.vectors, dummy, registers)

    def allocate_context(self) -> None:
        """Stack slots for shared memory and for values crossing segments, in the entry block."""
        for slot in frame_slots(self.kernel, self.plan):
            storage = self.alloca(slot.type, slot.name)
            if slot.shared is not None:
                self.values[id(slot.shared.result)] = storage
            else:
                self.context[id(slot.value)] = storage

    def alloca(self, storage: ir.Type, name: str) -> ir.Value:
        """A 64-byte aligned stack slot in the entry block, as an opaque pointer."""
        slot = self.entry.alloca(storage, name=name)
        slot.align = 64
        slot.type = PTR  # llvmlite types allocas as typed pointers; LLVM 15+ has only `ptr`
        return slot

    def run_function(self, block: ir.Function) -> None:
        run_type = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])
        run = ir.Function(self.module, run_type, RUN_FUNCTION)
        entry, loop, exit_ = (run.append_basic_block(n) for n in ("entry", "loop", "exit"))
        b = ir.IRBuilder(entry)
        args_pointer, first, end = run.args
        values = []
        for index, arg in enumerate(self.kernel.args):
            slot = b.gep(args_pointer, [ir.Constant(I64, index)], source_etype=PTR)
            pointer = b.load(slot, typ=PTR)
            if isinstance(arg.type, GlobalType):
                values.append(pointer)
            else:
                values.append(b.load(pointer, typ=value_type(arg.type)))
        b.cbranch(b.icmp_signed("<", first, end), loop, exit_)
        b.position_at_end(loop)
        linear = b.phi(I64, "block")
        linear.add_incoming(first, entry)
        indices: list[ir.Value] = [ir.Constant(I32, 0)] * 3
        order = block_order(self.kernel)  # the fastest-varying axis first
        sizes = self.grid_sizes(b, args_pointer)
        below: int | ir.Value = 1  # blocks per step of the axis: the faster axes' sizes' product
        for axis in order:
            index = linear if axis == order[0] else b.udiv(linear, _i64(below))
            if axis != order[-1]:  # the slowest axis's index is below its size already
                index = b.urem(index, _i64(sizes[axis]))
            indices[axis] = b.trunc(index, I32)
            size = sizes[axis]
            both = isinstance(below, int) and isinstance(size, int)
            below = below * size if both else b.mul(_i64(below), _i64(size))
        b.call(block, [*values, *indices])
        following = b.add(linear, ir.Constant(I64, 1))
        linear.add_incoming(following, loop)
        b.cbranch(b.icmp_signed("<", following, end), loop, exit_)
        b.position_at_end(exit_)
        b.ret_void()

    def grid_sizes(self, b: ir.IRBuilder, args_pointer: ir.Value) -> list[int | ir.Value]:
        """The blocks along x, y, z: ints, or for a grid computed at each call the three i64
        entries the launcher puts after the arguments."""
        grid = static_grid(self.kernel.grid)
        if grid is not None:
            return list(grid)
        sizes: list[int | ir.Value] = []
        for axis in range(3):
            position = ir.Constant(I64, len(self.kernel.args) + axis)
            slot = b.gep(args_pointer, [position], source_etype=PTR)
            sizes.append(b.ptrtoint(b.load(slot, typ=PTR), I64))
        return sizes

    # ---- values -----------------------------------------------------------------------------
    def get(self, value: Value) -> ir.Value:
        if id(value) in self.plan.thread_indices and self.tid is not None:
            return self.tid
        found = self.values.get(id(value))
        if found is None:
            raise CompileError(
                f"LLVM backend: value {value.name_hint or '?'} is not available here"
            )
        return found

    def has(self, value: Value) -> bool:
        """Whether `value` can be read at the current position."""
        return id(value) in self.values or (
            id(value) in self.plan.thread_indices and self.tid is not None
        )

    def producer(self, value: Value) -> Operation | None:
        """The op that defines `value` (None for arguments and region arguments)."""
        return self.producers.get(id(value))

    def unpacked_fields(self, value: Value) -> tuple[ir.Value, list[int]] | None:
        """(the bytes, the bit offsets) where `value` is fields that `unpack_bits` just cut out
        of bytes readable here: a lookup may index with the fields in place."""
        unpacked = self.producer(value)
        if unpacked is None or unpacked.name != "unpack_bits" or len(unpacked.operands) != 1:
            return None
        if not self.has(unpacked.operands[0]):
            return None
        return self.get(unpacked.operands[0]), list(unpacked.attributes["bit_offsets"])

    def set(self, value: Value, emitted: ir.Value) -> None:
        self.values[id(value)] = emitted
        slot = self.context.get(id(value))
        if slot is not None and self.tid is not None:
            self.b.store(emitted, self.context_slot(slot))

    def context_slot(self, slot: ir.Value) -> ir.Value:
        zero = ir.Constant(I32, 0)
        return self.b.gep(slot, [zero, self.tid], inbounds=True, source_etype=slot.allocated_type)

    def load_context(self, value: Value) -> ir.Value:
        slot = self.context[id(value)]
        return self.b.load(self.context_slot(slot), typ=value_type(value.type))

    # ---- block level ------------------------------------------------------------------------
    def block_region(self, region: Region, carried: list[Value] | None = None) -> list[Value]:
        """Emit a region that runs once per block; return the operands of its yield. With
        `carried` (a loop's iteration values, `Plan.in_place`), its last segment also stores
        what it yields into their context arrays."""
        pending: list[Operation] = []
        for op in region.ops:
            if op.name == "barrier":
                self.segment(pending)
                pending = []
            elif isinstance(op, YieldOp):
                self.segment(pending, list(zip(carried, op.operands)) if carried else [])
                return list(op.operands)
            elif id(op) in self.plan.block_level:
                self.segment(pending)
                pending = []
                self.block_control(op)
            elif self.plan.segment_of_op[id(op)] is None:
                self.thread_op(op)  # uniform: computed once per block
            else:
                pending.append(op)
        self.segment(pending)
        return []

    def thread_loop(self, body: Callable[[], None]) -> None:
        """Emit `for tid in range(threads): body()` at the current block-level position."""
        b = self.b
        function = b.function
        header = function.append_basic_block("threads")
        after = function.append_basic_block("threads.done")
        preheader = b.block
        b.branch(header)
        b.position_at_end(header)
        tid = b.phi(I32, "tid")
        tid.add_incoming(ir.Constant(I32, 0), preheader)
        saved, self.tid = self.tid, tid
        body()
        following = b.add(tid, ir.Constant(I32, 1))
        tid.add_incoming(following, b.block)
        b.cbranch(
            b.icmp_signed("<", following, ir.Constant(I32, self.kernel.threads)), header, after
        )
        b.position_at_end(after)
        self.tid = saved

    def segment(self, ops: list[Operation], carried: Sequence[tuple[Value, Value]] = ()) -> None:
        """A thread loop running `ops`; then each thread stores the value of each `carried`
        pair's source into the context array of its target."""
        if not ops:
            return
        reads = self.plan.context_reads(ops)
        stores = [(target, source) for target, source in carried if id(target) in self.context]

        def body() -> None:
            saved = dict(self.values)
            for value in reads:
                self.values[id(value)] = self.load_context(value)
                self.reloaded.add(id(self.values[id(value)]))
            for op in ops:
                self.thread_op(op)
            for target, source in stores:
                self.b.store(self.get(source), self.context_slot(self.context[id(target)]))
            self.values = {k: v for k, v in saved.items()}

        self.thread_loop(body)

    def copy_into_context(self, targets: list[Value], sources: list[Value]) -> None:
        """A thread loop that stores each source's value into the target's context array."""
        pairs = [(t, s) for t, s in zip(targets, sources) if id(t) in self.context]
        if not pairs:
            return

        def body() -> None:
            loaded = [
                self.load_context(source) if id(source) in self.context else self.get(source)
                for _, source in pairs
            ]
            for (target, _), value in zip(pairs, loaded):
                self.b.store(value, self.context_slot(self.context[id(target)]))

        self.thread_loop(body)

    def block_control(self, op: Operation) -> None:
        if isinstance(op, ForOp):
            self.block_for(op)
        elif isinstance(op, IfOp):
            self.block_if(op)
        else:
            raise CompileError(f"LLVM backend: '{op.name}' with a barrier inside")

    def uniform_value(self, value: Value) -> ir.Value:
        """A block-uniform scalar at block level: a loop bound or `if` condition that the
        threads computed (a value loaded from memory, a reduction's result) is the same in
        every thread, so thread 0's copy in its context array stands for all."""
        if self.has(value) or id(value) not in self.context:
            return self.get(value)
        zero = ir.Constant(I32, 0)
        slot = self.context[id(value)]
        first = self.b.gep(slot, [zero, zero], inbounds=True, source_etype=slot.allocated_type)
        return self.b.load(first, typ=value_type(value.type))

    def block_for(self, op: ForOp) -> None:
        b = self.b
        lower, upper, step = (self.uniform_value(v) for v in op.operands[:3])
        self.copy_into_context(op.iter_args, op.inits)
        function = b.function
        header = function.append_basic_block("for.header")
        body = function.append_basic_block("for.body")
        after = function.append_basic_block("for.done")
        preheader = b.block
        b.branch(header)
        b.position_at_end(header)
        iv = b.phi(lower.type, op.induction_variable.name_hint or "i")
        iv.add_incoming(lower, preheader)
        b.cbranch(self.loop_continues(iv, upper, step), body, after)
        b.position_at_end(body)
        self.values[id(op.induction_variable)] = iv
        if id(op) in self.plan.in_place:
            self.block_region(op.body, carried=op.iter_args)
        else:
            self.copy_into_context(op.iter_args, self.block_region(op.body))
        following = self.next_induction(op, iv, upper, step)
        iv.add_incoming(following, b.block)
        b.branch(header)
        b.position_at_end(after)
        for result, arg in zip(op.results, op.iter_args):
            self.context[id(result)] = self.context[id(arg)]

    def next_induction(self, op: ForOp, iv: ir.Value, upper: ir.Value, step: ir.Value) -> ir.Value:
        """`iv + step`, or `upper` where that sum could pass the type's largest value and
        wrap (`range(lo, hi, 4)` with hi near 2^31): the loop ends as Python's range does.
        (iv < upper here, so upper - iv is the exact distance as an unsigned number.)"""
        b = self.b
        bound, increment = (
            v.constant if isinstance(v, ir.Constant) else None for v in (upper, step)
        )
        if not step_may_overflow(bound, increment, op.induction_variable.type.dtype):
            return b.add(iv, step)
        room = b.icmp_unsigned(">", b.sub(upper, iv), step)
        return b.select(room, b.add(iv, step), upper)

    def loop_continues(self, iv: ir.Value, upper: ir.Value, step: ir.Value) -> ir.Value:
        """`iv < upper`, and where the step is not a constant, `step > 0` too: a step of 0 or
        less (which the language refuses, and the interpreters report) ends the loop instead of
        running it forever."""
        b = self.b
        below = b.icmp_signed("<", iv, upper)
        if isinstance(step, ir.Constant):
            return below
        return b.and_(below, b.icmp_signed(">", step, ir.Constant(step.type, 0)))

    def block_if(self, op: IfOp) -> None:
        b = self.b
        cond = self.uniform_value(op.operands[0])
        function = b.function
        then_block = function.append_basic_block("if.then")
        else_block = function.append_basic_block("if.else")
        after = function.append_basic_block("if.done")
        b.cbranch(cond, then_block, else_block)
        for block, region in ((then_block, op.then_region), (else_block, op.else_region)):
            b.position_at_end(block)
            yielded = self.block_region(region)
            self.copy_into_context(op.results, yielded)
            b.branch(after)
        b.position_at_end(after)

    # ---- per-thread ops ---------------------------------------------------------------------
    def thread_op(self, op: Operation) -> None:
        from lpir.backends.llvm import ops as op_emitters

        if isinstance(op, ForOp):
            self.thread_for(op)
            return
        if isinstance(op, IfOp):
            self.thread_if(op)
            return
        results = op_emitters.emit(self, op)
        for value, emitted in zip(op.results, results):
            self.set(value, emitted)

    def thread_region(self, region: Region) -> list[ir.Value]:
        for op in region.ops:
            if isinstance(op, YieldOp):
                return [self.get(v) for v in op.operands]
            self.thread_op(op)
        return []

    def thread_for(self, op: ForOp) -> None:
        b = self.b
        lower, upper, step = (self.get(v) for v in op.operands[:3])
        inits = [self.get(v) for v in op.inits]
        function = b.function
        header = function.append_basic_block("loop.header")
        body = function.append_basic_block("loop.body")
        after = function.append_basic_block("loop.done")
        preheader = b.block
        b.branch(header)
        b.position_at_end(header)
        iv = b.phi(lower.type, op.induction_variable.name_hint or "i")
        iv.add_incoming(lower, preheader)
        phis = []
        for arg, init in zip(op.iter_args, inits):
            phi = b.phi(init.type, arg.name_hint or "carried")
            phi.add_incoming(init, preheader)
            phis.append(phi)
            self.values[id(arg)] = phi
        self.values[id(op.induction_variable)] = iv
        b.cbranch(self.loop_continues(iv, upper, step), body, after)
        b.position_at_end(body)
        yielded = self.thread_region(op.body)
        latch = b.block
        iv.add_incoming(self.next_induction(op, iv, upper, step), latch)
        for phi, value in zip(phis, yielded):
            phi.add_incoming(value, latch)
        b.branch(header)
        b.position_at_end(after)
        for result, phi in zip(op.results, phis):
            self.set(result, phi)

    def thread_if(self, op: IfOp) -> None:
        b = self.b
        cond = self.get(op.operands[0])
        function = b.function
        then_block = function.append_basic_block("then")
        else_block = function.append_basic_block("else")
        after = function.append_basic_block("endif")
        b.cbranch(cond, then_block, else_block)
        incoming = []
        for block, region in ((then_block, op.then_region), (else_block, op.else_region)):
            b.position_at_end(block)
            values = self.thread_region(region)
            incoming.append((values, b.block))
            b.branch(after)
        b.position_at_end(after)
        phis = []
        for index, result in enumerate(op.results):
            phi = b.phi(value_type(result.type), result.name_hint or "merged")
            for values, block in incoming:
                phi.add_incoming(values[index], block)
            phis.append(phi)
        # All phis first: `set` stores a value kept per thread into its context array, and
        # LLVM wants a block's phis together at its top, before any store.
        for result, phi in zip(op.results, phis):
            self.set(result, phi)


__all__ = [
    "BLOCK_FUNCTION",
    "RUN_FUNCTION",
    "KernelEmitter",
    "ScalarType",
    "VectorType",
    "lane_type",
]


def _i64(value: int | ir.Value) -> ir.Value:
    return ir.Constant(I64, value) if isinstance(value, int) else value
