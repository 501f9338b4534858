"""What lower-to-threads assumes of the layouts of each tile-IR op, checked by the verifier.

lower-to-threads makes of every register tile, in each thread, the vector of the slots its
layout gives that thread, and lowers most ops slot by slot: an elementwise op computes slot s
of its result from slot s of its operands, and `expand_dims`, `transpose`, `reshape`, `view`,
`reduce` and `dot` hand on vectors in a layout that follows from their operands' (the result's
own layout is never read). Where IR text gives such a result another layout, the thread code
would hold other elements than the layout says, and compute a wrong result without an error.
`broadcast`, `index` and `stack` pick each result slot from a slot of the operand in the same
thread, the same slot in every thread; a load's or store's mask is combined slot by slot with
the value's. `convert_layout` is free to change the layout, and loads, stores, `splat` and
`arange` take any.

Layouts are compared by what they place where (`same_places`): two layouts that print
differently but put every element in the same thread and slot are the same to the lowering.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lpir.errors import LayoutError
from lpir.ir.core import Operation, Value
from lpir.ir.ops import (
    BinaryOp,
    BroadcastOp,
    CastOp,
    DotOp,
    ExpandDimsOp,
    IndexOp,
    LoadOp,
    ReduceOp,
    ReshapeOp,
    ScanOp,
    SelectOp,
    SortOp,
    StackOp,
    StoreOp,
    TransposeOp,
    UnaryOp,
    ViewOp,
)
from lpir.ir.types import TileType, as_tile
from lpir.layout import (
    Digit,
    RegisterLayout,
    expand_dims,
    local,
    permute,
    product,
    reduce,
    reshape,
)

Project = Callable[[np.ndarray], np.ndarray]
# Table lookups one block of steps of `step_slot_maps` makes (int64 each).
_LOOKUPS_AT_ONCE = 1 << 22


def slot_table(layout: RegisterLayout) -> np.ndarray:
    """{coordinate: slot} per thread, as an array [threads, *shape] of slots (-1: not held)."""
    table = np.full((layout.threads, *layout.shape), -1, dtype=np.int64)
    coordinates = layout.coordinates()  # [threads, slots, rank]
    threads = np.repeat(np.arange(layout.threads), layout.slots)
    slots = np.tile(np.arange(layout.slots), layout.threads)
    flat = coordinates.reshape(layout.threads * layout.slots, layout.rank)  # (rank 0 too)
    index = (threads, *flat.T)
    table[index] = slots
    return table


def slot_map(
    target: RegisterLayout, source: RegisterLayout, project: Project | None = None
) -> list[int] | None:
    """For each slot of `target`, the slot of `source` in the same thread holding the element
    (after `project` maps target coordinates to source coordinates). None when some thread
    lacks an element or the map differs between threads."""
    if target.threads != source.threads:
        return None
    coordinates = target.coordinates()  # [threads, slots, rank]
    if project is not None:
        coordinates = project(coordinates)
    table = slot_table(source)
    threads = np.arange(target.threads)[:, None]
    index = (np.broadcast_to(threads, coordinates.shape[:2]), *np.moveaxis(coordinates, -1, 0))
    found = table[index]
    if (found < 0).any() or (found != found[0]).any():
        return None
    return [int(v) for v in found[0]]


def step_slot_maps(
    target: RegisterLayout, source: RegisterLayout, dim: int, steps: int
) -> list[list[int]] | None:
    """`slot_map` of `target` into `source` with coordinate `dim` replaced by each step in
    range(`steps`) (a dot's k): entry s is the slot map of step s; None where some step has
    none.

    The coordinates of `target` and the slot table of `source` are built once for all steps
    (as separate `slot_map` calls, they were rebuilt each step: compile time quadratic in k).
    The steps are looked up a block at a time, at most `_LOOKUPS_AT_ONCE` elements, so that
    memory stays bounded however long k is."""
    coordinates = target.coordinates()  # [threads, slots, rank]
    table = slot_table(source).ravel()  # [threads, *source.shape], flattened
    strides = [math.prod(source.shape[d + 1 :]) for d in range(source.rank)]
    thread_stride = math.prod(source.shape)
    offsets = np.arange(target.threads, dtype=np.int64)[:, None] * thread_stride
    for d in range(source.rank):
        if d != dim:
            offsets = offsets + coordinates[..., d] * strides[d]
    block = max(1, _LOOKUPS_AT_ONCE // offsets.size)
    maps: list[list[int]] = []
    for first in range(0, steps, block):
        step_offsets = np.arange(first, min(first + block, steps), dtype=np.int64) * strides[dim]
        found = table[offsets[None] + step_offsets[:, None, None]]  # [steps, threads, slots]
        if (found < 0).any() or (found != found[:, :1]).any():
            return None
        maps.extend(found[:, 0].tolist())
    return maps


def same_places(a: RegisterLayout, b: RegisterLayout) -> bool:
    """Whether two layouts of one shape put every element in the same threads and slots."""
    if a == b:
        return True
    if (a.shape, a.threads, a.slots) != (b.shape, b.threads, b.slots):
        return False
    return bool(np.array_equal(a.coordinates(), b.coordinates()))


def check_layouts(op: Operation) -> None:
    """Raise a located `VerifyError` where lower-to-threads would not compute `op` in the
    layouts its values carry (tile IR; values without a layout yet are not checked)."""
    if isinstance(op, BinaryOp | UnaryOp | SelectOp | CastOp):
        _check_elementwise(op)
    elif isinstance(op, ViewOp):
        _check_view(op)
    elif isinstance(op, ExpandDimsOp | TransposeOp | ReshapeOp | ReduceOp):
        _check_shape_op(op)
    elif isinstance(op, BroadcastOp):
        _check_broadcast(op)
    elif isinstance(op, IndexOp):
        _check_index(op)
    elif isinstance(op, ScanOp | SortOp):
        _check_lines(op)
    elif isinstance(op, StackOp):
        _check_stack(op)
    elif isinstance(op, DotOp):
        _check_result_like(op, op.operands[2], "the accumulator's", "dot adds into its slots")
        _check_dot_operands(op)
    elif isinstance(op, LoadOp | StoreOp):
        value = op.result if isinstance(op, LoadOp) else op.value
        for position in op.offsets:  # a gather's or scatter's positions, read lane by lane
            _check_lanes(op, position, value, "positions")
        if op.mask is not None:
            _check_lanes(op, op.mask, value, "mask")


def _layout(value: Value) -> RegisterLayout | None:
    return value.type.layout if isinstance(value.type, TileType) else None


def _with(value: Value, layout: RegisterLayout) -> str:
    """The value's type with `layout`, as IR text writes it."""
    type_ = value.type
    assert isinstance(type_, TileType)
    return str(type_.with_layout(layout))


def _convert_hint(op: Operation, wanted: RegisterLayout, given: RegisterLayout) -> str:
    """Where a result should have `wanted` but has `given`."""
    return (
        f"give the result the layout {wanted}; to have the value in {given}, convert it after "
        f"the '{op.name}': convert_layout(...) : {_with(op.results[0], given)}"
    )


# ---- elementwise ------------------------------------------------------------------------------
def _check_elementwise(op: Operation) -> None:
    tiles = [v for v in op.operands if _layout(v) is not None]
    if not tiles:
        return
    first = tiles[0]
    reference = _layout(first)
    assert reference is not None
    which = "its operand's" if len(op.operands) == 1 else f"operand {op.operands.index(first)}'s"
    for index, operand in enumerate(op.operands):
        layout = _layout(operand)
        if operand is first or layout is None or same_places(layout, reference):
            continue
        raise op.error(
            f"operand {index}'s layout {layout} is not {which} {reference}: an elementwise op "
            "computes each slot of a thread from the same slot of every operand",
            f"convert operand {index} to {reference} before the '{op.name}': "
            f"convert_layout(...) : {_with(operand, reference)}",
        )
    _check_result_like(
        op, first, which, "an elementwise op computes its slots from the same slots of its operands"
    )


def _check_result_like(op: Operation, source: Value, whose: str, why: str) -> None:
    """The result of `op` must place its elements as `source` does."""
    reference, layout = _layout(source), _layout(op.results[0])
    if reference is None or layout is None or same_places(layout, reference):
        return
    raise op.error(
        f"the result's layout {layout} is not {whose} {reference}: {why}",
        _convert_hint(op, reference, layout),
    )


# ---- shape ops whose result layout follows from the operand's -----------------------------------
def _check_shape_op(op: Operation) -> None:
    source, result = _layout(op.operands[0]), _layout(op.results[0])
    if source is None or result is None:
        return
    coordinates = source.coordinates()  # [threads, slots, rank]
    wanted: RegisterLayout | None
    kept = f"'{op.name}' keeps each element in its thread and slot"
    if isinstance(op, ExpandDimsOp):
        expected = np.insert(coordinates, op.axis, 0, axis=-1)
        wanted = expand_dims(source, op.axis)
        what = f"the operand's {source} with a size-1 dimension {op.axis}, {wanted}"
    elif isinstance(op, TransposeOp):
        expected = coordinates[..., list(op.dims)]
        wanted = permute(source, op.dims)
        order = "swapped" if source.rank == 2 else f"permuted ({list(op.dims)})"
        what = f"the operand's {source} with its dimensions {order}, {wanted}"
    elif isinstance(op, ReshapeOp):
        flat = np.ravel_multi_index(tuple(np.moveaxis(coordinates, -1, 0)), source.shape)
        expected = np.stack(np.unravel_index(flat, result.shape), axis=-1)
        wanted = _or_none(lambda: reshape(source, result.shape))
        what = f"the operand's {source} regrouped into {list(result.shape)}" + (
            f", {wanted}" if wanted is not None else " (a mode of it straddles a new dimension)"
        )
    else:
        assert isinstance(op, ReduceOp)
        reduced = reduce(source, [op.axis])
        expected = np.delete(reduced.coordinates(), op.axis, axis=-1)
        wanted = _or_none(lambda: reshape(reduced, result.shape))
        what = f"the operand's {source} reduced along axis {op.axis}, {wanted}"
        kept = (
            "lower-to-threads leaves each result in the threads that held the elements it "
            "reduces, one slot each"
        )
    if result.threads == source.threads and _holds_coordinates(result, expected):
        return
    hint = _convert_hint(op, wanted, result) if wanted is not None else _reshape_hint(op, result)
    raise op.error(f"the result's layout {result} is not {what}: {kept}", hint)


def _holds_coordinates(layout: RegisterLayout, expected: np.ndarray) -> bool:
    coordinates = layout.coordinates()
    return coordinates.shape == expected.shape and bool(np.array_equal(coordinates, expected))


def _or_none(make: Callable[[], RegisterLayout]) -> RegisterLayout | None:
    try:
        return make()
    except LayoutError:
        return None


def _reshape_hint(op: Operation, result: RegisterLayout) -> str:
    operand = op.operands[0]
    wanted = _or_none(lambda: reshape(result, as_tile(operand.type).shape))
    if wanted is None:
        return "convert the operand to a layout whose modes do not straddle the new dimensions"
    return (
        f"convert the operand to the result's layout regrouped back before the reshape: "
        f"convert_layout(...) : {_with(operand, wanted)}"
    )


def _check_view(op: ViewOp) -> None:
    """A view reinterprets each thread's slots as one bit string (LSB first): unit u of
    gcd(a, b) bits is part u mod (a / g) of source slot u div (a / g), and must be part
    u mod (b / g) of result slot u div (b / g), of the same element's bits."""
    source, result = _layout(op.operands[0]), _layout(op.result)
    if source is None or result is None:
        return
    a, b = op.operands[0].type.dtype.nbits, op.result.type.dtype.nbits
    if a == b:
        _check_result_like(op, op.operands[0], "its operand's", "a view keeps every slot")
        return
    unit = math.gcd(a, b)
    fits = result.threads == source.threads and source.slots * a == result.slots * b
    if fits and np.array_equal(_bit_units(source, a // unit), _bit_units(result, b // unit)):
        return
    wanted = _view_layout(source, a, b)
    hint = (
        _convert_hint(op, wanted, result)
        if wanted is not None
        else f"convert the operand to a layout whose threads hold whole runs of "
        f"{math.lcm(a, b)} bits of each row in consecutive slots"
    )
    raise op.error(
        f"the result's layout {result} does not hold the bits that the operand's {source} "
        "holds in the same thread and order: a view reinterprets each thread's slots in place",
        hint,
    )


def _bit_units(layout: RegisterLayout, parts: int) -> np.ndarray:
    """[threads, slots * parts, rank]: the coordinate of each unit of a thread's bits, the
    last dimension counted in units."""
    coordinates = np.repeat(layout.coordinates(), parts, axis=1)
    coordinates[..., -1] = coordinates[..., -1] * parts + np.tile(np.arange(parts), layout.slots)
    return coordinates


def _view_layout(operand: RegisterLayout, a: int, b: int) -> RegisterLayout | None:
    """The result layout lower-to-threads makes of a view of a-bit elements as b-bit ones
    (layout-selection's `view_result`), where one exists."""
    from lpir.layout import divide

    def last(factor: int) -> RegisterLayout:
        return local(*([1] * (operand.rank - 1) + [factor]))

    if a > b and a % b == 0:
        return product(operand, last(a // b))
    group = math.lcm(a, b)
    groups = divide(operand, last(group // a))
    return None if groups is None else product(groups, last(group // b))


def dot_operand_layout(
    accumulator: RegisterLayout, layout: RegisterLayout, dim: int, k: int
) -> RegisterLayout | None:
    """None where a SIMT dot's operand (a: `dim` 1, b: `dim` 0) in `layout` gives each
    thread the rows (columns) its `accumulator` elements need, each step of k in the same slot
    in every thread; else a layout that does: the accumulator's with k held whole."""
    if step_slot_maps(accumulator, layout, dim, k) is not None:
        return None
    whole = [1, 1]
    whole[dim] = k
    return product(reduce(accumulator, [dim]), local(*whole))


def _check_dot_operands(op: DotOp) -> None:
    """A dot without a tensor-core form (operands neither f16, bf16 nor i8) multiplies in each
    thread the row of a and the column of b of every accumulator element it holds: the thread
    must hold them, each step of k in the same slot in every thread. (An f16, bf16 or i8 dot
    may instead hold mma fragments on the GPU; lower-to-threads checks those.)"""
    a, b, _ = op.operands
    layouts = [_layout(v) for v in op.operands]
    if any(layout is None for layout in layouts) or a.type.dtype.name in ("f16", "bf16", "i8"):
        return
    a_layout, b_layout, acc_layout = layouts
    assert a_layout is not None and b_layout is not None and acc_layout is not None
    k = as_tile(a.type).shape[1]
    for name, value, layout, dim in (("a", a, a_layout, 1), ("b", b, b_layout, 0)):
        wanted = dot_operand_layout(acc_layout, layout, dim, k)
        if wanted is None:
            continue
        what = "row" if dim == 1 else "column"
        raise op.error(
            f"{name}'s layout {layout} does not give each thread the {what} of {name} that its "
            f"accumulator elements (in {acc_layout}) need, each step of k in the same slot in "
            "every thread: a dot of f32 multiplies within each thread",
            f"convert {name} before the dot: convert_layout(...) : {_with(value, wanted)}",
        )


# ---- ops that pick each result slot from the operand's ----------------------------------------
def _check_broadcast(op: BroadcastOp) -> None:
    source, result = _layout(op.operands[0]), _layout(op.result)
    if source is None or result is None:
        return
    shape = as_tile(op.operands[0].type).shape
    repeated = [d for d, size in enumerate(shape) if size == 1 and result.shape[d] != 1]

    def project(coordinates: np.ndarray) -> np.ndarray:
        projected = coordinates.copy()
        projected[..., repeated] = 0
        return projected

    if slot_map(result, source, project) is not None:
        return
    wanted = reduce(result, repeated) if repeated else result
    raise op.error(
        f"the operand's layout {source} does not hold in each thread what the result's "
        f"layout {result} repeats there (the same slot in every thread): a broadcast copies "
        "slots within each thread",
        f"convert the operand to the result's layout with the repeated dimensions reduced "
        f"before the broadcast: convert_layout(...) : {_with(op.operands[0], wanted)}",
    )


def _check_index(op: IndexOp) -> None:
    source, result = _layout(op.operands[0]), _layout(op.result)
    if source is None or result is None:
        return
    axis, position = op.axis, op.position

    def project(coordinates: np.ndarray) -> np.ndarray:
        return np.insert(coordinates, axis, position, axis=-1)

    if slot_map(result, source, project) is not None:
        return
    held = not any(
        source.mode_dims[mode] == axis and source.mode_sizes[mode] > 1
        for mode in source.spatial_modes
        if mode >= 0
    )
    wanted = _or_none(lambda: reshape(reduce(source, [axis]), result.shape)) if held else None
    if wanted is not None:
        hint = _convert_hint(op, wanted, result)
    else:
        size = source.shape[axis]
        ones = [1] * source.rank
        ones[axis] = size
        operand = product(expand_dims(result, axis), local(*ones))
        hint = (
            f"convert the operand so that each thread holds dimension {axis} whole: "
            f"convert_layout(...) : {_with(op.operands[0], operand)}"
        )
    raise op.error(
        f"the result's layout {result} asks threads for elements that the operand's layout "
        f"{source} does not give them (in the same slot in every thread): index picks slots "
        "within each thread",
        hint,
    )


def line_chunks(layout: RegisterLayout, axis: int) -> tuple[Digit | None, int] | None:
    """How `layout` holds the lines of `axis` (a scan's or sort's): (None, n) where each thread
    holds whole lines of n; (digit, run) where one thread digit splits each line into chunks,
    each thread holding one run of `run` consecutive elements of each of its lines (chunk c of
    a line starts at c * run); None otherwise (several digits split the axis, or a thread's
    elements of a line are not one run)."""
    length = layout.shape[axis]
    digits = [d for d in layout.thread_digits() if d.dim == axis and d.size > 1]
    if len(digits) > 1:
        return None
    run = length // digits[0].size if digits else length
    if digits and digits[0].multiplier != run:
        return None
    first = layout.coordinates()[0]  # thread 0's slots: [slots, rank]
    lines: dict[tuple[int, ...], list[int]] = {}
    for coordinate in first:
        line = tuple(int(c) for i, c in enumerate(coordinate) if i != axis)
        lines.setdefault(line, []).append(int(coordinate[axis]))
    if any(sorted(held) != list(range(run)) for held in lines.values()):
        return None
    return (digits[0] if digits else None, run)


def _check_lines(op: ScanOp | SortOp) -> None:
    """A scan or sort runs along lines each thread holds (a scan: or a run of each, chunks of
    the lines over threads), its operands and result alike."""
    source = _layout(op.operands[0])
    if source is None or _layout(op.result) is None:  # (an annotated operand: not chosen yet)
        return
    _check_operands_alike(op, source, f"'{op.name}' moves the elements of every operand alike")
    chunks = line_chunks(source, op.axis)
    if chunks is None:
        size = source.shape[op.axis]
        ones = [1] * source.rank
        ones[op.axis] = size
        held = product(reduce(source, [op.axis]), local(*ones))
        how = (
            f"a '{op.name}' needs each thread's elements of a line to be one run of it, the "
            "runs of one line on threads that one thread digit tells apart"
        )
        raise op.error(
            f"the operand's layout {source} splits dimension {op.axis} over threads: {how}",
            f"convert the operand so that each thread holds dimension {op.axis} whole: "
            f"convert_layout(...) : {_with(op.operands[0], held)}",
        )
    _check_result_like(
        op,
        op.operands[0],
        "its operand's",
        f"a '{op.name}' moves elements only along its lines, within each thread",
    )


def _check_operands_alike(op: Operation, source: RegisterLayout, why: str) -> None:
    """Every operand of `op` with a layout places its elements as operand 0 does (`source`)."""
    for index, operand in enumerate(op.operands[1:], start=1):
        layout = _layout(operand)
        if layout is not None and not same_places(layout, source):
            raise op.error(
                f"operand {index}'s layout {layout} is not operand 0's {source}: {why}",
                f"convert operand {index} to {source} before the '{op.name}': "
                f"convert_layout(...) : {_with(operand, source)}",
            )


def _check_stack(op: StackOp) -> None:
    layouts = [_layout(v) for v in op.operands]
    result = _layout(op.result)
    source = layouts[0]
    if source is None:
        return
    _check_operands_alike(op, source, "stack joins its operands slot by slot")
    if result is None:
        return
    axis = op.axis
    ones = [1] * result.rank
    ones[axis] = len(op.operands)
    wanted = product(expand_dims(source, axis), local(*ones))
    which = result.coordinates()[..., axis]
    found = slot_map(result, source, lambda c: np.delete(c, axis, axis=-1))
    if found is not None and not (which != which[0]).any():
        return
    raise op.error(
        f"the result's layout {result} is not one in which each thread holds the stacked "
        f"axis {axis} in its slots beside the operands' {source}: stack picks slots within "
        "each thread",
        _convert_hint(op, wanted, result),
    )


def _check_lanes(op: LoadOp | StoreOp, lanes: Value, value: Value, what: str) -> None:
    """A mask or a positions tile of a load or store, which lane s of the access reads from
    its slot s, must place its elements as the loaded or stored tile does."""
    layout, reference = _layout(lanes), _layout(value)
    if layout is None or reference is None or same_places(layout, reference):
        return
    tile = "loaded" if isinstance(op, LoadOp) else "stored"
    whose = "positions'" if what == "positions" else f"{what}'s"
    raise op.error(
        f"the {whose} layout {layout} is not the {tile} tile's {reference}: each lane of the "
        f"access takes the same slot of its {what}",
        f"convert the {what} before the '{op.name}': "
        f"convert_layout(...) : {_with(lanes, reference)}",
    )
