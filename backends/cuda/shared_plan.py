"""Where each shared tile of a CUDA kernel lives: tiles whose lifetimes do not meet share bytes.

Without a plan every `alloc_shared` would have its own bytes for the whole kernel, and a kernel
in phases asks for the sum of all its tiles: a cumsum along axis 0 of a [128, 128] f32 tile
converts its layout twice, through two 64 KiB exchange tiles used one after the other, and
needed 128 KiB. Here, as Triton's allocation analysis and LLVM's stack coloring do, tiles whose
live ranges do not overlap get the same bytes (the cumsum: 64 KiB, one barrier added).

Live ranges, in program order over the final thread IR (what the emitter writes):

* a tile's uses are the ops that name it (`ld`, `st`, `st_bits`, `ldmatrix`); a tile that
  another op names (passed through a loop or an `if`) is live through the whole kernel;
* a use inside a loop that the tile was allocated outside of keeps the tile live across that
  whole loop (the next iteration may read what this one wrote). A tile allocated inside a
  loop is new in each iteration (its contents undefined, the interpreter zeroes it), so its
  uses stay where they are within that loop;
* a tile that a pipelined loop fills ahead by `cp.async` (its S buffers, staging.py) is live
  across every loop around its uses, whatever encloses its allocation: the copies of the first
  tiles are issued before the loop, before the store they replace, and finish only at the
  `cp.async` wait after the loop. The per-thread slots of staged rings keep their own arrays.

Reusing A's bytes for B is safe only when every thread has finished with A before any thread
touches B. Two tiles may share bytes when, in the lowest region holding the (lifted) uses of
both, every use of one lies before every use of the other with a `barrier` between them at
that level: every path from a use of the first to a use of the second then crosses it, since
no loop that either tile lives across lies inside that region (it would have held the uses
of both). Where that region lies inside a loop (both tiles are then new in each iteration of
it), a barrier must also lie after the second tile's uses or before the first tile's uses,
for the next iteration. Barriers are those of the final IR, after prune-barriers, which
removes a barrier between two different tiles' accesses (it tells memories apart by value):
this plan relies only on the barriers that are left.

Where no barrier separates two tiles of the kernel's top level, a `__syncthreads()` may be
inserted before the second tile's first use: outside every loop, so it runs once per block
(it waits for the block's slowest warp once), and never inside an `if` (whose condition is
not checked here to be the same in every thread). Barriers are inserted only where the plan
with them saves at least a KiB, and an eighth of the tiles' bytes unless the tiles pass the
static 48 KB (`_worth_barriers`: 16 bytes of kv_append's 2 KiB are not worth a barrier), and
only those that the offsets chosen need (the fewest that separate every pair sharing bytes).

Packing: tiles by size, largest first (program order among equals), each at the lowest
16-byte-aligned offset where it overlaps no tile it may not share with (first fit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lpir.backends.cuda.staging import StagingPlan, allocation_bytes, plan_staging

from lpir.ir.core import Kernel, Operation, Region
from lpir.ir.ops import (
    AllocSharedOp,
    BarrierOp,
    ForOp,
    LoadMatrixOp,
    LoadThreadOp,
    StoreBitsOp,
    StoreThreadOp,
)

#: Static shared memory one block may declare; beyond it the kernel uses dynamic shared memory.
STATIC_SHARED_LIMIT = 48 * 1024

# the ops that access a shared tile (its first operand); any other use of a tile pins it
_ACCESSES = (LoadThreadOp, StoreThreadOp, StoreBitsOp, LoadMatrixOp)
_KIB = 1024
# how many times the plan is remade with a smaller staging budget before giving staging up
_STAGING_TRIES = 8


@dataclass(frozen=True)
class Placement:
    """One shared tile's bytes: `nbytes` (its copies included) from byte `offset`."""

    alloc: AllocSharedOp
    offset: int
    nbytes: int

    @property
    def end(self) -> int:
        return self.offset + self.nbytes


@dataclass
class SharedPlan:
    """The kernel's shared tiles' offsets and the barriers inserted so that they may share.

    Attributes:
        placements: one per `alloc_shared`, in program order.
        barriers_before: ops of the kernel's top level before which a barrier is inserted.
    """

    placements: list[Placement] = field(default_factory=list)
    barriers_before: list[Operation] = field(default_factory=list)

    @property
    def total(self) -> int:
        """The bytes of all the tiles (16-byte aligned): the largest end of a placement."""
        return max((placement.end for placement in self.placements), default=0)

    @property
    def shares(self) -> bool:
        """Whether some two tiles share bytes."""
        return self.total < sum(placement.nbytes for placement in self.placements)

    def barrier_before(self, op: Operation) -> bool:
        return any(op is barrier for barrier in self.barriers_before)


def plan_shared_memory(
    kernel: Kernel, users: dict[int, list[Operation]]
) -> tuple[SharedPlan, StagingPlan, bool]:
    """(tile offsets, staged rings, dynamic) of the kernel: rings are staged within what the
    static 48 KB leaves beside the planned tiles; a kernel whose tiles need more uses dynamic
    shared memory and stages nothing."""
    base = pack_shared_tiles(kernel, users, StagingPlan())
    if base.total > STATIC_SHARED_LIMIT:
        return base, StagingPlan(), True
    budget = STATIC_SHARED_LIMIT - base.total
    for _ in range(_STAGING_TRIES):
        staging = plan_staging(kernel, users, budget)
        plan = pack_shared_tiles(kernel, users, staging)
        # a buffered tile grows by its copies, which first fit need not pack as tightly
        overshoot = plan.total + staging.slots_bytes - STATIC_SHARED_LIMIT
        if overshoot <= 0:
            return plan, staging, False
        budget -= overshoot
    return base, StagingPlan(), False


def pack_shared_tiles(
    kernel: Kernel, users: dict[int, list[Operation]], staging: StagingPlan
) -> SharedPlan:
    """The offsets of the kernel's tiles (with the copies `staging` buffers), barriers added
    where the bytes they save pay for them (`_worth_barriers`)."""
    tiles = [_lifetime(op, users, staging) for op in kernel.walk() if isinstance(op, AllocSharedOp)]
    gaps = {
        (i, j): _separation(kernel, a, b)
        for i, a in enumerate(tiles)
        for j, b in enumerate(tiles)
        if i < j
    }

    def separated(i: int, j: int, inserting: bool) -> bool:
        gap = gaps[min(i, j), max(i, j)]
        return gap is not None and (inserting or gap.ready)

    plan = _pack(tiles, lambda i, j: separated(i, j, False))
    with_barriers = _pack(tiles, lambda i, j: separated(i, j, True))
    if not _worth_barriers(plan.total, with_barriers.total):
        return plan
    needed = [
        gap
        for (i, j), gap in gaps.items()
        if gap is not None and not gap.ready and _overlap(with_barriers, i, j)
    ]
    with_barriers.barriers_before = _fewest_barriers(kernel, needed)
    return with_barriers


@dataclass
class _Tile:
    """A shared tile's allocation, bytes and uses (each lifted to the loop that keeps it
    live); `pinned` where the tile is live through the whole kernel."""

    alloc: AllocSharedOp
    nbytes: int
    uses: list[Operation]
    pinned: bool = False


@dataclass(frozen=True)
class _Gap:
    """Two tiles' uses apart in `region`, ops `after` .. `before` of it (exclusive) between
    them; `ready` where a barrier lies there (and, in a loop, on the way around)."""

    region: Region
    after: int
    before: int
    ready: bool


def _lifetime(
    alloc: AllocSharedOp, users: dict[int, list[Operation]], staging: StagingPlan
) -> _Tile:
    """The tile's bytes and its uses, each lifted to the loop that keeps the tile live."""
    tile = alloc.result
    nbytes = allocation_bytes(alloc.shared_type) * staging.copies(tile)
    found = users.get(id(tile), [])
    if any(not isinstance(op, _ACCESSES) or op.operands[0] is not tile for op in found):
        return _Tile(alloc, nbytes, [], pinned=True)
    buffered = staging.copies(tile) > 1
    uses: list[Operation] = []
    for op in found:
        lifted = _lifted(op, alloc, buffered)
        if not any(lifted is use for use in uses):
            uses.append(lifted)
    return _Tile(alloc, nbytes, uses)


def _lifted(use: Operation, alloc: AllocSharedOp, every_loop: bool) -> Operation:
    """The outermost loop around `use` that is not around the allocation (any loop, where
    `every_loop`), or the use itself."""
    lifted, place = use, use.parent
    while isinstance(place, Region) and isinstance(place.parent, Operation):
        owner = place.parent
        if isinstance(owner, ForOp) and (every_loop or not _encloses(owner, alloc)):
            lifted = owner
        place = owner.parent
    return lifted


def _encloses(outer: Operation, op: Operation) -> bool:
    """Whether `op` lies in one of `outer`'s regions, at any depth."""
    place = op.parent
    while isinstance(place, Region) and isinstance(place.parent, Operation):
        if place.parent is outer:
            return True
        place = place.parent.parent
    return False


def _regions(op: Operation) -> list[Region]:
    """The regions around `op`, outermost (the kernel's body) first."""
    chain = []
    place = op.parent
    while isinstance(place, Region):
        chain.append(place)
        owner = place.parent
        place = owner.parent if isinstance(owner, Operation) else None
    return chain[::-1]


def _separation(kernel: Kernel, a: _Tile, b: _Tile) -> _Gap | None:
    """Where the uses of `a` and `b` are apart, so that they may share bytes; None where they
    may not (their uses interleave, or no barrier could separate them)."""
    if a.pinned or b.pinned:
        return None
    if not a.uses or not b.uses:  # a tile nobody accesses may be anywhere
        return _Gap(kernel.body, 0, 0, ready=True)
    chains = [_regions(op) for op in a.uses + b.uses]
    depth = 0
    while all(len(chain) > depth for chain in chains) and all(
        chain[depth] is chains[0][depth] for chain in chains
    ):
        depth += 1
    region = chains[0][depth - 1]
    first = sorted({_index_in(region, op) for op in a.uses})
    second = sorted({_index_in(region, op) for op in b.uses})
    if first[-1] > second[0]:
        first, second = second, first
    if first[-1] >= second[0]:
        return None
    barriers = [i for i, op in enumerate(region.ops) if isinstance(op, BarrierOp)]
    if _in_loop(region) and not any(i > second[-1] or i < first[0] for i in barriers):
        return None  # the next iteration's first tile would meet this one's second
    ready = any(first[-1] < i < second[0] for i in barriers)
    if not ready and region is not kernel.body:
        return None
    return _Gap(region, first[-1], second[0], ready)


def _index_in(region: Region, op: Operation) -> int:
    """The index in `region` of the op that is, or holds, `op`."""
    while op.parent is not region:
        place = op.parent
        assert isinstance(place, Region) and isinstance(place.parent, Operation)
        op = place.parent
    return next(i for i, candidate in enumerate(region.ops) if candidate is op)


def _in_loop(region: Region) -> bool:
    """Whether some loop holds `region`."""
    owner = region.parent
    while isinstance(owner, Operation):
        if isinstance(owner, ForOp):
            return True
        place = owner.parent
        owner = place.parent if isinstance(place, Region) else None
    return False


def _pack(tiles: list[_Tile], separated: Callable[[int, int], bool]) -> SharedPlan:
    """First fit, largest tile first: each tile at the lowest offset where it overlaps no
    placed tile that it is not `separated(i, j)` from."""
    order = sorted(range(len(tiles)), key=lambda i: (-tiles[i].nbytes, i))
    placed: dict[int, Placement] = {}
    for i in order:
        size = tiles[i].nbytes
        taken = sorted(
            (placement.offset, placement.end)
            for j, placement in placed.items()
            if not separated(i, j)
        )
        offset = 0
        for start, end in taken:
            if offset + size <= start:
                break
            offset = max(offset, end)
        placed[i] = Placement(tiles[i].alloc, offset, size)
    return SharedPlan([placed[i] for i in range(len(tiles))])


def _worth_barriers(without: int, with_barriers: int) -> bool:
    """Whether barriers that take the kernel's tiles from `without` bytes to `with_barriers`
    pay: a barrier costs a wait for the block's slowest warp, once a block; the bytes pay where
    they are a KiB or more (an SM's 228 KiB hold at most 32 blocks: less hardly changes how
    many) and an eighth of the tiles, or where the tiles pass the static 48 KB (then shared
    memory bounds how many blocks an SM holds)."""
    saved = without - with_barriers
    return saved >= _KIB and (8 * saved >= without or without > STATIC_SHARED_LIMIT)


def _overlap(plan: SharedPlan, i: int, j: int) -> bool:
    a, b = plan.placements[i], plan.placements[j]
    return a.offset < b.end and b.offset < a.end


def _fewest_barriers(kernel: Kernel, gaps: list[_Gap]) -> list[Operation]:
    """The fewest top-level ops to put a barrier before so that one lies in each gap: each
    gap's last chance, where no barrier placed for an earlier-ending gap lies in it."""
    chosen: list[int] = []
    for gap in sorted(gaps, key=lambda gap: gap.before):
        if not chosen or chosen[-1] <= gap.after:
            chosen.append(gap.before)
    ops = kernel.body.ops
    return [ops[index] for index in chosen]


__all__ = ["STATIC_SHARED_LIMIT", "Placement", "SharedPlan", "plan_shared_memory"]
