"""The builtins that move data between memory and registers: load, store, the atomics
(atomic_add, atomic_max, atomic_min, atomic_and, atomic_or, atomic_xor) and sync. Registered
in `builtin_calls.BUILTINS`.
"""

from __future__ import annotations

from lpir.dtypes import DType
from lpir.errors import with_article
from lpir.ir.core import Value
from lpir.ir.ops import (
    BinaryOp,
    ExpandDimsOp,
    InBoundsOp,
    ItemOp,
    LoadOp,
    SelectOp,
    StoreOp,
    SyncOp,
)
from lpir.ir.ops.memory import ATOMIC_DTYPES
from lpir.ir.types import GlobalType, SharedType, TileType, as_memory, as_tile
from lpir.language import ast
from lpir.language.builtin_calls import Builtin, builtin, call_arguments, tile_or_scalar
from lpir.language.expressions import BOOL, I32, ExpressionLowering, broadcast_shapes
from lpir.language.habits import axis_as_operand_hint
from lpir.language.values import Const, Memory, Runtime, SemanticValue, Slice


# ---- memory -------------------------------------------------------------------------------
@builtin("load(tensor[...], mask = m, other = v)")
def load(low: ExpressionLowering, call: ast.Call) -> Runtime:
    (target,), keywords = call_arguments(low, call, 1, keywords=("mask", "other"))
    mask_node, other_node = keywords.get("mask"), keywords.get("other")
    value = low.expr(target)
    if isinstance(value, Memory) and isinstance(value.type, SharedType):
        memory, shape = value.value, value.type.shape
        offsets = [low.constant(Const(0), I32, call)] * len(shape)
        dims = tuple(range(len(shape)))
    elif isinstance(value, Slice):
        memory, shape = value.memory.value, value.shape
        offsets, dims = _tile_offsets(low, value), value.dims
    else:
        raise low.error(
            f"load needs a tensor slice, but this is {value.describe()}",
            target,
            _whole_tensor_hint(low, value, target, "load")
            or "slice a tensor argument, e.g. load(w[block.x * 32 :+ 32, k0 :+ 64])",
        )
    chosen = None if mask_node is None else _access_mask(low, mask_node, tuple(shape), "load")
    fill = None if other_node is None else other_value(low, memory.type.dtype, shape, other_node)
    if chosen is False:  # no element: the load reads nothing
        chosen = low.broadcast_to(low.constant(Const(False), BOOL), tuple(shape))
    mask = chosen if isinstance(chosen, Value) else None  # (True: every element)
    offsets, mask = _held_alike(low, offsets, mask)
    loaded = load_tile(low, memory, offsets, dims, tuple(shape), mask, fill)
    if not shape:  # every dimension indexed: one element, a scalar (an index, a bound)
        return Runtime(low.builder.add(ItemOp.create(loaded)))
    return Runtime(loaded)


def _whole_tensor_hint(
    low: ExpressionLowering,
    value: SemanticValue,
    node: ast.Node,
    verb: str,
    operand: ast.Node | None = None,
) -> str | None:
    """The hint for a tensor argument written whole where a slice is wanted (`load(vals)`,
    `store(out, t)`): the call `verb` of its slice of every dimension (and `operand`); rows at
    a time where its first dimension is read at run time (a slice to its end is an error).
    None where `value` is no tensor argument."""
    if not isinstance(value, Memory) or not isinstance(value.type, GlobalType):
        return None
    dims = len(value.type.shape)
    if dims == 0:
        return None
    name = low.text_of(node)
    rest = ""
    if operand is not None:
        text = low.text_of(operand)
        rest = f", {text if len(text) <= 40 else 't'}"
    if value.type.extent is not None:  # its rows are a run-time count
        rows = ", ".join(["r :+ BM", *[":"] * (dims - 1)])
        return (
            f"{name}'s first dimension is {value.type.extent}, read at run time: slice BM "
            f"rows at a time, {verb}({name}[{rows}]{rest})"
        )
    whole = ", ".join([":"] * dims)
    each = "" if dims == 1 else f", one `:` for each of its {dims} dimensions"
    return f"slice the whole tensor{each}: {verb}({name}[{whole}]{rest})"


def load_tile(
    low: ExpressionLowering,
    memory: Value,
    offsets: list[Value],
    dims: tuple[int, ...],
    shape: tuple[int, ...],
    mask: Value | None = None,
    fill: Value | None = None,
) -> Value:
    """A tile load of `memory` (its offsets, the dims the tile spans, `mask`); the elements not
    read (masked off, outside the memory) hold `fill` where given, a scalar or tile of the
    memory's dtype broadcast to `shape` (0 without it)."""
    loaded = low.builder.add(LoadOp.create(memory, offsets, dims, shape, mask=mask))
    if fill is None:
        return loaded
    # other = for every element not read: masked off, or outside (all of them without a
    # mask: ids of a run-time length read -1 past it, not row 0)
    inside = low.builder.add(InBoundsOp.create(memory, offsets, dims, shape))
    read = inside if mask is None else low.builder.add(BinaryOp.create("and", mask, inside))
    fill = low.in_layout_of(read, low.broadcast_to(fill, shape))
    return low.builder.add(SelectOp.create(read, loaded, fill))


def _along_axis(low: ExpressionLowering, tile: Value, axis: int, shape: tuple) -> Value:
    """A 1-d tile placed along `axis` of `shape` and broadcast over the other axes."""
    for _ in range(axis):
        tile = low.builder.add(ExpandDimsOp.create(tile, 0))
    for _ in range(len(shape) - axis - 1):
        tile = low.builder.add(ExpandDimsOp.create(tile, as_tile(tile.type).rank))
    return low.broadcast_to(tile, shape)


def other_value(
    low: ExpressionLowering,
    dt: DType,
    shape: tuple[int, ...],
    node: ast.Node,
    dtype_is: str = "the loaded dtype",
) -> Value | None:
    """A masked load's `other =` (or a gather's): a scalar or a tile of `dt` (`dtype_is`)
    that broadcasts to the slice's shape; None for +0, what masked elements read already."""
    other = low.expr(node)
    if isinstance(other, Const):
        if other.value == 0 and not isinstance(other.value, bool) and str(other.value)[0] != "-":
            return None  # (+0; -0.0 is not)
        return low.constant(other, dt, node)
    if not (isinstance(other, Runtime) and other.dtype == dt):
        raise low.error(
            f"other = must be {with_article(dt.name)} value, {dtype_is}, not {other.describe()}",
            node,
            f"cast it: other = cast<{dt.name}>(...)",
        )
    if other.is_tile and broadcast_shapes(as_tile(other.type).shape, shape) != shape:
        raise low.error(
            f"other = of shape {list(as_tile(other.type).shape)} does not fit a slice of shape "
            f"{list(shape)}",
            node,
            "give it the slice's shape, size-1 axes (v[:, None]) or a scalar",
        )
    return other.value


@builtin("store(tensor[...], value, mask = m)")
def store(low: ExpressionLowering, call: ast.Call) -> None:
    (target, value_node), keywords = call_arguments(low, call, 2, keywords=("mask",))
    _store(low, call, low.expr(target), value_node, None, keywords.get("mask"))
    return None


def _atomic(combine: str) -> Builtin:
    """`atomic_add(tensor[...], value)` (tensor[...] += value), `atomic_max`, `atomic_min` and
    the bitwise `atomic_and`, `atomic_or`, `atomic_xor`, each element atomically: blocks may
    combine into the same elements (e.g. the partial sums of a split K, a running maximum),
    additions in an unspecified order; into a shared tile (`s[bins]`, `s`), a block's threads
    may (a histogram whose bins repeat). Used as a value, the call gives what memory held
    before each element was combined (`slot = atomic_add(cursor[e], 1)`: a fetch-and-add), a
    tile of the slice's shape or, for one element, a scalar; as a statement it gives nothing
    and costs no read back."""
    name = f"atomic_{combine}"
    verb = {
        "add": "add into",
        "max": "take the maximum into",
        "min": "take the minimum into",
        "and": "and bits into",
        "or": "or bits into",
        "xor": "xor bits into",
    }

    def lower_atomic(low: ExpressionLowering, call: ast.Call) -> Runtime | None:
        (target, value_node), keywords = call_arguments(low, call, 2, keywords=("mask",))
        destination = low.expr(target)
        memory = destination.memory if isinstance(destination, Slice) else destination
        shared = isinstance(memory, Memory) and isinstance(memory.type, SharedType)
        if not (isinstance(destination, Slice) or shared):
            raise low.error(
                f"{name} needs a slice of a tensor or a shared tile, but this is "
                f"{destination.describe()}",
                target,
                _whole_tensor_hint(low, destination, target, name, value_node)
                or f"e.g. {name}(y[block.x * 32 :+ 32], t)",
            )
        assert isinstance(memory, Memory)
        dt = memory.type.dtype
        allowed = ATOMIC_DTYPES[combine]
        kind = "a shared tile" if shared else "a tensor"
        if dt.name not in allowed:
            hint = f"accumulate into {kind} of {', '.join(allowed)} and cast afterwards"
            if combine in ("max", "min") and dt.is_float:  # GPUs have no float atomic max
                hint += (
                    "; for floats, combine order-preserving integer keys (the float's bits, "
                    "all flipped where negative, else the sign bit flipped)"
                )
            elif combine in ("and", "or", "xor"):  # (bits: 8 and 16 share a word on the GPU)
                hint = f"combine bits in words of {kind}: {', '.join(allowed)}"
            named = low.text_of(target).split("[")[0] if shared else memory.name
            raise low.error(
                f"{name} cannot {verb[combine]} {named}, {kind} of {dt.name}",
                target,
                hint,
            )
        fetch = low.discarded_call is not call  # (a value, not a statement: see the field)
        old = _store(low, call, destination, value_node, combine, keywords.get("mask"), fetch)
        if old is None:
            return None
        if not as_tile(old.type).shape:  # one element: a scalar, as load gives
            return Runtime(low.builder.add(ItemOp.create(old)))
        return Runtime(old)

    return lower_atomic


builtin("atomic_add(tensor[...], value, mask = m)")(_atomic("add"))
builtin("atomic_max(tensor[...], value, mask = m)")(_atomic("max"))
builtin("atomic_min(tensor[...], value, mask = m)")(_atomic("min"))
builtin("atomic_and(tensor[...], value, mask = m)")(_atomic("and"))
builtin("atomic_or(tensor[...], value, mask = m)")(_atomic("or"))
builtin("atomic_xor(tensor[...], value, mask = m)")(_atomic("xor"))


def _store(
    low: ExpressionLowering,
    call: ast.Call,
    destination: SemanticValue,
    value_node: ast.Node,
    combine: str | None,
    mask_node: ast.Node | None = None,
    fetch: bool = False,
) -> Value | None:
    """`store` (combine None) or `atomic_add` / `_max` / `_min` ("add", "max", "min") of
    `value_node` into `destination` (the evaluated first argument), of the elements where
    `mask_node` (a bool tile or scalar, broadcast to the slice) is true. With `fetch`, the
    tile of what memory held before each element was combined (0 where nothing was)."""
    target = call.args[0]
    if isinstance(destination, Memory) and isinstance(destination.type, SharedType):
        shape = destination.type.shape
        zero = low.constant(Const(0), I32, call)
        memory, offsets, dims = destination, [zero] * len(shape), tuple(range(len(shape)))
    elif isinstance(destination, Slice):
        memory, offsets, dims = (
            destination.memory,
            _tile_offsets(low, destination),
            destination.dims,
        )
        shape = destination.shape
    else:
        raise low.error(
            f"store needs a tensor slice or a shared tile, but this is {destination.describe()}",
            target,
            _whole_tensor_hint(low, destination, target, "store", value_node)
            or "e.g. store(y[block.x * 32 :+ 32], t)",
        )
    dt = memory.type.dtype
    value = low.as_runtime(tile_or_scalar(low, value_node), value_node, dt)
    if value.type.dtype != dt:
        shared = isinstance(memory.type, SharedType)
        named = low.text_of(target).split("[")[0] if shared else memory.name
        verb = "store" if combine is None else f"atomic_{combine}"
        raise low.error(
            f"cannot {verb} {value.type} into {named}, "
            f"{'a shared tile' if shared else 'a tensor'} of {dt.name}",
            value_node,
            f"cast it first: cast<{dt.name}>(...)",
        )
    if isinstance(value.type, TileType) and broadcast_shapes(
        value.type.shape, tuple(shape)
    ) != tuple(shape):
        raise low.error(
            f"cannot store a tile of shape {list(value.type.shape)} into a slice of shape "
            f"{list(shape)}",
            value_node,
            axis_as_operand_hint(value_node, low.text_of(value_node))
            or _outer_product_hint(low, value, value_node)
            or "make the slice lengths match the tile",
        )
    value = low.broadcast_to(value, tuple(shape))
    mask = None if mask_node is None else _access_mask(low, mask_node, tuple(shape), "store")
    if mask is False:  # a constant false mask writes nothing (and reads nothing back)
        return low.broadcast_to(low.constant(Const(0), dt, call), tuple(shape)) if fetch else None
    mask_value = None if mask is None or mask is True else mask
    offsets, mask_value = _held_alike(low, offsets, mask_value, value)
    store = StoreOp.create(memory.value, offsets, dims, value, combine, mask_value, fetch)
    low.builder.insert(store)
    return store.result if fetch else None


def _outer_product_hint(low: ExpressionLowering, value: Value, node: ast.Node) -> str | None:
    """The hint for a stored tile loaded with tiles of positions in two or more dimensions
    (`probs[b, arange(S), ids]`): those index independently, as numpy's np.ix_ does, so the
    tile is their outer product; a user who meant them in pairs merges the dimensions."""
    load = value.owner
    if not isinstance(load, LoadOp):
        return None
    gathered = [d for d, offset in enumerate(load.offsets) if isinstance(offset.type, TileType)]
    if len(gathered) < 2:
        return None
    memory = load.memory.name_hint or "the tensor"
    shape = list(as_tile(load.result.type).shape)
    hint = (
        f"the tiles of positions in dimensions {', '.join(map(str, gathered))} of {memory} "
        f"index independently (an outer product, as numpy's np.ix_): the load is {shape}; "
        "for one element per pair of positions, "
    )
    subscript = node.args[0] if isinstance(node, ast.Call) and node.args else None
    items = subscript.items if isinstance(subscript, ast.Subscript) else None
    first, second = gathered[0], gathered[1]
    dims = list(as_memory(load.memory.type).shape)
    if isinstance(items, list) and len(gathered) == 2 and second == first + 1:
        texts = [low.text_of(item) for item in items]
        merged = [*dims[:first], dims[first] * dims[second], *dims[second + 1 :]]
        index = f"{texts[first]} * {dims[second]} + {texts[second]}"
        flat = ", ".join([*texts[:first], index, *texts[second + 1 :]])
        return (
            hint + f"declare {memory} with the two dimensions merged ({merged}) and index "
            f"both at once: {memory}[{flat}]; or load one element a step in a loop"
        )
    return hint + "merge the dimensions in the tensor's declaration, or load in a loop"


def _held_alike(
    low: ExpressionLowering,
    offsets: list[Value],
    mask: Value | None,
    value: Value | None = None,
) -> tuple[list[Value], Value | None]:
    """An access's tiles of positions and its mask, converted to the layout of the first of
    `value` (a store's), the positions and the mask that carries one: each lane of an access
    takes the same slot of them all, and annotations that disagree cost a conversion."""
    tiles = [v for v in (value, *offsets, mask) if v is not None and isinstance(v.type, TileType)]
    reference = next((v for v in tiles if as_tile(v.type).layout is not None), None)
    if reference is None:
        return offsets, mask
    offsets = [low.in_layout_of(reference, offset) for offset in offsets]
    return offsets, None if mask is None else low.in_layout_of(reference, mask)


def _tile_offsets(low: ExpressionLowering, place: Slice) -> list[Value]:
    """The access's offset per memory dimension: the slice's scalars, and for a gathered
    dimension its 1-d tile of positions broadcast to the slice's shape (the tile IR's form:
    each element's own position along that dimension)."""
    offsets = []
    for dim, offset in enumerate(place.offsets):
        if isinstance(offset.type, TileType):
            offset = _along_axis(low, offset, place.dims.index(dim), tuple(place.shape))
        offsets.append(offset)
    return offsets


def _access_mask(
    low: ExpressionLowering, node: ast.Node, shape: tuple[int, ...], verb: str
) -> Value | bool:
    """A load's or store's `mask =`: a bool tile broadcast to the slice's shape, or a constant
    (True: every element, False: none)."""
    mask = low.expr(node)
    if isinstance(mask, Const) and isinstance(mask.value, bool):
        return mask.value
    if not (isinstance(mask, Runtime) and mask.dtype.is_bool):
        raise low.error(
            f"a {verb}'s mask must be bool, not {mask.describe()}",
            node,
            "compare to make one, e.g. mask = arange(BN) < n - i",
        )
    if isinstance(mask.type, TileType) and broadcast_shapes(mask.type.shape, shape) != shape:
        raise low.error(
            f"a mask of shape {list(mask.type.shape)} does not fit a slice of shape {list(shape)}",
            node,
            "the mask broadcasts to the slice as an operand of + would: give it the "
            "slice's shape, or size-1 axes (keep[:, None])",
        )
    return low.broadcast_to(mask.value, shape)


@builtin("sync()")
def sync(low: ExpressionLowering, call: ast.Call) -> None:
    call_arguments(low, call, 0)
    low.builder.insert(SyncOp.create())
    return None
