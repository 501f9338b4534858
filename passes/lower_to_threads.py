"""lower-to-threads: tile IR -> thread IR.

Requires: tile IR in which every register tile has a layout and ops agree with their operands'
layouts as layout-selection leaves them.
Guarantees: a thread-IR kernel (stage "thread") computing the same values: each register tile
becomes, in every thread, a vector of the slots that thread holds; tile loads and stores become
per-lane `ld`/`st` with a scalar base and constant lane offsets, masked at tensor edges that the
index analysis cannot prove in bounds; reductions that cross threads of one warp become
`shfl_xor` butterflies (CUDA), other reductions and layout conversions that cross threads go
through shared memory between barriers; `sync` becomes `barrier`. Packed (sub-byte) dtypes are
still accessed element-wise; bit-packing rewrites those accesses.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from lpir.passes.base import Pass, register_pass
from lpir.passes.layout_rules import (
    PAIR_DISTANCES,
    mma_k_permutation,
    mma_layouts,
    mma_layouts_permuted,
    mma_warps,
    shared_layout,
    steps_in_registers,
)
from lpir.passes.matrix_loads import ROW, bit_terms, fragment_offsets, plan_matrix_loads
from lpir.passes.thread_values import (
    IndexBuilder,
    primary_replica,
    required_slot_map,
    slot_map,
    slot_part,
    thread_digits,
    thread_part,
)

from lpir.dtypes import dtype
from lpir.errors import LayoutError, VerifyError
from lpir.ir.core import Kernel, Module, Operation, Region, Value
from lpir.ir.ops import (
    AllocSharedOp,
    ArangeOp,
    BarrierOp,
    BinaryOp,
    BroadcastOp,
    CastOp,
    ConvertLayoutOp,
    DotOp,
    DotPairsOp,
    ExpandDimsOp,
    ExtractOp,
    ForOp,
    IfOp,
    IndexOp,
    ItemOp,
    LoadMatrixOp,
    LoadOp,
    LoadThreadOp,
    MmaOp,
    ReduceLanesOp,
    ReduceOp,
    ReshapeOp,
    SelectOp,
    ShuffleOp,
    SplatOp,
    StackOp,
    StoreOp,
    StoreThreadOp,
    SyncOp,
    ThreadIndexOp,
    TransposeOp,
    UnaryOp,
    VectorConstantOp,
    ViewOp,
    WarpShuffleOp,
)
from lpir.ir.ops.thread import WARP_SIZE
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import ScalarType, SharedType, TileType, Type, VectorType, as_tile, as_vector
from lpir.layout import RegisterLayout, SharedLayout
from lpir.layout import reshape as reshape_layout
from lpir.targets import get_target

I32 = dtype("i32")
U8 = dtype("u8")
BOOL = dtype("bool")


def thread_type(type_: Type) -> Type:
    """The per-thread type of a tile-IR type (tiles become vectors of their slots)."""
    if isinstance(type_, TileType):
        return VectorType(type_.dtype, type_.selected_layout.slots)
    return type_


def _layout(value: Value) -> RegisterLayout:
    return as_tile(value.type).selected_layout


class _Lowering(Rewriter):
    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self._tid: Value | None = None
        self.index = IndexBuilder(self.builder)

    @property
    def tid(self) -> Value:
        """The thread index, made at the top of the kernel's body."""
        if self._tid is None:
            raise RuntimeError("the thread index is made when the kernel's body starts")
        return self._tid

    def new_stage(self, kernel: Kernel) -> str:
        return "thread"

    def rewrite_region_ops(self, region: Region) -> None:
        if region is self.kernel.body:
            self._tid = self.builder.add(ThreadIndexOp.create())
        super().rewrite_region_ops(region)

    def region_arg_type(self, arg: Value):
        return thread_type(arg.type)

    def copy(self, op: Operation, operands=None, result_types=None) -> Operation:
        types = [thread_type(r.type) for r in op.results] if result_types is None else result_types
        return super().copy(op, operands, types)

    # ---- dispatch -----------------------------------------------------------------------
    def rewrite(self, op: Operation):
        method = getattr(self, f"lower_{type(op).__name__}", None)
        if method is not None:
            return method(op)
        return self.copy(op).results

    def add(self, op: Operation) -> Value:
        return self.builder.add(op)

    def lower_SplatOp(self, op: SplatOp):
        if not isinstance(op.result.type, TileType):
            return self.copy(op).results
        slots = _layout(op.result).slots
        return [self.add(SplatOp.create_vector(self.map(op.operands[0]), slots))]

    def lower_ItemOp(self, op: ItemOp):
        return [self.add(ExtractOp.create(self.map(op.operands[0]), 0, op.result.name_hint))]

    def lower_SyncOp(self, op: SyncOp):
        self.builder.insert(BarrierOp.create())
        return []

    def lower_ExpandDimsOp(self, op: ExpandDimsOp):
        return [self.map(op.operands[0])]

    def lower_TransposeOp(self, op: TransposeOp):
        return [self.map(op.operands[0])]  # the same slots: only the layout's dims swap

    def lower_IndexOp(self, op: IndexOp):
        # each thread holds the whole axis (layout-selection saw to it): a choice of its slots
        axis, position = op.axis, op.position

        def project(coordinates):
            return np.insert(coordinates, axis, position, axis=-1)

        indices = required_slot_map(_layout(op.result), _layout(op.operands[0]), project)
        return [self.shuffle(self.map(op.operands[0]), indices)]

    def lower_StackOp(self, op: StackOp):
        # the operands share a layout and the new axis is local in the result's: each result
        # slot is one operand's slot (the operand its coordinate on the axis names)
        axis, source = op.axis, _layout(op.operands[0])
        result = _layout(op.result)
        slots = required_slot_map(result, source, lambda c: np.delete(c, axis, axis=-1))
        which = result.coordinates()[..., axis]  # [threads, slots]
        if (which != which[0]).any():
            raise VerifyError(f"the threads of {result} split the stacked axis {axis}")
        indices = [int(j) * source.slots + slot for j, slot in zip(which[0], slots)]
        vectors = [self.map(v) for v in op.operands]
        return [self.add(ShuffleOp.create(vectors, indices))]

    def lower_ReshapeOp(self, op: ReshapeOp):
        # layout-selection gave the result `reshape` of the operand's layout: the same threads
        # hold the same elements in the same slots, only the shape around them changes
        return [self.map(op.operands[0])]

    def lower_ArangeOp(self, op: ArangeOp):
        layout = _layout(op.result)
        part = thread_part(self.index, layout, 0, self.tid)
        lanes = self.add(VectorConstantOp.create(slot_part(layout, 0), I32))
        if isinstance(part, int) and part == 0:
            return [lanes]
        base = self.add(SplatOp.create_vector(self.index.value(part), layout.slots))
        return [self.add(BinaryOp.create("add", base, lanes))]

    def lower_BroadcastOp(self, op: BroadcastOp):
        source = op.operands[0]
        shape = as_tile(source.type).shape

        def project(coordinates):
            projected = coordinates.copy()
            for dim, size in enumerate(shape):
                if size == 1:
                    projected[..., dim] = 0
            return projected

        indices = required_slot_map(_layout(op.result), _layout(source), project)
        return [self.shuffle(self.map(source), indices)]

    def shuffle(self, vector: Value, indices: list[int]) -> Value:
        if indices == list(range(as_vector(vector.type).size)):
            return vector
        return self.add(ShuffleOp.create([vector], indices))

    # ---- layout conversion ----------------------------------------------------------------
    def lower_ConvertLayoutOp(self, op: ConvertLayoutOp):
        source, target = _layout(op.operands[0]), _layout(op.result)
        value = self.map(op.operands[0])
        if source == target:
            return [value]
        indices = slot_map(target, source)
        if indices is not None:
            return [self.shuffle(value, indices)]
        return [self.exchange(value, as_tile(op.operands[0].type), source, target)]

    def exchange(self, value: Value, tile: TileType, source, target) -> Value:
        """Move a tile between layouts through a shared-memory copy of the whole tile. On the
        CPU, a target layout holding rows in interleaved pairs (a `dot_pairs` matmul's b,
        `layout_rules.dot_layouts`) reads a copy stored so (`pair_interleaved`): each of its
        registers is one load, and the pairs are interleaved once, where the tile is stored,
        instead of by every thread that holds a replica of them."""
        storage, to_storage, from_storage = _scratch_dtype(tile.dtype)
        if to_storage is not None:
            value = to_storage(self, value)
        on_gpu = get_target(self.target).is_gpu
        interleaved = None if on_gpu else pair_interleaved(tile, source, target)
        if interleaved is not None:
            tile, source, target, layout = interleaved
        else:
            layout = shared_layout(
                SharedType(storage, tile.shape),
                [(target, tuple(range(tile.rank)))],
                get_target(self.target),
                stores=[(source, tuple(range(tile.rank)))],
            )
        dims = tuple(range(tile.rank))
        scratch_type = SharedType(storage, tile.shape, layout)
        scratch = self.add(AllocSharedOp.create(scratch_type, "exchange"))
        self.builder.insert(BarrierOp.create())
        origin = [0] * tile.rank
        base, offsets, mask = self.addresses(scratch_type, origin, dims, source, store=True)
        self.builder.insert(
            StoreThreadOp.create(scratch, self.index.value(base), value, offsets, mask)
        )
        self.builder.insert(BarrierOp.create())
        loaded = self.matrix_load(scratch, origin, dims, target)
        if loaded is None:
            base, offsets, mask = self.addresses(scratch_type, origin, dims, target)
            loaded = self.add(LoadThreadOp.create(scratch, self.index.value(base), offsets, mask))
        return from_storage(self, loaded) if from_storage is not None else loaded

    # ---- memory ---------------------------------------------------------------------------
    def scalar_base(self, memory_type, offsets) -> Value | int:
        """The element offset of a tile access's origin (the same in every thread).

        `offsets` holds, per memory dimension, an int or an old-IR value (to be mapped).
        """
        base: Value | int = 0
        for offset, stride in zip(offsets, memory_type.strides):
            base = self.index.add(base, self.index.mul(self.mapped(offset), stride))
        return base

    def base_divisible(self, memory_type, offsets, divisor: int) -> bool:
        """Whether `scalar_base` is provably a multiple of `divisor`."""
        for offset, stride in zip(offsets, memory_type.strides):
            if isinstance(offset, int):
                known = offset * stride
            else:
                facts = self.analysis.facts(offset)
                known = facts.divisor * stride
            if known % divisor:
                return False
        return True

    def addresses(self, memory_type, offsets, dims, layout: RegisterLayout, store=False):
        """(base, lane offsets, lane mask or None) of a tile access in `layout`."""
        strides = memory_type.strides
        base = self.scalar_base(memory_type, offsets)
        lane_offsets = [0] * layout.slots
        thread_parts = []
        for tile_dim, memory_dim in enumerate(dims):
            part = thread_part(self.index, layout, tile_dim, self.tid)
            thread_parts.append(part)
            base = self.index.add(base, self.index.mul(part, strides[memory_dim]))
            for slot, value in enumerate(slot_part(layout, tile_dim)):
                lane_offsets[slot] += value * strides[memory_dim]
        mask = self.edge_mask(memory_type, offsets, dims, layout, thread_parts)
        if store:
            mask = self.and_masks(mask, self.replica_mask(layout))
        return base, lane_offsets, mask

    def mapped(self, offset):
        return offset if isinstance(offset, int) else self.map(offset)

    def dimension_inside(self, memory_type, offsets, dims, layout, memory_dim: int) -> bool:
        """Whether the index analysis proves a tile access inside the memory along a dim."""
        extent = memory_type.shape[memory_dim]
        facts = self.offset_facts(offsets[memory_dim])
        if facts is None or facts[0] < 0:
            return False
        reach = layout.shape[dims.index(memory_dim)] if memory_dim in dims else 1
        return facts[1] + reach <= extent

    def provably_inside(self, memory_type, offsets, dims, layout) -> bool:
        return all(
            self.dimension_inside(memory_type, offsets, dims, layout, memory_dim)
            for memory_dim in range(len(memory_type.shape))
        )

    def edge_mask(self, memory_type, offsets, dims, layout, thread_parts) -> Value | None:
        mask = None
        for memory_dim, extent in enumerate(memory_type.shape):
            offset = offsets[memory_dim]
            facts = self.offset_facts(offset)
            if self.dimension_inside(memory_type, offsets, dims, layout, memory_dim):
                continue
            if memory_dim not in dims:
                inside = self.in_range_scalar(self.mapped(offset), extent)
                mask = self.and_masks(mask, self.add(SplatOp.create_vector(inside, layout.slots)))
                continue
            tile_dim = dims.index(memory_dim)
            # lane ok  <=>  0 <= offset + thread_part + slot_part < extent
            start = self.index.add(self.mapped(offset), thread_parts[tile_dim])
            limit = self.index.sub(extent, start)
            lanes = self.add(VectorConstantOp.create(slot_part(layout, tile_dim), I32))
            bound = self.add(SplatOp.create_vector(self.index.value(limit), layout.slots))
            lane_mask = self.add(BinaryOp.create("lt", lanes, bound))
            if facts is None or facts[0] < 0:
                low = self.add(
                    SplatOp.create_vector(self.index.value(self.index.sub(0, start)), layout.slots)
                )
                lane_mask = self.add(
                    BinaryOp.create("and", lane_mask, self.add(BinaryOp.create("ge", lanes, low)))
                )
            mask = self.and_masks(mask, lane_mask)
        return mask

    def offset_facts(self, offset) -> tuple[int, int] | None:
        if isinstance(offset, int):
            return offset, offset
        facts = self.analysis.facts(offset)
        if facts.lo is None or facts.hi is None:
            return None
        return facts.lo, facts.hi

    def in_range_scalar(self, offset: Value, extent: int) -> Value:
        zero, top = self.index.constant(0), self.index.constant(extent)
        low = self.add(BinaryOp.create("ge", offset, zero))
        high = self.add(BinaryOp.create("lt", offset, top))
        return self.add(BinaryOp.create("and", low, high))

    def replica_mask(self, layout: RegisterLayout) -> Value | None:
        replica = primary_replica(self.index, layout, self.tid)
        if replica is None:
            return None
        is_primary = self.add(BinaryOp.create("eq", replica, self.index.constant(0)))
        return self.add(SplatOp.create_vector(is_primary, layout.slots))

    def and_masks(self, a: Value | None, b: Value | None) -> Value | None:
        if a is None or b is None:
            return a if b is None else b
        return self.add(BinaryOp.create("and", a, b))

    def lower_LoadOp(self, op: LoadOp):
        memory = self.map(op.memory)
        layout = _layout(op.result)
        loaded = self.matrix_load(memory, op.offsets, op.dims, layout)
        if loaded is not None:
            return [loaded]
        base, offsets, mask = self.addresses(memory.type, op.offsets, op.dims, layout)
        order = address_order(offsets) if memory.type.dtype.nbits >= 8 else None
        if order is not None:  # (packed fields are cut from bytes read in address order)
            return [self.load_in_address_order(op, memory, base, offsets, mask, order)]
        load = LoadThreadOp.create(
            memory, self.index.value(base), offsets, mask, name=op.result.name_hint
        )
        return [self.add(load)]

    def load_in_address_order(self, op: LoadOp, memory, base, offsets, mask, order) -> Value:
        """A load whose lanes' addresses run in another order than the layout's slots (a
        k-permuted mma operand): read in address order, so the accesses vectorize, then the
        registers permuted into the slots' order."""
        mask = None if mask is None else self.shuffle(mask, order)
        in_order = [offsets[lane] for lane in order]
        load = LoadThreadOp.create(
            memory, self.index.value(base), in_order, mask, name=op.result.name_hint
        )
        loaded = self.add(load)
        inverse = [0] * len(order)
        for position, lane in enumerate(order):
            inverse[lane] = position
        return self.shuffle(loaded, inverse)

    def matrix_load(self, memory: Value, offsets, dims, layout: RegisterLayout) -> Value | None:
        """A shared-tile load as warp-wide `ldmatrix` loads (CUDA, tiles of 16-bit elements in
        mma fragment layouts, see `matrix_loads`); None when it is not one."""
        memory_type = memory.type
        if (
            self.target != "cuda"
            or not isinstance(memory_type, SharedType)
            or memory_type.dtype.nbits != 16
            or not self.provably_inside(memory_type, offsets, dims, layout)
        ):
            return None
        strides = [memory_type.strides[d] for d in dims]
        plan = plan_matrix_loads(fragment_offsets(layout, strides))
        if plan is None or not self.base_divisible(memory_type, offsets, ROW):
            return None
        found = [bit_terms(load.rows) for load in plan]
        rows = [terms for terms in found if terms is not None]
        if len(rows) != len(found):
            return None
        base = self.scalar_base(memory_type, offsets)
        threads = self.kernel.threads
        loads, indices, first = [], [0] * layout.slots, 0
        for load, (constant, terms) in zip(plan, rows):
            digits = thread_digits(self.index, terms, self.tid, threads)
            row = self.index.value(self.index.add(self.index.add(base, constant), digits))
            loads.append(self.add(LoadMatrixOp.create(memory, row, load.count, load.transpose)))
            for lane, slot in enumerate(load.slots):  # where each slot lands in the joined lanes
                indices[slot] = first + lane
            first += len(load.slots)
        if len(loads) == 1:
            return self.shuffle(loads[0], indices)
        return self.add(ShuffleOp.create(loads, indices))

    def lower_StoreOp(self, op: StoreOp):
        memory = self.map(op.memory)
        layout = _layout(op.value)
        base, offsets, mask = self.addresses(memory.type, op.offsets, op.dims, layout, store=True)
        value = self.map(op.value)
        store = StoreThreadOp.create(
            memory, self.index.value(base), value, offsets, mask, combine=op.combine
        )
        self.builder.insert(store)
        return []

    # ---- reductions -------------------------------------------------------------------------
    def lower_ReduceOp(self, op: ReduceOp):
        source_layout = _layout(op.operands[0])
        axis, kind = op.axis, op.kind
        from lpir import layout as L

        reduced = L.reduce(source_layout, [axis])

        def project(coordinates):
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

    def combine_threads(self, partial: Value, layout: RegisterLayout, axis: int, kind: str):
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

    def combine_through_shared(self, partial: Value, threads: int, digits: list, kind: str):
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

    def first_round_chunk(self, digits: list, lanes: int) -> int:
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

    def fold_partners(self, scratch: Value, base, partners: list[int], lanes: int, kind: str):
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

    # ---- dot --------------------------------------------------------------------------------
    def lower_DotOp(self, op: DotOp):
        a_old, b_old, acc_old = op.operands
        m, n = as_tile(acc_old.type).shape
        k = as_tile(a_old.type).shape[1]
        if self.target == "cuda" and a_old.type.dtype.name in ("f16", "bf16"):
            threads = _layout(acc_old).threads
            operands = (_layout(a_old), _layout(b_old))
            # (mma_layouts_permuted splits the warps by rows, as mma_layouts with split_rows)
            variants = [(False, None), (True, None), *((True, p) for p in PAIR_DISTANCES)]
            for split_rows, pair in variants:
                canonical = mma_layouts(m, n, k, threads, split_rows)
                if canonical is None or canonical[2] != _layout(acc_old):
                    continue
                if pair is None:
                    candidate = canonical[:2]
                else:
                    candidate = mma_layouts_permuted(m, n, k, threads, pair)
                if operands == candidate:
                    warps = mma_warps(m, n, k, threads, split_rows)
                    return [self.mma_dot(op, canonical, warps, mma_k_permutation(k, pair))]
        return [self.simt_dot(op)]

    def mma_dot(self, op: DotOp, canonical, warps, permutation: list[int]) -> Value:
        """Tensor cores: per m16n8 accumulator atom a thread holds, one mma per k16 step.

        `warps` is the (m, n) grid of warps (`mma_warps`); the fragments are the slots that
        hold, in the operands' layouts, what the canonical fragment layouts (`mma_layouts`)
        hold, with k renumbered by `permutation` (identity, or that of
        `layout_rules.mma_layouts_permuted`)."""
        a, b, acc = (self.map(v) for v in op.operands)
        m, n = as_tile(op.result.type).shape
        k = as_tile(op.operands[0].type).shape[1]
        warps_m, warps_n = warps
        repeat_m, repeat_n, steps = m // 16 // warps_m, n // 8 // warps_n, k // 16
        a_slots = _fragment_slots(canonical[0], _layout(op.operands[0]), permutation, 1)
        b_slots = _fragment_slots(canonical[1], _layout(op.operands[1]), permutation, 0)
        fragments = []
        for i in range(repeat_m):
            for j in range(repeat_n):
                atom = (i * repeat_n + j) * 4
                c = self.shuffle(acc, list(range(atom, atom + 4)))
                for step in range(steps):
                    a_start = (i * steps + step) * 8
                    b_start = (step * repeat_n + j) * 4
                    a_fragment = self.shuffle(a, a_slots[a_start : a_start + 8])
                    b_fragment = self.shuffle(b, b_slots[b_start : b_start + 4])
                    c = self.add(MmaOp.create(a_fragment, b_fragment, c))
                fragments.append(c)
        if len(fragments) == 1:
            return fragments[0]
        return self.add(ShuffleOp.create(fragments, list(range(4 * len(fragments)))))

    def simt_dot(self, op: DotOp) -> Value:
        """A dot on ordinary arithmetic: each accumulator slot a thread holds adds the products
        of its row of a and column of b (the layouts give the thread both whole).

        Where the thread's accumulator fills a vector register, one vector multiply-add per
        step of k updates all its slots (the order of k, an FMA each on a CPU). On the CPU,
        where it holds at most a register's lanes of slots (a GEMV's [64, 8] accumulator over
        128 threads: 4), that would be one dependent add per step, at the adder's latency; there
        each slot's k products are one wide multiply and summed by `reduce_lanes` instead, then
        added to the slot. Where k spans several registers, lane l of a register first sums its
        steps l, l + 16, l + 32, ... in order (one product vector per 16 steps, a slice of a's
        row times one of b's column: whole registers, no shuffling; LLVM contracts each multiply
        and add into an FMA, and the slots' registers are independent chains) and then the 16
        lanes are summed (after the loop, where defer-lane-sums applies): skinny_wq's [64, 16]
        accumulator over 128 threads (8 slots, k = 128) took 27 ms on the CPU as one balanced
        tree over k, 12 ms so with the steps as a balanced tree, 5.2 ms in order and deferred.
        A shuffle feeding an operand (a transposed tile) is folded into the dot's own. On the
        CPU, bf16 operands into f32 take two steps of k at a time in either form (`pair_steps`,
        `pair_lane_sums`: `dot_pairs`, 32 products an instruction where the host has
        AVX512-BF16). A dot's order of additions is each target's own (the interpreter's is
        exact)."""
        a_old, _, acc_old = op.operands
        k = as_tile(a_old.type).shape[1]
        acc_dtype = acc_old.type.dtype
        a, b, acc = (self.map(v) for v in op.operands)
        a_steps, b_steps = self._dot_slots(op, k)
        target = get_target(self.target)
        register_lanes = target.lanes(acc_dtype.nbits)
        in_steps = target.is_gpu or steps_in_registers(_layout(acc_old), target) or k < 8
        if _multiplies_in_pairs(a, acc, k, target):
            if in_steps:
                return self.pair_steps(a, b, acc, a_steps, b_steps)
            return self.pair_lane_sums(a, b, acc, a_steps, b_steps, register_lanes)
        if in_steps:
            if a.type.dtype != acc_dtype and self.target == "cuda":
                a = self.add(CastOp.create(a, acc_dtype))
                b = self.add(CastOp.create(b, acc_dtype))
            for a_lanes, b_lanes in zip(a_steps, b_steps):
                product = self.add(
                    BinaryOp.create(
                        "mul",
                        self.step_operand(a, a_lanes, acc_dtype),
                        self.step_operand(b, b_lanes, acc_dtype),
                    )
                )
                acc = self.add(BinaryOp.create("add", acc, product))
            return acc
        chunks, lanes, order = _lane_sum_order(k, as_vector(acc.type).size, register_lanes, 1)
        a, a_rows = _through_shuffle(a, [a_steps[step][slot] for slot, step in order])
        b, b_columns = _through_shuffle(b, [b_steps[step][slot] for slot, step in order])
        if a.type.dtype != acc_dtype:
            a = self.add(CastOp.create(a, acc_dtype))
        if b.type.dtype != acc_dtype:
            b = self.add(CastOp.create(b, acc_dtype))
        width = as_vector(acc.type).size * lanes
        products = [
            self.add(
                BinaryOp.create(
                    "mul",
                    self.shuffle(a, a_rows[c * width : (c + 1) * width]),
                    self.shuffle(b, b_columns[c * width : (c + 1) * width]),
                )
            )
            for c in range(chunks)
        ]
        total = products[0]
        for product in products[1:]:
            total = self.add(BinaryOp.create("add", total, product))
        sums = self.add(ReduceLanesOp.create(total, "sum", lanes))
        return self.add(BinaryOp.create("add", acc, sums))

    def pair_steps(self, a, b, acc, a_steps, b_steps) -> Value:
        """`simt_dot` of bf16 operands whose thread adds whole registers of accumulator each
        step: steps 2p and 2p + 1 are one `dot_pairs`, each slot's two elements of a and of b
        side by side (a's pair is one 32-bit element broadcast across a row's slots)."""
        for step in range(0, len(a_steps), 2):
            a_pairs = _interleaved(a_steps[step], a_steps[step + 1])
            b_pairs = _interleaved(b_steps[step], b_steps[step + 1])
            acc = self.add(
                DotPairsOp.create(acc, self.shuffle(a, a_pairs), self.shuffle(b, b_pairs))
            )
        return acc

    def pair_lane_sums(self, a, b, acc, a_steps, b_steps, register_lanes: int) -> Value:
        """`simt_dot` of bf16 operands summed in lanes: lane l of a slot's register adds steps
        2l and 2l + 1 of each chunk of 2 x `register_lanes` steps (one `dot_pairs` a chunk, in
        order), then `reduce_lanes` sums the lanes, as the f32 path does with products."""
        slots = acc.type.size
        chunks, lanes, order = _lane_sum_order(len(a_steps), slots, register_lanes, 2)
        a, a_rows = _through_shuffle(a, [a_steps[step][slot] for slot, step in order])
        b, b_columns = _through_shuffle(b, [b_steps[step][slot] for slot, step in order])
        width = 2 * slots * lanes
        total = self.add(VectorConstantOp.create([0.0] * (width // 2), acc.type.dtype))
        for c in range(chunks):
            a_chunk = self.shuffle(a, a_rows[c * width : (c + 1) * width])
            b_chunk = self.shuffle(b, b_columns[c * width : (c + 1) * width])
            total = self.add(DotPairsOp.create(total, a_chunk, b_chunk))
        sums = self.add(ReduceLanesOp.create(total, "sum", lanes))
        return self.add(BinaryOp.create("add", acc, sums))

    def step_operand(self, vector: Value, lanes: list[int], dtype) -> Value:
        """The lanes of a dot operand that one step of k multiplies, as `dtype`. A narrower
        operand has the distinct lanes of the step cast, then spread into the step's pattern:
        each element is still cast once (the steps read disjoint lanes), and no cast spans a
        thread's whole share of the operand (a matmul block's b, 2048 i8 lanes, took LLVM 18 s
        to compile cast whole)."""
        if vector.type.dtype == dtype:
            return self.shuffle(vector, lanes)
        distinct = sorted(set(lanes))
        narrow = self.add(CastOp.create(self.shuffle(vector, distinct), dtype))
        return self.shuffle(narrow, [distinct.index(lane) for lane in lanes])

    def _dot_slots(self, op: DotOp, k: int) -> tuple[list[list[int]], list[list[int]]]:
        """For each step of k, the slots of a and of b that each accumulator slot multiplies."""
        a_old, b_old, acc_old = op.operands
        acc_layout = _layout(acc_old)
        a_steps, b_steps = [], []
        for step in range(k):

            def a_project(coordinates, step=step):
                projected = coordinates.copy()
                projected[..., 1] = step
                return projected

            def b_project(coordinates, step=step):
                projected = coordinates.copy()
                projected[..., 0] = step
                return projected

            a_steps.append(required_slot_map(acc_layout, _layout(a_old), a_project))
            b_steps.append(required_slot_map(acc_layout, _layout(b_old), b_project))
        return a_steps, b_steps


def _multiplies_in_pairs(a: Value, acc: Value, k: int, target) -> bool:
    """Whether a CPU dot multiplies its operands two steps of k at a time (`dot_pairs`): a
    target with bf16 dot products, bf16 operands (widen-dot-operands leaves them unwidened
    there), an f32 accumulator, an even k."""
    return (
        target.bf16_dot_pairs
        and a.type.dtype.name == "bf16"
        and acc.type.dtype.name == "f32"
        and k % 2 == 0
    )


def _lane_sum_order(k: int, slots: int, register_lanes: int, per_lane: int):
    """(chunks, lanes, order) of a dot summed in lanes: each slot's register of `lanes` lanes
    takes `per_lane` consecutive steps a lane from each chunk of `register_lanes` x `per_lane`
    steps (one chunk of all k where they do not divide it); `order` lists the (slot, step) of
    each operand lane, chunk by chunk, slot, lane, then the lane's steps."""
    span = register_lanes * per_lane
    chunks = k // span if k % span == 0 else 1
    lanes = register_lanes if chunks > 1 else k // per_lane
    order = [
        (slot, (c * lanes + lane) * per_lane + j)
        for c in range(chunks)
        for slot in range(slots)
        for lane in range(lanes)
        for j in range(per_lane)
    ]
    return chunks, lanes, order


def pair_interleaved(tile: TileType, source: RegisterLayout, target: RegisterLayout):
    """Where `target` holds a 2-d tile's rows in pairs (slots 2s and 2s + 1 are rows 2p and
    2p + 1 of one column, in every thread), the exchange through a pair-interleaved copy: the
    tile seen as [rows / 2, 2, columns], stored with strides [2 x columns, 1, 2] (each column's
    two elements side by side, as the target holds them), and both layouts regrouped so
    (`layout.reshape`: the same threads and slots). None elsewhere, or where the source's
    layout cannot be regrouped."""
    if tile.rank != 2 or tile.shape[0] % 2 or target.slots % 2:
        return None
    coordinates = target.coordinates()
    first, second = coordinates[:, 0::2], coordinates[:, 1::2]
    if (first[..., 0] % 2).any() or (second - first != [1, 0]).any():
        return None
    rows, columns = tile.shape
    shape = (rows // 2, 2, columns)
    try:
        source, target = (reshape_layout(layout, shape) for layout in (source, target))
    except LayoutError:
        return None
    layout = SharedLayout(shape, (2 * columns, 1, 2))
    return TileType(tile.dtype, shape), source, target, layout


def _interleaved(first: list[int], second: list[int]) -> list[int]:
    """first[0], second[0], first[1], second[1], ...: each slot's two steps side by side."""
    return [lane for pair in zip(first, second) for lane in pair]


def _through_shuffle(value: Value, lanes: list[int]) -> tuple[Value, list[int]]:
    """`lanes` of `value` as lanes of what it was shuffled from, where it is a shuffle of one
    vector (a transposed tile): the dot's own shuffle then picks from the source directly,
    and the two permutations do not both reach the machine code."""
    owner = value.owner
    if isinstance(owner, ShuffleOp) and len(owner.operands) == 1:
        return owner.operands[0], [owner.indices[lane] for lane in lanes]
    return value, lanes


def _scratch_dtype(dt):
    """How a dtype travels through shared scratch memory: as itself, or (sub-byte types) as
    one byte per element, converted on the way in and out."""
    if dt.nbits >= 8 or dt.is_bool:
        return (
            (U8 if dt.is_bool else dt),
            ((lambda low, v: low.add(CastOp.create(v, U8))) if dt.is_bool else None),
            ((lambda low, v: low.add(CastOp.create(v, dt))) if dt.is_bool else None),
        )
    code = dtype(f"u{dt.nbits}")

    def to_storage(low, value):
        if dt != code:
            value = low.add(ViewOp.create(value, code))
        return low.add(CastOp.create(value, U8))

    def from_storage(low, value):
        value = low.add(CastOp.create(value, code))
        return low.add(ViewOp.create(value, dt)) if dt != code else value

    return U8, to_storage, from_storage


@register_pass
class LowerToThreadsPass(Pass):
    name = "lower-to-threads"

    def run(self, module: Module) -> Module:
        return _Lowering(self.target).run(module)


def split_at_warps(digits) -> tuple[list, list]:
    """`digits` (most significant first) as (across, within): `within` are the least
    significant positions of the partner index that warp shuffles can fold (`butterfly_masks`
    is not None: a power-of-two group inside one warp), so the first levels of its balanced
    tree; `across` the rest. A digit that reaches past a warp is split there: its low part,
    inside the warp, joins `within` (the value of a digit is high * low.size + low)."""
    within: list = []
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


def butterfly_masks(digits) -> list[int] | None:
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


def _fragment_slots(canonical: RegisterLayout, layout: RegisterLayout, permutation, k_dim):
    """For each slot of the canonical mma operand layout, the slot of `layout` holding the same
    element with its k (dimension `k_dim`) renumbered by `permutation` (in every thread alike:
    thread 0 stands for all)."""
    slot_of = {layout.map(0, slot): slot for slot in range(layout.slots)}
    slots = []
    for slot in range(canonical.slots):
        coordinate = list(canonical.map(0, slot))
        coordinate[k_dim] = permutation[coordinate[k_dim]]
        slots.append(slot_of[tuple(coordinate)])
    return slots


def address_order(offsets: list[int]) -> list[int] | None:
    """The lanes in address order when that order has more runs of consecutive addresses
    than the lanes' own (so that the access vectorizes); None to keep the lanes' order."""

    def neighbours(values) -> int:
        return sum(b == a + 1 for a, b in itertools.pairwise(values))

    order = sorted(range(len(offsets)), key=lambda lane: offsets[lane])
    if neighbours([offsets[lane] for lane in order]) > neighbours(offsets):
        return order
    return None


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


__all__ = ["ForOp", "IfOp", "LowerToThreadsPass", "SelectOp", "UnaryOp", "math", "thread_type"]
