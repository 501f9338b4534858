"""The order in which a core runs a kernel's blocks: which grid axis varies fastest.

Blocks are independent (nothing orders one block's memory accesses against another's), so the
CPU may run them in any order. `lpir_run` counts the blocks of a range in one linear order; by
default x varies fastest, as CUDA numbers them. That suits a GPU, where all blocks run at once,
but a core runs them one after another, and where moving along x jumps far through memory, a
core walks it with gaps: quantize.lp's grid (row tiles, column groups) read a 16 x 32 tile of
rows 16 KiB apart, then the same columns 16 rows down, touching every page of x 128 times at
times far apart, which neither the prefetchers nor the caches follow (4096 x 4096: 10.2 ms, 3.6x
its copy floor). The axis along which the blocks' accesses move the fewest bytes goes first
instead: quantize's column groups (128 bytes of x a step), rope's heads (256 bytes a step
rather than 32 KiB).

The bytes an access moves per step of an axis come from its base index as a linear function of
the block indices (`block_coefficient`); where some access's index is not such a function (a
gather through loaded indices, a division), the default order stays. Kernels with loops keep
it too: their blocks walk memory in their own loops, and a matmul's order is a trade between
reusing A's and B's tiles, which this rule does not weigh.
"""

from __future__ import annotations

from lpir.backends.llvm.linear_index import linear_coefficient

from lpir.ir.core import Kernel, Value
from lpir.ir.grid import grid_bounds
from lpir.ir.ops import BlockIndexOp, ForOp, LoadThreadOp, StoreThreadOp
from lpir.ir.types import GlobalType

DEFAULT_ORDER = (0, 1, 2)


def block_order(kernel: Kernel) -> tuple[int, int, int]:
    """The grid axes from the fastest-varying to the slowest (see the module's doc)."""
    if any(isinstance(op, ForOp) for op in kernel.walk()):
        return DEFAULT_ORDER
    axes = [axis for axis in range(3) if grid_bounds(kernel.grid)[axis] > 1]
    moved = {axis: _bits_moved(kernel, axis) for axis in axes}
    if any(bits is None for bits in moved.values()):
        return DEFAULT_ORDER
    order = sorted(axes, key=lambda axis: (moved[axis], axis))
    order += [axis for axis in range(3) if axis not in order]
    return order[0], order[1], order[2]


def _bits_moved(kernel: Kernel, axis: int) -> int | None:
    """The bits all global accesses move, together, per step of block index `axis` (None:
    not known for some access)."""
    total = 0
    memo: dict[int, int | None] = {}
    for op in kernel.walk():
        if not isinstance(op, LoadThreadOp | StoreThreadOp):
            continue
        memory = op.operands[0].type
        if not isinstance(memory, GlobalType):
            continue
        coefficient = block_coefficient(op.operands[1], axis, memo)
        if coefficient is None:
            return None
        total += abs(coefficient) * op.access_dtype.nbits  # packed: indices of bytes
    return total


def block_coefficient(value: Value, axis: int, memo: dict[int, int | None]) -> int | None:
    """c where `value` is c times block index `axis` plus what does not depend on it (None:
    not such a function)."""

    def known(candidate: Value) -> int | None:
        owner = candidate.owner
        if isinstance(owner, BlockIndexOp):
            return 1 if owner.axis == axis else 0
        return None

    return linear_coefficient(value, known, memo)


__all__ = ["DEFAULT_ORDER", "block_coefficient", "block_order"]
