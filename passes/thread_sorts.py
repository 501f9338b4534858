"""lower-to-threads' sorts (`sort`, `argsort`): each line of a tile axis that a thread holds
whole (layout-selection converts where threads split it) sorted in the thread's registers
by a bitonic network.

The thread's slots are put in line order (as for a scan, `thread_scans.lines_in_order`); a
line of n = 2^m elements takes m (m + 1) / 2 compare-exchange steps, each over the thread's
whole vector: every lane reads its partner's key, value and position (one shuffle each),
decides which of the two comes first, and keeps the first or the second as the network
says. Ties are broken by the original position, so the network orders the elements totally
and the sort is stable (equal keys, -0.0 and 0.0 among them, keep their order); NaN comes
after every number ascending and before every number descending, as the interpreter orders.
"""

from __future__ import annotations

from lpir.passes.thread_lowering import ThreadLowering, tile_layout
from lpir.passes.thread_scans import lines_in_order

from lpir.errors import VerifyError
from lpir.ir.core import Value
from lpir.ir.layout_checks import line_chunks
from lpir.ir.ops import BinaryOp, SelectOp, ShuffleOp, SortOp, UnaryOp, VectorConstantOp

# The CUDA emitter writes each lane of a step as statements of its own: a thread sorting 64
# elements (21 steps) is 5000 lines of CUDA C, 10 s of nvcc; 128 is 40 s, 256 six minutes.
# Past this many lane-steps a thread the GPU sort is refused with the sizes that fit.
CUDA_LANE_STEPS = 64 * 21


class SortLowering(ThreadLowering):
    """`lower_SortOp`: a bitonic sort within each thread's registers."""

    def lower_SortOp(self, op: SortOp) -> list[Value]:
        layout = tile_layout(op.operands[0])
        chunks = line_chunks(layout, op.axis)
        if chunks is None or chunks[0] is not None:
            raise VerifyError(f"the threads of {layout} split the sorted axis {op.axis}")
        order, length = lines_in_order(layout, op.axis), layout.shape[op.axis]
        keys, values = (self.shuffle(self.map(v), order) for v in op.operands)
        lanes = len(order)
        if self.target == "cuda" and lanes * len(bitonic_steps(length)) > CUDA_LANE_STEPS:
            raise _too_big_for_cuda(lanes, length)
        positions = self.add(VectorConstantOp.create([i % length for i in range(lanes)], "i32"))
        for size, distance in bitonic_steps(length):
            partners = [i ^ distance for i in range(lanes)]
            # where a lane keeps the later of the pair: the upper lane of a block sorting
            # upwards, the lower lane of one sorting downwards (the last merge sorts up)
            later = [(i & distance > 0) == (i % length & size == 0) for i in range(lanes)]
            step = [keys, values, positions]
            theirs = [self.add(ShuffleOp.create([v], partners)) for v in step]
            first = self.comes_first(op, keys, positions, theirs[0], theirs[2])
            mask = self.add(VectorConstantOp.create(later, "bool"))
            keep = self.add(BinaryOp.create("xor", first, mask))
            keys, values, positions = (
                self.add(SelectOp.create(keep, mine, other)) for mine, other in zip(step, theirs)
            )
        inverse = [0] * lanes
        for lane, slot in enumerate(order):
            inverse[slot] = lane
        return [self.shuffle(values, inverse)]

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


def _too_big_for_cuda(lanes: int, length: int) -> VerifyError:
    held = f"{lanes // length} lines of {length}" if lanes > length else f"a line of {length}"
    return VerifyError(
        f"each thread would sort {held} elements in its registers: "
        f"{lanes * len(bitonic_steps(length))} compare-exchanges a thread, unrolled in the "
        "CUDA C (minutes of nvcc)",
        hint="on the GPU give each thread at most 64 elements to sort: lines of at most 64, "
        "as many lines as threads or more (a [128, 32] tile over 128 threads sorts one line "
        "of 32 a thread); or sort on the cpu target",
    )


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
