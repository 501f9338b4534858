"""lower-to-threads' scans (`cumsum`, `cumprod`, `cummax`, `cummin`): prefix results along a
tile axis that each thread holds whole (layout-selection converts the operand where threads
split it), computed in each thread's registers.

A thread's slots are put in order (one group per line of the axis, its elements in axis
order), then combined in log2(n) steps (Hillis and Steele): step d combines each element with
the partial result d places before it, so after the steps d = 1, 2, 4, ... element i holds
the combination of elements 0..i. Each step is one shuffle and one elementwise op on the
thread's whole vector, whatever the number of lines.
"""

from __future__ import annotations

import numpy as np
from lpir.passes.thread_lowering import ThreadLowering, tile_layout

from lpir.errors import VerifyError
from lpir.ir.core import Value
from lpir.ir.ops import BinaryOp, ConstantOp, ScanOp, ShuffleOp, SplatOp
from lpir.ir.types import as_vector
from lpir.layout import RegisterLayout

# What a sum or product combines with where no element lies d places before: -0.0 keeps
# every float (x + -0.0 is x, -0.0 included), 1 every product. max and min combine such an
# element with itself instead: max(x, x) is x for a NaN too, where max(x, -inf) would pass
# a leading NaN over.
IDENTITIES = {"sum": -0.0, "prod": 1}


class ScanLowering(ThreadLowering):
    """`lower_ScanOp`: a scan within each thread's registers."""

    def lower_ScanOp(self, op: ScanOp) -> list[Value]:
        layout = tile_layout(op.operands[0])
        order, length = lines_in_order(layout, op.axis)
        value = self.shuffle(self.map(op.operands[0]), order)
        lanes = len(order)
        identity = self.identity(op, lanes)
        distance = 1
        while distance < length:
            value = self.combine_step(op.combine, value, identity, distance, length)
            distance *= 2
        inverse = [0] * lanes
        for lane, slot in enumerate(order):
            inverse[slot] = lane
        return [self.shuffle(value, inverse)]

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


def lines_in_order(layout: RegisterLayout, axis: int) -> tuple[list[int], int]:
    """The slots of a thread in scan order (one line of the axis after another, each in axis
    order) and the axis's length. Raises VerifyError where threads split the axis."""
    coordinates = layout.coordinates()  # [threads, slots, rank]
    along = coordinates[..., axis]
    if not (along == along[:1]).all():
        raise VerifyError(f"the threads of {layout} split the scanned axis {axis}")
    first = coordinates[0]
    length = layout.shape[axis]
    lines = np.delete(first, axis, axis=-1)
    order = sorted(range(len(first)), key=lambda s: (tuple(lines[s]), first[s, axis]))
    positions = [int(first[s, axis]) for s in order]
    if positions != list(range(length)) * (len(order) // length):
        raise VerifyError(f"the slots of {layout} do not hold each line of axis {axis} once")
    return order, length
