"""The functions a kernel can call: math, reductions, dot, cast/view, constructors (load,
store, the atomics and sync: memory_builtins.py).

Importing this module registers every builtin in `BUILTINS` and `TYPED_BUILTINS` (see
builtin_calls.py for the registry and what the lowerings share).
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable

import numpy as np

from lpir.dtypes import DType, dtype
from lpir.errors import TypeCheckError
from lpir.ir.core import Value
from lpir.ir.layout_checks import dot_operand_layout
from lpir.ir.loops import in_a_loop
from lpir.ir.ops import (
    FLOAT_UNARY,
    AllocSharedOp,
    ArangeOp,
    BinaryOp,
    CastOp,
    ConvertLayoutOp,
    DotOp,
    ExpandDimsOp,
    IndexOp,
    ReduceOp,
    ReshapeOp,
    ScanOp,
    SelectOp,
    SortOp,
    SplatOp,
    StackOp,
    StoreOp,
    SyncOp,
    TransposeOp,
    UnaryOp,
    ViewOp,
    is_compute_dtype,
)
from lpir.ir.ops.tile import SCANS, regroups
from lpir.ir.types import ScalarType, SharedType, TileType, as_tile
from lpir.language import (
    ast,
    memory_builtins,  # noqa: F401  (registers load, store, atomics, sync)
)
from lpir.language.axis_habits import swapped
from lpir.language.builtin_calls import (
    BUILTINS,
    TYPED_BUILTINS,
    Builtin,
    builtin,
    call_arguments,
    not_a_tile,
    tile_or_scalar,
)
from lpir.language.expressions import F32, I32, ExpressionLowering
from lpir.language.folding import BOOL_HINT, check_bool_constants, fold_binary
from lpir.language.memory_builtins import load_tile, other_value
from lpir.language.values import Const, Memory, Runtime, SemanticValue


# ---- conversions --------------------------------------------------------------------------
@builtin("cast<T>(x)", typed=True)
def cast(low: ExpressionLowering, call: ast.Call) -> Runtime:
    (node,), _ = call_arguments(low, call, 1)
    assert call.type_name is not None  # a typed builtin is called with its type argument
    target = low.dtype_named(call.type_name, call.type_span)
    value = tile_or_scalar(low, node, call)
    source = low.as_runtime(value, node, _exact_dtype(value) if isinstance(value, Const) else None)
    if source.type.dtype == target:
        return Runtime(source)
    return Runtime(low.builder.add(CastOp.create(source, target)))


def _exact_dtype(constant: Const) -> DType:
    """A dtype that holds a constant exactly, for a cast to convert it as it would at run time
    (`cast<i64>(3000000000)`, `cast<f64>(0.1)`: not through i32 or f32 first)."""
    value = constant.value
    if isinstance(value, bool):
        return dtype("bool")
    if isinstance(value, float):
        return dtype("f64")
    return dtype("i64") if value < 2**63 else dtype("u64")


@builtin("view<T>(x)", typed=True)
def view(low: ExpressionLowering, call: ast.Call) -> Runtime:
    (node,), _ = call_arguments(low, call, 1)
    assert call.type_name is not None  # a typed builtin is called with its type argument
    target = low.dtype_named(call.type_name, call.type_span)
    value = tile_or_scalar(low, node, call)
    if isinstance(value, Const):
        raise low.error("view reinterprets a typed value, not a constant", node)
    return Runtime(low.builder.add(ViewOp.create(value.value, target)))


@builtin("arange<T>(n)", typed=True)
def arange_typed(low: ExpressionLowering, call: ast.Call) -> Runtime:
    (node,), _ = call_arguments(low, call, 1)
    assert call.type_name is not None  # a typed builtin is called with its type argument
    target = low.dtype_named(call.type_name, call.type_span)
    size = _arange_length(low, node)
    _check_arange_fits(low, target, size, call)
    value = low.builder.add(ArangeOp.create(size))
    if target != I32:
        value = low.builder.add(CastOp.create(value, target))
    return Runtime(value)


@builtin("arange(n)")
def arange(low: ExpressionLowering, call: ast.Call) -> Runtime:
    (node,), _ = call_arguments(low, call, 1)
    return Runtime(low.builder.add(ArangeOp.create(_arange_length(low, node))))


def _arange_length(low: ExpressionLowering, node: ast.Node) -> int:
    size = low.as_const_int(node, "the length of arange")
    if size <= 0:
        raise low.error(f"arange needs a positive length, not {size}", node)
    return size


def _check_arange_fits(low: ExpressionLowering, target: DType, size: int, call: ast.Call) -> None:
    """`arange<T>(n)` promises 0, 1, ..., n-1: refuse a T that cannot hold n-1, as `full<T>`
    refuses such a constant, rather than wrap (integers) or saturate (small floats) silently.
    A float T may round the larger values (bf16 above 256), as it rounds a constant."""
    last, name = size - 1, target.name
    written_as_cast = f"or write cast<{name}>(arange({size})) if that is meant"
    if target.is_bool:
        raise low.error(
            f"arange<bool>({size}) counts, and bool holds no numbers",
            call,
            f"compare the positions instead, e.g. arange({size}) > 0",
        )
    if target.is_int and last > target.max:
        raise low.error(
            f"arange<{name}>({size}) ends at {last}, which does not fit in {name}",
            call,
            f"{name} holds {target.min} to {target.max} and a cast wraps the rest round; use a "
            f"wider dtype, {written_as_cast}",
        )
    if target.is_float and target.rounds_past_max(last):
        largest = f"{target.max:g}"
        past = "to infinity" if target.has_inf else f"to {largest}"
        raise low.error(
            f"arange<{name}>({size}) ends at {last}, which does not fit in {name} (max {largest})",
            call,
            f"a cast rounds the values past {largest} {past}; use a wider dtype, {written_as_cast}",
        )


# ---- math ---------------------------------------------------------------------------------
# Constants fold as the functions compute at run time: in floating point (`floor(7.5) / 2` is
# 3.5, not an integer division), IEEE at the poles (`log(0.0)` is -inf, `sqrt(-1.0)` NaN,
# `floor(inf)` inf), `round` half to even. Only `abs` keeps an integer an integer.
_FOLDED_MATH: dict[str, Callable[[np.float64], np.float64]] = {
    "exp": np.exp,
    "exp2": np.exp2,
    "log": np.log,
    "log2": np.log2,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "erf": lambda x: np.float64(math.erf(x)),
}


def _fold_math(name: str, value: int | float) -> int | float:
    """`name(value)` of a constant, as the function computes it at run time."""
    if name == "abs":
        return abs(value)
    with np.errstate(all="ignore"):
        return float(_FOLDED_MATH[name](np.float64(value)))


def _unary_math(name: str) -> Builtin:
    def lower_unary(low: ExpressionLowering, call: ast.Call) -> Const | Runtime:
        (node,), _ = call_arguments(low, call, 1)
        value = tile_or_scalar(low, node, call)
        if isinstance(value, Const):
            if isinstance(value.value, bool):
                raise low.error(f"{name} is not defined on bool", call, BOOL_HINT)
            return Const(_fold_math(name, value.value))
        return Runtime(low.builder.add(UnaryOp.create(name, value.value)))

    return lower_unary


for _name in (*FLOAT_UNARY, "abs"):
    builtin(f"{_name}(x)")(_unary_math(_name))


def _reduced_tile(low: ExpressionLowering, kind: str, call: ast.Call, node: ast.Node) -> Value:
    value = low.expr(node)
    if not (isinstance(value, Runtime) and value.is_tile):
        raise not_a_tile(low, f"{kind} reduces a tile", value, node, call)
    return value.value


def _reduction_axis(low: ExpressionLowering, tile: Value, axis_node: ast.Node) -> int:
    """The axis a reduction names (negative counts from the end), checked against the tile."""
    axis = low.as_const_int(axis_node, "axis")
    rank = as_tile(tile.type).rank
    if not -rank <= axis < rank:
        raise low.error(
            f"axis {axis} is out of range for a rank-{rank} tile",
            axis_node,
            f"use an axis between 0 and {rank - 1}, or -1 to -{rank} counted from the last",
        )
    return axis % rank


def _reduce(
    low: ExpressionLowering, kind: str, call: ast.Call, node: ast.Node, axis_node: ast.Node | None
) -> Runtime:
    return Runtime(_reduced(low, kind, _reduced_tile(low, kind, call, node), axis_node))


def _reduced(low: ExpressionLowering, kind: str, tile: Value, axis_node: ast.Node | None) -> Value:
    """`tile` reduced along the axis `axis_node` names, or along all of them."""
    if axis_node is None:
        while isinstance(tile.type, TileType):
            tile = low.builder.add(ReduceOp.create(tile, kind, tile.type.rank - 1))
        return tile
    axis = _reduction_axis(low, tile, axis_node)
    return low.builder.add(ReduceOp.create(tile, kind, axis))


@builtin("sum(t, axis = None)")
def sum_(low: ExpressionLowering, call: ast.Call) -> Runtime:
    """A float tile narrower than f32 (f16, bf16, fp8, small floats) is summed in f32 and the
    sum rounded once to its dtype, as torch and cuBLAS sum halves: added in its own dtype, a
    sum of 4096 bf16 ones stalls at 256, and a sum of f16s overflows where the result fits."""
    (node,), keywords = call_arguments(low, call, 1, keywords=("axis",))
    tile = _reduced_tile(low, "sum", call, node)
    dt = tile.type.dtype
    if not (dt.is_float and dt.nbits < 32):
        return Runtime(_reduced(low, "sum", tile, keywords.get("axis")))
    wide = low.builder.add(CastOp.create(tile, F32))
    total = _reduced(low, "sum", wide, keywords.get("axis"))
    return Runtime(low.builder.add(CastOp.create(total, dt)))


def _min_max(kind: str) -> Builtin:
    def lower_min_max(low: ExpressionLowering, call: ast.Call) -> Const | Runtime:
        args, keywords = call_arguments(low, call, 1, 1, keywords=("axis",))
        assert args[0] is not None  # call_arguments checked the count: only optionals are None
        if args[1] is None:
            return _reduce(low, kind, call, args[0], keywords.get("axis"))
        if "axis" in keywords:
            raise low.error(f"{kind}(a, b) is elementwise and takes no axis", call)
        return _elementwise_min_max(low, kind, low.expr(args[0]), low.expr(args[1]), call)

    return lower_min_max


def _elementwise_min_max(
    low: ExpressionLowering, kind: str, lhs: SemanticValue, rhs: SemanticValue, call: ast.Call
) -> Const | Runtime:
    """`max(a, b)` or `min(a, b)` of two lowered values."""
    if isinstance(lhs, Const) and isinstance(rhs, Const):
        return Const(fold_binary(kind, lhs.value, rhs.value))
    left, right = low.typed_pair(lhs, rhs, call)
    left, right = low.broadcast_pair(left, right, call)
    return Runtime(low.builder.add(BinaryOp.create(kind, left, right)))


builtin("max(t, axis = None) or max(a, b)")(_min_max("max"))
builtin("min(t, axis = None) or min(a, b)")(_min_max("min"))


def _arg_extreme(kind: str) -> Builtin:
    """`argmax(t, axis)` / `argmin`: the i32 position of the first largest (smallest) element
    along `axis` (without one: in the tile's row-major order, as numpy's flat index). NaNs are
    passed over, as `max` and `min` pass them over; a line of NaNs gives 0. Built from two
    reductions every target has: the extreme value, then the least position that holds it."""

    def lower_arg_extreme(low: ExpressionLowering, call: ast.Call) -> Runtime:
        (node,), keywords = call_arguments(low, call, 1, keywords=("axis",))
        tile = _reduced_tile(low, f"arg{kind}", call, node)
        if tile.type.dtype.is_bool:  # True is the larger; the positions are the same in u8
            tile = low.builder.add(CastOp.create(tile, dtype("u8")))
        axis_node = keywords.get("axis")
        if axis_node is None:
            tile = low.builder.add(ReshapeOp.create(tile, (as_tile(tile.type).size,)))
            axis = 0
        else:
            axis = _reduction_axis(low, tile, axis_node)
        return Runtime(_first_position_of_extreme(low, tile, kind, axis))

    return lower_arg_extreme


def _first_position_of_extreme(low: ExpressionLowering, tile: Value, kind: str, axis: int) -> Value:
    shape = as_tile(tile.type).shape
    add = low.builder.add
    extreme = add(ReduceOp.create(tile, kind, axis))
    if isinstance(extreme.type, TileType):
        extreme = add(ExpandDimsOp.create(extreme, axis))
    hits = add(BinaryOp.create("eq", tile, low.broadcast_to(extreme, shape)))
    length = shape[axis]
    positions = _positions_along(low, shape, axis)
    past_the_end = low.constant(Const(length), I32, None)
    candidates = add(SelectOp.create(hits, positions, add(SplatOp.create(past_the_end, shape))))
    first = add(ReduceOp.create(candidates, "min", axis))
    # no element equals the extreme only where all are NaN
    none = add(BinaryOp.create("eq", first, _shaped_like(low, past_the_end, first)))
    zero = _shaped_like(low, low.constant(Const(0), I32, None), first)
    return add(SelectOp.create(none, zero, first))


def _shaped_like(low: ExpressionLowering, scalar: Value, value: Value) -> Value:
    """`scalar` splat to `value`'s shape where `value` is a tile."""
    if isinstance(value.type, TileType):
        return low.broadcast_to(scalar, value.type.shape)
    return scalar


builtin("argmax(t, axis = None)")(_arg_extreme("max"))
builtin("argmin(t, axis = None)")(_arg_extreme("min"))


def _line_axis(
    low: ExpressionLowering,
    name: str,
    call: ast.Call,
    node: ast.Node,
    tile: Value,
    axis_node: ast.Node | None,
) -> int:
    """The axis a scan or sort runs along: named, or the only one of a rank-1 tile."""
    rank = as_tile(tile.type).rank
    if rank == 0:
        raise low.error(
            f"{name} runs along an axis, and this tile has none (one element)",
            node,
            "pass a tile of one dimension or more, e.g. without the index that took the element",
        )
    if axis_node is None and rank > 1:
        arguments = ", ".join(low.text_of(argument) for argument in call.args)
        raise low.error(
            f"{name} of a rank-{rank} tile needs the axis it runs along",
            call,
            f"name it, e.g. {name}({arguments}, axis = {rank - 1})",
        )
    return 0 if axis_node is None else _reduction_axis(low, tile, axis_node)


def _scan(kind: str) -> Builtin:
    """`cumsum(t, axis = k)`, `cumprod`, `cummax`, `cummin`: inclusive prefix results along
    axis k (optional for a rank-1 tile). A float tile narrower than f32 is scanned in f32 and
    each result rounded once to its dtype, as `sum` does."""
    name = f"cum{kind}"

    def lower_scan(low: ExpressionLowering, call: ast.Call) -> Runtime:
        (node,), keywords = call_arguments(low, call, 1, keywords=("axis",))
        value = low.expr(node)
        if not (isinstance(value, Runtime) and value.is_tile):
            raise not_a_tile(
                low, f"{name} scans a tile", value, node, call, "e.g. cumsum(load(x[0 :+ 64]))"
            )
        tile = value.value
        axis = _line_axis(low, name, call, node, tile, keywords.get("axis"))
        dt = tile.type.dtype
        # sums and products of narrow floats add in f32 (as sum); max and min are exact in the
        # dtype, but the storage-only ones (fp8, small floats) have no max of their own
        wide = dt.is_float and dt.nbits < 32 and (kind in ("sum", "prod") or dt.nbits < 16)
        if wide:
            tile = low.builder.add(CastOp.create(tile, F32))
        result = low.builder.add(ScanOp.create(tile, kind, axis))
        if wide:
            result = low.builder.add(CastOp.create(result, dt))
        return Runtime(result)

    return lower_scan


for _kind in SCANS:
    builtin(f"cum{_kind}(t, axis = None)")(_scan(_kind))


def _sorted(positions: bool) -> Builtin:
    """`sort(t, axis = k, descending = false)`: t's lines sorted (stable; NaN above every
    number); `argsort`: the i32 positions that sort them."""
    name = "argsort" if positions else "sort"

    def lower_sort(low: ExpressionLowering, call: ast.Call) -> Runtime:
        (node,), keywords = call_arguments(low, call, 1, keywords=("axis", "descending"))
        value = low.expr(node)
        if not (isinstance(value, Runtime) and value.is_tile):
            raise not_a_tile(
                low, f"{name} sorts a tile", value, node, call, f"e.g. {name}(load(x[0 :+ 64]))"
            )
        keys = original = value.value
        axis = _line_axis(low, name, call, node, keys, keywords.get("axis"))
        descending = _const_bool(low, keywords.get("descending"), "descending")
        wider = _sortable(keys.type.dtype)
        if wider is not None:  # the same order, in a type that compares
            keys = low.builder.add(CastOp.create(keys, wider))
        values = keys if not positions else _positions_along(low, as_tile(keys.type).shape, axis)
        result = low.builder.add(SortOp.create(keys, values, axis, descending))
        if result.type.dtype != original.type.dtype and not positions:
            result = low.builder.add(CastOp.create(result, original.type.dtype))
        return Runtime(result)

    return lower_sort


def _sortable(dt: DType) -> DType | None:
    """The dtype a sort compares keys of `dt` in where `dt` has no comparison of its own
    (None: `dt` itself): bool as u8 (true above false), small floats (fp8, fp6, fp4) as f32,
    sub-byte integers as u8 or i8; each holds every value exactly, in the same order."""
    if dt.is_bool:
        return dtype("u8")
    if is_compute_dtype(dt):
        return None
    if dt.is_float:
        return F32
    return dtype("i8" if dt.kind == "int" else "u8")


def _const_bool(low: ExpressionLowering, node: ast.Node | None, what: str) -> bool:
    if node is None:
        return False
    value = low.compile_time_expr(node)
    if not (isinstance(value, Const) and isinstance(value.value, bool)):
        hint = f"write {what} = true or {what} = false"
        if isinstance(value, Const) and isinstance(value.value, int):  # Triton's constexpr 0/1
            text = low.text_of(node)
            hint = f"write {what} = {text} != 0" if not text.isdigit() else hint
        raise low.error(f"{what} must be true or false, but this is {value.describe()}", node, hint)
    return value.value


def _positions_along(low: ExpressionLowering, shape: tuple[int, ...], axis: int) -> Value:
    """An i32 tile of `shape` holding each element's position along `axis`."""
    add = low.builder.add
    positions = add(ArangeOp.create(shape[axis]))
    for _ in range(len(shape) - 1 - axis):
        positions = add(ExpandDimsOp.create(positions, 1))
    return low.broadcast_to(positions, shape)


builtin("sort(t, axis = None, descending = false)")(_sorted(positions=False))
builtin("argsort(t, axis = None, descending = false)")(_sorted(positions=True))


@builtin("gather(t, index, axis = None, other = v)")
def gather(low: ExpressionLowering, call: ast.Call) -> Runtime:
    """`gather(t, index, axis = k)`: the elements of t's lines along axis k at the positions
    `index` holds (numpy's `take_along_axis`, Triton's `tl.gather`): result[..., j, ...] is
    t[..., index[..., j, ...], ...]. Positions outside the line read `other` (0 without it),
    as a load's outside the tensor do. Through a shared tile of t's shape: t stored, then read
    at the positions, a `sync` between (and one before, in a loop)."""
    if len(call.args) == 3 and not call.keywords:  # Triton's tl.gather(src, index, axis)
        source, index, axis_text = (low.text_of(a) for a in call.args)
        axis_node = call.args[2]
        if isinstance(call.args[1], ast.IntLiteral | ast.UnaryExpr) and not isinstance(
            call.args[2], ast.IntLiteral
        ):  # torch's gather(input, dim, index)
            index, axis_text, axis_node = axis_text, index, call.args[1]
        raise low.error(
            "gather takes the axis as a keyword",
            axis_node,
            f"write gather({source}, {index}, axis = {axis_text})",
        )
    (node, index_node), keywords = call_arguments(low, call, 2, keywords=("axis", "other"))
    value = low.expr(node)
    if not (isinstance(value, Runtime) and value.is_tile):
        raise not_a_tile(
            low, "gather picks elements of a tile", value, node, call, "e.g. gather(t, ids)"
        )
    tile = value.value
    axis = _line_axis(low, "gather", call, node, tile, keywords.get("axis"))
    positions, one_position = _gather_positions(low, call, index_node, tile, axis)
    shape, result_shape = as_tile(tile.type).shape, as_tile(positions.type).shape
    dt = tile.type.dtype
    scratch = low.builder.add(AllocSharedOp.create(SharedType(dt, shape), "gathered"))
    zero = low.constant(Const(0), I32, call)
    dims = tuple(range(len(shape)))
    if in_a_loop(low.builder.region):  # (the last iteration's reads of the scratch are done)
        low.builder.insert(SyncOp.create())
    low.builder.insert(StoreOp.create(scratch, [zero] * len(shape), dims, tile))
    low.builder.insert(SyncOp.create())
    offsets = [positions if d == axis else zero for d in dims]
    other_node = keywords.get("other")
    fill = None
    if other_node is not None:
        fill = other_value(low, dt, result_shape, other_node, "the tile's dtype")
    picked = load_tile(low, scratch, offsets, dims, result_shape, fill=fill)
    if one_position:  # (numpy's take of one position: the axis dropped)
        picked = low.builder.add(IndexOp.create(picked, axis, 0))
    return Runtime(picked)


def _gather_positions(
    low: ExpressionLowering, call: ast.Call, node: ast.Node, tile: Value, axis: int
) -> tuple[Value, bool]:
    """`gather`'s index as i32 positions of the result's shape: an integer tile of t's rank,
    each dimension but the axis t's own (or 1, broadcast), or one integer (a tile of it, 1
    along the axis: True with it, the axis to be dropped). 64-bit positions are clamped to
    -1 .. n first, so none wraps into the line."""
    index = low.expr(node)
    shape = as_tile(tile.type).shape
    example = f"gather({low.text_of(call.args[0])}, ids, axis = {axis})"
    if (
        isinstance(index, Const)
        and isinstance(index.value, int)
        and not isinstance(index.value, bool)
    ):
        index = Runtime(low.constant(index, I32, node))
    if not (isinstance(index, Runtime) and index.dtype.is_int):
        raise low.error(
            f"gather's positions must be an integer tile or scalar, not {index.describe()}",
            node,
            f"pass a tile of positions along the axis, e.g. {example}",
        )
    positions = index.value
    one_position = not index.is_tile
    if one_position:  # a [.., 1, ..] tile of it (the axis dropped after)
        positions = low.broadcast_to(positions, tuple(1 for _ in shape))
    given = as_tile(positions.type).shape
    if len(given) != len(shape):
        raise _positions_of_another_rank(low, call, node, given, shape, axis)
    wanted = tuple(given[axis] if d == axis else n for d, n in enumerate(shape))
    if any(g not in (n, 1) for d, (g, n) in enumerate(zip(given, wanted)) if d != axis):
        raise low.error(
            f"gather's positions of shape {list(given)} do not fit a tile of shape "
            f"{list(shape)} along axis {axis}",
            node,
            f"give the positions the tile's rank and its dimensions but axis {axis} (any "
            "length there), or 1 to broadcast",
        )
    positions = low.broadcast_to(positions, wanted)
    dt = index.dtype
    if dt.nbits == 64:  # (a cast to i32 keeps the low bits: 2**32 + 3 would read element 3)
        length = shape[axis]
        top = low.broadcast_to(low.constant(Const(length), dt, node), wanted)
        positions = low.builder.add(BinaryOp.create("min", positions, top))
        if dt.is_signed:
            bottom = low.broadcast_to(low.constant(Const(-1), dt, node), wanted)
            positions = low.builder.add(BinaryOp.create("max", positions, bottom))
    if dt != I32:
        positions = low.builder.add(CastOp.create(positions, I32))
    return positions, one_position


def _positions_of_another_rank(
    low: ExpressionLowering,
    call: ast.Call,
    node: ast.Node,
    given: tuple[int, ...],
    shape: tuple[int, ...],
    axis: int,
) -> TypeCheckError:
    """The error for gather's positions whose rank is not the tile's; one line of positions
    is numpy's `take` or torch's `index_select` (the same positions in every line), whose
    lpir form gives them size-1 axes to broadcast."""
    message = (
        f"gather's positions of shape {list(given)} do not fit a tile of shape {list(shape)} "
        f"along axis {axis}: they need the tile's rank, {len(shape)}"
    )
    if len(given) != 1:
        hint = (
            f"give the positions {len(shape)} dimensions: the tile's but axis {axis} (any "
            "length there), or 1 to broadcast"
        )
        return low.error(message, node, hint)
    index = low.text_of(node)
    if not re.fullmatch(r"[\w.]+(?:\[[^\[\]]*\])?", index):
        index = f"({index})"
    placed = ", ".join(":" if d == axis else "None" for d in range(len(shape)))
    source = low.text_of(call.args[0])
    return low.error(
        message,
        node,
        f"to pick the same positions in every line (numpy's take, torch's index_select), "
        f"write gather({source}, {index}[{placed}], axis = {axis}): size 1 along the other "
        "axes broadcasts",
    )


@builtin("clamp(x, lo, hi)")
def clamp(low: ExpressionLowering, call: ast.Call) -> SemanticValue | None:
    (x_node, lo_node, hi_node), _ = call_arguments(low, call, 3)
    x, lo, hi = low.expr(x_node), low.expr(lo_node), low.expr(hi_node)
    if isinstance(lo, Const) and isinstance(hi, Const) and lo.value > hi.value:
        raise low.error(
            f"clamp's lower bound {lo.value!r} is above its upper bound {hi.value!r}",
            lo_node,
            "call it as clamp(x, lo, hi) with lo <= hi",
        )
    return _elementwise_min_max(low, "min", _elementwise_min_max(low, "max", x, lo, call), hi, call)


@builtin("where(cond, a, b)")
def where(low: ExpressionLowering, call: ast.Call) -> SemanticValue:
    (cond_node, a_node, b_node), _ = call_arguments(low, call, 3)
    cond, a, b = low.expr(cond_node), low.expr(a_node), low.expr(b_node)
    if isinstance(cond, Const):
        return a if cond.value else b
    if not (isinstance(cond, Runtime) and cond.dtype.is_bool):
        raise low.error(f"the condition of where must be bool, not {cond.describe()}", cond_node)
    left, right = (
        low.typed_pair(a, b, call)
        if not (isinstance(a, Const) and isinstance(b, Const))
        else (low.as_runtime(a, a_node), low.as_runtime(b, b_node, low.default_dtype(a)))
    )
    left, right = low.broadcast_pair(left, right, call)
    condition, left = low.broadcast_pair(cond.value, left, call)
    condition, right = low.broadcast_pair(condition, right, call)
    return Runtime(low.builder.add(SelectOp.create(condition, left, right)))


def _zero_divisor_hint(node: ast.Node) -> str:
    """What to change where a constant divisor of cdiv is 0 (a parameter given 0: BN=0)."""
    what = f"{node.id} is 0 here" if isinstance(node, ast.Name) else "the divisor is 0"
    return f"{what}: give it a positive value (cdiv(a, b) rounds a / b up)"


@builtin("cdiv(a, b)")
def cdiv(low: ExpressionLowering, call: ast.Call) -> Const | Runtime:
    (a_node, b_node), _ = call_arguments(low, call, 2)
    a, b = low.expr(a_node), low.expr(b_node)
    for value, node in ((a, a_node), (b, b_node)):
        if _is_float(value):
            raise low.error(
                f"cdiv divides integers, but this is {value.describe()}",
                node,
                "for the ceiling of a float quotient write ceil(a / b)",
            )
    if isinstance(a, Const) and isinstance(b, Const):
        check_bool_constants("cdiv", a.value, b.value)
        if b.value == 0:
            raise low.error("cdiv by zero", b_node, _zero_divisor_hint(b_node))
        return Const(-(-a.value // b.value))
    if isinstance(b, Const) and b.value == 0:
        raise low.error("cdiv by zero", b_node, _zero_divisor_hint(b_node))
    # The exact ceiling for every sign, as constants fold, and no overflow near 2^31: the
    # truncated quotient, plus one where a remainder is left and the quotient is positive
    # (the remainder has a's sign: positive quotients have it agree with b's). (a + b - 1) / b
    # was wrong for a < 0 (cdiv(-5, 4) was 0) and wrapped for a near 2^31.
    quotient = low.binary("div", a, b, call)
    remainder = low.binary("rem", a, b, call)
    assert isinstance(quotient, Runtime)  # (a run-time operand: a run-time quotient)
    if not quotient.dtype.is_signed:  # unsigned: any remainder rounds up
        up = low.binary("ne", remainder, Const(0), call)
    elif isinstance(b, Const) and b.value > 0:
        up = low.binary("gt", remainder, Const(0), call)
    else:
        agree = low.binary("ge", low.binary("xor", remainder, b, call), Const(0), call)
        nonzero = low.binary("ne", remainder, Const(0), call)
        up = low.binary("logical_and", nonzero, agree, call)
    assert isinstance(up, Runtime)  # (a comparison of run-time values)
    step = Runtime(low.builder.add(CastOp.create(up.value, quotient.type.dtype)))
    return low.binary("add", quotient, step, call)


def _is_float(value: SemanticValue) -> bool:
    if isinstance(value, Const):
        return isinstance(value.value, float)
    return isinstance(value, Runtime) and value.dtype.is_float


# ---- matrix product -----------------------------------------------------------------------
@builtin("dot(a, b, acc = zeros)")
def dot(low: ExpressionLowering, call: ast.Call) -> Runtime:
    args, _ = call_arguments(low, call, 2, 1)
    operands = []
    for node in args[:2]:
        assert node is not None  # call_arguments checked the count: only optionals are None
        value = low.expr(node)
        if not (isinstance(value, Runtime) and value.is_tile):
            raise not_a_tile(low, "dot multiplies tiles", value, node, call)
        operands.append(value.value)
    a, b = operands
    if args[2] is None:
        m, n = as_tile(a.type).shape[0], as_tile(b.type).shape[-1]
        accumulator = "i32" if a.type.dtype.name == "i8" else "f32"
        acc_dtype = I32 if accumulator == "i32" else F32
        zero = low.constant(Const(0 if accumulator == "i32" else 0.0), acc_dtype, call)
        acc = low.builder.add(SplatOp.create(zero, (m, n)))
    else:
        value = low.expr(args[2])
        if not (isinstance(value, Runtime) and value.is_tile):
            raise not_a_tile(low, "the accumulator must be a tile", value, args[2], call)
        acc = value.value
    a, b = (_held_for_dot(low, operand, acc, dim) for operand, dim in ((a, 1), (b, 0)))
    return Runtime(low.builder.add(DotOp.create(a, b, acc)))


def _held_for_dot(low: ExpressionLowering, operand: Value, acc: Value, dim: int) -> Value:
    """A dot operand annotated in a layout that does not give each thread what its annotated
    accumulator's elements need (a: `dim` 1, b: 0), converted to one that does: an annotation
    that disagrees with what an op needs costs a conversion. (f16 and bf16 dots may take
    tensor-core fragments, which layout-selection reconciles with the annotations.)"""
    held, accumulator = as_tile(operand.type).layout, as_tile(acc.type).layout
    if held is None or accumulator is None or operand.type.dtype.name in ("f16", "bf16"):
        return operand
    k = as_tile(operand.type).shape[dim]
    wanted = dot_operand_layout(accumulator, held, dim, k)
    return operand if wanted is None else low.builder.add(ConvertLayoutOp.create(operand, wanted))


@builtin("transpose(t, d0, d1, ...)")
def transpose(low: ExpressionLowering, call: ast.Call) -> Runtime:
    """`transpose(t)` reverses the dimensions (a [rows, columns] tile's two swap);
    `transpose(t, 0, 2, 1)` puts dimension d_i of t at position i (numpy's `np.transpose`)."""
    if not call.args or call.keywords:
        raise low.error(
            "transpose takes a tile and, optionally, the order of its dimensions",
            call,
            "call it as transpose(t) or transpose(t, d0, d1, ...), e.g. transpose(t, 0, 2, 1)",
        )
    node, *dim_nodes = call.args
    value = low.expr(node)
    if not (isinstance(value, Runtime) and value.is_tile and as_tile(value.type).rank >= 1):
        raise not_a_tile(
            low,
            "transpose permutes the dimensions of a tile (a [rows, columns] tile's two swap)",
            value,
            node,
            call,
            "pass a tile of one dimension or more, e.g. transpose(load(x[0 :+ 8, k0 :+ 128]))",
        )
    rank = as_tile(value.type).rank
    dims = None if not dim_nodes else _permutation(low, call, dim_nodes, rank)
    return Runtime(low.builder.add(TransposeOp.create(value.value, dims)))


def _permutation(
    low: ExpressionLowering, call: ast.Call, nodes: list[ast.Node], rank: int
) -> list[int]:
    """transpose's dimension order: each of the tile's `rank` dimensions once (a negative one
    counts from the last, as numpy's do)."""
    example = ", ".join(str(d) for d in reversed(range(rank)))
    swap = _torch_swap(low, call, nodes, rank)
    if len(nodes) != rank:
        raise low.error(
            f"transpose of a {rank}-dimensional tile takes {rank} dimensions, got {len(nodes)}",
            call,
            swap or f"name each dimension once, e.g. transpose(t, {example})",
        )
    if swap is not None:  # a rank-2 tile's (0, 1): the identity, written as torch's swap
        tile = low.text_of(call.args[0])
        raise low.error(
            f"{low.text_of(call)} leaves a rank-2 tile as it is: lpir's transpose takes the "
            "whole order of the dimensions, as numpy's",
            call,
            f"{swap} or transpose({tile}); to keep the tile as it is, leave the call out",
        )
    dims = []
    for node in nodes:
        dim = low.as_const_int(node, "a dimension of transpose")
        if not -rank <= dim < rank:
            raise low.error(
                f"dimension {dim} is out of range for a {rank}-dimensional tile",
                node,
                f"use 0..{rank - 1} (or -{rank}..-1 from the last)",
            )
        if dim % rank in dims:
            raise low.error(
                f"dimension {dim % rank} is named twice",
                node,
                f"name each dimension once, e.g. transpose(t, {example})",
            )
        dims.append(dim % rank)
    return dims


def _torch_swap(
    low: ExpressionLowering, call: ast.Call, nodes: list[ast.Node], rank: int
) -> str | None:
    """The hint for torch's `transpose(u, d0, d1)` (a swap of two dimensions) where lpir's
    reads it as the whole order: two integer literals naming distinct dimensions of a tile of
    `rank` above 2 (a rank-2 tile: only where they leave it as it is, its identity order),
    else None. Literals only: a def's parameters may well order a tile as it is."""
    texts = [low.text_of(node) for node in nodes]
    if rank < 2 or len(texts) != 2 or not all(re.fullmatch(r"-?\d+", t) for t in texts):
        return None
    a, b = (int(t) for t in texts)
    if not (-rank <= a < rank and -rank <= b < rank) or a % rank == b % rank:
        return None
    if rank == 2 and (a % 2, b % 2) != (0, 1):
        return None
    order = ", ".join(map(str, swapped(rank, a, b)))
    return (
        f"torch's transpose(u, {a}, {b}) swaps two dimensions: write "
        f"transpose({low.text_of(call.args[0])}, {order})"
    )


@builtin("stack(a, b, ..., axis = 0)")
def stack(low: ExpressionLowering, call: ast.Call) -> Runtime:
    # one tile or more (the count is the call's), and the axis by name
    if not call.args:
        raise low.error(
            "stack joins one tile or more, got none", call, "call it as stack(a, b, ..., axis = 0)"
        )
    nodes, keywords = call_arguments(low, call, 1, max(0, len(call.args) - 1), keywords=("axis",))
    tiles = []
    for node in nodes:
        assert node is not None  # as many optionals as the call has arguments past the first
        value = low.expr(node)
        if not (isinstance(value, Runtime) and value.is_tile):
            raise not_a_tile(low, "stack joins tiles", value, node, call)
        tiles.append(value.value)
    rank = as_tile(tiles[0].type).rank
    axis_node = keywords.get("axis")
    axis = 0 if axis_node is None else low.as_const_int(axis_node, "axis")
    if not -(rank + 1) <= axis <= rank:
        raise low.error(
            f"axis {axis} is out of range for stacking rank-{rank} tiles",
            axis_node,
            f"use 0 to {rank} (or -{rank + 1} to -1, counted from the end)",
        )
    annotated = next((t for t in tiles if as_tile(t.type).layout is not None), tiles[0])
    tiles = [low.in_layout_of(annotated, tile) for tile in tiles]  # joined slot by slot
    return Runtime(low.builder.add(StackOp.create(tiles, axis % (rank + 1))))


@builtin("reshape(t, d0, d1, ...)")
def reshape(low: ExpressionLowering, call: ast.Call) -> Runtime:
    if len(call.args) < 2 or call.keywords:
        raise low.error(
            "reshape takes a tile and its new dimensions",
            call,
            "call it as reshape(t, d0, d1, ...), e.g. reshape(wt, BN, BK / 32, 32)",
        )
    node, *dim_nodes = call.args
    value = low.expr(node)
    if not (isinstance(value, Runtime) and value.is_tile):
        raise not_a_tile(low, "reshape needs a tile", value, node, call)
    tile = as_tile(value.type)
    dims = [low.as_const_int(d, "a dimension of reshape") for d in dim_nodes]
    shape = _infer_dim(low, tile, dims, call)
    operand = value.value
    if math.prod(shape) == tile.size and not regroups(tile.shape, shape):
        # ([a * b, c] -> [a, b * c]: merged, then split)
        operand = low.builder.add(ReshapeOp.create(operand, _common_coarsening(tile.shape, shape)))
    return Runtime(low.builder.add(ReshapeOp.create(operand, shape)))


def _common_coarsening(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The finest shape whose dimensions are merges of adjacent dimensions of both `a` and
    `b` (of one size): its dimensions end where one of each shape's does (at the running
    products they share), so a reshape reaches it from either by merges alone."""
    ends = sorted(
        set(itertools.accumulate(a, operator.mul)) & set(itertools.accumulate(b, operator.mul))
    )
    return tuple(end // start for start, end in zip([1, *ends], ends))


def _infer_dim(
    low: ExpressionLowering, tile: TileType, dims: list[int], call: ast.Call
) -> tuple[int, ...]:
    """`dims` with its one -1 (if any) replaced by what makes the sizes match, as numpy does."""
    for i, size in enumerate(dims):
        if size == 0 or size < -1:
            raise low.error(
                f"reshape's dimensions must be positive (one of them may be -1), not {size}",
                call.args[1 + i],
            )
    inferred = [i for i, size in enumerate(dims) if size == -1]
    if len(inferred) > 1:
        raise low.error(
            "only one of reshape's dimensions may be -1 (the one the others leave)",
            call.args[1 + inferred[1]],
        )
    if inferred:
        known = math.prod(size for size in dims if size != -1)
        if tile.size % known:
            raise low.error(
                f"cannot reshape {tile} ({tile.size} elements) to {dims}: "
                f"{known} does not divide {tile.size}",
                call,
            )
        dims[inferred[0]] = tile.size // known
    return tuple(dims)


# ---- constructors -------------------------------------------------------------------------
def tile_constructor(low: ExpressionLowering, node: ast.TileConstructor) -> SemanticValue:
    """`zeros<T>[...]`, `ones<T>[...]`, `full<T>[...](value)`, `shared<T>[...]`."""
    dt = low.dtype_named(node.type_name, node.type_span)
    dims = tuple(low.as_const_int(d, "a tile dimension") for d in node.dims)
    for dim, size in zip(node.dims, dims):
        if size <= 0:
            raise low.error(f"tile dimensions must be positive, not {size}", dim)
    if node.func == "shared":
        if node.args or node.keywords:
            raise low.error("shared<T>[...] takes no arguments", node)
        return Memory(low.builder.add(AllocSharedOp.create(SharedType(dt, dims))), "shared")
    if node.func == "full":
        if len(node.args) != 1 or node.keywords:
            raise low.error("full<T>[dims](value) takes one value", node)
        value = low.scalar_of(tile_or_scalar(low, node.args[0]))
        if isinstance(value, Runtime) and not value.is_scalar:
            raise low.error(
                f"full needs a scalar value, but this is {value.describe()}",
                node.args[0],
                "full fills a tile with one value; a tile of other values broadcasts by "
                "arithmetic itself (t + zeros<T>[...] has the larger shape)",
            )
    else:
        if node.args or node.keywords:
            raise low.error(f"{node.func}<T>[...] takes no arguments", node)
        one = node.func == "ones"  # else zeros
        value = Const((1.0 if one else 0.0) if dt.is_float else int(one))
    if isinstance(value, Const):
        if dt.is_bool:
            value = Const(bool(value.value))
        scalar = low.constant(value, dt, node)
    else:
        scalar = value.value
        if scalar.type != ScalarType(dt):
            shown = low.text_of(node.args[0])
            raise low.error(
                f"full<{dt.name}> fills with {dt.name}, but this is {value.describe()}",
                node.args[0],
                f"cast the value: full<{dt.name}>[...](cast<{dt.name}>({shown}))",
            )
    return Runtime(low.builder.add(SplatOp.create(scalar, dims)))


# ---- compile-time questions about parameters -----------------------------------------------
def _dtype_argument(low: ExpressionLowering, call: ast.Call) -> DType:
    (node,), _ = call_arguments(low, call, 1)
    if not isinstance(node, ast.Name):
        raise low.error(f"{call.func} takes a dtype name or dtype parameter", node)
    return low.dtype_named(node.id, node.span)


@builtin("max_value(T)")
def max_value(low: ExpressionLowering, call: ast.Call) -> Const:
    return Const(_dtype_argument(low, call).max)


@builtin("min_value(T)")
def min_value(low: ExpressionLowering, call: ast.Call) -> Const:
    return Const(_dtype_argument(low, call).min)


@builtin("bits(T)")
def bits(low: ExpressionLowering, call: ast.Call) -> Const:
    return Const(_dtype_argument(low, call).nbits)


@builtin("is_float(T)")
def is_float(low: ExpressionLowering, call: ast.Call) -> Const:
    return Const(_dtype_argument(low, call).is_float)


@builtin("is_signed(T)")
def is_signed(low: ExpressionLowering, call: ast.Call) -> Const:
    return Const(_dtype_argument(low, call).is_signed)


@builtin("static_assert(condition, message)")
def static_assert(low: ExpressionLowering, call: ast.Call) -> None:
    (cond_node, message_node), _ = call_arguments(low, call, 1, 1)
    assert cond_node is not None  # call_arguments checked the count: only optionals are None
    if message_node is not None and not isinstance(message_node, ast.StringLiteral):
        raise low.error(
            "the message of static_assert must be a string",
            message_node,
            'write it in quotes: static_assert(BK <= G, "BK must not exceed G")',
        )
    cond = low.compile_time_expr(cond_node)
    if not isinstance(cond, Const):
        raise low.error(
            "static_assert needs a compile-time condition",
            cond_node,
            "build it from literals, parameters, dtype facts (bits(T), is_float(T)) and casts "
            "of constants",
        )
    if not cond.value:
        message = "static_assert failed"
        if isinstance(message_node, ast.StringLiteral):
            message = f"static_assert failed: {message_node.value}"
        raise low.error(message, cond_node, "change the parameters so the condition holds")
    return None


# The registry, every builtin registered (this module's and memory_builtins').
__all__ = ["BUILTINS", "TYPED_BUILTINS", "tile_constructor"]
