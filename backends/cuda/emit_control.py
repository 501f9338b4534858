"""Emitters of structured control flow: `for`, `if` and `yield`.

Loop-carried values and `if` results are mutable C locals (arrays for vectors) declared before
the statement; `yield` assigns them. When a yielded value reads a variable that the same
`yield` assigns earlier, every value goes through a temporary first.

Control flow is block-uniform in lpir, so a `barrier` inside a loop or branch is reached by
every thread of the block.
"""

from __future__ import annotations

import math
import re

from lpir.backends.cuda import c_types, emit_staging
from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits

from lpir.dtypes import dtype
from lpir.ir.core import Value
from lpir.ir.loops import step_may_overflow, trip_count
from lpir.ir.ops import ForOp, IfOp, YieldOp
from lpir.ir.types import VectorType


def declare_variable(emitter: KernelEmitter, value: Value, name: str | None = None) -> CValue:
    """A mutable C local for a loop-carried value or an `if` result."""
    name = name or emitter.c_name(value)
    vt = value.type
    if isinstance(vt, VectorType):
        emitter.declare_array(name, vt.dtype, vt.size)
        return CValue("array", name, vt.dtype, vt.size)
    dt = vt.dtype
    emitter.w.line(f"{c_types.c_type(dt)} {name};")
    return CValue("scalar", name, dt)


def assign(emitter: KernelEmitter, target: CValue, source: CValue) -> None:
    if target.kind == "scalar":
        if source.text != target.text:
            emitter.w.line(f"{target.text} = {source.text};")
        return
    if source.kind == "array" and source.text == target.text and source.offset == target.offset:
        return
    if _by_words(target, source):
        bytes_ = target.lanes * target.dtype.nbits // 8
        emitter.w.line(f"lpir_copy<{bytes_}>({target.address()}, {source.address()});")
        return
    emitter.w.unrolled_loop(
        target.lanes, lambda i: emitter.w.line(f"{target.lane(i)} = {source.lane(i)};")
    )


def _by_words(target: CValue, source: CValue) -> bool:
    """Whether an array of bytes or halves can be copied in 32-bit words (whole words, each
    starting on a word of both arrays; the arrays themselves are 16-byte aligned)."""
    bits = target.dtype.nbits
    if source.kind != "array" or bits not in (8, 16):
        return False
    return all((count * bits) % 32 == 0 for count in (target.lanes, target.offset, source.offset))


def _reads(source: CValue, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", source.text) is not None


def assign_all(emitter: KernelEmitter, targets: list[CValue], sources: list[CValue]) -> None:
    """targets[k] = sources[k] for all k, as if simultaneously."""
    hazard = any(
        _reads(source, target.text)
        for index, source in enumerate(sources)
        for target in targets[:index]
    )
    if hazard:
        staged = []
        for source in sources:
            name = emitter.fresh("next")
            if source.kind == "array":
                emitter.declare_array(name, source.dtype, source.lanes)
                copy = CValue("array", name, source.dtype, source.lanes)
            else:
                emitter.w.line(f"{source.ctype} {name};")
                copy = CValue("scalar", name, source.dtype)
            assign(emitter, copy, source)
            staged.append(copy)
        sources = staged
    for target, source in zip(targets, sources):
        assign(emitter, target, source)


@emits(YieldOp)
def emit_yield(emitter: KernelEmitter, op: YieldOp) -> None:
    """Assign the loop's (or `if`'s) variables; staged ring tiles have none (None)."""
    pairs = [(t, v) for t, v in zip(emitter.yield_targets[-1], op.operands) if t is not None]
    assign_all(emitter, [t for t, _ in pairs], [emitter.value(v) for _, v in pairs])


def _loop_condition(emitter: KernelEmitter, op: ForOp, iv: str, upper: str, step: str) -> str:
    constant = emitter.analysis.facts(op.step).constant
    if constant is not None:
        return f"{iv} < {upper}" if constant > 0 else f"{iv} > {upper}"
    # (a step of 0 or less, which the language refuses and the interpreters report, ends the
    # loop instead of running it forever)
    return f"({step} > 0 && {iv} < {upper})"


def _increment(op: ForOp, iv: str, upper: str, step: str, bounds: list[int | None]) -> str:
    """`iv += step`, or a step that stops at `upper` where the sum could pass the type's
    largest value (signed overflow: undefined in C, in practice a wrapped value below upper
    and a loop that never ends). iv < upper here, so the unsigned difference is exact."""
    dt = op.induction_variable.type.dtype
    if not step_may_overflow(bounds[1], bounds[2], dt):
        return f"{iv} += {step}"
    unsigned = c_types.c_type(dtype(f"u{dt.nbits}"))
    room = f"({unsigned})({upper}) - ({unsigned}){iv} > ({unsigned})({step})"
    return f"{iv} = {room} ? {iv} + {step} : {upper}"


def _groups_pass_the_type(op: ForOp, bounds: list[int]) -> bool:
    """Whether a staged loop's groups of iterations (`_emit_by_stages`) would count past the
    type's largest value (a constant range ending within a group of 2^31)."""
    lower, upper, step = bounds
    trips = trip_count(lower, upper, step)
    return lower + (trips + MAX_STAGED_UNROLL) * step > op.induction_variable.type.dtype.max


def _unroll_pipelined(emitter: KernelEmitter, factor: int, bounds: list[int | None]) -> None:
    """A pipelined loop passes on the tiles it keeps in registers (up to factor - 1 of a load):
    unrolled `factor` times, nvcc renames them instead of moving them. Only where the factor
    divides the trip count: otherwise nvcc rotates the loop (one copy of the body, then the
    other factor - 1 and that one again), and in that shape ptxas 13.0 to 13.5 read a
    prefetch's address register before setting it (matmul_wq, u5 and u7 weights, tile
    16x64x32, 3 stages: an illegal address on an H200, 2026-11-30)."""
    lower, upper, step = bounds
    if lower is None or upper is None or not step:
        return
    trips = trip_count(lower, upper, step)
    if trips % factor == 0:
        emitter.w.line(f"#pragma unroll {factor}")


#: the most iterations a staged loop is unrolled by to let nvcc rename its register tiles too
MAX_STAGED_UNROLL = 16


def _emit_by_stages(
    emitter: KernelEmitter, op: ForOp, counter: tuple[str, int], bounds: list[int]
) -> None:
    """A staged loop of constant bounds, unrolled by its S slots: an outer loop over whole
    groups of S iterations around an inner one over them that nvcc unrolls, then the last
    trips % S iterations alike. The slot counter is the inner loop's, a constant in each
    unrolled copy, so every slot and buffer address folds into the access's immediate offset
    (a run-time counter cost an add per distinct address per iteration: 4.69 instead of 3.30
    SASS instructions per `HMMA` in matmul_wq 128x128x32 at 3 stages). Where the loop also
    carries tiles in registers (d ahead), groups are lcm(S, d + 1) iterations, so that nvcc
    renames those instead of copying them. The body is written twice where the group does
    not divide the trip count."""
    lower, upper, step = bounds
    stage, slots = counter
    group = _group_size(emitter, op, slots)
    trips = trip_count(lower, upper, step)
    whole = trips - trips % group
    w = emitter.w
    if whole:
        iv = emitter.value(op.induction_variable)
        start = emitter.fresh(f"{iv.text}_group")
        head = f"for ({iv.ctype} {start} = {lower}; {start} < {lower + whole * step}; "
        w.line("#pragma unroll 1")
        with w.block(f"{head}{start} += {group * step})"):
            _emit_group(emitter, op, (stage, slots), start, group, step)
    if trips % group:
        with w.block():
            start = str(lower + whole * step)
            _emit_group(emitter, op, (stage, slots), start, trips % group, step)


def _group_size(emitter: KernelEmitter, op: ForOp, slots: int) -> int:
    """S, or lcm(S, d + 1) for tiles kept d ahead in registers where that is not too many."""
    depth = emit_staging.register_ring_depth(emitter, op)
    group = math.lcm(slots, depth + 1)
    return group if group <= MAX_STAGED_UNROLL else slots


def _emit_group(
    emitter: KernelEmitter, op: ForOp, counter: tuple[str, int], start: str, count: int, step: int
) -> None:
    """`count` iterations from `start` (nvcc unrolls them), the slot counter their index
    modulo S."""
    iv = emitter.value(op.induction_variable)
    stage, slots = counter
    index = stage if count <= slots else emitter.fresh("iteration")
    emitter.w.line("#pragma unroll")
    with emitter.w.block(f"for (int {index} = 0; {index} < {count}; ++{index})"):
        if index != stage:
            emitter.w.line(f"const int {stage} = {index} % {slots};")
        emitter.w.line(f"const {iv.ctype} {iv.text} = {start} + {index} * {step};")
        emit_staging.loop_top(emitter, op)
        emitter.region(op.body)


@emits(ForOp)
def emit_for(emitter: KernelEmitter, op: ForOp) -> None:
    lower, upper, step = (emitter.value(v).text for v in op.operands[:3])
    staged = emit_staging.before_loop(emitter, op)
    variables: list[CValue | None] = []
    for arg, init in zip(op.iter_args, op.inits):
        if id(arg) in staged:  # a tile in shared memory: read in the body, no variable
            variables.append(None)
            continue
        variable = declare_variable(emitter, arg)
        assign(emitter, variable, emitter.value(init))
        emitter.bind(arg, variable)
        variables.append(variable)
    iv = emitter.c_name(op.induction_variable)
    dt = op.induction_variable.type.dtype
    emitter.bind(op.induction_variable, CValue("scalar", iv, dt))
    bounds = [emitter.analysis.facts(v).constant for v in op.operands[:3]]
    counter = emit_staging.stage_counter(emitter, op)
    emitter.yield_targets.append(variables)
    constant_bounds = [bound for bound in bounds if bound is not None]
    if (
        counter is not None
        and len(constant_bounds) == 3
        and constant_bounds[2] > 0
        and not _groups_pass_the_type(op, constant_bounds)
    ):
        _emit_by_stages(emitter, op, counter, constant_bounds)
    else:
        if counter is not None:
            emitter.w.line(f"int {counter[0]} = 0;")
        register_depth = emit_staging.register_ring_depth(emitter, op) if op.stages else 0
        if register_depth:
            _unroll_pipelined(emitter, register_depth + 1, bounds)
        elif None in bounds:
            emitter.w.line("#pragma unroll 1")
        condition = _loop_condition(emitter, op, iv, upper, step)
        increment = _increment(op, iv, upper, step, bounds)
        head = f"for ({c_types.c_type(dt)} {iv} = {lower}; {condition}; {increment})"
        with emitter.w.block(head):
            emit_staging.loop_top(emitter, op)
            emitter.region(op.body)
            emit_staging.loop_bottom(emitter, op)
    emitter.yield_targets.pop()
    emit_staging.after_loop(emitter, op)
    for result, carried in zip(op.results, variables):
        if carried is not None:
            emitter.bind(result, carried)


@emits(IfOp)
def emit_if(emitter: KernelEmitter, op: IfOp) -> None:
    variables: list[CValue | None] = [declare_variable(emitter, r) for r in op.results]
    condition = emitter.value(op.operands[0]).text
    emitter.yield_targets.append(variables)
    with emitter.w.block(f"if ({condition})"):
        emitter.region(op.then_region)
    if any(not isinstance(o, YieldOp) or o.operands for o in op.else_region.ops):
        with emitter.w.block("else"):
            emitter.region(op.else_region)
    emitter.yield_targets.pop()
    for result, variable in zip(op.results, variables):
        assert variable is not None  # an if's results all have variables
        emitter.bind(result, variable)
