"""lower-to-threads' reductions: along a tile axis, within each thread's lanes, then across
the threads that split the axis, with warp shuffles (CUDA) and through shared memory.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np
from lpir.passes.thread_lowering import ThreadLowering, tile_layout
from lpir.passes.thread_values import required_slot_map

from lpir.ir.core import Value
from lpir.ir.ops import (
    AllocSharedOp,
    BarrierOp,
    BinaryOp,
    ExtractOp,
    LoadThreadOp,
    ReduceLanesOp,
    ReduceOp,
    SelectOp,
    SplatOp,
    StoreThreadOp,
    WarpShuffleOp,
)
from lpir.ir.ops.thread import WARP_SIZE
from lpir.ir.types import ScalarType, SharedType, as_vector
from lpir.layout import Digit, RegisterLayout


class ReductionLowering(ThreadLowering):
    """`lower_ReduceOp` and the ways it combines partials across threads."""

    def lower_ReduceOp(self, op: ReduceOp) -> list[Value]:
        source_layout = tile_layout(op.operands[0])
        axis, kind = op.axis, op.kind
        from lpir import layout as L

        reduced = L.reduce(source_layout, [axis])

        def project(coordinates: np.ndarray) -> np.ndarray:
            projected = coordinates.copy()
            projected[..., axis] = 0
            return projected

        # Group the lanes by the slot of the reduced layout they fold into.
        targets = required_slot_map(source_layout, reduced, project)
        order = sorted(range(len(targets)), key=lambda s: (targets[s], s))
        group = len(targets) // reduced.slots
        value = self.shuffle(self.map(op.operands[0]), order)
        if group > 1:
            value = self.add(ReduceLanesOp.create(value, kind, group))
        value = self.combine_threads(value, source_layout, axis, kind)
        if isinstance(op.result.type, ScalarType):
            return [self.add(ExtractOp.create(value, 0))]
        return [value]

    def combine_threads(
        self, partial: Value, layout: RegisterLayout, axis: int, kind: str
    ) -> Value:
        """Reduce `partial` over the threads that split dimension `axis`: with warp shuffles
        over the threads of a warp (CUDA), then through shared memory over the warps.

        Either way the group's partials are folded as the balanced tree of `lpir.ir.order` over
        the partners in index order (the same rounding both ways), and all copies of the result
        are bitwise equal: the shuffles fold the least significant digits of the partner index
        (`split_at_warps`), the tree's first levels, and shared memory folds what they leave,
        one partial per warp, as its remaining levels."""
        digits = [d for d in layout.thread_digits() if d.dim == axis]
        if not digits:
            return partial
        if self.target == "cuda":
            digits, within = split_at_warps(digits)
            masks = butterfly_masks(within)  # not None: split_at_warps keeps what it can fold
            if within and masks is not None:
                partial = self.butterfly(partial, masks, kind)
            if not digits:
                return partial
        return self.combine_through_shared(partial, layout.threads, digits, kind)

    def combine_through_shared(
        self, partial: Value, threads: int, digits: list[Digit], kind: str
    ) -> Value:
        """Fold `partial` over the threads of `digits` through shared memory: every thread
        stores its lanes, then reads its partners' in index order (each partner's lanes
        together: one vector access) and folds them as a balanced tree.

        On the CPU, where a block's threads run one after another, a group of many partners
        is folded in two rounds (`first_round_chunk`): each thread folds one chunk of C
        consecutive partners (the tree's first log2(C) levels) and stores that, then every
        thread folds the P / C chunk results (the remaining levels, the same tree): each
        thread reads C + P / C partials instead of P."""
        lanes = as_vector(partial.type).size
        group_digits = digits
        chunk = self.first_round_chunk(digits, lanes)
        if chunk > 1:
            last = digits[-1]
            position = self.index.rem(self.index.div(self.tid, last.stride), last.size)
            within = self.index.mul(self.index.rem(position, last.size // chunk), chunk)
            first = self.index.add(
                self.index.sub(self.tid, self.index.mul(position, last.stride)),
                self.index.mul(within, last.stride),
            )
            scratch = self.stash(partial, threads)
            chunk_offsets = [i * last.stride for i in range(chunk)]
            partial = self.fold_partners(scratch, first, chunk_offsets, lanes, kind)
            # the chunk results, in order, are those of the group's first P / C threads
            digits = [*digits[:-1], dataclasses.replace(last, size=last.size // chunk)]
        scratch = self.stash(partial, threads)
        group_base: Value | int = self.tid
        for digit in group_digits:
            value = self.index.rem(self.index.div(self.tid, digit.stride), digit.size)
            group_base = self.index.sub(group_base, self.index.mul(value, digit.stride))
        partners = [
            sum(v * d.stride for v, d in zip(values, digits))
            for values in itertools.product(*(range(d.size) for d in digits))
        ]
        return self.fold_partners(scratch, group_base, partners, lanes, kind)

    def first_round_chunk(self, digits: list[Digit], lanes: int) -> int:
        """The partners a thread folds in a first round (see `combine_through_shared`): on the
        CPU, where the group is at least four 16-lane vectors of partials a thread, the
        largest power of two C dividing the last digit with C * C <= P; 1 for one round."""
        partners = math.prod(d.size for d in digits)
        if self.target == "cuda" or partners * lanes < 64:
            return 1
        chunk = 1
        while digits[-1].size % (2 * chunk) == 0 and (2 * chunk) ** 2 <= partners:
            chunk *= 2
        return chunk if chunk >= 4 else 1

    def stash(self, partial: Value, threads: int) -> Value:
        """A new shared scratch of `threads` x the partial's lanes, each thread's lanes stored
        at its index between two barriers."""
        lanes = as_vector(partial.type).size
        storage = partial.type.dtype
        scratch = self.add(
            AllocSharedOp.create(SharedType(storage, (threads * lanes,)), "partials")
        )
        self.builder.insert(BarrierOp.create())
        own = self.index.value(self.index.mul(self.tid, lanes))
        self.builder.insert(StoreThreadOp.create(scratch, own, partial, list(range(lanes))))
        self.builder.insert(BarrierOp.create())
        return scratch

    def fold_partners(
        self, scratch: Value, base: Value | int, partners: list[int], lanes: int, kind: str
    ) -> Value:
        """The partials of the threads base + p (p in `partners`, in that order) read from
        `scratch` and folded lane by lane as a balanced tree."""
        offsets = [partner * lanes + lane for partner in partners for lane in range(lanes)]
        start = self.index.value(self.index.mul(base, lanes))
        gathered = self.add(LoadThreadOp.create(scratch, start, offsets))
        # lane by lane, the partners in index order: the groups reduce_lanes folds
        by_lane = [i * lanes + lane for lane in range(lanes) for i in range(len(partners))]
        return self.add(ReduceLanesOp.create(self.shuffle(gathered, by_lane), kind, len(partners)))

    def butterfly(self, partial: Value, masks: list[int], kind: str) -> Value:
        """Fold `partial` with the threads `tid ^ mask`, one mask per level of the tree.

        At each level a thread combines its value with its partner's, the one with the mask's
        bit clear on the left: the tree's order. Sums and integer max/min do not depend on
        it (IEEE addition is commutative); float max/min of +0 and -0 do, so their operands
        are ordered by the thread's bit."""
        name = "add" if kind == "sum" else kind
        dt = partial.type.dtype
        lanes = as_vector(partial.type).size
        value = partial
        for mask in masks:
            other = self.add(WarpShuffleOp.create(value, mask))
            left, right = value, other
            if name != "add" and dt.is_float:
                bit = self.index.op("and", self.tid, mask)
                upper = self.add(SplatOp.create_vector(self.index.op("ne", bit, 0), lanes))
                left = self.add(SelectOp.create(upper, other, value))
                right = self.add(SelectOp.create(upper, value, other))
            value = self.add(BinaryOp.create(name, left, right))
        return value


def split_at_warps(digits: Sequence[Digit]) -> tuple[list[Digit], list[Digit]]:
    """`digits` (most significant first) as (across, within): `within` are the least
    significant positions of the partner index that warp shuffles can fold (`butterfly_masks`
    is not None: a power-of-two group inside one warp), so the first levels of its balanced
    tree; `across` the rest. A digit that reaches past a warp is split there: its low part,
    inside the warp, joins `within` (the value of a digit is high * low.size + low)."""
    within: list[Digit] = []
    for position in range(len(digits) - 1, -1, -1):
        digit = digits[position]
        if butterfly_masks([digit, *within]) is not None:
            within.insert(0, digit)
            continue
        low_size = WARP_SIZE // digit.stride if digit.stride < WARP_SIZE else 1
        if low_size > 1 and _power_of_two(digit.size) and digit.size % low_size == 0:
            low = dataclasses.replace(digit, size=low_size)
            high = dataclasses.replace(
                digit,
                size=digit.size // low_size,
                stride=digit.stride * low_size,
                multiplier=digit.multiplier * low_size,
            )
            if butterfly_masks([low, *within]) is not None:
                return [*digits[:position], high], [low, *within]
        return list(digits[: position + 1]), within
    return [], within


def butterfly_masks(digits: Sequence[Digit]) -> list[int] | None:
    """The xor masks of a warp-shuffle reduction over the threads of `digits` (the thread
    digits of a reduced axis, most significant first), lowest tree level first; None when the
    group is not a power-of-two set of threads inside one warp.

    The shared-memory reduction folds the partners in index order, the last digit varying
    fastest: its tree's level j pairs positions that differ in bit j, which is bit j of the
    last digit first, then of the one before; with power-of-two digits that is one bit of the
    thread index, the mask."""
    masks = []
    for digit in reversed(digits):
        if not _power_of_two(digit.stride) or not _power_of_two(digit.size):
            return None
        if digit.stride * digit.size > WARP_SIZE:
            return None
        masks += [digit.stride << bit for bit in range(digit.size.bit_length() - 1)]
    return masks


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0
