"""Emitting the staged rings of pipelined loops (which ones: staging.py) with `cp.async`.

For a loop with S stages (A = S - 1 tiles ahead) and staged rings:

    __shared__ unsigned char w_ring[S * chunks * threads * chunk];   // slot, chunk, thread
    tile j of each ring -> slot j (j < A), one commit group per tile
    int stage = 0;
    for (...) {
        lpir_cp_async_wait<A - 1>();        // this iteration's tile has landed
        r0 = slot `stage`                    // ld.shared into registers
        fetch: tile i + A -> slot (stage + A) % S, the one the last iteration read; commit
        ... body ...
        stage = (stage + 1) % S;
    }
    lpir_cp_async_wait<0>();

(With constant bounds the loop is emitted unrolled S times instead, `stage` its counter: see
emit_control.py.) A thread's chunks of one slot are `threads * chunk` bytes apart, so a warp's
reads of a chunk are contiguous (no bank conflicts). The slot the fetch overwrites was read
by the same thread an iteration earlier, and its registers consumed before, in program order.

A buffered ring has no slots: its tile's shared array is declared S times over, the copies
go where the store would write in buffer (stage + A) % S (the store's addresses, computed
before the loop: they do not change), the store is not emitted, and in the body the tile's
name points at buffer `stage` (`sa_stage = sa + stage * elements`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpir.backends.cuda import c_types, emit_memory
from lpir.backends.cuda.emit_memory import Access
from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits
from lpir.backends.cuda.staging import StagedRing, StagingPlan, allocation_bytes, ring_chains

from lpir.ir.core import Value
from lpir.ir.ops import ForOp, LoadThreadOp
from lpir.ir.types import SharedType


@dataclass
class _Loop:
    """A staged loop being emitted: its rings and the C names of its slot counters."""

    rings: list[StagedRing]
    stage: str
    next_slot: str
    fetched: int = 0
    tiles: dict[int, CValue] = field(default_factory=dict)  # id(shared tile) -> its binding


def plan_of(emitter: KernelEmitter) -> StagingPlan:
    """The kernel's staging plan (made with its shared memory: `declare_shared_memory`)."""
    assert emitter.staging is not None, "staging is planned when shared memory is declared"
    return emitter.staging


@emits(LoadThreadOp)
def emit_load(emitter: KernelEmitter, op: LoadThreadOp) -> None:
    """A staged ring's fetch becomes cp.async copies; its prologue loads wait for the loop."""
    plan = plan_of(emitter)
    if id(op) in plan.prologue:
        return  # copied into their slots by `before_loop`
    if id(op) not in plan.fetches:
        emit_memory.emit_load(emitter, op)
        return
    loop, ring = plan.fetches[id(op)]
    state = emitter.staged_loops[id(loop)]
    _copy(emitter, state, ring, op, state.next_slot)
    state.fetched += 1
    if state.fetched == len(state.rings):
        emitter.w.line("lpir_cp_async_commit();")


def before_loop(emitter: KernelEmitter, loop: ForOp) -> set[int]:
    """The slots and the first A tiles of the loop's staged rings; the ids of the loop
    arguments they replace (no C variables for those)."""
    rings = plan_of(emitter).rings.get(id(loop), [])
    if not rings:
        return set()
    w = emitter.w
    state = _Loop(rings, emitter.fresh("stage"), emitter.fresh("next_slot"))
    addresses: set[int] = set()  # address ops emitted here (rings may share them)
    for ring in rings:
        if ring.store is not None:
            _before_buffered(emitter, state, ring, addresses)
            continue
        ring.name = emitter.fresh(f"{ring.args[0].name_hint or 'tile'}_ring")
        w.line(f"LPIR_SHARED({ring.name}_storage, {ring.nbytes});")
        w.line(
            f"unsigned char* const {ring.name} = "
            f"{ring.name}_storage + threadIdx.x * {ring.chunk_bytes};"
        )
    for tile in range(rings[0].ahead):
        for ring in rings:
            _copy(emitter, state, ring, ring.prologue[tile], str(tile))
        w.line("lpir_cp_async_commit();")
    emitter.staged_loops[id(loop)] = state
    return {id(arg) for ring in rings for arg in ring.args}


def _before_buffered(
    emitter: KernelEmitter, state: _Loop, ring: StagedRing, addresses: set[int]
) -> None:
    """A buffered ring's store addresses (the same every iteration) go before the loop, once
    for all the rings that share them (`addresses`: those emitted before this loop already),
    and the store itself is not emitted: the copies are the store."""
    for op in ring.address_ops:  # again wherever the loop is emitted again (an outer body's)
        if id(op) in addresses:
            continue
        addresses.add(id(op))
        emitter.emitted_early.discard(id(op))
        emitter.op(op)
        emitter.emitted_early.add(id(op))
    store = ring.store
    assert store is not None
    emitter.emitted_early.add(id(store))
    state.tiles.setdefault(id(store.memory), emitter.value(store.memory))


def loop_top(emitter: KernelEmitter, loop: ForOp) -> None:
    """Wait for this iteration's tiles and read them from their slot into registers."""
    state = emitter.staged_loops.get(id(loop))
    if state is None:
        return
    w = emitter.w
    ahead = state.rings[0].ahead
    w.line(f"lpir_cp_async_wait<{pending_groups(ahead)}>();")
    w.line(f"const int {state.next_slot} = {state.stage} == 0 ? {ahead} : {state.stage} - 1;")
    state.fetched = 0
    for ring in state.rings:
        if ring.store is not None:
            _read_buffer(emitter, state, ring.store.memory)
            continue
        current = ring.args[0]
        target = emitter.array(current)
        lanes = ring.chunk_bytes // c_types.byte_size(target.dtype)
        for chunk in range(ring.chunks):
            source = f"{ring.name} + {_offset(ring, state.stage, chunk)}"
            to = target.address(chunk * lanes)
            w.line(f"lpir_load<{ring.chunk_bytes}, false>({to}, {source});")


def pending_groups(ahead: int) -> int:
    """The groups that may still be in flight when an iteration reads its tiles: those of the
    A - 1 tiles after it (this iteration's fetch is committed after the read)."""
    return ahead - 1


def stage_counter(emitter: KernelEmitter, loop: ForOp) -> tuple[str, int] | None:
    """(C name, slots) of a staged loop's slot counter, which runs 0, 1, .. S - 1, 0, ...:
    the loop emitter declares it (`int stage = 0` before the loop, advanced by `loop_bottom`;
    or, unrolled S times, the unrolled loop's counter, so that every slot index and buffer
    address is a constant); None for a loop without staged rings."""
    state = emitter.staged_loops.get(id(loop))
    return None if state is None else (state.stage, state.rings[0].slots)


def loop_bottom(emitter: KernelEmitter, loop: ForOp) -> None:
    """Advance the slot counter of a staged loop that is not unrolled by its stages."""
    state = emitter.staged_loops.get(id(loop))
    if state is not None:
        slots = state.rings[0].slots
        emitter.w.line(f"{state.stage} = {state.stage} == {slots - 1} ? 0 : {state.stage} + 1;")


def _read_buffer(emitter: KernelEmitter, state: _Loop, tile: Value) -> None:
    """Point the tile's name at this iteration's buffer for the body's reads."""
    whole = state.tiles[id(tile)]
    name = _buffer_pointer(emitter, tile, whole, state.stage, "stage")
    emitter.bind(tile, CValue("shared", name, whole.dtype))


def _buffer_pointer(
    emitter: KernelEmitter, tile: Value, whole: CValue, slot: str, role: str
) -> str:
    """A C pointer to buffer `slot` of a buffered shared tile (the tile's own name for 0)."""
    if slot == "0":
        return whole.text
    assert isinstance(tile.type, SharedType)  # a buffered tile is in shared memory
    elements = allocation_bytes(tile.type) // c_types.byte_size(whole.dtype)
    name = emitter.fresh(f"{whole.text}_{role}")
    element = c_types.memory_type(whole.dtype)
    emitter.w.line(f"{element}* const {name} = {whole.text} + {slot} * {elements};")
    return name


def after_loop(emitter: KernelEmitter, loop: ForOp) -> None:
    """No copy outlives the loop (the last iterations re-request the last tile)."""
    state = emitter.staged_loops.pop(id(loop), None)
    if state is not None:
        emitter.w.line("lpir_cp_async_wait<0>();")
        for tile_id, whole in state.tiles.items():
            emitter.values[tile_id] = whole


def register_ring_depth(emitter: KernelEmitter, loop: ForOp) -> int:
    """The most tiles ahead that one load of the pipelined loop keeps in registers (0: none).
    Unrolled that many times plus one, nvcc renames the tiles instead of copying them."""
    fetches = plan_of(emitter).fetches
    depths = [len(chain) for chain, fetch in ring_chains(loop) if id(fetch) not in fetches]
    return max(depths, default=0)


def _copy(
    emitter: KernelEmitter, state: _Loop, ring: StagedRing, load: LoadThreadOp, slot: str
) -> None:
    """cp.async of one thread's tile into its chunks of slot `slot`, zeros where masked. A
    chunk whose lanes' masks may differ is copied whole when they are all on, else lane by
    lane with ordinary loads and stores (the slot is the thread's own: no other thread or
    copy in flight touches it)."""
    access = Access(emitter, load)
    lanes = ring.chunk_bytes // access.size
    store = ring.store
    targets = _buffer_targets(emitter, state, ring, slot) if store is not None else None
    w = emitter.w
    for chunk, start in enumerate(range(0, len(load.offsets), lanes)):
        source = access.lane_address(load.offsets[start])
        condition = access.group_mask(start, lanes) or "true"
        if targets is None or store is None:
            target = f"{ring.name} + {_offset(ring, slot, chunk)}"
        else:
            target = targets.lane_address(store.offsets[start])
        copy = f"lpir_cp_async<{ring.chunk_bytes}>({target}, {source}, {{}});"
        if access.uniform(start, lanes):
            w.line(copy.format(condition))
            continue
        with w.block(f"if ({condition})"):
            w.line(copy.format("true"))
        with w.block("else"):
            assert access.mask is not None  # else the lanes' masks would be uniform
            zero = c_types.literal(0, access.access)
            for lane in range(start, start + lanes):
                read = f"*({access.lane_address(load.offsets[lane])})"
                value = f"{access.mask.lane(lane)} ? {read} : {zero}"
                element = f"reinterpret_cast<{access.element}*>({target}) + {lane - start}"
                w.line(f"LPIR_AT({element}) = {value};")


def _buffer_targets(emitter: KernelEmitter, state: _Loop, ring: StagedRing, slot: str) -> Access:
    """The addresses the ring's store writes, in buffer `slot` of its shared tile."""
    store = ring.store
    assert store is not None
    tile = store.memory
    whole, bound = state.tiles[id(tile)], emitter.value(tile)
    name = _buffer_pointer(emitter, tile, whole, slot, "buffer")
    emitter.bind(tile, CValue("shared", name, whole.dtype))
    try:
        return Access(emitter, store)
    finally:
        emitter.bind(tile, bound)


def _offset(ring: StagedRing, slot: str, chunk: int) -> str:
    """Bytes from the thread's first chunk to chunk `chunk` of slot `slot` (a C expression)."""
    chunk_stride = ring.threads * ring.chunk_bytes
    slot_stride = ring.chunks * chunk_stride
    terms = [f"{slot} * {slot_stride}"] if slot != "0" else []
    if chunk:
        terms.append(str(chunk * chunk_stride))
    return " + ".join(terms) or "0"
