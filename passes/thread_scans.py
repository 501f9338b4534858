"""lower-to-threads' scans (`cumsum`, `cumprod`, `cummax`, `cummin`): prefix results along a
tile axis, each thread scanning the run it holds of each of its lines, then, where threads
split the lines into chunks, the chunks' totals combined across those threads.

A thread's slots are put in order (one line after another, each run in axis order), then
combined in log2(run) steps (Hillis and Steele): step d combines each element with the
partial result d places before it, so after the steps d = 1, 2, 4, ... element i holds the
combination of elements 0..i of its run. Each step is one shuffle and one elementwise op on
the thread's whole vector, whatever the number of lines.

Where one thread digit splits each line into P chunks (`line_chunks`: chunk c holds elements
c * run ..), the run totals (one per line a thread holds) are scanned across the chunks the
same way, through shared memory: log2(P) rounds in which each thread stores its value and
combines the value of the thread d chunks before it; one more round reads the previous
chunk's inclusive total, which every element of the run (but chunk 0's) is combined with.
"""

from __future__ import annotations

from lpir.passes.thread_lowering import ThreadLowering, tile_layout

from lpir.errors import VerifyError
from lpir.ir.core import Value
from lpir.ir.layout_checks import line_chunks
from lpir.ir.ops import (
    AllocSharedOp,
    BarrierOp,
    BinaryOp,
    ConstantOp,
    LoadThreadOp,
    ScanOp,
    SelectOp,
    ShuffleOp,
    SortOp,
    SplatOp,
    StoreThreadOp,
)
from lpir.ir.types import SharedType, as_vector
from lpir.layout import Digit, RegisterLayout

# What a sum or product combines with where no element lies d places before: -0.0 keeps
# every float (x + -0.0 is x, -0.0 included), 1 every product. max and min combine such an
# element with itself instead: max(x, x) is x for a NaN too, where max(x, -inf) would pass
# a leading NaN over.
IDENTITIES = {"sum": -0.0, "prod": 1}


class ScanLowering(ThreadLowering):
    """`lower_ScanOp`: a scan within each thread's registers, then across its line's chunks."""

    def lower_ScanOp(self, op: ScanOp) -> list[Value]:
        layout, digit, run, order = line_runs(op)
        value = self.shuffle(self.map(op.operands[0]), order)
        lanes = len(order)
        identity = self.identity(op, lanes)
        distance = 1
        while distance < run:
            value = self.combine_step(op.combine, value, identity, distance, run)
            distance *= 2
        if digit is not None:
            value = self.across_chunks(op, value, run, digit, layout.threads)
        return [self.shuffle(value, back_in_place(order))]

    def identity(self, op: ScanOp, lanes: int) -> Value | None:
        """A vector of the scan's identity (sum, prod), or None (max, min)."""
        if op.kind not in IDENTITIES:
            return None
        dt = op.result.type.dtype
        value = IDENTITIES[op.kind]
        scalar = self.add(ConstantOp.create(value if dt.is_float else int(value), dt))
        return self.add(SplatOp.create_vector(scalar, lanes))

    def combine_step(
        self, combine: str, value: Value, identity: Value | None, distance: int, length: int
    ) -> Value:
        """`value` with lane i of each line combined with lane i - distance (the identity, or
        itself, where the line has none that far back)."""
        lanes = as_vector(value.type).size
        indices = []
        for lane in range(lanes):
            if lane % length >= distance:
                indices.append(lane - distance)
            else:
                indices.append(lane if identity is None else lanes + lane)
        operands = [value] if identity is None else [value, identity]
        earlier = self.add(ShuffleOp.create(operands, indices))
        return self.add(BinaryOp.create(combine, earlier, value))

    def across_chunks(
        self, op: ScanOp, value: Value, run: int, digit: Digit, threads: int
    ) -> Value:
        """`value` (each run scanned, in line order) with each run combined with the total of
        the chunks of its line before it."""
        lanes = as_vector(value.type).size
        lines = lanes // run
        totals = self.shuffle(value, [line * run + run - 1 for line in range(lines)])
        chunk = self.index.rem(self.index.div(self.tid, digit.stride), digit.size)
        scratch = self.add(
            AllocSharedOp.create(SharedType(totals.type.dtype, (threads * lines,)), "runs")
        )
        distance = 1
        while distance < digit.size:  # an inclusive scan of the totals over the chunks
            earlier = self.chunk_before(scratch, totals, chunk, distance, digit, threads)
            after = self.splat_condition("ge", chunk, distance, lines)
            combined = self.add(BinaryOp.create(op.combine, earlier, totals))
            totals = self.add(SelectOp.create(after, combined, totals))
            distance *= 2
        before = self.chunk_before(scratch, totals, chunk, 1, digit, threads)  # the previous
        spread = self.shuffle(before, [line for line in range(lines) for _ in range(run)])
        combined = self.add(BinaryOp.create(op.combine, spread, value))
        first = self.splat_condition("ge", chunk, 1, lanes)
        return self.add(SelectOp.create(first, combined, value))

    def chunk_before(
        self,
        scratch: Value,
        totals: Value,
        chunk: Value | int,
        distance: int,
        digit: Digit,
        threads: int,
    ) -> Value:
        """The `totals` of the thread `distance` chunks before this one (this thread's own
        where there is none), exchanged through `scratch` between barriers."""
        stride, offsets = self.scratch_slots(as_vector(totals.type).size, threads)
        own = self.index.value(self.index.mul(self.tid, stride))
        self.builder.insert(BarrierOp.create())
        self.builder.insert(StoreThreadOp.create(scratch, own, totals, offsets))
        self.builder.insert(BarrierOp.create())
        earlier = self.index.sub(self.tid, distance * digit.stride)
        present = self.index.op("ge", chunk, distance)
        partner = self.add(SelectOp.create(present, self.index.value(earlier), self.tid))
        start = self.index.value(self.index.mul(partner, stride))
        return self.add(LoadThreadOp.create(scratch, start, offsets))

    def splat_condition(self, name: str, a: Value | int, b: int, lanes: int) -> Value:
        """A vector of `lanes` copies of the scalar comparison `a <name> b`."""
        return self.add(SplatOp.create_vector(self.index.op(name, a, b), lanes))


def line_runs(op: ScanOp | SortOp) -> tuple[RegisterLayout, Digit | None, int, list[int]]:
    """How a scan's or sort's operand layout holds its lines (`line_chunks`: the thread digit
    splitting them into runs, or None, and the run's length) and a thread's slots in line
    order (`lines_in_order`). Raises VerifyError where no such runs exist."""
    layout = tile_layout(op.operands[0])
    chunks = line_chunks(layout, op.axis)
    if chunks is None:
        raise VerifyError(f"the threads of {layout} split the axis {op.axis} into no runs")
    return layout, chunks[0], chunks[1], lines_in_order(layout, op.axis)


def lines_in_order(layout: RegisterLayout, axis: int) -> list[int]:
    """The slots of a thread in scan order: one line after another, each line's elements in
    axis order (the run of each line a thread holds: `line_chunks`)."""
    first = layout.coordinates()[0]  # the same order in every thread
    lines = [tuple(int(c) for i, c in enumerate(slot) if i != axis) for slot in first]
    return sorted(range(len(first)), key=lambda s: (lines[s], int(first[s, axis])))


def back_in_place(order: list[int]) -> list[int]:
    """The shuffle that puts a vector shuffled by `order` back in its slots."""
    inverse = [0] * len(order)
    for lane, slot in enumerate(order):
        inverse[slot] = lane
    return inverse
