"""dce: remove ops whose results nothing uses.

Requires: any module. Guarantees: every op left either has a side effect (a store, a barrier,
a yield, or a `for`/`if` containing one) or has a result that something uses; nothing else
changes.
"""

from __future__ import annotations

from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Module, Region
from lpir.ir.effects import has_side_effects
from lpir.ir.rewrite import clone_module


@register_pass
class DeadCodeEliminationPass(Pass):
    name = "dce"

    def run(self, module: Module) -> Module:
        module = clone_module(module)
        while True:
            used = {id(v) for op in module.walk() for v in op.operands}
            removed = sum(_sweep(kernel.body, used) for kernel in module.kernels)
            if not removed:
                return module


def _sweep(region: Region, used: set[int]) -> int:
    """Remove dead ops from `region` and its nested regions; return how many went."""
    removed = 0
    kept = []
    for op in region.ops:
        for inner in op.regions:
            removed += _sweep(inner, used)
        live = has_side_effects(op) or any(id(r) in used for r in op.results)
        if live:
            kept.append(op)
        else:
            removed += 1
    region.ops = kept
    return removed
