"""prune-barriers: remove the barriers that no memory hazard needs.

Requires: thread IR. Guarantees: the same values in every thread; a `barrier` is removed only
if no memory accessed on a path from the barrier before it is accessed on a path to the
barrier after it, one of the two accesses being a write (`st`, `st_bits`, an atomic add).
Memories are told apart by the value that names them (a kernel argument, an `alloc_shared`,
each its own storage in every backend); global tensors count like shared tiles, so a
`sync()` that orders global writes and reads between threads stays.

Why: a barrier costs every warp of a block a wait (on the CPU, a new loop over the threads),
and lowering adds its own around each exchange through shared memory. In matmul_wq's loop the
user's two `sync()`s and the two of the B operand's exchange were four barriers per iteration;
the reads of `sa` and the writes of the exchange tile never meet, nor the exchange's reads and
the next iteration's writes of `sa`, so two suffice.

How: for each barrier in program order, the accesses before it (back to the previous barrier
of its region; through the start of a loop body to the accesses after the body's last barrier
and, for the first iteration, to those before the loop; through the start of an `if` branch to
those before the `if`) and after it (symmetrically) are compared; nested loops and ifs count
with all their accesses, their barriers ignored (a loop may run no iteration). A barrier is
removed as soon as it is found unneeded, so later ones are judged with the windows it leaves.
"""

from __future__ import annotations

from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Kernel, Module, Operation, Region
from lpir.ir.ops import BarrierOp, ForOp
from lpir.ir.rewrite import clone_module

READS = frozenset({"ld", "ldmatrix"})
WRITES = frozenset({"st", "st_bits"})

Access = tuple[int, bool]  # (id of the memory's value, written)


@register_pass
class PruneBarriersPass(Pass):
    name = "prune-barriers"
    stage = "thread"

    def run(self, module: Module) -> Module:
        module = clone_module(module)
        for kernel in module.kernels:
            for barrier in [op for op in kernel.walk() if isinstance(op, BarrierOp)]:
                if barrier.parent is not None and not _conflict(_before(barrier), _after(barrier)):
                    barrier.parent.ops.remove(barrier)
        return module


def _conflict(before: set[Access], after: set[Access]) -> bool:
    """Whether some memory is accessed on both sides, and written on one."""
    written_before = {memory for memory, written in before if written}
    written_after = {memory for memory, written in after if written}
    touched_before = {memory for memory, _ in before}
    touched_after = {memory for memory, _ in after}
    return bool(written_before & touched_after or written_after & touched_before)


def _accesses(op: Operation) -> set[Access]:
    """The memories an op (and everything nested in it) reads or writes."""
    found = set()
    for inner in op.walk():
        if inner.name in READS:
            found.add((id(inner.operands[0]), False))
        elif inner.name in WRITES:
            found.add((id(inner.operands[0]), True))
    return found


def _before(barrier: Operation) -> set[Access]:
    region = barrier.parent
    assert isinstance(region, Region)
    return _window(region, region.ops.index(barrier), forward=False)


def _after(barrier: Operation) -> set[Access]:
    region = barrier.parent
    assert isinstance(region, Region)
    return _window(region, region.ops.index(barrier) + 1, forward=True)


def _window(region: Region, position: int, forward: bool) -> set[Access]:
    """Accesses on the paths from position `position` of the region to the next barrier
    (`forward`), or reaching it from the last one."""
    ops = region.ops[position:] if forward else region.ops[:position][::-1]
    found, stopped = _until_barrier(ops)
    owner = region.parent
    if stopped or isinstance(owner, Kernel) or owner is None:
        return found  # a barrier, or the kernel's start or end
    if isinstance(owner, ForOp):  # the next iteration's head, or the previous one's tail
        found |= _until_barrier(region.ops if forward else region.ops[::-1])[0]
    outer = owner.parent
    assert isinstance(outer, Region)
    index = outer.ops.index(owner) + (1 if forward else 0)
    return found | _window(outer, index, forward)


def _until_barrier(ops: list[Operation]) -> tuple[set[Access], bool]:
    """The accesses of `ops` in order up to the first barrier among them, and whether there
    was one."""
    found: set[Access] = set()
    for op in ops:
        if isinstance(op, BarrierOp):
            return found, True
        found |= _accesses(op)
    return found, False


__all__ = ["PruneBarriersPass"]
