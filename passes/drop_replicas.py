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

from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Kernel, Module
from lpir.ir.rewrite import Relayout, tile_types
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


def common_copies(kernel: Kernel) -> int:
    """The replication every tile of `kernel` has on its top thread bits (1: some has none)."""
    factor = 0
    for type_ in tile_types(kernel):
        factor = math.gcd(factor, top_replication(type_.selected_layout))
        if factor == 1:
            return 1
    return max(factor, 1)


@register_pass
class DropReplicasPass(Pass):
    name = "drop-replicas"
    stage = "tile"
    needs_layouts = True

    def run(self, module: Module) -> Module:
        return Module(
            [
                Relayout(without_top_copies, common_copies(kernel)).run_kernel(kernel)
                for kernel in module.kernels
            ]
        )
