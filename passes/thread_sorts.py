"""lower-to-threads' sorts (`sort`, `argsort`): each line of a tile axis sorted by a bitonic
network, in the thread's registers where it holds whole lines, and through shared memory
between the threads that split a line into runs (layout-selection converts where a thread's
elements of a line are not one run, as for a scan).

The thread's slots are put in line order (as for a scan, `thread_scans.lines_in_order`); a
line of n = 2^m elements takes m (m + 1) / 2 compare-exchange steps over the thread's lanes:
every lane reads its partner's key, value and position (one shuffle each, or, where the
partner lies in another thread's run, through shared memory between barriers), decides which
of the two comes first, and keeps the first or the second as the network says. Ties are
broken by the original position, so the network orders the elements totally and the sort is
stable (equal keys, -0.0 and 0.0 among them, keep their order); NaN comes after every number
ascending and before every number descending, as the interpreter orders.

On the CPU the lanes are held in registers of `CPU_SORT_REGISTER_LANES` (a partner in another
register needs no shuffle, and the pair's registers are compared once), and keys of 32 bits
or fewer are packed with their positions into i64 lanes whose signed order is the sort's
(`packed_keys`): one comparison orders a pair. A thread's sort past `CPU_LANE_STEPS` (and on
the GPU `CUDA_LANE_STEPS`) is a located error naming the threads that fit.
"""

from __future__ import annotations

import math

from lpir.passes.thread_lowering import ThreadLowering
from lpir.passes.thread_scans import back_in_place, line_runs

from lpir.dtypes import DType
from lpir.errors import VerifyError
from lpir.ir.core import Value
from lpir.ir.ops import (
    AllocSharedOp,
    BarrierOp,
    BinaryOp,
    CastOp,
    LoadThreadOp,
    SelectOp,
    ShuffleOp,
    SortOp,
    SplatOp,
    StoreThreadOp,
    UnaryOp,
    VectorConstantOp,
    ViewOp,
)
from lpir.ir.types import SharedType, as_vector
from lpir.layout import Digit

# The CUDA emitter writes each lane of a step as statements of its own: a thread sorting 64
# elements (21 steps) is 5000 lines of CUDA C, 10 s of nvcc; 128 is 40 s, 256 six minutes.
# Past this many lane-steps a thread the GPU sort is refused with the sizes that fit.
CUDA_LANE_STEPS = 64 * 21

#: A CPU thread sorts its lanes in registers of this many (four AVX-512 registers of f32):
#: each compare-exchange step over a whole vector of 1024 lanes was a 1024-lane shuffle per
#: carried vector; in registers of 64 a partner in another register needs no shuffle.
#: Narrower registers make more operations for the passes and LLVM to go through: 16 lanes
#: compiled slower than 64.
CPU_SORT_REGISTER_LANES = 64

#: The network is unrolled into one basic block, whose instruction selection in LLVM takes
#: time faster than linear in its length: a thread's sort of 1024 elements (55 steps) took
#: 6 s of CPU to compile, of 2048 (66 steps) 20 s, of 4096 more than a minute. Past this many
#: lane-steps a thread (1024 elements of a line of 2048) the CPU sort is refused with the
#: threads that fit.
CPU_LANE_STEPS = 1024 * 66


class SortLowering(ThreadLowering):
    """`lower_SortOp`: a bitonic sort in each thread's registers and, where threads split the
    lines into runs, through shared memory between them."""

    def lower_SortOp(self, op: SortOp) -> list[Value]:
        layout, digit, run, order = line_runs(op)
        length = layout.shape[op.axis]
        lanes = len(order)
        steps = bitonic_steps(length)
        if self.target == "cuda" and lanes * len(steps) > CUDA_LANE_STEPS:
            raise _too_big_for_cuda(lanes, run, length, layout.threads)
        if self.target != "cuda" and lanes * len(steps) > CPU_LANE_STEPS:
            raise _too_big_for_cpu(lanes, length, layout.threads)
        width = lanes if self.target == "cuda" else math.gcd(lanes, CPU_SORT_REGISTER_LANES)
        network = _Network(self, digit, run, lanes, layout.threads, width)
        keys, values = (self.map(v) for v in op.operands)
        if self.target != "cuda" and _packs(keys.type.dtype):
            packed_keys = self.packed_keys(op, keys, network.positions(order))
            step = [network.split(packed_keys, order), network.split(values, order)]
        else:
            in_order = list(range(lanes))
            step = [network.split(keys, order), network.split(values, order)]
            step.append(network.split(network.positions(), in_order))
        network.allocate_scratch([v[0].type.dtype for v in step])
        for size, distance in steps:
            later = network.later(size, distance, packed=len(step) == 2)
            if width <= distance < run:
                step = self.exchange_registers(op, network, step, later, distance)
                continue
            theirs = network.partners(step, distance)
            new: list[list[Value]] = [[] for _ in step]
            for r in range(network.registers):
                keep = self.keeps(op, [v[r] for v in step], [v[r] for v in theirs], later[r])
                for vectors, own, other in zip(new, step, theirs):
                    vectors.append(self.add(SelectOp.create(keep, own[r], other[r])))
            step = new
        return [network.join(step[1], back_in_place(order))]

    def exchange_registers(
        self,
        op: SortOp,
        network: _Network,
        step: list[list[Value]],
        later: list[Value],
        distance: int,
    ) -> list[list[Value]]:
        """A step whose partners lie in another register of the thread: registers r and
        r ^ (distance / width) swap lanes where the pair is out of order. The order is
        strict (ties broken by position), so the upper register's lanes keep what the lower
        register's keep: one comparison a pair of registers."""
        apart = distance // network.width
        new = [list(registers) for registers in step]
        for r in range(network.registers):
            if r & apart:
                continue
            p = r | apart
            keep = self.keeps(op, [v[r] for v in step], [v[p] for v in step], later[r])
            for vectors, registers in zip(new, step):
                vectors[r] = self.add(SelectOp.create(keep, registers[r], registers[p]))
                vectors[p] = self.add(SelectOp.create(keep, registers[p], registers[r]))
        return new

    def packed_keys(self, op: SortOp, keys: Value, positions: Value) -> Value:
        """i64 lanes whose signed order is the sort's order of (key, position): the key as
        an integer in the high half (a float's bits made monotone, -0.0 as 0.0, every NaN
        as one NaN above infinity; inverted for a descending sort), the position below. One
        comparison then orders a pair, where keys and positions compared apart took up to
        thirteen operations a step."""
        size = as_vector(keys.type).size

        def constant(value: float | int, dt: str) -> Value:
            return self.add(VectorConstantOp.create([value] * size, dt))

        def binary(name: str, a: Value, b: Value) -> Value:
            return self.add(BinaryOp.create(name, a, b))

        if keys.type.dtype.is_float:
            if keys.type.dtype.name != "f32":
                keys = self.add(CastOp.create(keys, "f32"))  # (exact: every such key fits)
            zero = constant(0.0, "f32")
            keys = self.add(SelectOp.create(binary("eq", keys, zero), zero, keys))
            nan = binary("ne", keys, keys)
            keys = self.add(SelectOp.create(nan, constant(float("nan"), "f32"), keys))
            bits = self.add(ViewOp.create(keys, "i32"))
            negative = binary("lt", bits, constant(0, "i32"))
            flipped = binary("xor", bits, constant(0x7FFFFFFF, "i32"))
            keys = self.add(SelectOp.create(negative, flipped, bits))
        wide = self.add(CastOp.create(keys, "i64"))
        if op.descending:  # (~k = -k - 1 reverses the order and never overflows)
            wide = self.add(UnaryOp.create("not", wide))
        high = binary("shl", wide, constant(32, "i64"))
        return binary("or", high, self.add(CastOp.create(positions, "i64")))

    def keeps(self, op: SortOp, mine: list[Value], theirs: list[Value], later: Value) -> Value:
        """Lanewise: whether a lane keeps its own element (its carried vectors: packed keys
        and values, or keys, values and positions) rather than its partner's: where its own
        comes first, unless the lane keeps the later of the pair (`later`, `_Network.later`).

        Packed keys fold `later` (i64 lanes of 0 or -1) into the comparison: ~k reverses the
        signed order, and two packed keys are never equal, so ~a < ~b is "not a < b". The
        keep then comes straight from one comparison: a bool vector xor-ed with `later` is
        i1 logic between the comparison and the selects, which x86 without AVX-512 (no mask
        registers) computes in bytes, packing every i64 comparison's mask down and widening
        it back for each select: a thread's sort of 256 f32 compiled 7x slower on AVX2 than
        on AVX-512, and of 1024 took two minutes."""
        if len(mine) == 2:
            return self.add(
                BinaryOp.create(
                    "lt",
                    self.add(BinaryOp.create("xor", mine[0], later)),
                    self.add(BinaryOp.create("xor", theirs[0], later)),
                )
            )
        return self.add(BinaryOp.create("xor", self.comes_first(op, mine, theirs), later))

    def comes_first(self, op: SortOp, mine: list[Value], theirs: list[Value]) -> Value:
        """Lanewise: whether a lane's element (its carried keys, values and positions) sorts
        before its partner's."""

        def binary(name: str, a: Value, b: Value) -> Value:
            return self.add(BinaryOp.create(name, a, b))

        keys, _, positions = mine
        other_keys, _, other_positions = theirs
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
    of a line is lane x % run of the run of chunk x // run. The thread's lanes are held in
    registers of `width` lanes (lane i in register i // width)."""

    def __init__(
        self,
        lowering: ThreadLowering,
        digit: Digit | None,
        run: int,
        lanes: int,
        threads: int,
        width: int,
    ):
        self.lowering, self.digit, self.run, self.lanes = lowering, digit, run, lanes
        self.threads, self.width, self.registers = threads, width, lanes // width
        index = lowering.index
        self.chunk: Value | int = 0
        self.scratch: list[Value] = []
        if digit is not None:
            self.chunk = index.rem(index.div(lowering.tid, digit.stride), digit.size)

    def allocate_scratch(self, dtypes: list[DType]) -> None:
        """Shared memory for the exchanges of the carried vectors, where threads split lines."""
        if self.digit is None:
            return
        size = self.threads * self.lanes
        self.scratch = [
            self.lowering.add(AllocSharedOp.create(SharedType(dt, (size,)), "pairs"))
            for dt in dtypes
        ]

    def split(self, vector: Value, order: list[int]) -> list[Value]:
        """The registers of `vector`'s slots taken in `order`."""
        return [
            self.lowering.shuffle(vector, order[r * self.width : (r + 1) * self.width])
            for r in range(self.registers)
        ]

    def join(self, registers: list[Value], indices: list[int]) -> Value:
        """One vector of the registers' lanes picked by `indices`."""
        if len(registers) == 1:
            return self.lowering.shuffle(registers[0], indices)
        return self.lowering.add(ShuffleOp.create(registers, indices))

    def positions(self, order: list[int] | None = None) -> Value:
        """Each lane's position along its line (ties are broken by it): lane i of the line
        order, or, given the `order` of the slots, slot order[i]."""
        within = [i % self.run for i in range(self.lanes)]
        if order is not None:
            by_slot = [0] * self.lanes
            for lane, slot in enumerate(order):
                by_slot[slot] = within[lane]
            within = by_slot
        lanes = self.lowering.add(VectorConstantOp.create(within, "i32"))
        if self.digit is None:
            return lanes
        start = self.lowering.index.value(self.lowering.index.mul(self.chunk, self.run))
        splat = self.lowering.add(SplatOp.create_vector(start, self.lanes))
        return self.lowering.add(BinaryOp.create("add", splat, lanes))

    def partners(self, step: list[list[Value]], distance: int) -> list[list[Value]]:
        """The registers of `step` (the carried vectors) as the partner of each lane holds
        them: element x ^ distance of its line, in the same register (distance below the
        width and the run) or in the thread of chunk c ^ (distance / run), exchanged through
        shared memory."""
        if distance < self.run:  # (and below the width: exchange_registers takes the rest)
            partners = [i ^ distance for i in range(self.width)]
            return [
                [self.lowering.add(ShuffleOp.create([r], partners)) for r in registers]
                for registers in step
            ]
        assert self.digit is not None
        low, index = self.lowering, self.lowering.index
        stride, slots = low.scratch_slots(self.lanes, self.threads)
        own = index.value(index.mul(low.tid, stride))
        low.builder.insert(BarrierOp.create())  # (the last exchange's loads are done)
        for scratch, registers in zip(self.scratch, step):
            for r, register in enumerate(registers):
                lanes = self.register_slots(slots, r)
                low.builder.insert(StoreThreadOp.create(scratch, own, register, lanes))
        low.builder.insert(BarrierOp.create())
        other = index.op("xor", self.chunk, distance // self.run)
        partner = index.add(low.tid, index.mul(index.sub(other, self.chunk), self.digit.stride))
        start = index.value(index.mul(partner, stride))
        return [
            [
                low.add(LoadThreadOp.create(scratch, start, self.register_slots(slots, r)))
                for r in range(self.registers)
            ]
            for scratch in self.scratch
        ]

    def register_slots(self, slots: list[int], register: int) -> list[int]:
        """The scratch offsets of one register's lanes."""
        return slots[register * self.width : (register + 1) * self.width]

    def later(self, size: int, distance: int, packed: bool = False) -> list[Value]:
        """Lanewise, a register each: whether the lane keeps the later of its pair: the
        upper element (bit `distance` of its position set) of a block of `size` sorting
        upwards (bit `size` clear; the last merge, size = the line, sorts up), the lower one
        of a block sorting downwards: the two bits' xor. A bit below the run is the lane's,
        known here; above it, the chunk's, known at run time. Bool lanes, or for `packed`
        keys i64 lanes of -1 (later) and 0 (`SortLowering.keeps`)."""
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
        w = self.width
        lanes: list[bool] | list[int] = [-k for k in known] if packed else known
        dt = "i64" if packed else "bool"
        later = [
            low.add(VectorConstantOp.create(lanes[r * w : (r + 1) * w], dt))
            for r in range(self.registers)
        ]
        for mask in chunk_masks:
            bit = low.index.op("ne", low.index.op("and", self.chunk, mask), 0)
            if packed:
                bit = low.add(UnaryOp.create("neg", low.add(CastOp.create(bit, "i64"))))
            flip = low.add(SplatOp.create_vector(bit, self.width))
            later = [low.add(BinaryOp.create("xor", r, flip)) for r in later]
        return later


def _packs(dt: DType) -> bool:
    """Whether keys of `dt` pack with their positions into i64 (`packed_keys`): floats and
    signed integers of up to 32 bits, unsigned ones of fewer. A u32 key of 2**31 or more
    shifted into the top half would set the i64's sign bit and sort first (the packing's
    arithmetic, not a pass: every target wraps as numpy does), so u32 keys compare apart
    (biasing them by -2**31 first would let them pack too)."""
    if dt.is_float or dt.kind == "int":
        return dt.nbits <= 32
    return dt.nbits < 32


def _too_big_for_cpu(lanes: int, length: int, threads: int) -> VerifyError:
    """The refusal of a CPU sort whose thread would sort `lanes` elements of lines of
    `length`, with the threads that bring it within `CPU_LANE_STEPS`."""
    steps = len(bitonic_steps(length))
    enough = threads
    while enough * CPU_LANE_STEPS < lanes * threads * steps and lanes * threads // enough > 1:
        enough *= 2
    return VerifyError(
        f"each of the {threads} threads would sort {lanes} elements (lines of {length}) "
        f"through the network's {steps} steps: {lanes * steps} compare-exchanges a thread, "
        f"more than the {CPU_LANE_STEPS} a CPU thread's unrolled sort may have (LLVM "
        "compiles longer ones for tens of seconds to minutes)",
        hint=f"give the block more threads (threads({enough}) or more: each sorts a run of a "
        "line and the threads exchange through shared memory) or sort fewer lines a block",
    )


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
