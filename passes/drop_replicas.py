"""drop-replicas: a block whose every tile repeats over its top thread bits runs fewer threads
(CPU).

Requires: tile IR with layouts (after layout-selection). Guarantees: the same values; where
every register layout is `replicate(r) * L` for a common r > 1 on the most significant thread
bits, each layout becomes `L` (with r less replication) and the kernel runs threads / r
threads.

A tile smaller than the block's threads is held in copies: with `replicate(r)` on top,
thread t + k T / r holds what thread t holds, computes it alike and skips its stores (replica
masks). On a GPU the copies are lanes running at once; on a CPU a block's threads run one
after another, so each copy is the whole work again: gemv_tc at BN = 64 (its [64, 1]
accumulator over 128 threads) decoded and multiplied every weight twice. Tile IR does not
depend on the thread count, only its layouts do, so the block can run as T / r threads with
the same layouts less the copies. One tile that is not replicated on top (a coalesced load
spread over all threads) keeps the kernel as it is. The GPU pipeline does not run this pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Kernel, Module, Operation, Value
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import TileType
from lpir.layout import RegisterLayout


def top_replication(layout: RegisterLayout) -> int:
    """The replication factor of a layout's most significant thread bits (1: none)."""
    spatial = layout.spatial_modes
    return -spatial[0] if spatial and spatial[0] < 0 else 1


def without_top_copies(layout: RegisterLayout, factor: int) -> RegisterLayout:
    """`layout` with `factor` less replication on its most significant thread bits."""
    top = top_replication(layout)
    rest = layout.spatial_modes[1:]
    spatial = rest if top == factor else (-(top // factor), *rest)
    return RegisterLayout(layout.shape, layout.modes, spatial, layout.local_modes)


def _tile_layouts(kernel: Kernel):
    for op in kernel.walk():
        values = list(op.results) + [a for region in op.regions for a in region.args]
        for value in values:
            if isinstance(value.type, TileType) and value.type.layout is not None:
                yield value.type.layout


def common_copies(kernel: Kernel) -> int:
    """The replication every tile of `kernel` has on its top thread bits (1: some has none)."""
    factor = 0
    for layout in _tile_layouts(kernel):
        factor = math.gcd(factor, top_replication(layout))
        if factor == 1:
            return 1
    return max(factor, 1)


class _DropReplicas(Rewriter):
    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def retyped(self, type_):
        if isinstance(type_, TileType) and type_.layout is not None:
            return type_.with_layout(without_top_copies(type_.layout, self.factor))
        return type_

    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        return self.copy(op, result_types=[self.retyped(r.type) for r in op.results]).results

    def region_arg_type(self, arg: Value):
        return self.retyped(arg.type)

    def run_kernel(self, kernel: Kernel) -> Kernel:
        new = super().run_kernel(kernel)
        new.threads = kernel.threads // self.factor
        return new


@register_pass
class DropReplicasPass(Pass):
    name = "drop-replicas"

    def run(self, module: Module) -> Module:
        kernels = []
        for kernel in module.kernels:
            factor = common_copies(kernel)
            rewriter = Rewriter() if factor == 1 else _DropReplicas(factor)
            kernels.append(rewriter.run_kernel(kernel))
        return Module(kernels)
