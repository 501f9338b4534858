"""insert-syncs: put a `sync` wherever a tile reads or writes memory the block touched
before, so every target keeps the program order the interpreter runs in.

Requires: tile IR with layouts (after layout-selection). Guarantees: the same values as the
interpreter; between two accesses of one memory (a kernel argument or a shared tile, told
apart by the value naming it), one of them a write, every path holds a `sync`, unless each
thread touches exactly what it touched before (`_same_elements`) or both add, take the
max or the min atomically alike. Where a load relies on the first exemption, only each
thread's own reads are ordered: `own_round_trips` names those loads, which lower-to-threads
reads per thread, never by a warp-wide `ldmatrix` (whose lanes address rows that other lanes
wrote, with no barrier between).

Why: a tile is spread over the block's threads by a layout the compiler picks, so the thread
that reads an element need not be the one that wrote it. A kernel that stores a tile and
reads it back (`store(r[rows :+ BM, :], h)`, then row by row `load(r[rows + i, :])`), or
that stores into shared memory and loads in another layout without `sync()`, read stale
values on the GPU and on the CPU (whose threads run one after another between barriers),
while the interpreter, running tiles in program order, did not. The user cannot know where
a barrier is needed; the compiler can. The `sync()`s a kernel has make these hazards already
ordered, so a correct kernel gains nothing; prune-barriers later removes what proves
unneeded at the thread level.

How: each region is walked in program order with the accesses since the last `sync` on
some path (`pending`). An access that conflicts with one of them gets a `sync` before it;
a loop or `if` whose accesses reachable before its own first `sync` conflict gets one before
it. A loop body starts with what is pending before the loop and what its previous iteration
left pending after its last `sync`; after a loop or `if`, what is pending is the union over
its paths (a loop may run no iteration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Kernel, Module, Operation, Region, Value
from lpir.ir.ops import ConstantOp, ForOp, LoadOp, StoreOp, SyncOp
from lpir.ir.rewrite import clone_module
from lpir.ir.types import TileType


@dataclass(frozen=True)
class Access:
    """One load or store of a memory, as a later access sees it."""

    op: Operation
    # the body of the loop whose back edge lies between this access and the one it is
    # compared with: a value made in that body differs there, however its name matches
    crossed: Region | None = None

    @property
    def memory(self) -> int:
        return id(self.op.operands[0])

    @property
    def writes(self) -> bool:
        return isinstance(self.op, StoreOp)

    @property
    def combine(self) -> str | None:
        return _combine(self.op)


@register_pass
class InsertSyncsPass(Pass):
    name = "insert-syncs"
    stage = "tile"
    needs_layouts = True

    def run(self, module: Module) -> Module:
        module = clone_module(module)
        for kernel in module.kernels:
            _Walk(insert=True).region(kernel.body, [])
        return module


def own_round_trips(kernel: Kernel) -> set[Operation]:
    """The loads of `kernel` (tile IR with its syncs) that read, or that precede a store of, the
    same memory with no `sync` between on some path, each thread touching only the elements it
    touched: ordered within each thread, not between threads."""
    walk = _Walk(insert=False)
    walk.region(kernel.body, [])
    return walk.round_trips


def _hazard(earlier: Access, later: Access) -> str | None:
    """How `later` must wait for `earlier`: "sync" (at a barrier), "own" (not at all, each
    thread touching only the elements it touched before), None (no hazard)."""
    if earlier.memory != later.memory or not (earlier.writes or later.writes):
        return None
    if (
        earlier.combine is not None
        and earlier.combine == later.combine
        and not (earlier.op.results or later.op.results)
    ):
        # atomics of one kind (adds, maxes, ors, ...) commute, unless one gives its old
        # values, which must hold all the earlier one's combinations and none of the later's
        return None
    if _apart(earlier, later.op):
        return None
    varying = earlier.crossed is not None and not all(
        _invariant(offset, earlier.crossed) for offset in _offsets(earlier.op)
    )
    return "sync" if varying or not _same_elements(earlier.op, later.op) else "own"


def _same_elements(a: Operation, b: Operation) -> bool:
    """Whether every thread touches in `b` exactly the elements it touched in `a`, and no
    other thread touches them: the same slice (the same offset values, dims and shape), the
    same layout, held by one thread each. Plain stores only: an atomic one may meet other
    blocks' additions."""
    if _combine(a) or _combine(b):
        return False
    tile_a, tile_b = _tile(a), _tile(b)
    if tile_a is None or tile_b is None or tile_a.layout is None:
        return False
    offsets_a, offsets_b = _offsets(a), _offsets(b)
    return (
        len(offsets_a) == len(offsets_b)
        and all(x is y for x, y in zip(offsets_a, offsets_b))
        and not any(isinstance(offset.type, TileType) for offset in offsets_a)  # gathers
        and a.attributes["dims"] == b.attributes["dims"]
        and tile_a.shape == tile_b.shape
        and tile_a.layout == tile_b.layout
        and not tile_a.layout.is_replicated
    )


def _apart(earlier: Access, later: Operation) -> bool:
    """Whether the two slices are apart along some dimension where both offsets are sums of
    the same values times constants plus a constant, and the constants' ranges do not meet
    (`store(y[0], ...)` and `store(y[1], ...)`; `x[m, n0 :+ 64]` and `x[m, n0 + 64 :+ 64]`).
    Across the back edge of a loop of constant step, the induction variable was a step or
    more back in `earlier` (`x[m, n0 :+ BN]` stored in one iteration, loaded in the next)."""
    for dim, (offset_a, offset_b) in enumerate(zip(_offsets(earlier.op), _offsets(later))):
        if isinstance(offset_a.type, TileType) or isinstance(offset_b.type, TileType):
            continue  # gathered positions may be anywhere along the dimension
        shift = _shift_per_iteration(offset_a, offset_b, earlier.crossed)
        if shift is None:
            continue
        start = _linear(offset_a)[1] - _linear(offset_b)[1]  # `earlier` from `later`'s start
        end_a, end_b = start + _extent(earlier.op, dim), _extent(later, dim)
        # iteration k back (k >= 1; k = 0 only where no back edge lies between), `earlier`
        # started at start - k * shift
        if shift == 0 and (end_a <= 0 or end_b <= start):
            return True
        if (shift > 0 and end_a - shift <= 0) or (shift < 0 and start - shift >= end_b):
            return True
    return False


def _shift_per_iteration(offset_a: Value, offset_b: Value, body: Region | None) -> int | None:
    """How far `offset_a` moves from `offset_b`'s terms each iteration back across `body`'s
    back edge (0: it does not, or no back edge lies between); None where the two differ by
    more than a constant."""
    terms_a, terms_b = _linear(offset_a)[0], _linear(offset_b)[0]
    if body is None:
        return 0 if terms_a == terms_b else None
    step = _induction_step(body)
    shift = 0
    for key in terms_a.keys() | terms_b.keys():
        value, coefficient = terms_a.get(key) or terms_b[key]
        if _invariant(value, body):
            if terms_a.get(key) != terms_b.get(key):
                return None
        elif step is not None and value is body.args[0] and terms_a.get(key) == terms_b.get(key):
            shift = coefficient * step
        else:
            return None
    return shift


def _linear(value: Value) -> tuple[dict[int, tuple[Value, int]], int]:
    """`value` as a sum of values times constants plus a constant: ({id: (value,
    coefficient)}, constant), through add, sub and mul by a constant."""
    constant = _int_constant(value)
    if constant is not None:
        return {}, constant
    op = value.owner
    if isinstance(op, Operation) and op.name in ("add", "sub", "mul"):
        left, right = op.operands
        if op.name == "mul":
            for factor, term in ((_int_constant(right), left), (_int_constant(left), right)):
                if factor is not None:
                    terms, start = _linear(term)
                    return _scaled(terms, factor), start * factor
        else:
            terms_left, start_left = _linear(left)
            terms_right, start_right = _linear(right)
            sign = 1 if op.name == "add" else -1
            terms = dict(terms_left)
            for key, (term, coefficient) in _scaled(terms_right, sign).items():
                total = terms.get(key, (term, 0))[1] + coefficient
                if total:
                    terms[key] = (term, total)
                else:
                    terms.pop(key, None)
            return terms, start_left + sign * start_right
    return {id(value): (value, 1)}, 0


def _scaled(terms: dict[int, tuple[Value, int]], factor: int) -> dict[int, tuple[Value, int]]:
    return {key: (value, coefficient * factor) for key, (value, coefficient) in terms.items()}


def _invariant(value: Value, body: Region) -> bool:
    """Whether `value` is the same in every iteration of the loop of `body`: made outside
    it, or there from such values without loads (memory may change) or nested regions."""
    owner = value.owner
    if not isinstance(owner, Operation) or not _made_in(value, body):
        return not (isinstance(owner, Region) and _made_in(value, body))
    if isinstance(owner, LoadOp) or owner.regions:
        return False
    return all(_invariant(operand, body) for operand in owner.operands)


def _made_in(value: Value, region: Region) -> bool:
    """Whether `value` is made inside `region` (or is an argument of it)."""
    place: Operation | Region | Kernel | None = value.owner
    while place is not None and not isinstance(place, Kernel):
        if place is region:
            return True
        place = place.parent
    return False


def _induction_step(body: Region) -> int | None:
    """The constant step of the loop whose body is `body`."""
    loop = body.parent
    if not isinstance(loop, ForOp):
        return None
    return _int_constant(loop.operands[2])


def _int_constant(value: Value) -> int | None:
    op = value.owner
    if isinstance(op, ConstantOp) and isinstance(op.value, int) and not isinstance(op.value, bool):
        return op.value
    return None


def _extent(op: Operation, dim: int) -> int:
    """How many elements along memory dimension `dim` the access spans."""
    dims = list(op.attributes["dims"])
    tile = _tile(op)
    if dim not in dims or tile is None:
        return 1
    return tile.shape[dims.index(dim)]


def _combine(op: Operation) -> str | None:
    return op.combine if isinstance(op, StoreOp) else None


def _tile(op: Operation) -> TileType | None:
    """The tile a load makes or a store writes."""
    value = op.value if isinstance(op, StoreOp) else op.results[0]
    return value.type if isinstance(value.type, TileType) else None


def _offsets(op: Operation) -> list[Value]:
    return op.offsets if isinstance(op, (LoadOp, StoreOp)) else []


def _accesses(op: Operation) -> list[Access]:
    """The loads and stores of `op` and of everything nested in it."""
    return [Access(inner) for inner in op.walk() if isinstance(inner, (LoadOp, StoreOp))]


def _head(op: Operation) -> list[Access]:
    """The accesses of a loop or `if` that a path from its start reaches before a `sync`."""
    found: list[Access] = []
    for region in op.regions:
        for inner in region.ops:
            if isinstance(inner, SyncOp):
                break
            found += _accesses(inner)
    return found


def _tail(region: Region) -> list[Access]:
    """The accesses of a region after its last `sync` (all of them without one)."""
    found: list[Access] = []
    for op in region.ops:
        found = [] if isinstance(op, SyncOp) else found + _accesses(op)
    return found


@dataclass
class _Walk:
    """The walk of a kernel in program order: inserting the syncs it needs (`insert`), or
    finding, in a kernel that has them, the loads only each thread's own accesses order."""

    insert: bool
    round_trips: set[Operation] = field(default_factory=set)

    def region(self, region: Region, pending: list[Access]) -> list[Access]:
        """Order `region` when `pending` is what paths into it accessed since their last sync;
        return what is pending at its end."""
        for op in list(region.ops):
            if isinstance(op, SyncOp):
                pending = []
                continue
            if not op.regions:
                accesses = _accesses(op)
                if self.conflict(pending, accesses, op):
                    pending = []
                pending = pending + accesses
                continue
            if self.conflict(pending, _head(op), op):
                pending = []
            if isinstance(op, ForOp):
                body = op.regions[0]
                previous = [Access(access.op, body) for access in _tail(body)]
                self.region(body, pending + previous)  # a later iteration's start
                pending = pending + _tail(body)  # the tail as the syncs left it; or no iteration
            else:
                pending = [
                    access for branch in op.regions for access in self.region(branch, pending)
                ]
        return pending

    def conflict(self, pending: list[Access], accesses: list[Access], op: Operation) -> bool:
        """Whether `op`, making `accesses`, must wait for `pending` at a sync (inserted before
        it when inserting); where it need not, the loads of pairs ordered within each thread
        are kept (those of a single op only: a loop's or an `if`'s are met again inside)."""
        own: list[Operation] = []
        for after in accesses:
            for before in pending:
                hazard = _hazard(before, after)
                if hazard == "sync":
                    if self.insert:
                        _sync_before(op)
                    return True
                if hazard == "own":
                    own += [access.op for access in (before, after) if not access.writes]
        if not op.regions:
            self.round_trips.update(own)
        return False


def _sync_before(op: Operation) -> None:
    region = op.parent
    assert isinstance(region, Region)
    sync = SyncOp.create()
    sync.location = op.location
    sync.parent = region
    region.ops.insert(region.ops.index(op), sync)


__all__ = ["InsertSyncsPass"]
