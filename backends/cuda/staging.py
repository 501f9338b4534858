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
`LPIR_CUDA_ASYNC_COPY=0` in the environment turns staging off (to compare the two).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from lpir.backends.cuda import c_types

from lpir.ir.analysis import depends_on_block_index, served_from_cache
from lpir.ir.core import Kernel, Operation, Value
from lpir.ir.ops import ForOp, LoadThreadOp, YieldOp
from lpir.ir.types import GlobalType

CHUNK_BYTES = (4, 8, 16)  # the sizes cp.async copies


@dataclass
class StagedRing:
    """One pipelined load kept in per-thread shared-memory slots.

    Attributes:
        args: the loop's ring arguments r0 .. r(A-1) (A = S - 1 tiles ahead).
        prologue: the loads of tiles 0 .. A-1, issued before the loop.
        fetch: the load in the body, of the tile A iterations ahead.
        chunk_bytes: bytes of one cp.async; chunks: how many make one thread's tile.
        threads: threads per block (slots are interleaved by thread).
    """

    args: list[Value]
    prologue: list[LoadThreadOp]
    fetch: LoadThreadOp
    chunk_bytes: int
    chunks: int
    threads: int
    name: str = ""

    @property
    def ahead(self) -> int:
        return len(self.args)

    @property
    def slots(self) -> int:
        return self.ahead + 1

    @property
    def nbytes(self) -> int:
        return self.slots * self.chunks * self.chunk_bytes * self.threads


@dataclass
class StagingPlan:
    """The staged rings of a kernel, by loop, with the loads they take over."""

    rings: dict[int, list[StagedRing]] = field(default_factory=dict)  # id(ForOp) -> rings
    fetches: dict[int, tuple[ForOp, StagedRing]] = field(default_factory=dict)  # id(load)
    prologue: set[int] = field(default_factory=set)  # id(load)

    @property
    def nbytes(self) -> int:
        return sum(ring.nbytes for rings in self.rings.values() for ring in rings)


def enabled() -> bool:
    return os.environ.get("LPIR_CUDA_ASYNC_COPY", "1") != "0"


def plan_staging(kernel: Kernel, users: dict[int, list[Operation]], budget: int) -> StagingPlan:
    """The rings of the kernel's pipelined loops to stage, within `budget` bytes of shared
    memory."""
    plan = StagingPlan()
    if not enabled():
        return plan
    for op in kernel.walk():
        if not isinstance(op, ForOp) or not op.stages or op.stages < 2:
            continue
        for ring in _rings(op, users, kernel):
            if ring.nbytes > budget:
                continue
            budget -= ring.nbytes
            plan.rings.setdefault(id(op), []).append(ring)
            plan.fetches[id(ring.fetch)] = (op, ring)
            plan.prologue.update(id(load) for load in ring.prologue)
    return plan


def _rings(loop: ForOp, users, kernel: Kernel) -> list[StagedRing]:
    """The stageable rings of a pipelined loop, in the order of its arguments."""
    found = []
    for chain, fetch in ring_chains(loop):
        ring = _stageable(loop, chain, fetch, users, kernel)
        if ring is not None:
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


def _stageable(loop: ForOp, chain: list[int], fetch: LoadThreadOp, users, kernel: Kernel):
    args = [loop.iter_args[i] for i in chain]
    prologue = [loop.inits[i].owner for i in chain]
    terminator = loop.body.ops[-1]
    if not all(isinstance(load, LoadThreadOp) for load in prologue):
        return None
    if any(users.get(id(load.result)) != [loop] for load in prologue):  # type: ignore[union-attr]
        return None
    if users.get(id(fetch.result)) != [terminator]:
        return None
    if any(users.get(id(arg), []) != [terminator] for arg in args[1:]):
        return None
    if any(users.get(id(loop.results[i])) for i in chain):
        return None
    chunk = _chunk_bytes(fetch)
    if chunk is None or not all(_chunk_bytes(load) == chunk for load in prologue):  # type: ignore[arg-type]
        return None
    if len(args) != loop.stages - 1:  # type: ignore[operator]
        return None
    if not depends_on_block_index(fetch.operands[1:]) or served_from_cache(fetch, kernel):
        return None
    tile_bytes = len(fetch.offsets) * c_types.byte_size(fetch.access_dtype)
    return StagedRing(args, prologue, fetch, chunk, tile_bytes // chunk, kernel.threads)  # type: ignore[arg-type]


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
