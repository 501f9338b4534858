"""layout-selection's second half: the kernel rebuilt with the layouts the selection chose
(layout_selection.py), every tile typed with its class's layout, `convert_layout` inserted
where an op needs an operand in another layout than its class has, shared tiles given the
layout their loads and stores want.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lpir.passes import layout_rules as rules

from lpir.errors import LayoutError
from lpir.ir.core import Operation, Value
from lpir.ir.loops import in_a_loop
from lpir.ir.ops import (
    AllocSharedOp,
    ArangeOp,
    BroadcastOp,
    ConstantOp,
    ConvertLayoutOp,
    DotOp,
    ExpandDimsOp,
    ForOp,
    IfOp,
    IndexOp,
    LoadOp,
    ReduceOp,
    ReshapeOp,
    ScanOp,
    SortOp,
    SplatOp,
    StackOp,
    StoreOp,
    SyncOp,
    TransposeOp,
    ViewOp,
    YieldOp,
)
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import SharedType, TileType, Type, as_tile
from lpir.layout import RegisterLayout

if TYPE_CHECKING:
    from lpir.passes.layout_selection import Selection


def try_layout(function: Callable, layout: RegisterLayout) -> RegisterLayout | None:
    """`function(layout)`, or None where the layouts do not fit (a LayoutError)."""
    try:
        return function(layout)
    except LayoutError:
        return None


class LayoutApplication(Rewriter):
    """Rebuilds the kernel with the chosen layouts, converting where requirements differ."""

    def __init__(self, selection: Selection):
        super().__init__()
        self.selection = selection
        # the shared copy of a tile that indexes read (`index_through_shared`), by the tile
        # and the region it was stored in: later indexes of it in that region read it too
        self.shared_copies: dict[tuple[int, int], Value] = {}
        # whether it made a shared copy (of an indexed tile, of an atomic's old values)
        self.made_shared_copies = False

    def chosen(self, value: Value) -> RegisterLayout:
        layout = self.selection.layout_of(value)
        assert layout is not None, "every tile class has a layout after selection"
        return layout

    def convert(self, value: Value, layout: RegisterLayout) -> Value:
        if as_tile(value.type).layout == layout:
            return value
        op = ConvertLayoutOp.create(value, layout, value.name_hint)
        return self.builder.add(op)

    def region_arg_type(self, arg: Value) -> Type:
        return self.typed(arg)

    def typed(self, value: Value) -> Type:
        if isinstance(value.type, TileType):
            return value.type.with_layout(self.chosen(value))
        return value.type

    def rewrite(self, op: Operation) -> list[Value]:
        operands = self.map_all(op.operands)
        if isinstance(op, AllocSharedOp):
            return [
                self.builder.add(AllocSharedOp.create(self.shared_type(op), op.result.name_hint))
            ]
        if isinstance(op, ConvertLayoutOp):
            return [self.convert(operands[0], as_tile(op.result.type).selected_layout)]
        if isinstance(op, IndexOp) and self.indexes_through_shared(op, operands[0]):
            return [self.index_through_shared(op, operands[0])]
        required = self.required_operand_layouts(op, operands)
        operands = [
            self.convert(v, layout) if layout is not None else v
            for v, layout in zip(operands, required)
        ]
        new = self.copy(op, operands)
        results = []
        for old, value in zip(op.results, new.results):
            if isinstance(old.type, TileType):
                computed = self.computed_result_layout(op, operands)
                value.type = old.type.with_layout(computed or self.chosen(old))
                value = self.convert(value, self.chosen(old))
            results.append(value)
        if (
            isinstance(op, StoreOp)
            and op.fetches
            and self.chosen(op.value).is_replicated
            and not self.only_stored(op.result)
        ):
            results = [self.fetched_through_shared(op, results[0])]
        return results

    def only_stored(self, value: Value) -> bool:
        """Whether every use of `value` stores it whole (the value of a store in its layout,
        which only the primary copies write): then replicas that hold 0 for it do no harm, as
        where nothing uses it, or in the copy `fetched_through_shared` makes (IR text printed
        after this pass keeps its one copy when compiled again)."""
        return all(
            isinstance(use, StoreOp)
            and use.value is value
            and sum(operand is value for operand in use.operands) == 1
            for use in self.selection.kernel.walk()
            if any(operand is value for operand in use.operands)
        )

    def fetched_through_shared(self, op: StoreOp, fetched: Value) -> Value:
        """The old values of a fetching atomic whose tile is held in replicas, which only the
        primary copies combine (and get): stored by them into a shared tile of its shape and
        read back by every thread, between barriers."""
        tile = as_tile(fetched.type)
        every = tuple(range(tile.rank))
        accesses = [(tile.selected_layout, every)]
        layout = rules.shared_layout(
            SharedType(tile.dtype, tile.shape), accesses, self.selection.target, accesses
        )
        add = self.builder.add
        self.made_shared_copies = True
        copy = add(AllocSharedOp.create(SharedType(tile.dtype, tile.shape, layout), "fetched"))
        zeros = [add(ConstantOp.create(0, "i32"))] * tile.rank
        # (in a loop, insert-syncs adds the barrier before the store: the last iteration's
        # reads of the copy done)
        self.builder.insert(StoreOp.create(copy, zeros, every, fetched))
        self.builder.insert(SyncOp.create())
        loaded = add(LoadOp.create(copy, zeros, every, tile.shape, fetched.name_hint))
        loaded.type = tile.with_layout(tile.selected_layout)
        return loaded

    def indexes_through_shared(self, op: IndexOp, operand: Value) -> bool:
        """Whether `op`'s operand (in its chosen layout) has the axis split over threads and
        the result is held in replicas that would each take long lines of it
        (`rules.indexes_through_shared`), or, on the CPU, that would be converted for it."""
        operand_layout, result_layout = self.chosen(op.operands[0]), self.chosen(op.result)
        if try_layout(lambda l: rules.indexed_result(l, op.axis), operand_layout):
            return False  # (free: each thread holds the axis whole)
        size = as_tile(operand.type).shape[op.axis]
        converted = operand_layout != rules.indexed_operand(result_layout, op.axis, size)
        if converted and result_layout.is_replicated and not self.selection.target.is_gpu:
            # a conversion would store the operand to shared memory as the copy does, and
            # each replica read whole lines of it, not just the elements it keeps
            return True
        tiles = self.selection.class_tiles(op.operands[0])
        return rules.indexes_through_shared(result_layout, size, self.selection.target, tiles)

    def index_through_shared(self, op: IndexOp, operand: Value) -> Value:
        """`op`'s result read from a shared copy of its operand (`shared_copy`): a load of
        the copy at `op.position` along the axis, by each thread for its result's elements."""
        copy = self.shared_copy(op, operand)
        rank = as_tile(operand.type).rank
        zero = self.builder.add(ConstantOp.create(0, "i32"))
        position = self.builder.add(ConstantOp.create(op.position, "i32"))
        offsets = [position if d == op.axis else zero for d in range(rank)]
        kept = tuple(d for d in range(rank) if d != op.axis)
        shape = as_tile(op.result.type).shape
        loaded = self.builder.add(LoadOp.create(copy, offsets, kept, shape, op.result.name_hint))
        loaded.type = as_tile(loaded.type).with_layout(self.chosen(op.result))
        return loaded

    def shared_copy(self, op: IndexOp, operand: Value) -> Value:
        """A shared tile holding `operand`, each thread having stored the elements it holds,
        a barrier after: made at the first index of `operand` in this region, read by the
        others (c[0], c[10] and c[BV - 1] share one copy and one barrier)."""
        key = (id(operand), id(self.builder.region))
        if key in self.shared_copies:
            return self.shared_copies[key]
        tile = as_tile(operand.type)
        every = tuple(range(tile.rank))
        kept = tuple(d for d in every if d != op.axis)
        memory = SharedType(tile.dtype, tile.shape)
        loads = [(self.chosen(op.result), kept)]
        stores = [(tile.selected_layout, every)]
        layout = rules.shared_layout(memory, loads, self.selection.target, stores)
        add = self.builder.add
        self.made_shared_copies = True
        copy = add(AllocSharedOp.create(SharedType(tile.dtype, tile.shape, layout), "indexed"))
        zero = add(ConstantOp.create(0, "i32"))
        if in_a_loop(op.parent):  # (the last iteration's reads of the copy are done)
            self.builder.insert(SyncOp.create())
        self.builder.insert(StoreOp.create(copy, [zero] * tile.rank, every, operand))
        self.builder.insert(SyncOp.create())
        self.shared_copies[key] = copy
        return copy

    def shared_type(self, op: AllocSharedOp) -> SharedType:
        """The shared tile with the layout its loads and stores want
        (`layout_rules.shared_layout`), or the one it has where every tile's layout is kept."""
        memory_type = op.shared_type
        if self.selection.keeps_layouts and memory_type.layout is not None:
            return memory_type
        uses = [
            use
            for use in self.selection.kernel.walk()
            if isinstance(use, (LoadOp, StoreOp)) and use.memory is op.result
        ]
        loads = [(self.chosen(use.result), use.dims) for use in uses if isinstance(use, LoadOp)]
        stores = [(self.chosen(use.value), use.dims) for use in uses if isinstance(use, StoreOp)]
        layout = rules.shared_layout(memory_type, loads, self.selection.target, stores)
        return SharedType(memory_type.dtype, memory_type.shape, layout)

    def required_operand_layouts(
        self, op: Operation, operands: list[Value]
    ) -> list[RegisterLayout | None]:
        """The layout each tile operand must have (None: any, or not a tile)."""
        if isinstance(op, BroadcastOp):
            shape = as_tile(op.operands[0].type).shape
            return [rules.broadcast_operand(self.chosen(op.result), shape)]
        if isinstance(op, DotOp):
            a_type = as_tile(op.operands[0].type)
            layout = self.chosen(op.result)
            target = self.selection.target
            pair = self.selection.pairs.get(id(op))
            a_layout, b_layout = rules.dot_operands(
                layout, a_type.dtype, a_type.shape[1], target, pair
            )
            return [a_layout, b_layout, layout]
        if isinstance(op, ViewOp) and isinstance(op.result.type, TileType):
            source, result = op.operands[0], op.result
            a, b = source.type.dtype.nbits, result.type.dtype.nbits
            if try_layout(lambda l: rules.view_result(l, a, b), self.chosen(source)) is None:
                required = try_layout(lambda l: rules.view_operand(l, a, b), self.chosen(result))
                shape, threads = as_tile(source.type).shape, self.selection.threads
                return [required or rules.grouped_view_operand(shape, a, b, threads)]
            return [None]
        if isinstance(op, IndexOp):
            # free where each thread holds the whole axis; otherwise the operand is converted
            # to the result's layout with the axis added as local slots
            operand_layout, axis = self.chosen(op.operands[0]), op.axis
            if try_layout(lambda l: rules.indexed_result(l, axis), operand_layout) is None:
                size = as_tile(op.operands[0].type).shape[axis]
                return [rules.indexed_operand(self.chosen(op.result), axis, size)]
            return [None]
        if isinstance(op, ReshapeOp):
            # free where the operand's layout reshapes; otherwise the operand takes the
            # result's layout reshaped back (which exists when the result's side is the finer
            # shape: merging dimensions always does), converted before
            shape = as_tile(op.result.type).shape
            if try_layout(lambda l: rules.reshaped(l, shape), self.chosen(op.operands[0])) is None:
                old = as_tile(op.operands[0].type).shape
                return [rules.reshaped(self.chosen(op.result), old)]
            return [None]
        if isinstance(op, ScanOp):
            # each thread scans the runs it holds of its lines, then across the threads that
            # split a line: a layout where a thread's elements of a line are one run
            return [rules.scanned(self.chosen(op.operands[0]), op.axis)]
        if isinstance(op, SortOp):  # the same, with the fewest elements a thread
            layout = rules.sorted_lines(self.chosen(op.operands[0]), op.axis)
            return [layout] * len(op.operands)
        if isinstance(op, YieldOp | StoreOp | ForOp):
            return [
                self.chosen(old)
                if isinstance(old.type, TileType) and isinstance(op, YieldOp)
                else None
                for old in op.operands
            ]
        if isinstance(op, ExpandDimsOp | ReduceOp | LoadOp | SplatOp | ArangeOp | IfOp):
            return [None] * len(operands)
        if isinstance(op, TransposeOp):  # its result follows the operand (converted after)
            return [None] * len(operands)
        return [self.chosen(old) if isinstance(old.type, TileType) else None for old in op.operands]

    def computed_result_layout(self, op: Operation, operands: list[Value]) -> RegisterLayout | None:
        """The layout an op's result has by construction (None: whatever its class has)."""
        if isinstance(op, ScanOp | SortOp):
            return as_tile(operands[0].type).selected_layout
        shape_ops = ExpandDimsOp | ReduceOp | ViewOp | TransposeOp | ReshapeOp | IndexOp | StackOp
        if not isinstance(op, shape_ops):
            return None
        source = as_tile(operands[0].type).selected_layout
        if isinstance(op, TransposeOp):
            return rules.transposed(source, op.dims)
        if isinstance(op, ReshapeOp):
            return rules.reshaped(source, as_tile(op.result.type).shape)
        if isinstance(op, IndexOp):
            return rules.indexed_result(source, op.axis)
        if isinstance(op, StackOp):
            return rules.indexed_operand(source, op.axis, len(operands))
        if isinstance(op, ExpandDimsOp):
            return rules.expand_dims_result(source, op.axis)
        if isinstance(op, ReduceOp):
            return rules.reduce_result(source, op.axis)
        if isinstance(op, ViewOp):
            a = operands[0].type.dtype.nbits
            return rules.view_result(source, a, op.result.type.dtype.nbits)
