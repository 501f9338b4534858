"""Emitters of memory operations: `ld`, `st`, `st_bits`, `alloc_shared` and `barrier`.

`ld`/`st` with `vector = W` move each group of W lanes with one access of W x size bytes
(`uint4`, `uint2`, `unsigned`, ...; 16 bytes at most per access, so a 32-byte group takes two),
through the read-only path (`__ldg`, `ld.global.nc`) for tensors the kernel never writes.
A masked group whose mask is provably the same on all its lanes (a splat, or a comparison of
constants with a splat, ...: see `lpir.ir.lane_classes`) is one predicated wide access; any other
masked group tests its lanes at run time and falls back to per-lane accesses when they differ.
Unmasked lanes outside groups are plain per-lane accesses, printed as loops where the offsets
are affine. In swizzled shared memory each access's strided offset goes through `lpir_swizzle`
(a group never straddles the swizzle's unit, which vectorize guarantees).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lpir.backends.cuda import c_types
from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits
from lpir.backends.cuda.writer import affine_expression, affine_runs

from lpir.errors import LpirError
from lpir.ir.lane_classes import lane_classes
from lpir.ir.ops import (
    AllocSharedOp,
    BarrierOp,
    LoadThreadOp,
    StoreBitsOp,
    StoreThreadOp,
)
from lpir.ir.types import GlobalType, SharedType, VectorType
from lpir.layout import Swizzle

_LDG_TYPES = {
    "signed char",
    "unsigned char",
    "short",
    "unsigned short",
    "int",
    "unsigned int",
    "long long",
    "unsigned long long",
    "float",
    "double",
    "__half",
    "__nv_bfloat16",
}


#: at most this many swizzled bases per access op (each holds a register)
SWIZZLED_BASES = 8


def swizzled(swizzle: Swizzle, offset: str) -> str:
    """C for the swizzled element offset of a strided one (`lpir_swizzle` in lpir_cuda.cuh,
    once per XOR term, the first innermost)."""
    for term in swizzle.terms:
        offset = f"lpir_swizzle<{term.bits}, {term.base}, {term.shift}>({offset})"
    return offset


class Access:
    """What `ld` and `st` share: the typed pointer, the access size, groups and the mask."""

    def __init__(self, emitter: KernelEmitter, op: LoadThreadOp | StoreThreadOp):
        self.emitter = emitter
        self.op = op
        memory = emitter.value(op.memory)
        self.access = op.access_dtype
        self.size = c_types.byte_size(self.access)
        element = c_types.memory_type(self.access)
        self.read_only = emitter.is_read_only(op.memory)
        const = "const " if self.read_only else ""
        pointer = memory.text
        if element != c_types.memory_type(memory.dtype):
            pointer = f"reinterpret_cast<{const}{element}*>({pointer})"
        if isinstance(op.base.type, VectorType):  # (lower-to-threads makes them for the cpu)
            raise LpirError(
                f"the CUDA backend has no '{op.name}' with a base per lane ({op.base.type})",
                op.location,
                "this is a limitation of the CUDA backend: give the access one base and lane "
                "offsets, or one access per lane",
            )
        base = emitter.value(op.base).text
        self.swizzle = op.memory_type.swizzle
        if self.swizzle is None:
            self.pointer = emitter.fresh(f"{memory.text}_at")
            emitter.w.line(f"{const}{element}* const {self.pointer} = {pointer} + {base};")
        else:  # every lane's strided offset goes through the swizzle
            self.pointer, self.base = pointer, base
        self.element = element
        self.offsets = op.offsets
        self.width = op.vector_width
        self.mask = emitter.value(op.mask) if op.mask is not None else None
        self.classes = lane_classes(op.mask, emitter.analysis) if op.mask is not None else None
        self.swizzled_bases = self._swizzled_bases() if self.swizzle is not None else {}

    def _swizzled_bases(self) -> dict[int, str]:
        """{residue: a C name for swizzle(base + residue)}, declared here, for the offsets'
        residues modulo the swizzle's period, where they are few. The swizzle reads and
        writes only bits below its period, so swizzle(base + offset) is swizzle(base +
        residue) + (offset - residue): accesses a period apart share one swizzled base and
        differ by a constant, which the access instruction adds for free."""
        assert self.swizzle is not None
        period = self.swizzle.period
        starts = [self.offsets[start] for start, _, _ in self.chunks()]
        residues = sorted({offset % period for offset in starts})
        if len(residues) > SWIZZLED_BASES:  # per-lane scatter: swizzle each access instead
            return {}
        names = {}
        for residue in residues:
            tile = self.emitter.ir_name(self.op.memory)  # a number: no name in the source
            name = self.emitter.fresh(f"{'shared' if tile.isdigit() else tile}_swizzled")
            linear = f"{self.base} + {residue}" if residue else self.base
            self.emitter.w.line(f"const int {name} = {swizzled(self.swizzle, linear)};")
            names[residue] = name
        return names

    def lane_address(self, offset: int | str) -> str:
        if self.swizzle is not None:
            if isinstance(offset, int) and offset % self.swizzle.period in self.swizzled_bases:
                residue = offset % self.swizzle.period
                base = self.swizzled_bases[residue]
                rest = offset - residue
                return f"{self.pointer} + {base}" + (f" + {rest}" if rest else "")
            linear = f"{self.base} + {offset}" if offset != 0 else self.base
            return f"{self.pointer} + {swizzled(self.swizzle, linear)}"
        return f"{self.pointer} + {offset}" if offset != 0 else self.pointer

    def group_mask(self, start: int, lanes: int) -> str | None:
        """C condition that all lanes of a group are on (None: no mask)."""
        if self.mask is None:
            return None
        assert self.classes is not None
        seen: dict[int, int] = {}
        for lane in range(start, start + lanes):
            seen.setdefault(self.classes[lane], lane)
        terms = [self.mask.lane(lane) for lane in seen.values()]
        return " && ".join(terms)

    def uniform(self, start: int, lanes: int) -> bool:
        return self.classes is None or len(set(self.classes[start : start + lanes])) == 1

    def chunks(self) -> list[tuple[int, int, int]]:
        """(first lane, lanes, bytes) of each wide access: groups split into 16-byte pieces."""
        return access_chunks(len(self.offsets), self.width, self.size)


#: `statement(lane, offset)` of one lane's access (each an int, or a loop expression)
LaneStatement = Callable[[int | str, int | str], None]
#: a wide access: (first lane, lanes, access, otherwise), `otherwise` None, a statement or a
#: function of the mask's condition (`_guarded`); Any: the three are used apart by `callable`
Chunk = tuple[int, int, str, Any]


def access_chunks(lanes: int, width: int, size: int) -> list[tuple[int, int, int]]:
    """(first lane, lanes, bytes) of each access the emitter makes of an `ld`/`st` of `lanes`
    lanes of `size` bytes in groups of `width`: a group is one access of up to 16 bytes (a
    larger one is split), other lanes (`width` 1) one access each."""
    chunk_bytes = min(16, width * size)
    step = max(1, chunk_bytes // size)
    return [(start, step, chunk_bytes) for start in range(0, lanes, step)]


def _per_lane(access: Access, statement: LaneStatement, lanes: range) -> None:
    """Per-lane accesses, as loops over runs of affine offsets."""
    w = access.emitter.w
    offsets = [access.offsets[lane] for lane in lanes]
    for start, length, first, stride in affine_runs(offsets):
        lane0 = lanes.start + start
        if length == 1:
            statement(lane0, first)
            continue

        def body(j: str, lane0: int = lane0, first: int = first, stride: int = stride) -> None:
            statement(affine_expression(lane0, 1, j), affine_expression(first, stride, j))

        w.unrolled_loop(length, body, variable="j")


@emits(LoadThreadOp)
def emit_load(emitter: KernelEmitter, op: LoadThreadOp) -> None:
    access = Access(emitter, op)
    target = emitter.array(op.result)
    w = emitter.w
    zero = c_types.literal(0, access.access)
    nc = "true" if access.read_only else "false"
    scalar_ldg = access.read_only and access.element in _LDG_TYPES

    shared = isinstance(op.memory.type, SharedType)

    def load_lane(lane: int | str, offset: int | str) -> None:
        address = access.lane_address(offset)
        read = f"__ldg({address})" if scalar_ldg else element_at(address, shared)
        if access.mask is None:
            w.line(f"{target.lane(lane)} = {read};")
        else:
            w.line(f"{target.lane(lane)} = {access.mask.lane(lane)} ? {read} : {zero};")

    if access.width == 1:
        _per_lane(access, load_lane, range(len(op.offsets)))
        return
    chunks: list[Chunk] = []
    for start, lanes, size in access.chunks():
        to, source = target.address(start), access.lane_address(op.offsets[start])
        wide = f"lpir_load<{size}, {nc}>({to}, {source});"
        otherwise: str | Callable[[str], str]
        if isinstance(op.memory.type, GlobalType):  # one predicated load where the mask is on
            otherwise = _predicated_load(size, nc, to, source)
        else:
            otherwise = f"lpir_zero<{size}>({to});"
        chunks.append((start, lanes, wide, otherwise))
    _guarded(
        access,
        chunks,
        lambda start, lanes: _per_lane(access, load_lane, range(start, start + lanes)),
    )


@emits(StoreThreadOp)
def emit_store(emitter: KernelEmitter, op: StoreThreadOp) -> None:
    access = Access(emitter, op)
    value = emitter.value(op.value)
    if op.combine is not None and op.fetches:  # an atomic whose old values are used
        _fetch_and_combine(emitter, op, access, value)
        return
    if op.combine is not None:  # atomic_add/_max/_min: one atomic a lane (a RED each)
        function = f"lpir_atomic_{op.combine}"
        combine_lane = _lane_writer(access, lambda address, lane: f"{function}({address}, {lane});")
        _per_lane(access, combine_lane, range(len(op.offsets)))
        return
    shared = isinstance(op.memory.type, SharedType)
    store_lane = _lane_writer(access, lambda at, lane: f"{element_at(at, shared)} = {lane};")
    if access.width == 1:
        _per_lane(access, store_lane, range(len(op.offsets)))
        return
    if value.kind != "array":
        value = emitter.materialize(op.value)
    chunks: list[Chunk] = []
    for start, lanes, size in access.chunks():
        wide = (
            f"lpir_store<{size}>({access.lane_address(op.offsets[start])}, {value.address(start)});"
        )
        chunks.append((start, lanes, wide, None))
    _guarded(
        access,
        chunks,
        lambda start, lanes: _per_lane(access, store_lane, range(start, start + lanes)),
    )


def _fetch_and_combine(
    emitter: KernelEmitter, op: StoreThreadOp, access: Access, value: CValue
) -> None:
    """One atomic a lane (an ATOM each) of `value`, its old value into the result's lane;
    lanes masked off get 0 and touch no memory."""
    target = emitter.array(op.result)
    function = f"lpir_atomic_{op.combine}"
    zero = c_types.literal(0, access.access)

    def fetch_lane(lane: int | str, offset: int | str) -> None:
        atomic = f"{function}({access.lane_address(offset)}, {value.lane(lane)})"
        if access.mask is not None:
            atomic = f"{access.mask.lane(lane)} ? {atomic} : {zero}"
        emitter.w.line(f"{target.lane(lane)} = {atomic};")

    _per_lane(access, fetch_lane, range(len(op.offsets)))


def element_at(address: str, shared: bool) -> str:
    """One element of memory: `*(address)`, or for shared memory `LPIR_AT(address)`, which is
    the same on a GPU and records the access for the host emulation's race check."""
    return f"LPIR_AT({address})" if shared else f"*({address})"


def _lane_writer(access: Access, statement: Callable[[str, str], str]) -> LaneStatement:
    """`write(lane, offset)`: `statement(address, value)` for one lane of the stored value,
    under the lane's mask."""
    w = access.emitter.w
    assert isinstance(access.op, StoreThreadOp)
    value = access.emitter.value(access.op.value)

    def write(lane: int | str, offset: int | str) -> None:
        line = statement(access.lane_address(offset), value.lane(lane))
        w.line(line if access.mask is None else f"if ({access.mask.lane(lane)}) {line}")

    return write


def _predicated_load(size: int, nc: str, to: str, source: str) -> Callable[[str], str]:
    def statement(condition: str) -> str:
        return f"lpir_load_if<{size}, {nc}>({to}, {source}, {condition});"

    return statement


def _guarded(access: Access, chunks: list[Chunk], per_lane: Callable[[int, int], None]) -> None:
    """Wide accesses under their masks. A chunk is (first lane, lanes, access, otherwise).
    Where `otherwise` is None (stores) or a statement (a load's zeroing, in the `else`), the
    accesses of consecutive chunks that share a uniform condition go under one `if`; where it
    is a function of the condition (a global load), that is the predicated access, no branch.
    Chunks whose lanes may differ test them all and fall back to `per_lane(start, lanes)`."""
    w = access.emitter.w
    index = 0
    while index < len(chunks):
        start, lanes, wide, otherwise = chunks[index]
        condition = access.group_mask(start, lanes)
        if condition is None:
            w.line(wide)
            index += 1
            continue
        if not access.uniform(start, lanes):
            with w.block(f"if ({condition})"):
                w.line(wide)
            with w.block("else"):
                per_lane(start, lanes)
            index += 1
            continue
        if callable(otherwise):
            w.line(otherwise(condition))
            index += 1
            continue
        same = [chunks[index]]
        index += 1
        while index < len(chunks):
            start, lanes, _, _ = chunks[index]
            if not access.uniform(start, lanes) or access.group_mask(start, lanes) != condition:
                break
            same.append(chunks[index])
            index += 1
        with w.block(f"if ({condition})"):
            w.lines_of([chunk[2] for chunk in same])
        if same[0][3] is not None:
            with w.block("else"):
                w.lines_of([chunk[3] for chunk in same])


@emits(StoreBitsOp)
def emit_store_bits(emitter: KernelEmitter, op: StoreBitsOp) -> None:
    memory = emitter.value(op.memory)
    base = emitter.value(op.base).text
    value = emitter.value(op.value)
    bitmask = emitter.value(op.bitmask)
    mask = emitter.value(op.mask) if op.mask is not None else None
    pointer = emitter.fresh(f"{memory.text}_at")
    emitter.w.line(
        f"unsigned char* const {pointer} = reinterpret_cast<unsigned char*>({memory.text}) + "
        f"{base};"
    )
    for lane, offset in enumerate(op.offsets):
        statement = (
            f"lpir_store_bits({pointer} + {offset}, {value.lane(lane)}, {bitmask.lane(lane)});"
        )
        if mask is not None:
            statement = f"if ({mask.lane(lane)}) {statement}"
        emitter.w.line(statement)


@emits(AllocSharedOp)
def emit_alloc_shared(emitter: KernelEmitter, op: AllocSharedOp) -> None:
    """Shared arrays are declared at the top of the kernel (`declare_shared_memory`)."""
    assert isinstance(op.result.type, SharedType)


@emits(BarrierOp)
def emit_barrier(emitter: KernelEmitter, op: BarrierOp) -> None:
    emitter.w.line("__syncthreads();")


__all__ = ["CValue"]
