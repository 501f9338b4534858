"""Which pipelined loads go through shared memory with `cp.async` instead of registers.

pipeline-loads keeps the S - 1 tiles a loop has requested ahead as loop-carried registers: a
*ring* of arguments r0 .. r(S-2), each iteration using r0 and passing r1 .. on, the last taking
the tile the body fetches. On a GPU that has two costs. Every tile in flight holds registers,
S copies of each (a 64 x 128 u4 tile with 4 stages: 255 registers, one block per SM). And
ptxas may move a load down towards its first use: in gemv_wq (u4, 16 x 128, 4 stages, sm_90)
half the weight loads were issued 20 to 90 instructions before their use, not 3 iterations,
so the pipeline was not there in the machine code at all.

A *staged* ring keeps its tiles in shared memory instead, in S slots private to each thread:
the loads become `cp.async` copies (no register holds them, nothing for ptxas to move), and
the iteration waits for its own tile and reads it from its slot. No other thread reads a
thread's slots, so no barrier is needed, only the thread's own `cp.async.wait_group`.

A ring is staged when it is the pipeline's pattern exactly (the prologue loads feed only the
loop, the fetched tile and r1 .. only the `yield`), its loads read global memory in 4-, 8- or
16-byte chunks (vector groups, or lanes of 4 bytes or more; cp.async zero-fills a chunk whose
mask is off, and a chunk whose lanes' masks differ is written lane by lane), and the data
differs from block to block (the address depends on the block index, and it is not a small
operand blocks share, `served_from_cache`): data other blocks read, like gemv's x or a
split-K GEMV's share of x, is served from cache and is cheaper in registers than copied once
per thread into shared memory. Rings are taken in program order while their slots fit beside
the kernel's own shared memory in the static 48 KB.
A ring whose tile the loop only stores into a shared tile (`store(sa, load(a[...]))`, the
A operand of a matmul) is *buffered* instead: the shared tile itself gets S copies (buffers),
the copies go straight into buffer (i + A) % S at the addresses the store would write, the
store disappears, and the loop's reads of the tile read buffer i % S. That saves the slot, the
read into registers and the store (half the shared traffic of the tile), and the registers.
It needs the loop to already order the tile's accesses as a ring of buffers needs: the tile is
written by that store alone and read only in the loop body, after the store with a barrier
between (that barrier, after each thread's `cp.async.wait_group`, publishes the copies), and
a barrier follows the last read (so nobody still reads the buffer the next iteration's copies
overwrite). Buffers are taken before slots, while the kernel's shared memory fits in the
static 48 KB.

`LPIR_CUDA_ASYNC_COPY=0` in the environment turns staging off (to compare the two).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from lpir.backends.cuda import c_types

from lpir.ir.analysis import (
    depends_on_block_index,
    loop_slice,
    served_from_cache,
    stores_whole_into_shared,
)
from lpir.ir.core import Kernel, Operation, Value
from lpir.ir.effects import READS_MEMORY
from lpir.ir.ops import AllocSharedOp, BarrierOp, ForOp, LoadThreadOp, StoreThreadOp, YieldOp
from lpir.ir.types import GlobalType, SharedType

CHUNK_BYTES = (4, 8, 16)  # the sizes cp.async copies


def allocation_bytes(shared: SharedType) -> int:
    """Bytes the CUDA kernel declares for one copy of a shared tile (16-byte aligned)."""
    return -(-shared.nbytes // 16) * 16


@dataclass
class StagedRing:
    """One pipelined load kept in shared memory: in per-thread slots, or (buffered) in S
    buffers of the shared tile the loop stores it to.

    Attributes:
        args: the loop's ring arguments r0 .. r(A-1) (A = S - 1 tiles ahead).
        prologue: the loads of tiles 0 .. A-1, issued before the loop.
        fetch: the load in the body, of the tile A iterations ahead.
        chunk_bytes: bytes of one cp.async; chunks: how many make one thread's tile.
        threads: threads per block (slots are interleaved by thread).
        name: the C name of the slots (set when emitted).
        store: a buffered ring's store of r0 into its shared tile, which the copies replace.
        address_ops: the body's ops that compute that store's base (the same every iteration).
        position: the index of r0 among the loop's arguments.
    """

    args: list[Value]
    prologue: list[LoadThreadOp]
    fetch: LoadThreadOp
    chunk_bytes: int
    chunks: int
    threads: int
    name: str = ""
    store: StoreThreadOp | None = None
    address_ops: list[Operation] = field(default_factory=list)
    position: int = 0

    @property
    def ahead(self) -> int:
        return len(self.args)

    @property
    def slots(self) -> int:
        return self.ahead + 1

    @property
    def buffered(self) -> bool:
        """Copied straight into S buffers of the shared tile that `store` writes."""
        return self.store is not None

    @property
    def nbytes(self) -> int:
        """The shared memory of the ring: its slots, or the S - 1 more buffers of its tile."""
        if self.store is not None:
            tile = self.store.memory_type
            assert isinstance(tile, SharedType)  # a ring's loads go straight to shared memory
            return self.ahead * allocation_bytes(tile)
        return self.slots * self.chunks * self.chunk_bytes * self.threads


@dataclass
class StagingPlan:
    """The staged rings of a kernel, by loop, with the loads they take over."""

    rings: dict[int, list[StagedRing]] = field(default_factory=dict)  # id(ForOp) -> rings
    fetches: dict[int, tuple[ForOp, StagedRing]] = field(default_factory=dict)  # id(load)
    prologue: set[int] = field(default_factory=set)  # id(load)
    buffers: dict[int, int] = field(default_factory=dict)  # id(shared tile) -> its copies

    @property
    def slots_bytes(self) -> int:
        """The shared memory of the per-thread slots (buffers are the tiles' own, bigger)."""
        rings = [ring for rings in self.rings.values() for ring in rings]
        return sum(ring.nbytes for ring in rings if not ring.buffered)

    def copies(self, shared: Value) -> int:
        """How many buffers the kernel declares of a shared tile (1 unless a ring buffers it)."""
        return self.buffers.get(id(shared), 1)


def enabled() -> bool:
    return os.environ.get("LPIR_CUDA_ASYNC_COPY", "1") != "0"


def plan_staging(kernel: Kernel, users: dict[int, list[Operation]], budget: int) -> StagingPlan:
    """The rings of the kernel's pipelined loops to stage, within `budget` bytes of shared
    memory."""
    plan = StagingPlan()
    if not enabled():
        return plan
    loops = [op for op in kernel.walk() if isinstance(op, ForOp) and (op.stages or 0) >= 2]
    candidates = [(loop, ring) for loop in loops for ring in _rings(loop, users, kernel)]
    candidates.sort(key=lambda candidate: not candidate[1].buffered)  # buffers first (stable)
    for loop, ring in candidates:
        if ring.nbytes > budget:
            continue
        budget -= ring.nbytes
        plan.rings.setdefault(id(loop), []).append(ring)
        plan.fetches[id(ring.fetch)] = (loop, ring)
        plan.prologue.update(id(load) for load in ring.prologue)
        if ring.store is not None:
            plan.buffers[id(ring.store.memory)] = ring.slots
    for rings in plan.rings.values():  # emitted in the order of the loop's arguments
        rings.sort(key=lambda ring: ring.position)
    return plan


def _rings(loop: ForOp, users: dict[int, list[Operation]], kernel: Kernel) -> list[StagedRing]:
    """The stageable rings of a pipelined loop, in the order of its arguments."""
    found = []
    for chain, fetch in ring_chains(loop):
        ring = _buffered(loop, chain, fetch, users, kernel) or _stageable(
            loop, chain, fetch, users, kernel
        )
        if ring is not None:
            ring.position = chain[0]
            found.append(ring)
    return found


def ring_chains(loop: ForOp) -> list[tuple[list[int], LoadThreadOp]]:
    """The rings of a pipelined loop: the indices of its arguments r0 .. r(A-1) (r(j) yields
    r(j+1)) and the body's load that the last one takes."""
    body = loop.body.ops
    terminator = body[-1] if body else None
    if not isinstance(terminator, YieldOp):
        return []
    in_body = {id(op) for op in body}
    args, yielded = loop.iter_args, terminator.operands
    chains = []
    for last, value in enumerate(yielded):
        fetch = value.owner
        if not isinstance(fetch, LoadThreadOp) or id(fetch) not in in_body:
            continue
        chain = [last]
        while True:
            before = [j for j, v in enumerate(yielded) if v is args[chain[0]]]
            if len(before) != 1 or before[0] in chain:
                break
            chain.insert(0, before[0])
        chains.append((chain, fetch))
    return chains


def _ring_parts(
    loop: ForOp, chain: list[int], fetch: LoadThreadOp, users: dict[int, list[Operation]]
) -> tuple[list[Value], list[LoadThreadOp], int] | None:
    """(arguments, prologue loads, cp.async bytes) of a ring that is the pipeline's pattern
    exactly, S - 1 tiles ahead, in chunks cp.async can copy; None for any other."""
    args = [loop.iter_args[i] for i in chain]
    owners = [loop.inits[i].owner for i in chain]
    prologue = [load for load in owners if isinstance(load, LoadThreadOp)]
    terminator = loop.body.ops[-1]
    if len(prologue) != len(owners):
        return None
    if any(users.get(id(load.result)) != [loop] for load in prologue):
        return None
    if users.get(id(fetch.result)) != [terminator]:
        return None
    if any(users.get(id(arg), []) != [terminator] for arg in args[1:]):
        return None
    if any(users.get(id(loop.results[i])) for i in chain):
        return None
    chunk = _chunk_bytes(fetch)
    if chunk is None or not all(_chunk_bytes(load) == chunk for load in prologue):
        return None
    if loop.stages is None or len(args) != loop.stages - 1:
        return None
    return args, prologue, chunk


def _stageable(
    loop: ForOp,
    chain: list[int],
    fetch: LoadThreadOp,
    users: dict[int, list[Operation]],
    kernel: Kernel,
) -> StagedRing | None:
    parts = _ring_parts(loop, chain, fetch, users)
    if parts is None:
        return None
    if not depends_on_block_index(fetch.operands[1:]) or served_from_cache(fetch, kernel):
        return None
    args, prologue, chunk = parts
    tile_bytes = len(fetch.offsets) * c_types.byte_size(fetch.access_dtype)
    return StagedRing(args, prologue, fetch, chunk, tile_bytes // chunk, kernel.threads)


def _buffered(
    loop: ForOp,
    chain: list[int],
    fetch: LoadThreadOp,
    users: dict[int, list[Operation]],
    kernel: Kernel,
) -> StagedRing | None:
    """The ring as copies straight into buffers of the shared tile its tiles are stored to
    (the module docstring says when); None where it is not one."""
    parts = _ring_parts(loop, chain, fetch, users)
    if parts is None:
        return None
    args, prologue, chunk = parts
    store = _only_store(args[0], users, loop)
    if store is None or not _buffers_are_ordered(loop, store, users):
        return None
    size = c_types.byte_size(store.access_dtype)
    if size != c_types.byte_size(fetch.access_dtype):
        return None
    chunk = math.gcd(chunk, min(16, store.vector_width * size))
    address_ops = invariant_ops(store.base, loop)
    if chunk not in CHUNK_BYTES or address_ops is None:
        return None
    tile_bytes = len(fetch.offsets) * size
    ring = StagedRing(args, prologue, fetch, chunk, tile_bytes // chunk, kernel.threads)
    ring.store, ring.address_ops = store, address_ops
    return ring


def _only_store(
    tile: Value, users: dict[int, list[Operation]], loop: ForOp
) -> StoreThreadOp | None:
    """The unmasked store of the whole tile into a shared allocation, when the loop body
    does nothing else with it."""
    (store, *others) = users.get(id(tile), [None])
    if others or store is None or not stores_whole_into_shared(store, tile):
        return None
    assert isinstance(store, StoreThreadOp)  # stores_whole_into_shared checked it (a bool)
    if not any(op is store for op in loop.body.ops):
        return None
    if not isinstance(store.memory.owner, AllocSharedOp):
        return None
    return store


def _buffers_are_ordered(
    loop: ForOp, store: StoreThreadOp, users: dict[int, list[Operation]]
) -> bool:
    """Whether the shared tile is written by `store` alone and read only in the loop body
    after it, each read after a barrier that follows the store, and a barrier after the last
    read: then S buffers of it, filled ahead, are read only once filled and refilled only once
    read."""
    body = loop.body.ops
    position = {id(op): index for index, op in enumerate(body)}
    readers = [op for op in users.get(id(store.memory), []) if op is not store]
    if not readers or any(op.name not in READS_MEMORY or id(op) not in position for op in readers):
        return False
    barriers = [index for index, op in enumerate(body) if isinstance(op, BarrierOp)]
    written = position[id(store)]
    for reader in readers:
        if not any(written < barrier < position[id(reader)] for barrier in barriers):
            return False
    last_read = max(position[id(reader)] for reader in readers)
    return any(barrier > last_read for barrier in barriers)


def invariant_ops(value: Value, loop: ForOp) -> list[Operation] | None:
    """The loop body's ops that compute `value`, in order, when it is the same in every
    iteration (pure ops of values from outside the loop); None when it is not."""
    found = loop_slice([value], loop)
    if found is None or found.reads_induction:
        return None
    return found.ops


def _chunk_bytes(load: LoadThreadOp) -> int | None:
    """The bytes of each cp.async of a load (the largest of 16, 8, 4 that divides its vector
    groups: a 12-byte group of u3 weights is three), or None when cp.async cannot do it."""
    if not isinstance(load.memory.type, GlobalType):
        return None
    size = c_types.byte_size(load.access_dtype)
    chunk = math.gcd(load.vector_width * size, 16)
    lanes = chunk // size if chunk >= size else 0
    if chunk not in CHUNK_BYTES or not lanes or len(load.offsets) % lanes:
        return None
    return chunk
