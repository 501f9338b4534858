"""lower-to-threads' sorts (`sort`, `argsort`): each line of a tile axis sorted by a bitonic
network, in the thread's registers where it holds whole lines, and through shared memory
between the threads that split a line into runs (layout-selection converts where a thread's
elements of a line are not one run, as for a scan).

The thread's slots are put in line order (as for a scan, `thread_scans.lines_in_order`); a
line of n = 2^m elements takes m (m + 1) / 2 compare-exchange steps, each over the thread's
whole vector: every lane reads its partner's key, value and position (one shuffle each, or,
where the partner lies in another thread's run, through shared memory between barriers),
decides which of the two comes first, and keeps the first or the second as the network
says. Ties are broken by the original position, so the network orders the elements totally
and the sort is stable (equal keys, -0.0 and 0.0 among them, keep their order); NaN comes
after every number ascending and before every number descending, as the interpreter orders.
"""

from __future__ import annotations

from lpir.passes.thread_lowering import ThreadLowering
from lpir.passes.thread_scans import back_in_place, line_runs

from lpir.dtypes import dtype
from lpir.errors import VerifyError
from lpir.ir.core import Value
from lpir.ir.ops import (
    AllocSharedOp,
    BarrierOp,
    BinaryOp,
    LoadThreadOp,
    SelectOp,
    ShuffleOp,
    SortOp,
    SplatOp,
    StoreThreadOp,
    UnaryOp,
    VectorConstantOp,
)
from lpir.ir.types import SharedType
from lpir.layout import Digit

I32 = dtype("i32")

# The CUDA emitter writes each lane of a step as statements of its own: a thread sorting 64
# elements (21 steps) is 5000 lines of CUDA C, 10 s of nvcc; 128 is 40 s, 256 six minutes.
# Past this many lane-steps a thread the GPU sort is refused with the sizes that fit.
CUDA_LANE_STEPS = 64 * 21


class SortLowering(ThreadLowering):
    """`lower_SortOp`: a bitonic sort in each thread's registers and, where threads split the
    lines into runs, through shared memory between them."""

    def lower_SortOp(self, op: SortOp) -> list[Value]:
        layout, digit, run, order = line_runs(op)
        length = layout.shape[op.axis]
        keys, values = (self.shuffle(self.map(v), order) for v in op.operands)
        lanes = len(order)
        steps = bitonic_steps(length)
        if self.target == "cuda" and lanes * len(steps) > CUDA_LANE_STEPS:
            raise _too_big_for_cuda(lanes, run, length, layout.threads)
        network = _Network(self, op, digit, run, lanes, layout.threads)
        positions = network.positions()
        for size, distance in steps:
            step = [keys, values, positions]
            theirs = network.partners(step, distance)
            first = self.comes_first(op, keys, positions, theirs[0], theirs[2])
            keep = self.add(BinaryOp.create("xor", first, network.later(size, distance)))
            keys, values, positions = (
                self.add(SelectOp.create(keep, mine, other)) for mine, other in zip(step, theirs)
            )
        return [self.shuffle(values, back_in_place(order))]

    def comes_first(
        self, op: SortOp, keys: Value, positions: Value, other_keys: Value, other_positions: Value
    ) -> Value:
        """Lanewise: whether (key, position) sorts before (other key, other position)."""

        def binary(name: str, a: Value, b: Value) -> Value:
            return self.add(BinaryOp.create(name, a, b))

        ahead = binary("gt" if op.descending else "lt", keys, other_keys)
        tie = binary("eq", keys, other_keys)
        if keys.type.dtype.is_float:  # NaN above every number, NaNs tied
            nan, other_nan = binary("ne", keys, keys), binary("ne", other_keys, other_keys)
            number = self.add(UnaryOp.create("not", nan))
            other_number = self.add(UnaryOp.create("not", other_nan))
            nan_ahead = (
                binary("and", nan, other_number)
                if op.descending
                else binary("and", number, other_nan)
            )
            ahead = binary("or", ahead, nan_ahead)
            tie = binary("or", tie, binary("and", nan, other_nan))
        earlier = binary("lt", positions, other_positions)
        return binary("or", ahead, binary("and", tie, earlier))


class _Network:
    """A thread's view of the bitonic network over lines split into `run`-element runs, one
    run a thread of each line, the runs told apart by `digit` (None: whole lines). Element x
    of a line is lane x % run of the run of chunk x // run."""

    def __init__(
        self,
        lowering: ThreadLowering,
        op: SortOp,
        digit: Digit | None,
        run: int,
        lanes: int,
        threads: int,
    ):
        self.lowering, self.digit, self.run, self.lanes = lowering, digit, run, lanes
        self.threads = threads
        index = lowering.index
        self.chunk: Value | int = 0
        if digit is not None:
            self.chunk = index.rem(index.div(lowering.tid, digit.stride), digit.size)
            dtypes = (op.operands[0].type.dtype, op.operands[1].type.dtype, I32)  # and positions
            self.scratch = [
                lowering.add(AllocSharedOp.create(SharedType(dt, (threads * lanes,)), "pairs"))
                for dt in dtypes
            ]

    def positions(self) -> Value:
        """Each lane's position along its line (ties are broken by it)."""
        within = [i % self.run for i in range(self.lanes)]
        lanes = self.lowering.add(VectorConstantOp.create(within, "i32"))
        if self.digit is None:
            return lanes
        start = self.lowering.index.value(self.lowering.index.mul(self.chunk, self.run))
        splat = self.lowering.add(SplatOp.create_vector(start, self.lanes))
        return self.lowering.add(BinaryOp.create("add", splat, lanes))

    def partners(self, step: list[Value], distance: int) -> list[Value]:
        """The vectors of `step` (keys, values, positions) as the partner of each lane holds
        them: element x ^ distance of its line, in this thread (distance < run) or in the
        thread of chunk c ^ (distance / run), exchanged through shared memory."""
        if distance < self.run:
            partners = [i ^ distance for i in range(self.lanes)]
            return [self.lowering.add(ShuffleOp.create([v], partners)) for v in step]
        assert self.digit is not None
        low, index = self.lowering, self.lowering.index
        stride, slots = low.scratch_slots(self.lanes, self.threads)
        own = index.value(index.mul(low.tid, stride))
        low.builder.insert(BarrierOp.create())  # (the last exchange's loads are done)
        for scratch, vector in zip(self.scratch, step):
            low.builder.insert(StoreThreadOp.create(scratch, own, vector, slots))
        low.builder.insert(BarrierOp.create())
        other = index.op("xor", self.chunk, distance // self.run)
        partner = index.add(low.tid, index.mul(index.sub(other, self.chunk), self.digit.stride))
        start = index.value(index.mul(partner, stride))
        return [low.add(LoadThreadOp.create(scratch, start, slots)) for scratch in self.scratch]

    def later(self, size: int, distance: int) -> Value:
        """Lanewise: whether the lane keeps the later of its pair: the upper element (bit
        `distance` of its position set) of a block of `size` sorting upwards (bit `size`
        clear; the last merge, size = the line, sorts up), the lower one of a block sorting
        downwards: the two bits' xor. A bit below the run is the lane's, known here; above
        it, the chunk's, known at run time."""
        low = self.lowering
        length = self.run * (self.digit.size if self.digit is not None else 1)
        known = [False] * self.lanes
        chunk_masks = []
        for mask in (distance, size):
            if mask == length:
                continue  # (no element has that bit)
            if mask < self.run:
                known = [k != (lane % self.run & mask > 0) for lane, k in enumerate(known)]
            else:
                chunk_masks.append(mask // self.run)
        later = low.add(VectorConstantOp.create(known, "bool"))
        for mask in chunk_masks:
            bit = low.index.op("ne", low.index.op("and", self.chunk, mask), 0)
            flip = low.add(SplatOp.create_vector(bit, self.lanes))
            later = low.add(BinaryOp.create("xor", later, flip))
        return later


def _too_big_for_cuda(lanes: int, run: int, length: int, threads: int) -> VerifyError:
    """The refusal of a GPU sort whose thread would hold `lanes` elements (runs of `run` of
    lines of `length`, the block's `threads` splitting the tile), with the threads a line and
    the lines a block that fit."""
    steps = len(bitonic_steps(length))
    lines = lanes // run
    held = f"{lanes} elements ({_lines(lines, 'whole line')} of {length})"
    if run != length:
        each = "a line" if lines == 1 else f"each of {lines} lines"
        held = f"{lanes} elements (a run of {run} of {each} of {length})"
    fit = 1  # the most elements of a line a thread may sort: a power of two, as the runs are
    while fit * 2 <= length and fit * 2 * steps <= CUDA_LANE_STEPS:
        fit *= 2
    per_line = length // fit
    block_lines = max(1, threads * lanes // length)  # the tile's lines (no replicas)
    remedies = []
    if block_lines == 1 and per_line <= 1024:
        remedies.append(f"threads({per_line}) for this line")
    elif block_lines * per_line <= 1024:
        remedies.append(f"threads({block_lines * per_line}) for these {block_lines} lines")
    if block_lines > 1 and threads >= per_line:
        fewer = _lines(threads // per_line, "line")
        remedies.append(f"{fewer} a block over its {threads} threads (a smaller tile)")
    elif block_lines > 1 and per_line <= 1024:
        remedies.append(f"one line a block over threads({per_line})")
    return VerifyError(
        f"each thread would hold {held} through the sort's {steps} steps: "
        f"{lanes * steps} compare-exchanges a thread, unrolled in the CUDA C (minutes of nvcc)",
        hint=f"on the GPU a thread sorts at most {fit} elements of a line of {length} ({fit} x "
        f"{steps} steps within {CUDA_LANE_STEPS}), so {per_line} threads a line: "
        + "; or ".join([*remedies, "sort on the cpu target"]),
    )


def _lines(count: int, noun: str) -> str:
    """`one line`, `4 lines`."""
    return f"one {noun}" if count == 1 else f"{count} {noun}s"


def bitonic_steps(length: int) -> list[tuple[int, int]]:
    """The (block size, partner distance) of each compare-exchange step of a bitonic sort of
    `length` (a power of two) elements."""
    steps = []
    size = 2
    while size <= length:
        distance = size // 2
        while distance >= 1:
            steps.append((size, distance))
            distance //= 2
        size *= 2
    return steps
