"""Which ops may be removed, merged or moved: side effects and purity.

* An op with side effects (stores, barriers, yields) is never removed.
* A `for`/`if` has side effects when an op in its regions does, other than the `yield` that
  ends every region.
* A pure op has no regions, no side effects and reads no memory: equal pure ops with equal
  operands compute equal values, so CSE may merge them.
"""

from __future__ import annotations

from lpir.ir.core import Kernel, Operation, Region

SIDE_EFFECTS = frozenset(
    {"store_global", "store_shared", "sync", "barrier", "st", "st_bits", "yield"}
)
READS_MEMORY = frozenset({"load_global", "load_shared", "ld", "ldmatrix"})
DISTINCT = frozenset({"alloc_shared"})


def has_side_effects(op: Operation) -> bool:
    if op.name in SIDE_EFFECTS:
        return True
    return any(
        inner.name != "yield" and has_side_effects(inner)
        for region in op.regions
        for inner in region.ops
    )


def is_pure(op: Operation) -> bool:
    return (
        not op.regions
        and op.name not in SIDE_EFFECTS
        and op.name not in READS_MEMORY
        and op.name not in DISTINCT
    )


def stored_arguments(code: Operation | Region | Kernel) -> set[int]:
    """ids of the memories a thread-IR kernel (or loop, or any op) writes (`st`, `st_bits`)."""
    from lpir.ir.ops import StoreBitsOp, StoreThreadOp

    return {id(op.operands[0]) for op in code.walk() if isinstance(op, StoreThreadOp | StoreBitsOp)}
