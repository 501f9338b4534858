"""layout-selection: give every register tile a layout.

Requires: tile IR. Where some register tiles carry no layout, a `convert_layout` already in the
IR is a user annotation (`t @ spatial(4, 32).local(8, 8)`). Where every register tile carries a
layout (IR text printed after this pass), the layouts are kept as they are: running the pass on
its own output changes nothing.
Guarantees: every register tile has a layout spanning the kernel's threads; every op's operand
and result layouts fit together as lower-to-threads needs them (elementwise operands equal the
result, a broadcast operand is `reduce(result)`, dot operands are the dot's operand layouts of
its accumulator, ...), with `convert_layout` ops inserted where two requirements disagree.
The values computed do not change.

How: values that must share a layout (operands and results of elementwise ops, loop-carried
values, the accumulator of a dot) are grouped into classes. Classes with a fixed layout come
first (annotations, dot accumulators, and on a GPU the coalesced layout of global loads);
layouts then flow along the shape ops (broadcast, expand_dims, reduce, view, transpose,
reshape, index, stack, dot operands) to neighbouring classes (on a CPU not to a computed
operand that a matmul's threads would each compute again: `operand_flow`); a class still
open gets the target's default layout, largest tiles first. Finally the kernel is rebuilt
with those layouts, converting where a flow met a class that already had a different layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lpir.passes import layout_rules as rules
from lpir.passes.base import Pass, get_pass, register_pass
from lpir.passes.layout_application import LayoutApplication, try_layout

from lpir.errors import LayoutError
from lpir.ir.core import Kernel, Module, Operation, Value
from lpir.ir.ops import (
    BroadcastOp,
    ConvertLayoutOp,
    DotOp,
    ExpandDimsOp,
    ForOp,
    IfOp,
    InBoundsOp,
    IndexOp,
    LoadOp,
    ReduceOp,
    ReshapeOp,
    ScanOp,
    SortOp,
    StackOp,
    StoreOp,
    TransposeOp,
    ViewOp,
)
from lpir.ir.types import TileType, as_memory, as_tile
from lpir.layout import RegisterLayout
from lpir.targets import Target, get_target

ELEMENTWISE = ("where", "cast")
# A replicated dot operand that is only cast from a load is cast by each thread holding it up
# to this many registers of it, and converted through shared memory beyond (CPU): matmul_wq's
# a (4 registers a thread, replicated 4 times) was 7 % faster cast in place, attention's v
# (32 registers, replicated 32 times) 10 % faster converted.
CAST_IN_PLACE_REGISTERS = 8


def _tiles(values: Sequence[Value]) -> list[Value]:
    return [v for v in values if isinstance(v.type, TileType)]


class _Classes:
    """Union-find over tile values that must share one layout."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.members: dict[int, list[Value]] = {}
        self.order: dict[int, int] = {}  # when each value was first seen: program order

    def add(self, value: Value) -> None:
        if id(value) not in self.parent:
            self.parent[id(value)] = id(value)
            self.members[id(value)] = [value]
            self.order[id(value)] = len(self.order)

    def first_seen(self, key: int) -> int:
        """The program order of a class: that of its earliest value."""
        return min(self.order[id(value)] for value in self.members[key])

    def find(self, value: Value) -> int:
        key = id(value)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, values: Sequence[Value]) -> None:
        tiles = _tiles(values)
        for value in tiles:
            self.add(value)
        for other in tiles[1:]:
            a, b = self.find(tiles[0]), self.find(other)
            if a != b:
                self.parent[b] = a
                self.members[a].extend(self.members.pop(b))


class _Flow:
    """A layout requirement between two classes: `target` should be `function(source)`."""

    def __init__(self, source: Value, target: Value, function: Callable, shaping: bool = False):
        self.source = source
        self.target = target
        self.function = function
        self.shaping = shaping  # from a broadcast, expand_dims or squeeze


class Selection:
    """Decides one layout per class of one kernel."""

    def __init__(self, kernel: Kernel, target: Target):
        self.kernel = kernel
        self.target = target
        self.threads = kernel.threads
        self.classes = _Classes()
        self.layouts: dict[int, RegisterLayout] = {}
        self.flows: list[_Flow] = []
        self.pairs: dict[int, int] = {}  # id of a dot -> pair distance of its k permutation
        self.derived: set[int] = set()  # classes whose layout their neighbours give
        self.computed: set[int] = set()  # classes of elementwise results (`computed_classes`)
        self.widened: set[int] = set()  # classes of loads cast (`widened_classes`)
        self.in_global_memory = _in_global_memory(kernel)
        # every register tile carries a layout already: they are kept (`keep_layouts`)
        self.keeps_layouts = False

    def layout_of(self, value: Value) -> RegisterLayout | None:
        return self.layouts.get(self.classes.find(value))

    def run(self) -> None:
        for op in self.kernel.walk():
            for value in _tiles(op.results) + [a for r in op.regions for a in _tiles(r.args)]:
                self.classes.add(value)
            self.relate(op)
        if all(as_tile(v.type).layout is not None for v in self.all_tiles()):
            self.keep_layouts()
            return
        # a transposed, reshaped or viewed computed tile is as costly to copy per thread
        self.computed = self.through_free_ops(self.computed_classes())
        self.widened = self.through_free_ops(self.widened_classes())
        self.fix_anchors()
        self.propagate()
        while True:
            open_classes = [k for k in self.classes.members if k not in self.layouts]
            if not open_classes:
                return
            # classes that take their neighbours' layout (a tile only broadcast, indexed,
            # reshaped) wait for the others: a default given to them first would be converted
            chosen = [k for k in open_classes if k not in self.derived] or open_classes
            largest = max(chosen, key=self.class_size)
            self.layouts[largest] = self.default_for(largest)
            self.propagate()

    def all_tiles(self) -> list[Value]:
        return [v for members in self.classes.members.values() for v in members]

    def keep_layouts(self) -> None:
        """Take every class's layout from the IR (printed after layout-selection, or laid
        out by hand): choosing again would read the conversions the first run inserted as
        annotations and let layouts flow differently (matmul_wq's weights decoded by every
        replica). A class whose values disagree cannot be lowered as written."""
        self.keeps_layouts = True
        for key, members in self.classes.members.items():
            ordered = sorted(members, key=lambda v: self.classes.order[id(v)])
            first = ordered[0]
            layout = as_tile(first.type).selected_layout
            for other in ordered[1:]:
                if as_tile(other.type).layout != layout:
                    raise _disagreeing_layouts(first, other)
            self.layouts[key] = layout
        for op in self.kernel.walk():
            if isinstance(op, DotOp):
                self.keep_pair(op)

    def keep_pair(self, op: DotOp) -> None:
        """Record the k permutation of a dot whose operands carry k-permuted layouts, so that
        they are kept rather than converted to the unpermuted ones."""
        a, b, acc = op.operands
        held = (as_tile(a.type).layout, as_tile(b.type).layout)
        accumulator = as_tile(acc.type).selected_layout
        if self.dot_operands(op, accumulator) == held:
            return
        m, n = as_tile(acc.type).shape
        k = as_tile(a.type).shape[1]
        for pair in rules.PAIR_DISTANCES:
            if rules.mma_layouts_permuted(m, n, k, self.threads, pair) is None:
                continue  # the pair does not divide k's register pairs
            self.pairs[id(op)] = pair
            if self.dot_operands(op, accumulator) == held:
                return
            del self.pairs[id(op)]

    def class_size(self, key: int) -> tuple[int, int]:
        """Larger classes first, then the earlier in the program (never a value's address:
        the same kernel must get the same layouts in every process)."""
        value = self.classes.members[key][0]
        return (as_tile(value.type).size, -self.classes.first_seen(key))

    def class_tiles(self, value: Value) -> int:
        """How many tile values share `value`'s class (and so its layout)."""
        return len(self.classes.members[self.classes.find(value)])

    def default_for(self, key: int) -> RegisterLayout:
        members = self.classes.members[key]
        shape = as_tile(members[0].type).shape
        # A bool is one bit in memory but a whole register lane. A comparison in the class
        # (where(t > 0.0, t, 1.0), a load's mask) must not size the accesses of its f32 loads
        # as 128 bools per 16 bytes (a thread would hold 128 floats, most threads replicas),
        # nor may a bool tensor read or written beside them (its bytes are 1/32 of theirs):
        # bools count only in a class of nothing else, and as one bit only where memory holds
        # them.
        widths = [v.type.dtype.nbits for v in members if not v.type.dtype.is_bool]
        in_memory = any(id(v) in self.in_global_memory for v in members)
        nbits = min(widths, default=1 if in_memory else 8)
        return rules.default_layout(shape, nbits, self.threads, self.target)

    # ---- relations ----------------------------------------------------------------------
    def relate(self, op: Operation) -> None:
        if _is_elementwise(op) or isinstance(op, ScanOp | SortOp):  # (converted where they must)
            self.classes.union(op.operands + op.results)
        elif isinstance(op, ForOp):
            yielded = op.body.yielded
            for group in zip(op.inits, op.iter_args, op.results, yielded):
                self.classes.union(group)
        elif isinstance(op, IfOp):
            then_values, else_values = op.then_region.yielded, op.else_region.yielded
            for joined in zip(op.results, then_values, else_values):
                self.classes.union(joined)
        elif isinstance(op, StackOp):  # its operands share a layout; the new axis is local
            self.classes.union(op.operands)
            source, result, axis, count = op.operands[0], op.result, op.axis, len(op.operands)
            self.flows.append(
                _Flow(source, result, lambda l: rules.indexed_operand(l, axis, count))
            )
            self.flows.append(_Flow(result, source, lambda l: rules.indexed_result(l, axis)))
        elif isinstance(op, LoadOp | StoreOp | InBoundsOp):  # a mask lane, a position an element
            tile = op.value if isinstance(op, StoreOp) else op.result
            positions = [o for o in op.offsets if isinstance(o.type, TileType)]
            masks = [op.mask] if isinstance(op, LoadOp | StoreOp) and op.mask is not None else []
            fetched = list(op.results) if isinstance(op, StoreOp) else []  # (lane i's old value)
            self.classes.union([tile, *positions, *masks, *fetched])
        elif isinstance(op, DotOp):
            a, b, acc = op.operands
            self.classes.union([acc, op.result])
            for index, operand in enumerate((a, b)):
                self.flows.append(
                    _Flow(acc, operand, lambda l, i=index, op=op: self.operand_flow(op, l, i))
                )
        else:
            self.relate_shape_op(op)

    def relate_shape_op(self, op: Operation) -> None:
        if isinstance(op, BroadcastOp):
            source, result = op.operands[0], op.result
            shape = as_tile(source.type).shape
            flow = _Flow(result, source, lambda l: rules.broadcast_operand(l, shape), shaping=True)
            self.flows.append(flow)
        elif isinstance(op, ExpandDimsOp):
            source, result, axis = op.operands[0], op.result, op.axis
            self.flows.append(_Flow(source, result, lambda l: rules.expand_dims_result(l, axis)))
            self.flows.append(_Flow(result, source, lambda l: rules.squeeze(l, axis), shaping=True))
        elif isinstance(op, ReduceOp) and isinstance(op.result.type, TileType):
            axis = op.axis
            self.flows.append(
                _Flow(op.operands[0], op.result, lambda l: rules.reduce_result(l, axis))
            )
        elif isinstance(op, ViewOp) and isinstance(op.result.type, TileType):
            source, result = op.operands[0], op.result
            a, b = source.type.dtype.nbits, result.type.dtype.nbits
            self.flows.append(_Flow(source, result, lambda l: rules.view_result(l, a, b)))
            self.flows.append(_Flow(result, source, lambda l: rules.view_operand(l, a, b)))
        elif isinstance(op, TransposeOp):
            source, result, dims = op.operands[0], op.result, op.dims
            self.flows.append(_Flow(source, result, lambda l: rules.transposed(l, dims)))
            self.flows.append(_Flow(result, source, lambda l: rules.untransposed(l, dims)))
        elif isinstance(op, IndexOp):
            source, result, axis = op.operands[0], op.result, op.axis
            size = as_tile(source.type).shape[axis]
            self.flows.append(_Flow(source, result, lambda l: rules.indexed_result(l, axis)))
            self.flows.append(
                _Flow(
                    result,
                    source,
                    lambda l: _indexed_operand(
                        l, axis, size, self.target, self.class_tiles(source)
                    ),
                    shaping=True,
                )
            )
        elif isinstance(op, ReshapeOp):
            source, result = op.operands[0], op.result
            old, new = as_tile(source.type).shape, as_tile(result.type).shape
            self.flows.append(_Flow(source, result, lambda l: rules.reshaped(l, new)))
            self.flows.append(_Flow(result, source, lambda l: rules.reshaped(l, old)))
        elif isinstance(op, ConvertLayoutOp):
            # An annotation: its layout is fixed, and the value annotated should preferably
            # be produced in that layout already.
            self.flows.append(_Flow(op.result, op.operands[0], lambda l: l))

    def operand_flow(self, op: DotOp, accumulator: RegisterLayout, index: int) -> RegisterLayout:
        """The layout dot operand `index` takes from the accumulator's, except in a dot the
        CPU computes in register steps (`layout_rules.steps_in_registers`: a matmul's, not a
        GEMV's, whose lanes sum along k) where that layout is replicated and the operand is
        computed (`computed_classes`: a matmul's weights decoded) or each thread would widen
        more than `CAST_IN_PLACE_REGISTERS` of it (`widened_classes`, or i8 that the dot
        widens to i32: attention's v, replicated 32 times; a transposed i8 b of 2048 lanes a
        thread, whose loads took LLVM 20 s to compile): there every replica would compute
        its elements again, where a conversion through shared memory computes each once and
        costs its replicas a load each, which their FMAs take as an operand. The operand then
        gets its own layout and the dot converts it."""
        layout = self.dot_operands(op, accumulator)[index]
        if not rules.steps_in_registers(accumulator, self.target) or not layout.is_replicated:
            return layout
        operand = self.classes.find(op.operands[index])
        element_bits = op.operands[index].type.dtype.nbits
        registers = layout.slots // self.target.lanes(element_bits)
        # widened here, or by the dot itself (i8 into i32)
        widened = operand in self.widened or element_bits < 32
        if operand in self.computed or (widened and registers > CAST_IN_PLACE_REGISTERS):
            raise LayoutError("computed once a block, converted for the dot")
        return layout

    def dot_operands(
        self, op: DotOp, accumulator: RegisterLayout
    ) -> tuple[RegisterLayout, RegisterLayout]:
        """The (a, b) layouts `op` needs with this accumulator layout."""
        a = as_tile(op.operands[0].type)
        pair = self.pairs.get(id(op))
        return rules.dot_operands(accumulator, a.dtype, a.shape[1], self.target, pair)

    def fix_anchors(self) -> None:
        for op in self.kernel.walk():
            if isinstance(op, ConvertLayoutOp):
                self.layouts[self.classes.find(op.result)] = as_tile(op.result.type).selected_layout
        for op in self.kernel.walk():
            if isinstance(op, DotOp):
                self.permute_operands(op)
        # classes whose layout their neighbours give, even where a global load or store reads
        # or writes them
        derived = self.derived = self.through_free_ops(
            self.broadcast_sources()
            | self.reduction_results()
            | self.annotated()
            | self.transposed()
            | self.stacked()
        )
        self.anchor_sorts()
        row_split = self.row_split_dots()
        for op in self.kernel.walk():
            if isinstance(op, DotOp):
                key = self.classes.find(op.result)
                if key not in self.layouts:
                    m, n = as_tile(op.result.type).shape
                    a = as_tile(op.operands[0].type)
                    self.layouts[key] = rules.dot_anchor(
                        a.dtype, m, n, a.shape[1], self.threads, self.target, id(op) in row_split
                    )
            elif (
                self.target.coalesced_loads
                and isinstance(op, LoadOp | StoreOp)
                and op.name.endswith("_global")  # shared memory is read in any order
            ):
                tile = op.result if isinstance(op, LoadOp) else op.value
                key = self.classes.find(tile)
                if key not in self.layouts and key not in derived:
                    self.layouts[key] = self.default_for(key)

    def anchor_sorts(self) -> None:
        """A sort's class takes the layout the sort runs in (`rules.sorted_lines` of its
        default), on the CPU: a slice of the sorted tile (`argsort(c, axis = 1)[:, 0:8]`,
        reshaped and indexed) is read where the sort leaves it, rather than asking the whole
        class for the slice's replicated layout, which the sort's result was converted to
        (a top-8 of [256, 1024] rows 2.5x slower than storing the whole sort)."""
        if self.target.is_gpu:
            return
        for op in self.kernel.walk():
            if isinstance(op, SortOp):
                key = self.classes.find(op.results[0])
                if key not in self.layouts:
                    self.layouts[key] = rules.sorted_lines(self.default_for(key), op.axis)

    def row_split_dots(self) -> set[int]:
        """The dots whose warps should each hold whole rows of the accumulator (`mma_warps`
        with `split_rows`) rather than the squarest blocks: those whose result is reduced
        along its rows (attention's row max and row sum: then by shuffles within each warp,
        not through shared memory between barriers), and those whose a is such a dot's result
        (attention's weights times v: the first accumulator is then the second dot's a in
        the same threads, no exchange between the two)."""
        reduced_rows = {
            self.classes.find(op.operands[0])
            for op in self.kernel.walk()
            if isinstance(op, ReduceOp) and as_tile(op.operands[0].type).rank == 2 and op.axis == 1
        }
        chosen: set[int] = set()
        row_split_results: set[int] = set()
        for op in self.kernel.walk():
            if isinstance(op, DotOp):
                result = self.classes.find(op.result)
                if result in reduced_rows or self.classes.find(op.operands[0]) in row_split_results:
                    chosen.add(id(op))
                    row_split_results.add(result)
        return chosen

    def permute_operands(self, op: DotOp) -> None:
        """Give a tensor-core dot k-permuted operands (`rules.mma_layouts_permuted`) when its a
        is loaded from global memory along rows (k contiguous, like a weight matrix W[N, K])
        and its b is computed, not loaded (like x broadcast into the mma's columns): a thread
        then loads its fragments of a straight from memory, 16 bytes at a time, instead of a
        coalesced load and an exchange through shared memory into the mma layout, packed
        fields decode in pairs without a `prmt`, and b is computed in the same k order."""
        pair = self.permutation_pair(op)
        if pair is None:
            return
        a, b, acc = op.operands
        m, n = as_tile(acc.type).shape
        k = as_tile(a.type).shape[1]
        self.pairs[id(op)] = pair
        layouts = rules.mma_layouts(m, n, k, self.threads, split_rows=True)
        assert layouts is not None  # permutation_pair: the dot uses tensor cores
        self.layouts[self.classes.find(op.result)] = layouts[2]
        operands = rules.mma_layouts_permuted(m, n, k, self.threads, pair)
        assert operands is not None  # the pair divides k's register pairs (pair_distance)
        for value, layout in zip((a, b), operands):
            self.layouts[self.classes.find(value)] = layout

    def permutation_pair(self, op: DotOp) -> int | None:
        """The pair distance of `op`'s k-permuted operands, or None where they do not apply
        (no tensor cores, operands or accumulator annotated, a not loaded along rows from
        global memory, b loaded, 8-bit integer operands: their m16n8k32 fragments already hold
        runs of 4 bytes along k, and the permutations are built for m16n8k16)."""
        a, b, acc = op.operands
        keys = [self.classes.find(a), self.classes.find(b)]
        m, n = as_tile(acc.type).shape
        a_type = as_tile(a.type)
        k = a_type.shape[1]
        if rules.mma_k(a_type.dtype) != 16:
            return None
        if not rules.uses_mma(a_type.dtype, m, n, k, self.threads, self.target):
            return None
        layouts = rules.mma_layouts(m, n, k, self.threads, split_rows=True)
        assert layouts is not None  # uses_mma: the shapes fit
        accumulator = layouts[2]
        if any(key in self.layouts for key in keys):  # annotated (or another dot's)
            return None
        if self.layouts.get(self.classes.find(op.result), accumulator) != accumulator:
            return None  # an annotated accumulator stays as it is
        loads = [load for load in self.kernel.walk() if isinstance(load, LoadOp)]
        a_loads = [load for load in loads if self.classes.find(load.result) == keys[0]]
        b_loaded = any(self.classes.find(load.result) == keys[1] for load in loads)
        if b_loaded or not a_loads or not all(_along_rows(load) for load in a_loads):
            return None
        warps = rules.mma_warps(m, n, k, self.threads, split_rows=True)
        if warps is None:  # (uses_mma said it has)
            return None
        warps_m, warps_n = warps
        if n // 8 // warps_n > 2 * (m // 16 // warps_m):
            # b's registers outnumber a's (many columns of x per row of weights): b keeps its
            # neighbours paired (no prmt per register of b) and a pays for its pairs instead
            return 1
        element = min((load.result.type.dtype for load in a_loads), key=lambda t: t.nbits)
        return rules.pair_distance(element, k)

    def through_free_ops(self, derived: set[int]) -> set[int]:
        """`derived` and the classes joined to it through ops that keep each element in its
        thread (reshape, transpose, view): a tile loaded, reshaped and broadcast (an MX
        format's x split into blocks of 32, a row of u8 exponents viewed as f32 scales) is
        loaded in the layout its broadcast gives, as it would be without the reshape."""
        neighbours: dict[int, set[int]] = {}
        for op in self.kernel.walk():
            if isinstance(op, ReshapeOp | TransposeOp | ViewOp) and _tiles(op.results):
                a, b = self.classes.find(op.operands[0]), self.classes.find(op.result)
                neighbours.setdefault(a, set()).add(b)
                neighbours.setdefault(b, set()).add(a)
        reached, frontier = set(derived), list(derived)
        while frontier:
            for other in neighbours.get(frontier.pop(), ()):
                if other not in reached:
                    reached.add(other)
                    frontier.append(other)
        return reached

    def computed_classes(self) -> set[int]:
        """Classes holding the result of elementwise arithmetic (a subtraction, a cast of a
        computed or packed value, ...): more than values loaded whole, splat or cast as
        loaded (`widened_classes`)."""
        return {
            self.classes.find(op.results[0])
            for op in self.kernel.walk()
            if _is_elementwise(op) and _tiles(op.results) and not _widens_a_load(op)
        }

    def widened_classes(self) -> set[int]:
        """Classes holding a cast of values loaded in whole bytes (a dot's f16 operand
        widened to f32)."""
        return {self.classes.find(op.results[0]) for op in self.kernel.walk() if _widens_a_load(op)}

    def stacked(self) -> set[int]:
        """`stack` results: a tile joined from computed pieces (rotary pairs put back) is
        stored in the layout the join gives, each thread writing what it holds, rather than
        exchanged into the coalesced layout first."""
        return {
            self.classes.find(op.result) for op in self.kernel.walk() if isinstance(op, StackOp)
        }

    def transposed(self) -> set[int]:
        """Both sides of a `transpose`: a tile loaded to be transposed (x^T as an mma's b) or
        stored transposed (y^T from an accumulator) takes the layout the other side gives, read
        or written by each thread where it stands, not coalesced and then converted."""
        return {
            self.classes.find(value)
            for op in self.kernel.walk()
            if isinstance(op, TransposeOp)
            for value in (op.operands[0], op.result)
        }

    def annotated(self) -> set[int]:
        """Classes annotated with a layout (`load(...) @ L`): a load is read in the layout its
        annotation asks for, not in the coalesced one and then converted."""
        return {
            self.classes.find(op.operands[0])
            for op in self.kernel.walk()
            if isinstance(op, ConvertLayoutOp)
        }

    def broadcast_sources(self) -> set[int]:
        """Classes that are only broadcast into bigger tiles (a row of scales, a vector x):
        loading them straight in the layout their broadcast needs (each thread reads the few
        values it uses, from cache) beats a coalesced load plus an exchange through shared
        memory."""
        return {self.classes.find(flow.target) for flow in self.flows if flow.shaping}

    def reduction_results(self) -> set[int]:
        """Classes holding a reduction's result (a GEMV's row sums, the scales they are
        multiplied by, the accumulator they are added to): they take the reduction's layout,
        and their global loads and stores follow it (replicas read the same values from cache;
        one replica stores), where the coalesced layout would cost an exchange through shared
        memory, in a loop every iteration."""
        return {
            self.classes.find(op.result)
            for op in self.kernel.walk()
            if isinstance(op, ReduceOp) and isinstance(op.result.type, TileType)
        }

    def propagate(self) -> None:
        changed = True
        while changed:
            changed = False
            for flow in self.flows:
                source = self.layout_of(flow.source)
                target_key = self.classes.find(flow.target)
                if source is None or target_key in self.layouts:
                    continue
                layout = try_layout(flow.function, source)
                if layout is not None and layout.threads == self.threads:
                    self.layouts[target_key] = layout
                    changed = True


def _is_elementwise(op: Operation) -> bool:
    return op.name in ELEMENTWISE or op.__class__.__name__ in ("BinaryOp", "UnaryOp")


def _widens_a_load(op: Operation) -> bool:
    """Whether `op` casts a value loaded in whole bytes (no bit fields to cut out), maybe
    transposed."""
    if op.name != "cast":
        return False
    source = op.operands[0].owner
    while isinstance(source, TransposeOp):
        source = source.operands[0].owner
    return isinstance(source, LoadOp) and source.result.type.dtype.nbits >= 8


def _disagreeing_layouts(first: Value, other: Value) -> LayoutError:
    """The error for two values of one class (which lower-to-threads needs in one layout)
    whose layouts in IR text differ."""
    owner = other.owner
    location = getattr(owner, "location", None)
    first_layout, other_layout = as_tile(first.type).layout, as_tile(other.type).layout
    return LayoutError(
        f"%{other.name_hint} has layout {other_layout} but must share one with "
        f"%{first.name_hint} ({first_layout}): the operands and result of an elementwise op, "
        "a loop's or an if's carried values, a dot's accumulator and result, a masked access's "
        "value and mask are held alike",
        location,
        f"give %{other.name_hint} the layout {first_layout}, or convert the value where it "
        "is used (convert_layout), or leave the layouts out and let layout-selection choose",
    )


def _in_global_memory(kernel: Kernel) -> set[int]:
    """The ids of the tiles that global loads read and global stores write."""
    found = set()
    for op in kernel.walk():
        if isinstance(op, LoadOp | StoreOp) and op.name.endswith("_global"):
            found.add(id(op.result if isinstance(op, LoadOp) else op.value))
    return found


def _along_rows(load: LoadOp) -> bool:
    """Whether a global load of a 2-D tile reads its rows from contiguous memory."""
    memory_type = as_memory(load.memory.type)
    return (
        load.name.endswith("_global")
        and len(load.dims) == 2
        and memory_type.strides[load.dims[1]] == 1
    )


@register_pass
class LayoutSelectionPass(Pass):
    name = "layout-selection"
    stage = "tile"

    def run(self, module: Module) -> Module:
        target = get_target(self.target)
        kernels, copied = [], False
        for kernel in module.kernels:
            selection = Selection(kernel, target)
            selection.run()
            application = LayoutApplication(selection)
            kernels.append(application.run_kernel(kernel))
            copied |= application.made_shared_copies
        if copied:  # (their constants merged as cse merges them in the text compiled again)
            return get_pass("cse").run(Module(kernels))
        return Module(kernels)


__all__ = ["LayoutSelectionPass"]


def _indexed_operand(
    result: RegisterLayout, axis: int, size: int, target: Target, class_tiles: int
) -> RegisterLayout:
    """The operand layout an `index` result's layout asks for, where that would not copy long
    lines into every replica of the `class_tiles` tiles of the operand's class
    (`rules.indexes_through_shared`: then the operand's own)."""
    if rules.indexes_through_shared(result, size, target, class_tiles):
        raise LayoutError(f"a line of {size} in every replica: indexed through shared memory")
    return rules.indexed_operand(result, axis, size)
