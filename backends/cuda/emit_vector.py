"""Emitters of thread-local data movement: indices, splat, vector constants, shuffle, extract,
vector building and lane reductions.

Nothing here indexes an array with a run-time value: every lane index is a constant or the
variable of a `#pragma unroll` loop with constant bounds, so the arrays stay in registers.
Shuffles that pick a contiguous slice of one source alias it instead of copying.
"""

from __future__ import annotations

from collections.abc import Callable

from lpir.backends.cuda import c_types
from lpir.backends.cuda.emit_arith import binary_expression
from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits
from lpir.backends.cuda.writer import affine_expression

from lpir.ir.analysis import UNKNOWN
from lpir.ir.ops import (
    BlockIndexOp,
    BuildVectorOp,
    ExtractOp,
    ReduceLanesOp,
    ShuffleOp,
    SplatOp,
    ThreadIndexOp,
    VectorConstantOp,
)
from lpir.ir.order import balanced_tree
from lpir.ir.types import as_vector


@emits(ThreadIndexOp)
def emit_thread_index(emitter: KernelEmitter, op: ThreadIndexOp) -> None:
    emitter.scalar(op.result, "(int)threadIdx.x")


@emits(BlockIndexOp)
def emit_block_index(emitter: KernelEmitter, op: BlockIndexOp) -> None:
    emitter.scalar(op.result, f"(int)blockIdx.{'xyz'[op.axis]}")


@emits(SplatOp)
def emit_splat(emitter: KernelEmitter, op: SplatOp) -> None:
    scalar = emitter.value(op.operands[0])
    vt = as_vector(op.result.type)
    emitter.bind(op.result, CValue("splat", scalar.text, vt.dtype, vt.size))


@emits(VectorConstantOp)
def emit_vector_constant(emitter: KernelEmitter, op: VectorConstantOp) -> None:
    dt = op.result.type.dtype
    values = op.values
    if len(set(values)) == 1:
        emitter.bind(op.result, CValue("splat", c_types.literal(values[0], dt), dt, len(values)))
        return
    name = emitter.c_name(op.result)
    items = ", ".join(c_types.literal(v, dt) for v in values)
    emitter.w.line(f"alignas(16) const {c_types.c_type(dt)} {name}[{len(values)}] = {{{items}}};")
    emitter.bind(op.result, CValue("array", name, dt, len(values)))


def _shuffle_runs(pairs: list[tuple[int, int]]) -> list[tuple[int, int, int, int, int]]:
    """(result start, length, source, first lane, stride) runs of (source, lane) pairs."""
    runs = []
    index = 0
    while index < len(pairs):
        source, lane = pairs[index]
        end = index + 1
        stride = pairs[end][1] - lane if end < len(pairs) and pairs[end][0] == source else 0
        while (
            end < len(pairs)
            and pairs[end][0] == source
            and pairs[end][1] - pairs[end - 1][1] == stride
        ):
            end += 1
        if end - index < 3 and end - index > 1:
            end = index + 1
        runs.append((index, end - index, source, lane, stride))
        index = end
    return runs


@emits(ShuffleOp)
def emit_shuffle(emitter: KernelEmitter, op: ShuffleOp) -> None:
    sources = [emitter.value(v) for v in op.operands]
    pairs = []
    for index in op.indices:
        for number, source in enumerate(sources):
            if index < source.lanes:
                pairs.append((number, index))
                break
            index -= source.lanes
    vt = as_vector(op.result.type)
    used = {source for source, _ in pairs}
    if len(used) == 1:
        source = sources[pairs[0][0]]
        lanes = [lane for _, lane in pairs]
        if source.kind == "splat":
            emitter.bind(op.result, CValue("splat", source.text, source.dtype, vt.size))
            return
        if lanes == list(range(lanes[0], lanes[0] + len(lanes))):
            emitter.bind(op.result, source.slice(lanes[0], len(lanes)))
            return
    target = emitter.array(op.result)
    for start, length, number, first, stride in _shuffle_runs(pairs):
        source = sources[number]
        if length == 1:
            emitter.w.line(f"{target.lane(start)} = {source.lane(first)};")
            continue

        def body(
            i: str,
            start: int = start,
            first: int = first,
            stride: int = stride,
            source: CValue = source,
        ) -> None:
            lane = affine_expression(first, stride, i)
            emitter.w.line(f"{target.lane(affine_expression(start, 1, i))} = {source.lane(lane)};")

        emitter.w.unrolled_loop(length, body, variable="j")


@emits(ExtractOp)
def emit_extract(emitter: KernelEmitter, op: ExtractOp) -> None:
    source = emitter.value(op.operands[0])
    if source.kind == "splat":
        emitter.bind(op.result, CValue("scalar", source.text, source.dtype))
        return
    emitter.scalar(op.result, source.lane(op.index))


@emits(BuildVectorOp)
def emit_build_vector(emitter: KernelEmitter, op: BuildVectorOp) -> None:
    scalars = [emitter.value(v) for v in op.operands]
    target = emitter.array(op.result)
    for lane, scalar in enumerate(scalars):
        emitter.w.line(f"{target.lane(lane)} = {scalar.text};")


_COMBINE = {"sum": "add", "max": "max", "min": "min"}


@emits(ReduceLanesOp)
def emit_reduce_lanes(emitter: KernelEmitter, op: ReduceLanesOp) -> None:
    source = emitter.materialize(op.operands[0])
    dt = source.dtype
    facts = (UNKNOWN, UNKNOWN, UNKNOWN)
    name = _COMBINE[op.kind]

    def combine(a: str, b: str) -> str:
        return binary_expression(name, a, b, dt, facts)

    group = op.group
    outputs = as_vector(op.result.type).size
    terms = [[source.lane(j * group + k) for k in range(group)] for j in range(outputs)]
    if outputs == 1:
        emitter.bind(op.result, CValue("splat", _reduced(emitter, op, terms[0], combine), dt, 1))
        return
    target = emitter.array(op.result)
    for j in range(outputs):
        emitter.w.line(f"{target.lane(j)} = {balanced_tree(terms[j], combine)};")


def _reduced(
    emitter: KernelEmitter,
    op: ReduceLanesOp,
    terms: list[str],
    combine: Callable[[str, str], str],
) -> str:
    name = emitter.c_name(op.result)
    ctype = c_types.c_type(op.result.type.dtype)
    emitter.w.line(f"const {ctype} {name} = {balanced_tree(terms, combine)};")
    return name
