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

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from lpir.passes.base import Pass, register_pass
from lpir.passes.insert_syncs import own_round_trips
from lpir.passes.layout_rules import shared_layout
from lpir.passes.matrix_loads import (
    bit_terms,
    fragment_offsets,
    plan_matrix_loads,
    row_elements,
)
from lpir.passes.thread_dots import DotLowering
from lpir.passes.thread_limits import check_cpu_thread_tiles
from lpir.passes.thread_lowering import ThreadLowering, tile_layout
from lpir.passes.thread_reductions import ReductionLowering
from lpir.passes.thread_scans import ScanLowering
from lpir.passes.thread_sorts import SortLowering
from lpir.passes.thread_values import (
    primary_replica,
    required_slot_map,
    slot_map,
    slot_part,
    thread_digits,
    thread_part,
)

from lpir.dtypes import DType, dtype
from lpir.errors import LayoutError, VerifyError
from lpir.ir.core import Kernel, Module, Operation, Value
from lpir.ir.ops import (
    AllocSharedOp,
    ArangeOp,
    BarrierOp,
    BinaryOp,
    BroadcastOp,
    CastOp,
    ConstantOp,
    ConvertLayoutOp,
    ExpandDimsOp,
    ExtractOp,
    InBoundsOp,
    IndexOp,
    ItemOp,
    LoadMatrixOp,
    LoadOp,
    LoadThreadOp,
    ReshapeOp,
    ShuffleOp,
    SplatOp,
    StackOp,
    StoreOp,
    StoreThreadOp,
    SyncOp,
    TransposeOp,
    VectorConstantOp,
    ViewOp,
)
from lpir.ir.types import MemoryType, SharedType, TileType, as_memory, as_tile
from lpir.layout import RegisterLayout, SharedLayout
from lpir.layout import reshape as reshape_layout
from lpir.targets import get_target

I32 = dtype("i32")
BOOL = dtype("bool")
#: a cpu gather or scatter of more lanes than this, each at a position of its own, is one `ld`/`st`
#: with a base per lane (LLVM's masked gather / scatter), not one access per lane
LANE_GATHER_LANES = 16
#: a cpu gather of this many 8- or 16-bit lanes or more, each at a position of its own, is one
#: `ld` with a base per lane (32-bit gathers, one instruction per 8 or 16 lanes)
LANE_GATHER_MIN_LANES = 8
U8 = dtype("u8")


class _Lowering(ReductionLowering, ScanLowering, SortLowering, DotLowering):
    def run_kernel(self, kernel: Kernel) -> Kernel:
        # loads that only each thread's own accesses order stay per thread: an ldmatrix's lanes
        # would address rows that other lanes wrote, with no barrier between
        self.own_round_trips: set[Operation] = (
            own_round_trips(kernel) if self.target == "cuda" else set()
        )
        return super().run_kernel(kernel)

    def lower_SplatOp(self, op: SplatOp) -> list[Value]:
        if not isinstance(op.result.type, TileType):
            return self.copy(op).results
        slots = tile_layout(op.result).slots
        return [self.add(SplatOp.create_vector(self.map(op.operands[0]), slots))]

    def lower_ItemOp(self, op: ItemOp) -> list[Value]:
        return [self.add(ExtractOp.create(self.map(op.operands[0]), 0, op.result.name_hint))]

    def lower_SyncOp(self, op: SyncOp) -> list[Value]:
        self.builder.insert(BarrierOp.create())
        return []

    def lower_ExpandDimsOp(self, op: ExpandDimsOp) -> list[Value]:
        return [self.map(op.operands[0])]

    def lower_TransposeOp(self, op: TransposeOp) -> list[Value]:
        return [self.map(op.operands[0])]  # the same slots: only the layout's dims swap

    def lower_IndexOp(self, op: IndexOp) -> list[Value]:
        # each thread holds the whole axis (layout-selection saw to it): a choice of its slots
        axis, position = op.axis, op.position

        def project(coordinates: np.ndarray) -> np.ndarray:
            return np.insert(coordinates, axis, position, axis=-1)

        indices = required_slot_map(tile_layout(op.result), tile_layout(op.operands[0]), project)
        return [self.shuffle(self.map(op.operands[0]), indices)]

    def lower_StackOp(self, op: StackOp) -> list[Value]:
        # the operands share a layout and the new axis is local in the result's: each result
        # slot is one operand's slot (the operand its coordinate on the axis names)
        axis, source = op.axis, tile_layout(op.operands[0])
        result = tile_layout(op.result)
        slots = required_slot_map(result, source, lambda c: np.delete(c, axis, axis=-1))
        which = result.coordinates()[..., axis]  # [threads, slots]
        if (which != which[0]).any():
            raise VerifyError(f"the threads of {result} split the stacked axis {axis}")
        indices = [int(j) * source.slots + slot for j, slot in zip(which[0], slots)]
        vectors = [self.map(v) for v in op.operands]
        return [self.add(ShuffleOp.create(vectors, indices))]

    def lower_ReshapeOp(self, op: ReshapeOp) -> list[Value]:
        # layout-selection gave the result `reshape` of the operand's layout: the same threads
        # hold the same elements in the same slots, only the shape around them changes
        return [self.map(op.operands[0])]

    def lower_ArangeOp(self, op: ArangeOp) -> list[Value]:
        layout = tile_layout(op.result)
        part = thread_part(self.index, layout, 0, self.tid)
        lanes = self.add(VectorConstantOp.create(slot_part(layout, 0), I32))
        if isinstance(part, int) and part == 0:
            return [lanes]
        base = self.add(SplatOp.create_vector(self.index.value(part), layout.slots))
        return [self.add(BinaryOp.create("add", base, lanes))]

    def lower_BroadcastOp(self, op: BroadcastOp) -> list[Value]:
        source = op.operands[0]
        shape = as_tile(source.type).shape

        def project(coordinates: np.ndarray) -> np.ndarray:
            projected = coordinates.copy()
            for dim, size in enumerate(shape):
                if size == 1:
                    projected[..., dim] = 0
            return projected

        indices = required_slot_map(tile_layout(op.result), tile_layout(source), project)
        return [self.shuffle(self.map(source), indices)]

    # ---- layout conversion ----------------------------------------------------------------
    def lower_ConvertLayoutOp(self, op: ConvertLayoutOp) -> list[Value]:
        source, target = tile_layout(op.operands[0]), tile_layout(op.result)
        value = self.map(op.operands[0])
        if source == target:
            return [value]
        indices = slot_map(target, source)
        if indices is not None:
            return [self.shuffle(value, indices)]
        return [self.exchange(value, as_tile(op.operands[0].type), source, target)]

    def exchange(
        self, value: Value, tile: TileType, source: RegisterLayout, target: RegisterLayout
    ) -> Value:
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
        layout: SharedLayout | None
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
    def scalar_base(self, memory_type: MemoryType, offsets: Sequence[Value | int]) -> Value | int:
        """The element offset of a tile access's origin (the same in every thread).

        `offsets` holds, per memory dimension, an int or an old-IR value (to be mapped).
        """
        base: Value | int = 0
        for offset, stride in zip(offsets, memory_type.strides):
            base = self.index.add(base, self.index.mul(self.mapped(offset), stride))
        return base

    def base_divisible(
        self, memory_type: MemoryType, offsets: Sequence[Value | int], divisor: int
    ) -> bool:
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

    def addresses(
        self,
        memory_type: MemoryType,
        offsets: Sequence[Value | int],
        dims: Sequence[int],
        layout: RegisterLayout,
        store: bool = False,
        gathered: frozenset[int] = frozenset(),
    ) -> tuple[Value | int, list[int], Value | None]:
        """(base, lane offsets, lane mask or None) of a tile access in `layout`, leaving out
        the `gathered` memory dimensions (their offsets 0: `gathered_access` adds them)."""
        strides = memory_type.strides
        base = self.scalar_base(memory_type, offsets)
        lane_offsets = [0] * layout.slots
        thread_parts: list[Value | int] = []
        for tile_dim, memory_dim in enumerate(dims):
            part = thread_part(self.index, layout, tile_dim, self.tid)
            thread_parts.append(part)
            if memory_dim in gathered:
                continue
            base = self.index.add(base, self.index.mul(part, strides[memory_dim]))
            for slot, value in enumerate(slot_part(layout, tile_dim)):
                lane_offsets[slot] += value * strides[memory_dim]
        mask = self.edge_mask(memory_type, offsets, dims, layout, thread_parts, gathered)
        if store:
            mask = self.and_masks(mask, self.replica_mask(layout))
        return base, lane_offsets, mask

    def mapped(self, offset: Value | int) -> Value | int:
        return offset if isinstance(offset, int) else self.map(offset)

    def dimension_inside(
        self,
        memory_type: MemoryType,
        offsets: Sequence[Value | int],
        dims: Sequence[int],
        layout: RegisterLayout,
        memory_dim: int,
    ) -> bool:
        """Whether the index analysis proves a tile access inside the memory along a dim (never
        along a first dimension read at run time)."""
        extent = self.extent(memory_type, memory_dim)
        if not isinstance(extent, int):
            return False
        facts = self.offset_facts(offsets[memory_dim])
        if facts is None or facts[0] < 0:
            return False
        reach = layout.shape[dims.index(memory_dim)] if memory_dim in dims else 1
        return facts[1] + reach <= extent

    def provably_inside(
        self,
        memory_type: MemoryType,
        offsets: Sequence[Value | int],
        dims: Sequence[int],
        layout: RegisterLayout,
    ) -> bool:
        return all(
            self.dimension_inside(memory_type, offsets, dims, layout, memory_dim)
            for memory_dim in range(len(memory_type.shape))
        )

    def edge_mask(
        self,
        memory_type: MemoryType,
        offsets: Sequence[Value | int],
        dims: Sequence[int],
        layout: RegisterLayout,
        thread_parts: list[Value | int],
        gathered: frozenset[int] = frozenset(),
    ) -> Value | None:
        mask = None
        for memory_dim in range(memory_type.rank):
            extent = self.extent(memory_type, memory_dim)
            if memory_dim in gathered:  # (each position's own bounds: `gathered_access`)
                continue
            offset = offsets[memory_dim]
            facts = self.offset_facts(offset)
            if self.dimension_inside(memory_type, offsets, dims, layout, memory_dim):
                continue
            if memory_dim not in dims:
                # (int offsets come from `exchange` alone, whose tile spans every memory dim)
                assert not isinstance(offset, int)
                inside = self.in_range_scalar(self.map(offset), extent)
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

    def offset_facts(self, offset: Value | int) -> tuple[int, int] | None:
        if isinstance(offset, int):
            return offset, offset
        facts = self.analysis.facts(offset)
        if facts.lo is None or facts.hi is None:
            return None
        return facts.lo, facts.hi

    def extent(self, memory_type: MemoryType, memory_dim: int) -> Value | int:
        """The size of a memory dimension: an int, or for a tensor's first dimension read at
        run time the i32 argument that holds it."""
        rows = getattr(memory_type, "extent", None)
        if memory_dim != 0 or rows is None:
            return memory_type.shape[memory_dim]
        argument = next(arg for arg in self.kernel.args if arg.name_hint == rows)
        return self.map(argument)

    def in_range_scalar(self, offset: Value, extent: Value | int) -> Value:
        zero, top = self.index.constant(0), self.index.value(extent)
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

    def lower_LoadOp(self, op: LoadOp) -> list[Value]:
        memory = self.map(op.memory)
        layout = tile_layout(op.result)
        if _gathers(op):
            return [self.gathered_load(op, memory, layout)]
        if op.mask is None and op not in self.own_round_trips:  # (ldmatrix reads every element)
            loaded = self.matrix_load(memory, op.offsets, op.dims, layout)
            if loaded is not None:
                return [loaded]
        base, offsets, mask = self.addresses(as_memory(memory.type), op.offsets, op.dims, layout)
        if op.mask is not None:
            mask = self.and_masks(mask, self.map(op.mask))
        order = address_order(offsets) if memory.type.dtype.nbits >= 8 else None
        if order is not None:  # (packed fields are cut from bytes read in address order)
            return [self.load_in_address_order(op, memory, base, offsets, mask, order)]
        load = LoadThreadOp.create(
            memory, self.index.value(base), offsets, mask, name=op.result.name_hint
        )
        return [self.add(load)]

    def load_in_address_order(
        self,
        op: LoadOp,
        memory: Value,
        base: Value | int,
        offsets: list[int],
        mask: Value | None,
        order: list[int],
    ) -> Value:
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

    def matrix_load(
        self,
        memory: Value,
        offsets: Sequence[Value | int],
        dims: Sequence[int],
        layout: RegisterLayout,
    ) -> Value | None:
        """A shared-tile load as warp-wide `ldmatrix` loads (CUDA, tiles of 16-bit or 8-bit
        elements in mma fragment layouts, see `matrix_loads`); None when it is not one."""
        memory_type = memory.type
        if (
            self.target != "cuda"
            or not isinstance(memory_type, SharedType)
            or memory_type.dtype.nbits not in (8, 16)
            or not self.provably_inside(memory_type, offsets, dims, layout)
        ):
            return None
        nbits = memory_type.dtype.nbits
        strides = [memory_type.strides[d] for d in dims]
        plan = plan_matrix_loads(fragment_offsets(layout, strides), nbits)
        if plan is None or not self.base_divisible(memory_type, offsets, row_elements(nbits)):
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

    def lower_StoreOp(self, op: StoreOp) -> list[Value]:
        memory = self.map(op.memory)
        layout = tile_layout(op.value)
        if _gathers(op):
            fetched = self.gathered_store(op, memory, layout)
            return [fetched] if fetched is not None else []
        base, offsets, mask = self.addresses(
            as_memory(memory.type), op.offsets, op.dims, layout, store=True
        )
        if op.mask is not None:
            mask = self.and_masks(mask, self.map(op.mask))
        value = self.map(op.value)
        store = StoreThreadOp.create(
            memory,
            self.index.value(base),
            value,
            offsets,
            mask,
            combine=op.combine,
            fetch=op.fetches,
        )
        self.builder.insert(store)
        return [store.result] if op.fetches else []

    def lower_InBoundsOp(self, op: InBoundsOp) -> list[Value]:
        """The edge mask the access would have (all true where the index analysis proves the
        tile inside the tensor), with gathered positions checked lane by lane."""
        memory_type = as_memory(self.map(op.memory).type)
        layout = tile_layout(op.result)
        gathered = [d for d, o in enumerate(op.offsets) if isinstance(o.type, TileType)]
        offsets = [0 if d in gathered else o for d, o in enumerate(op.offsets)]
        _, _, mask = self.addresses(
            memory_type, offsets, op.dims, layout, gathered=frozenset(gathered)
        )
        for d in gathered:
            positions = self.map(op.offsets[d])
            bounds = [self.index.value(v) for v in (0, self.extent(memory_type, d))]
            low, high = (self.add(SplatOp.create_vector(v, layout.slots)) for v in bounds)
            above = self.add(BinaryOp.create("ge", positions, low))
            below = self.add(BinaryOp.create("lt", positions, high))
            mask = self.and_masks(mask, self.add(BinaryOp.create("and", above, below)))
        if mask is None:
            true = self.add(ConstantOp.create(True, BOOL))
            return [self.add(SplatOp.create_vector(true, layout.slots))]
        return [mask]

    # ---- gathers and scatters ----------------------------------------------------------------
    def gathered_load(self, op: LoadOp, memory: Value, layout: RegisterLayout) -> Value:
        """A load whose positions along some dimensions come from tiles: one `ld` per run of
        lanes that share those positions (a thread's elements of one gathered row), joined."""
        if self.lane_gathers(op, memory, layout):
            bases, offsets, mask = self.lane_access(op, memory, layout, store=False)
            return self.add(LoadThreadOp.create(memory, bases, offsets, mask))
        loads, indices, first = [], [0] * layout.slots, 0
        for lanes, base, offsets, mask in self.gathered_access(op, memory, layout, store=False):
            for position, lane in enumerate(lanes):  # where each slot lands in the joined lanes
                indices[lane] = first + position
            first += len(lanes)
            ld = LoadThreadOp.create(memory, self.index.value(base), offsets, mask)
            loads.append(self.add(ld))
        if len(loads) == 1:
            return self.shuffle(loads[0], indices)
        return self.add(ShuffleOp.create(loads, indices))

    def gathered_store(self, op: StoreOp, memory: Value, layout: RegisterLayout) -> Value | None:
        """A store whose positions along some dimensions come from tiles (a scatter): one `st`
        per run of lanes that share those positions; a fetching atomic's old values joined
        back into the tile's lanes (None where it does not fetch)."""
        value = self.map(op.value)
        if self.lane_gathers(op, memory, layout):  # (never combines)
            bases, offsets, mask = self.lane_access(op, memory, layout, store=True)
            store = StoreThreadOp.create(memory, bases, value, offsets, mask)
            self.builder.insert(store)
            return None
        fetched, indices, first = [], [0] * layout.slots, 0
        for lanes, base, offsets, mask in self.gathered_access(op, memory, layout, store=True):
            store = StoreThreadOp.create(
                memory,
                self.index.value(base),
                self.shuffle(value, lanes),
                offsets,
                mask,
                combine=op.combine,
                fetch=op.fetches,
            )
            self.builder.insert(store)
            if op.fetches:
                fetched.append(store.result)
                for position, lane in enumerate(lanes):  # where each lane's old value lands
                    indices[lane] = first + position
                first += len(lanes)
        if not fetched:
            return None
        if len(fetched) == 1:
            return self.shuffle(fetched[0], indices)
        return self.add(ShuffleOp.create(fetched, indices))

    def gathered_access(
        self, op: LoadOp | StoreOp, memory: Value, layout: RegisterLayout, store: bool
    ) -> list[tuple[list[int], Value | int, list[int], Value | None]]:
        """(lanes, base, lane offsets, mask) per group of the thread's lanes that share their
        gathered positions: where each positions tile varies along its own dimension only (a 1-d
        tile broadcast, as the language makes them), lanes whose coordinates along the gathered
        dimensions differ in no slot part share them, so one lane's positions (the positions
        tile lies in the access's layout) are all of theirs; otherwise (IR text with positions
        per element) every lane is a group of its own. Each group's base adds position x stride
        per gathered dimension, and its mask the positions' bounds (outside the tensor: not
        read, not written)."""
        memory_type, gathered, base, lane_offsets, mask = self.gather_origin(
            op, memory, layout, store
        )
        found = []
        for lanes in _lane_groups(op, layout):
            group_base = base
            group_mask = None if mask is None else self.shuffle(mask, lanes)
            for d in gathered:
                position = self.add(ExtractOp.create(self.map(op.offsets[d]), lanes[0]))
                stride = memory_type.strides[d]
                group_base = self.index.add(group_base, self.index.mul(position, stride))
                inside = self.in_range_scalar(position, self.extent(memory_type, d))
                splat = self.add(SplatOp.create_vector(inside, len(lanes)))
                group_mask = self.and_masks(group_mask, splat)
            found.append((lanes, group_base, [lane_offsets[lane] for lane in lanes], group_mask))
        return found

    def gather_origin(
        self, op: LoadOp | StoreOp, memory: Value, layout: RegisterLayout, store: bool
    ) -> tuple[MemoryType, list[int], Value | int, list[int], Value | None]:
        """(memory type, gathered dims, base, lane offsets, mask) of a gathered access with its
        gathered dimensions at 0: what each lane's position x stride is added to, and the
        access's own mask and edges."""
        memory_type = as_memory(memory.type)
        gathered = [d for d, o in enumerate(op.offsets) if isinstance(o.type, TileType)]
        offsets = [0 if d in gathered else o for d, o in enumerate(op.offsets)]
        base, lane_offsets, mask = self.addresses(
            memory_type, offsets, op.dims, layout, store=store, gathered=frozenset(gathered)
        )
        if op.mask is not None:
            mask = self.and_masks(mask, self.map(op.mask))
        return memory_type, gathered, base, lane_offsets, mask

    def lane_gathers(self, op: LoadOp | StoreOp, memory: Value, layout: RegisterLayout) -> bool:
        """Whether a gather or scatter takes one base per lane (`lane_access`): on the cpu, where
        more than LANE_GATHER_LANES of a thread's lanes have positions of their own, of 32- or
        64-bit elements (x86 gathers them) in unswizzled memory (a scatter that combines goes
        lane by lane); also a gather of LANE_GATHER_MIN_LANES or more 8- or 16-bit elements
        from memory whose size is known at compile time, which the LLVM backend reads as 32-bit
        words inside it (`Memory.narrow_gather`: LLVM expands a narrow gather lane by lane, and
        compiled those more slowly than an access per lane). An access per lane checks each
        lane's bounds and loads it on its own: GPTQ's x read through its permutation, 8 f16 a
        thread, took about half the instructions of the kernel's loop."""
        memory_type = as_memory(memory.type)
        if (
            self.target != "cpu"
            or memory_type.swizzle is not None
            or getattr(op, "combine", None) is not None
            or len(_lane_groups(op, layout)) != layout.slots
        ):
            return False
        if memory_type.dtype.nbits in (32, 64):
            return layout.slots > LANE_GATHER_LANES
        narrow = memory_type.dtype.nbits in (8, 16) and not memory_type.dtype.is_bool
        return (
            narrow
            and isinstance(op, LoadOp)
            and getattr(memory_type, "extent", None) is None
            and memory_type.nbytes >= 4
            and layout.slots >= LANE_GATHER_MIN_LANES
        )

    def lane_access(
        self, op: LoadOp | StoreOp, memory: Value, layout: RegisterLayout, store: bool
    ) -> tuple[Value, list[int], Value | None]:
        """(bases, lane offsets, mask) of one `ld`/`st` with a base per lane: the access's
        origin plus, per gathered dimension, each lane's position x stride, computed on whole
        vectors, and the mask the positions' bounds (one vector op each, where a run per lane
        cost LLVM time quadratic in the lanes: a 1024-lane scatter compiled in seconds)."""
        memory_type, gathered, base, lane_offsets, mask = self.gather_origin(
            op, memory, layout, store
        )
        lanes = layout.slots

        def splat(value: Value | int) -> Value:
            return self.add(SplatOp.create_vector(self.index.value(value), lanes))

        bases = splat(base)
        for d in gathered:
            positions = self.map(op.offsets[d])
            stride = memory_type.strides[d]
            scaled = positions
            if stride != 1:
                scaled = self.add(BinaryOp.create("mul", positions, splat(stride)))
            bases = self.add(BinaryOp.create("add", bases, scaled))
            above = self.add(BinaryOp.create("ge", positions, splat(0)))
            below = self.add(BinaryOp.create("lt", positions, splat(self.extent(memory_type, d))))
            mask = self.and_masks(mask, self.add(BinaryOp.create("and", above, below)))
        return bases, lane_offsets, mask

    # ---- reductions -------------------------------------------------------------------------


def pair_interleaved(
    tile: TileType, source: RegisterLayout, target: RegisterLayout
) -> tuple[TileType, RegisterLayout, RegisterLayout, SharedLayout] | None:
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


def _scratch_dtype(
    dt: DType,
) -> tuple[
    DType,
    Callable[[ThreadLowering, Value], Value] | None,
    Callable[[ThreadLowering, Value], Value] | None,
]:
    """How a dtype travels through shared scratch memory: as itself, or (sub-byte types) as
    one byte per element, converted on the way in and out."""
    if dt.nbits >= 8 or dt.is_bool:
        return (
            (U8 if dt.is_bool else dt),
            ((lambda low, v: low.add(CastOp.create(v, U8))) if dt.is_bool else None),
            ((lambda low, v: low.add(CastOp.create(v, dt))) if dt.is_bool else None),
        )
    code = dtype(f"u{dt.nbits}")

    def to_storage(low: ThreadLowering, value: Value) -> Value:
        if dt != code:
            value = low.add(ViewOp.create(value, code))
        return low.add(CastOp.create(value, U8))

    def from_storage(low: ThreadLowering, value: Value) -> Value:
        value = low.add(CastOp.create(value, code))
        return low.add(ViewOp.create(value, dt)) if dt != code else value

    return U8, to_storage, from_storage


@register_pass
class LowerToThreadsPass(Pass):
    name = "lower-to-threads"
    stage = "tile"
    needs_layouts = True

    def run(self, module: Module) -> Module:
        if self.target == "cpu":
            check_cpu_thread_tiles(module)
        return _Lowering(self.target).run(module)


def address_order(offsets: list[int]) -> list[int] | None:
    """The lanes in address order when that order has more runs of consecutive addresses
    than the lanes' own (so that the access vectorizes); None to keep the lanes' order."""

    def neighbours(values: list[int]) -> int:
        return sum(b == a + 1 for a, b in itertools.pairwise(values))

    order = sorted(range(len(offsets)), key=lambda lane: offsets[lane])
    if neighbours([offsets[lane] for lane in order]) > neighbours(offsets):
        return order
    return None


def _lane_groups(op: LoadOp | StoreOp, layout: RegisterLayout) -> list[list[int]]:
    """A gather's or scatter's groups of the thread's lanes that share their gathered positions
    (see `gathered_access`)."""
    gathered = [d for d, o in enumerate(op.offsets) if isinstance(o.type, TileType)]
    parts = [slot_part(layout, op.dims.index(d)) for d in gathered]
    shared = all(_varies_only_along(op.offsets[d], op.dims.index(d)) for d in gathered)
    groups: dict[tuple[int, ...], list[int]] = {}
    for slot in range(layout.slots):
        key = tuple(int(part[slot]) for part in parts) if shared else (slot,)
        groups.setdefault(key, []).append(slot)
    return list(groups.values())


def _gathers(op: LoadOp | StoreOp) -> bool:
    """Whether an access takes some dimension's positions from a tile (a gather or scatter)."""
    return any(isinstance(offset.type, TileType) for offset in op.offsets)


def _varies_only_along(positions: Value, axis: int) -> bool:
    """Whether a tile of positions is provably the same along every axis but `axis`: of rank
    1, or a broadcast of a tile whose other dimensions are 1."""
    shape = as_tile(positions.type).shape
    if len(shape) == 1:
        return True
    owner = positions.owner
    if not isinstance(owner, BroadcastOp):
        return False
    source = as_tile(owner.operands[0].type).shape
    return len(source) == len(shape) and all(
        size == 1 for dim, size in enumerate(source) if dim != axis
    )
