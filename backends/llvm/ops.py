"""One emitter per thread-IR op (control flow lives in kernel.py).

`emit(kernel_emitter, op)` returns the LLVM values of the op's results. Emitters read operands
through `e.get(value)` and use the kernel emitter's helpers: `e.arith` (elementwise),
`e.caster` (casts), `e.vectors` (shuffles, bit fields), `e.memory` (ld/st).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from llvmlite import ir
from lpir.backends.llvm.fusion import zero_point
from lpir.backends.llvm.prefetch import (
    BLOCK_LOCALITY,
    LOCALITY,
    block_prefetch_distances,
    prefetch_distances,
)
from lpir.backends.llvm.types import I1, I8, I32, lane_type, value_type
from lpir.backends.other_target import cannot_emit

from lpir.dtypes import DType
from lpir.errors import CompileError
from lpir.ir.core import Operation, Value
from lpir.ir.ops import (
    AllocSharedOp,
    BarrierOp,
    BlockIndexOp,
    BuildVectorOp,
    CastOp,
    ConstantOp,
    DotPairsOp,
    ExtractOp,
    LoadThreadOp,
    PackBitsOp,
    ReduceLanesOp,
    SelectOp,
    ShuffleOp,
    SplatOp,
    StoreBitsOp,
    StoreThreadOp,
    ThreadIndexOp,
    UnpackBitsOp,
    VectorConstantOp,
    ViewOp,
)
from lpir.ir.types import SharedType, as_memory, as_vector

if TYPE_CHECKING:
    from lpir.backends.llvm.kernel import KernelEmitter

EMITTERS: dict[str, Callable] = {}
_Emitter = TypeVar("_Emitter", bound=Callable[..., list[ir.Value]])


def emitter(*names: str) -> Callable[[_Emitter], _Emitter]:
    def register(function: _Emitter) -> _Emitter:
        for name in names:
            EMITTERS[name] = function
        return function

    return register


def emit(e: KernelEmitter, op: Operation) -> list[ir.Value]:
    tabulated = e.code_tables.emit(op)  # a function of small codes: table lookups
    if tabulated is not None:
        return [tabulated]
    function = EMITTERS.get(op.name)
    if function is None:
        if op.__class__.__name__ == "BinaryOp":
            function = _binary
        elif op.__class__.__name__ == "UnaryOp":
            function = _unary
        else:
            message, hint = cannot_emit(op, "llvm")
            raise CompileError(message, op.location, hint)
    return function(e, op)


def _dtype(value: Value) -> DType:
    return value.type.dtype


def _binary(e: KernelEmitter, op: Operation) -> list[ir.Value]:
    fused = zero_point(e, op)
    if fused is None:
        fused = e.integer_pairs.emit(op)
    if fused is not None:
        return [fused]
    lhs, rhs = (e.get(v) for v in op.operands)
    return [e.arith.binary(op.name, lhs, rhs, _dtype(op.operands[0]))]


def _unary(e: KernelEmitter, op: Operation) -> list[ir.Value]:
    return [e.arith.unary(op.name, e.get(op.operands[0]), _dtype(op.operands[0]))]


@emitter("constant")
def _constant(e: KernelEmitter, op: ConstantOp) -> list[ir.Value]:
    dt = _dtype(op.result)
    value = op.attributes["value"]
    if dt.is_float and dt.nbits < 32:
        import numpy as np

        code = int(dt.encode(np.array([value], np.float64))[0])
        return [ir.Constant(lane_type(dt), code)]
    if dt.kind == "uint" and dt.nbits == 64 and value >= 1 << 63:
        value -= 1 << 64
    return [ir.Constant(lane_type(dt), value)]


@emitter("vector_constant")
def _vector_constant(e: KernelEmitter, op: VectorConstantOp) -> list[ir.Value]:
    dt = _dtype(op.result)
    values = list(op.attributes["values"])
    if dt.is_float and dt.nbits < 32:
        import numpy as np

        values = [int(c) for c in dt.encode(np.array(values, np.float64))]
    return [ir.Constant(value_type(op.result.type), values)]


@emitter("thread_index")
def _thread_index(e: KernelEmitter, op: ThreadIndexOp) -> list[ir.Value]:
    if e.tid is None:
        raise CompileError("thread_index outside a thread loop", op.location)
    return [e.tid]


@emitter("block_index")
def _block_index(e: KernelEmitter, op: BlockIndexOp) -> list[ir.Value]:
    return [e.block_index[op.attributes["axis"]]]


@emitter("splat")
def _splat(e: KernelEmitter, op: SplatOp) -> list[ir.Value]:
    return [e.vectors.splat(e.get(op.operands[0]), as_vector(op.result.type).size)]


@emitter("shuffle")
def _shuffle(e: KernelEmitter, op: ShuffleOp) -> list[ir.Value]:
    return [e.vectors.shuffle([e.get(v) for v in op.operands], list(op.attributes["indices"]))]


@emitter("extract")
def _extract(e: KernelEmitter, op: ExtractOp) -> list[ir.Value]:
    return [e.b.extract_element(e.get(op.operands[0]), ir.Constant(I32, op.attributes["index"]))]


@emitter("vector")
def _build_vector(e: KernelEmitter, op: BuildVectorOp) -> list[ir.Value]:
    result = ir.Constant(value_type(op.result.type), ir.Undefined)
    for lane, value in enumerate(op.operands):
        result = e.b.insert_element(result, e.get(value), ir.Constant(I32, lane))
    return [result]


@emitter("reduce_lanes")
def _reduce_lanes(e: KernelEmitter, op: ReduceLanesOp) -> list[ir.Value]:
    dt = _dtype(op.operands[0])
    name = {"sum": "add", "max": "max", "min": "min"}[op.attributes["kind"]]

    def combine(a: ir.Value, b: ir.Value) -> ir.Value:
        return e.arith.binary(name, a, b, dt)

    exact = dt.is_int or dt.is_bool  # (any order gives the same bits; floats keep the tree)
    vector, group = e.get(op.operands[0]), op.attributes["group"]
    return [e.vectors.reduce_lanes(vector, group, combine, any_order=exact)]


@emitter("dot_pairs")
def _dot_pairs(e: KernelEmitter, op: DotPairsOp) -> list[ir.Value]:
    return [e.dot_pairs.emit(*(e.get(v) for v in op.operands))]


@emitter("where")
def _where(e: KernelEmitter, op: SelectOp) -> list[ir.Value]:
    cond, lhs, rhs = (e.get(v) for v in op.operands)
    return [e.arith.select(cond, lhs, rhs)]


@emitter("cast")
def _cast(e: KernelEmitter, op: CastOp) -> list[ir.Value]:
    source, target = _dtype(op.operands[0]), _dtype(op.result)
    fields = e.unpacked_fields(op.operands[0])
    if fields is not None:
        looked_up = e.caster.tables.cast_fields(*fields, source, target)
        if looked_up is not None:
            return [looked_up]
    nan_bits = id(op.result) not in e.nan_payload_unseen
    return [e.caster.cast(e.get(op.operands[0]), source, target, nan_bits)]


@emitter("view")
def _view(e: KernelEmitter, op: ViewOp) -> list[ir.Value]:
    source, target = _dtype(op.operands[0]), _dtype(op.result)
    value = e.get(op.operands[0])
    result_type = value_type(op.result.type)
    if source.nbits == target.nbits:
        return [_same_width_view(e, value, source, target, result_type)]
    # Through the LSB-first byte string of the lanes.
    lanes = as_vector(op.operands[0].type).size
    total = lanes * source.nbits
    if source.nbits % 8 == 0:
        data = e.b.bitcast(value, ir.VectorType(I8, total // 8))
    else:  # a thread's run of lcm(a, b) bits may end inside a byte (35 bits of u7 as u5)
        offsets = [i * source.nbits for i in range(lanes)]
        data = e.vectors.pack_bits(value, source, offsets, -(-total // 8), None)
    if target.nbits % 8 == 0:
        return [e.b.bitcast(data, result_type)]
    offsets = [i * target.nbits for i in range(total // target.nbits)]
    return [e.vectors.unpack_bits(data, target, offsets, None)]


def _same_width_view(
    e: KernelEmitter, value: ir.Value, source: DType, target: DType, result_type: ir.Type
) -> ir.Value:
    """Reinterpret lanes of equal bit width, whose register forms may still differ (a signed
    sub-byte value is sign-extended in its i8, bool is i1)."""
    b = e.b
    if source.nbits >= 8:
        return value if value.type == result_type else b.bitcast(value, result_type)
    lanes = value.type.count if isinstance(value.type, ir.VectorType) else None
    byte_type = ir.VectorType(I8, lanes) if lanes else I8
    code = b.zext(value, byte_type) if source.is_bool else value
    code = b.and_(code, _splat_constant(byte_type, (1 << source.nbits) - 1))
    if target.is_bool:
        return b.trunc(code, result_type)
    if target.kind == "int":
        spare = _splat_constant(byte_type, 8 - target.nbits)
        return b.ashr(b.shl(code, spare), spare)
    return code


def _splat_constant(type_: ir.Type, number: int) -> ir.Constant:
    if isinstance(type_, ir.VectorType):
        return ir.Constant(type_, [number] * type_.count)
    return ir.Constant(type_, number)


@emitter("unpack_bits")
def _unpack_bits(e: KernelEmitter, op: UnpackBitsOp) -> list[ir.Value]:
    data = e.get(op.operands[0])
    shift = e.get(op.operands[1]) if len(op.operands) > 1 else None
    return [
        e.vectors.unpack_bits(data, _dtype(op.result), list(op.attributes["bit_offsets"]), shift)
    ]


@emitter("pack_bits")
def _pack_bits(e: KernelEmitter, op: PackBitsOp) -> list[ir.Value]:
    value = e.get(op.operands[0])
    shift = e.get(op.operands[1]) if len(op.operands) > 1 else None
    offsets = list(op.attributes["bit_offsets"])
    return [
        e.vectors.pack_bits(
            value, _dtype(op.operands[0]), offsets, as_vector(op.result.type).size, shift
        )
    ]


@emitter("ld")
def _load(e: KernelEmitter, op: LoadThreadOp) -> list[ir.Value]:
    pointer, base = e.get(op.operands[0]), e.get(op.operands[1])
    mask = e.get(op.operands[2]) if len(op.operands) > 2 else None
    offsets = list(op.attributes["offsets"])
    width = op.attributes.get("vector", 1)
    nbytes = as_memory(op.operands[0].type).nbytes
    if id(op) in e.streamed_loads:
        dt = op.access_dtype
        interleaved = id(op) in e.plan.interleaved_loads
        for ahead in prefetch_distances(offsets, dt, e.streamed_loads[id(op)], interleaved):
            e.memory.prefetch(pointer, base, min(offsets), dt, ahead, LOCALITY)
    elif id(op) in e.block_prefetches:
        dt = op.access_dtype
        for ahead in block_prefetch_distances(offsets, dt, e.block_prefetches[id(op)]):
            e.memory.prefetch(pointer, base, min(offsets), dt, ahead, BLOCK_LOCALITY)
    memory = as_memory(op.operands[0].type)
    sized = getattr(memory, "extent", None) is None  # not a run-time first dimension
    with e.memory.swizzle_of(memory):
        dt = op.access_dtype
        return [e.memory.load(pointer, base, offsets, dt, mask, width, nbytes, sized)]


@emitter("st")
def _store(e: KernelEmitter, op: StoreThreadOp) -> list[ir.Value]:
    pointer, base, value = (e.get(v) for v in op.operands[:3])
    mask = e.get(op.operands[3]) if len(op.operands) > 3 else None
    offsets = list(op.attributes["offsets"])
    width = op.attributes.get("vector", 1)
    nbytes = as_memory(op.operands[0].type).nbytes
    combine = op.attributes.get("combine")
    with e.memory.swizzle_of(as_memory(op.operands[0].type)):
        if combine is not None:  # atomic_add, _max, _min (into a global or a shared tile)
            atomic = not isinstance(op.operands[0].type, SharedType)
            fetched = e.memory.atomic_combine(
                pointer, base, offsets, value, op.access_dtype, combine, mask, atomic
            )
            return [fetched] if op.results else []
        else:
            e.memory.store(pointer, base, offsets, value, op.access_dtype, mask, width, nbytes)
    return []


@emitter("st_bits")
def _store_bits(e: KernelEmitter, op: StoreBitsOp) -> list[ir.Value]:
    pointer, base, data, bitmask = (e.get(v) for v in op.operands[:4])
    mask = e.get(op.operands[4]) if len(op.operands) > 4 else None
    e.memory.store_bits(pointer, base, list(op.attributes["offsets"]), data, bitmask, mask)
    return []


@emitter("alloc_shared")
def _alloc_shared(e: KernelEmitter, op: AllocSharedOp) -> list[ir.Value]:
    """The slot was allocated in the entry block; shared memory starts zeroed (as in the
    interpreters), each time a block-level `alloc_shared` runs."""
    storage = e.get(op.result)
    size = ir.Constant(ir.IntType(64), storage.allocated_type.count)
    builder = e.b if e.tid is None else e.entry  # inside a thread loop: once per block
    builder.call(e.intrinsics.memset(), [storage, ir.Constant(I8, 0), size, ir.Constant(I1, 0)])
    return [storage]


@emitter("barrier")
def _barrier(e: KernelEmitter, op: BarrierOp) -> list[ir.Value]:
    raise CompileError("a barrier inside per-thread control flow", op.location)


__all__ = ["EMITTERS", "I8", "emit"]
