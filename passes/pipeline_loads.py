"""pipeline-loads: issue a loop's global loads `stages - 1` iterations ahead of their use.

Requires: thread IR (after vectorize: each `ld` is the access the backend will issue).
Guarantees: in a `for` loop with S = `stages` >= 2 (the loop's own `stages`, else the target's
default; at most the loop's trip count where that is a constant), every pipelinable load is
issued S - 1 iterations before the iteration that uses it: the loop carries the S - 1 tiles
already requested, each iteration requests the tile of the iteration S - 1 steps on and uses
the oldest. S tiles are in registers at once. A GPU thread
does not wait for a load until it uses the value, so the memory latency of one iteration
overlaps the arithmetic of the S - 1 before it; without this, every iteration waits for its
own loads (the first instruction that reads them stalls for the whole round trip).

A load that other blocks make alike (`served_from_cache`: its address does not depend on the
block index, as gemv's x; or a small operand several threads load alike that many blocks
share, as a split-K GEMV's share of x) is kept one iteration ahead, not S - 1: those blocks
read the same bytes, so they come from cache, and S - 1 register copies of them would cost
occupancy (64 x 128 gemv tiles, 4 stages: 96 of 255 registers were copies of x). Unless the
loop only stores the tile into shared memory: then the CUDA backend copies the S - 1 tiles
straight into buffers of the shared tile, and no register holds them.

A load is pipelinable when it reads a global tensor that nothing in the loop writes, sits
directly in the loop's body, and its address and mask are computed from the induction variable
and values from outside the loop by pure ops (no loop-carried value, no other load). The first
tiles are requested before the loop; where the loop may not run (a bound read at run time:
paged attention's context length), those requests are masked by `lower < upper`, so an empty
loop reads nothing (its indices would lie outside what the masks were decided for). The
prefetched iteration's value is clamped to the loop's last value: the tile beyond the
end is never read, and the address and mask computations see only values the induction
variable itself takes, so the bounds and alignment facts that decided the loads' masks and
vector widths still hold. The last S - 1 iterations therefore request the last tile again
(from cache); nothing is computed differently. The loop records the S it was pipelined with
(`stages S`). A backend keeps the tiles in registers and unrolls the loop one more time than
a load keeps tiles ahead, so that they change registers by renaming instead of copies, or
keeps them elsewhere (the CUDA backend stages tiles that differ per block in shared memory
with cp.async: backends/cuda/staging.py).
"""

from __future__ import annotations

from lpir.passes.base import Pass, register_pass

from lpir.ir.analysis import (
    loop_slice,
    served_from_cache,
    stores_whole_into_shared,
)
from lpir.ir.core import Module, Operation, Value
from lpir.ir.effects import stored_arguments
from lpir.ir.loops import trip_count
from lpir.ir.ops import BinaryOp, ConstantOp, ForOp, LoadThreadOp, SplatOp, YieldOp
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import GlobalType

# Without `stages` in the source, loops on a GPU keep one iteration of loads in flight ahead;
# the CPU's out-of-order cores and caches do that themselves.
DEFAULT_STAGES = {"cuda": 2}


def address_slice(load: LoadThreadOp, loop: ForOp) -> list[Operation] | None:
    """The body's ops that compute the load's address and mask, in order; None when the load
    cannot move (a loop-carried value or an impure op feeds it, or the address ignores the
    induction variable: such a load belongs before the loop, not one iteration ahead)."""
    found = loop_slice(load.operands[1:], loop)
    if found is None or not found.reads_induction:
        return None
    return found.ops


def stored_to_shared_only(load: LoadThreadOp, loop: ForOp) -> bool:
    """Whether the loop's only use of the loaded tile is one plain store of it into shared
    memory (which the CUDA backend can replace by copies straight into the shared tile)."""
    uses = [op for op in loop.walk() if any(v is load.result for v in op.operands)]
    return len(uses) == 1 and stores_whole_into_shared(uses[0], load.result)


class _Pipeliner(Rewriter):
    def __init__(self, default_stages: int):
        super().__init__()
        self.default_stages = default_stages

    def rewrite(self, op: Operation) -> list[Value]:
        if isinstance(op, ForOp):
            return self.pipeline(op)
        return self.copy(op).results

    # ---- which loads ------------------------------------------------------------------------
    def pipelinable(self, loop: ForOp) -> list[tuple[LoadThreadOp, list[Operation]]]:
        written = stored_arguments(loop)
        found = []
        for op in loop.body.ops:
            if not isinstance(op, LoadThreadOp) or not isinstance(op.memory.type, GlobalType):
                continue
            if id(op.memory) in written:
                continue
            ops = address_slice(op, loop)
            if ops is not None:
                found.append((op, ops))
        return found

    def trip_count(self, loop: ForOp) -> int | None:
        """How many iterations the loop runs, where its bounds and step are constants."""
        lower, upper, step = (self.analysis.facts(v).constant for v in loop.operands[:3])
        if lower is None or upper is None or step is None or step <= 0:
            return None
        return trip_count(lower, upper, step)

    def runs_at_least_once(self, loop: ForOp) -> bool:
        lower, upper = (self.analysis.facts(v) for v in (loop.lower, loop.upper))
        return lower.hi is not None and upper.lo is not None and lower.hi < upper.lo

    # ---- the rewrite ------------------------------------------------------------------------
    def pipeline(self, loop: ForOp) -> list[Value]:
        stages = loop.stages if loop.stages is not None else self.default_stages
        trips = self.trip_count(loop)
        if trips is not None:  # more tiles ahead than iterations would only request the last
            stages = max(1, min(stages, trips))
        loads = self.pipelinable(loop) if stages >= 2 else []
        if not loads:
            return self.copy(loop).results
        depths = [self.depth(load, stages, loop) for load, _ in loads]
        lower, upper, step = self.map_all(loop.operands[:3])
        last = self.last_value(lower, upper, step)
        runs = None  # where the loop may not run: whether it does, masking the first requests
        if not self.runs_at_least_once(loop):
            runs = self.builder.add(BinaryOp.create("lt", lower, upper))
        rings = [
            [
                self.issue(loop, load, ops, self.clamped(lower, step, j, last), runs)
                for j in range(ahead)
            ]
            for (load, ops), ahead in zip(loads, depths)
        ]
        carried_names = [a.name_hint for a in loop.iter_args]
        ring_names = [f"{load.memory.name_hint}_ahead" for load, _ in loads]
        new = ForOp.create(
            lower,
            upper,
            step,
            self.map_all(loop.inits) + [tile for ring in rings for tile in ring],
            loop.induction_variable.name_hint,
            carried_names + [n for n, ahead in zip(ring_names, depths) for _ in range(ahead)],
            [r.name_hint for r in loop.results] + [None] * sum(depths),
        )
        new.attributes = {**loop.attributes, "stages": stages}
        new.location = loop.location
        self.builder.insert(new)
        self.fill_body(loop, new, loads, depths, last)
        return new.results[: len(loop.results)]

    def depth(self, load: LoadThreadOp, stages: int, loop: ForOp) -> int:
        """How many tiles of the load to keep ahead: S - 1, or 1 for a load that several
        blocks make alike (served from cache) and that the loop uses for more than a store
        into shared memory."""
        if served_from_cache(load, self.kernel) and not stored_to_shared_only(load, loop):
            return 1
        return stages - 1

    def fill_body(
        self,
        loop: ForOp,
        new: ForOp,
        loads: list[tuple[LoadThreadOp, list[Operation]]],
        depths: list[int],
        last: Value,
    ) -> None:
        iv = new.induction_variable
        self.replace(loop.induction_variable, iv)
        count = len(loop.iter_args)
        for old, arg in zip(loop.iter_args, new.iter_args[:count]):
            self.replace(old, arg)
        ring_args = new.iter_args[count:]
        starts = [sum(depths[:i]) for i in range(len(depths))]
        rings = [ring_args[at : at + ahead] for at, ahead in zip(starts, depths)]
        moved = {id(load) for load, _ in loads}
        with self.builder.at(new.body):
            step = self.map(loop.step)
            next_tiles = {a: self.clamped(iv, step, a, last) for a in sorted(set(depths))}
            fetched = [
                self.issue(loop, load, ops, next_tiles[ahead])
                for (load, ops), ahead in zip(loads, depths)
            ]
            for (load, _), ring in zip(loads, rings):
                self.replace(load.result, ring[0])
            for op in loop.body.ops:
                if id(op) in moved:
                    continue
                if isinstance(op, YieldOp):
                    shifted = [v for ring, tile in zip(rings, fetched) for v in [*ring[1:], tile]]
                    self.builder.insert(YieldOp.create(self.map_all(op.operands) + shifted))
                    continue
                self.rewrite_op(op)

    def issue(
        self,
        loop: ForOp,
        load: LoadThreadOp,
        ops: list[Operation],
        iteration: Value,
        runs: Value | None = None,
    ) -> Value:
        """A copy of `load` and its address computation for the iteration `iteration`, its
        lanes masked off where `runs` (a bool scalar) is false."""
        local = {id(loop.induction_variable): iteration}

        def value(old: Value) -> Value:
            return local.get(id(old)) or self.map(old)

        for op in ops:
            copied = self.copy(op, operands=[value(v) for v in op.operands])
            for old, new in zip(op.results, copied.results):
                local[id(old)] = new
        mask = value(load.mask) if load.mask is not None else None
        if runs is not None:
            lanes = self.builder.add(SplatOp.create_vector(runs, len(load.offsets)))
            mask = lanes if mask is None else self.builder.add(BinaryOp.create("and", mask, lanes))
        copied = LoadThreadOp.create(
            value(load.memory),
            value(load.base),
            load.offsets,
            mask,
            load.vector_width,
            load.attributes.get("dtype"),
            name=load.result.name_hint,
        )
        copied.attributes = dict(load.attributes)
        copied.location = load.location
        return self.builder.add(copied)

    def clamped(self, start: Value, step: Value, steps: int, last: Value) -> Value:
        """min(start + steps * step, last); just `start` for no steps."""
        if steps == 0:
            return start
        dt = start.type.dtype
        offset = step
        if steps > 1:
            count = self.builder.add(ConstantOp.create(steps, dt))
            offset = self.builder.add(BinaryOp.create("mul", step, count))
        ahead = self.builder.add(BinaryOp.create("add", start, offset))
        return self.builder.add(BinaryOp.create("min", ahead, last))

    def last_value(self, lower: Value, upper: Value, step: Value) -> Value:
        """The induction variable's last value: lower + (upper - 1 - lower) / step * step."""
        dt = lower.type.dtype
        one = self.builder.add(ConstantOp.create(1, dt))
        span = self.builder.add(BinaryOp.create("sub", upper, one))
        span = self.builder.add(BinaryOp.create("sub", span, lower))
        count = self.builder.add(BinaryOp.create("div", span, step))
        offset = self.builder.add(BinaryOp.create("mul", count, step))
        return self.builder.add(BinaryOp.create("add", lower, offset))


@register_pass
class PipelineLoadsPass(Pass):
    name = "pipeline-loads"
    stage = "thread"

    def run(self, module: Module) -> Module:
        return _Pipeliner(DEFAULT_STAGES.get(self.target, 1)).run(module)
