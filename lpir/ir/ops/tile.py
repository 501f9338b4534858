"""Tile IR ops that build and reshape register tiles: splat, broadcast, reduce, dot, ...

`splat` and `block_index` also appear in thread IR (a vector splat, the block's index).
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence

from lpir.dtypes import DType, dtype
from lpir.errors import TypeCheckError, with_article
from lpir.ir.core import Operation, Value
from lpir.ir.ops.arith import check_compute_dtype
from lpir.ir.signature import INT, INT_LIST, NUMBER, Signature, at_least, exactly, one_of
from lpir.ir.types import ScalarType, TileType, VectorType, as_tile
from lpir.layout import RegisterLayout

REDUCTIONS = ("sum", "max", "min")
# a scan's kinds, and the elementwise op that combines two of its partial results
SCANS = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}
I32 = dtype("i32")
# the dtypes dot takes as operands (narrowest first) and the accumulator each needs
DOT_ACCUMULATORS = {"i8": "i32", "f16": "f32", "bf16": "f32", "f32": "f32"}


def check_shape(op_name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """`shape` when every dimension is positive."""
    if any(size < 1 for size in shape):
        raise TypeCheckError(f"'{op_name}': tile dimensions must be positive, not {list(shape)}")
    return tuple(shape)


class BlockIndexOp(Operation):
    """`%bx = block_index {axis = 0} : i32`: this block's index along x (0), y (1) or z (2)."""

    names = ("block_index",)
    signature = Signature(results=exactly(1), attributes={"axis": INT})

    @classmethod
    def create(cls, axis: int, name: str | None = None) -> BlockIndexOp:
        return cls("block_index", (), [ScalarType(I32)], {"axis": axis}, result_names=[name])

    @property
    def axis(self) -> int:
        return self.attributes["axis"]

    def verify_(self) -> None:
        if self.axis not in (0, 1, 2):
            raise self.error(f"axis must be 0, 1 or 2, not {self.axis}")

    def recreate(self) -> Operation:
        return BlockIndexOp.create(self.axis)


class SplatOp(Operation):
    """`%t = splat %s {shape = [32, 256]} : f32[32, 256]`: a tile (or vector) of one scalar."""

    names = ("splat",)
    signature = Signature(operands=exactly(1), results=exactly(1), attributes={"shape": INT_LIST})

    @classmethod
    def create(cls, scalar: Value, shape: tuple[int, ...], name: str | None = None) -> SplatOp:
        if not isinstance(scalar.type, ScalarType):
            raise TypeCheckError(f"splat needs a scalar, not {scalar.type}")
        result = TileType(scalar.type.dtype, check_shape("splat", tuple(shape)))
        return cls("splat", [scalar], [result], {"shape": tuple(shape)}, result_names=[name])

    @classmethod
    def create_vector(cls, scalar: Value, size: int, name: str | None = None) -> SplatOp:
        if not isinstance(scalar.type, ScalarType):
            raise TypeCheckError(f"splat needs a scalar, not {scalar.type}")
        result = VectorType(scalar.type.dtype, size)
        return cls("splat", [scalar], [result], {"shape": (size,)}, result_names=[name])

    def recreate(self) -> Operation:
        shape = tuple(self.attributes["shape"])
        if isinstance(self.results[0].type, VectorType):
            if len(shape) != 1:
                raise TypeCheckError(f"a vector splat has a one-dimensional shape, not {shape}")
            return SplatOp.create_vector(self.operands[0], shape[0])
        return SplatOp.create(self.operands[0], shape)


class BroadcastOp(Operation):
    """`%t = broadcast %a {shape = [32, 256]}`: repeat size-1 dimensions (equal ranks)."""

    names = ("broadcast",)
    signature = Signature(operands=exactly(1), results=exactly(1), attributes={"shape": INT_LIST})

    @classmethod
    def create(cls, operand: Value, shape: tuple[int, ...], name: str | None = None) -> BroadcastOp:
        source = operand.type
        if not isinstance(source, TileType):
            raise TypeCheckError(f"broadcast needs a tile, not {source}")
        shape = tuple(shape)
        if len(shape) != source.rank or any(s not in (1, t) for s, t in zip(source.shape, shape)):
            raise TypeCheckError(
                f"cannot broadcast {source} to shape {list(shape)}",
                hint="only size-1 dimensions can be repeated; add them with t[:, None]",
            )
        result = TileType(source.dtype, check_shape("broadcast", shape))
        return cls("broadcast", [operand], [result], {"shape": shape}, result_names=[name])

    def recreate(self) -> Operation:
        return BroadcastOp.create(self.operands[0], self.attributes["shape"])


class ExpandDimsOp(Operation):
    """`%t = expand_dims %a {axis = 1}`: insert a size-1 dimension (numpy's `a[:, None]`)."""

    names = ("expand_dims",)
    signature = Signature(operands=exactly(1), results=exactly(1), attributes={"axis": INT})

    @classmethod
    def create(cls, operand: Value, axis: int, name: str | None = None) -> ExpandDimsOp:
        source = operand.type
        if not isinstance(source, TileType):
            raise TypeCheckError(f"cannot index a scalar with None: {source}")
        if not 0 <= axis <= source.rank:
            raise TypeCheckError(f"axis {axis} is out of range for {source}")
        shape = (*source.shape[:axis], 1, *source.shape[axis:])
        result = TileType(source.dtype, shape)
        return cls("expand_dims", [operand], [result], {"axis": axis}, result_names=[name])

    @property
    def axis(self) -> int:
        return self.attributes["axis"]

    def recreate(self) -> Operation:
        return ExpandDimsOp.create(self.operands[0], self.axis)


class TransposeOp(Operation):
    """`%t = transpose %a {dims = [0, 2, 1]} : f16[8, 4, 2]`: the tile's dimensions permuted
    (numpy's `np.transpose(a, dims)`): dimension i of the result is dimension `dims[i]` of the
    operand. Without `dims` the order reverses (`a.T`: a rank-2 tile's two swap). Each thread
    keeps its elements: the result's layout is the operand's with its dimensions permuted, so
    it costs nothing after layout selection."""

    names = ("transpose",)
    signature = Signature(operands=exactly(1), results=exactly(1), optional={"dims": INT_LIST})

    @classmethod
    def create(
        cls, operand: Value, dims: Sequence[int] | None = None, name: str | None = None
    ) -> TransposeOp:
        source = operand.type
        if not isinstance(source, TileType) or source.rank < 1:
            raise TypeCheckError(
                f"transpose needs a tile of one dimension or more, not {with_article(str(source))}",
                hint="transpose permutes the dimensions of a tile ([rows, columns]: swaps them)",
            )
        reverse = tuple(reversed(range(source.rank)))
        order = reverse if dims is None else tuple(dims)
        if sorted(order) != list(range(source.rank)):
            raise TypeCheckError(
                f"dims {list(order)} is not a permutation of the {source.rank} dimensions of "
                f"{source}",
                hint=f"name each dimension 0..{source.rank - 1} once, e.g. dims = {list(reverse)}",
            )
        result = TileType(source.dtype, tuple(source.shape[d] for d in order))
        attributes = {} if order == reverse else {"dims": list(order)}
        return cls("transpose", [operand], [result], attributes, result_names=[name])

    @property
    def dims(self) -> tuple[int, ...]:
        """Dimension i of the result is dimension `dims[i]` of the operand."""
        rank = as_tile(self.operands[0].type).rank
        return tuple(self.attributes.get("dims", reversed(range(rank))))

    def recreate(self) -> Operation:
        return TransposeOp.create(self.operands[0], self.attributes.get("dims"))


class IndexOp(Operation):
    """`%r = index %a {axis = 2, position = 0} : f32[16, 32]`: the elements at one position of
    an axis, the axis removed (numpy's `a[:, :, 0]`). Free where each thread holds the whole
    axis (its modes are all local: the result is a choice of slots); layout-selection converts
    the operand to such a layout where it is not."""

    names = ("index",)
    signature = Signature(
        operands=exactly(1), results=exactly(1), attributes={"axis": INT, "position": INT}
    )

    @classmethod
    def create(cls, operand: Value, axis: int, position: int, name: str | None = None) -> IndexOp:
        source = operand.type
        if not isinstance(source, TileType) or source.rank == 0:
            raise TypeCheckError(f"cannot index {with_article(str(source))}")
        if not 0 <= axis < source.rank:
            raise TypeCheckError(f"axis {axis} is out of range for {source}")
        size = source.shape[axis]
        if not 0 <= position < size:
            raise TypeCheckError(
                f"index {position} is out of range for dimension {axis} of {source}",
                hint=f"use 0 to {size - 1} (or -{size} to -1, counted from the end)",
            )
        shape = source.shape[:axis] + source.shape[axis + 1 :]
        result = TileType(source.dtype, shape)
        attributes = {"axis": axis, "position": position}
        return cls("index", [operand], [result], attributes, result_names=[name])

    @property
    def axis(self) -> int:
        return self.attributes["axis"]

    @property
    def position(self) -> int:
        return self.attributes["position"]

    def recreate(self) -> Operation:
        return IndexOp.create(self.operands[0], self.axis, self.position)


class StackOp(Operation):
    """`%r = stack(%a, %b) {axis = 2} : f32[16, 32, 2]`: tiles of one type joined along a new
    axis (numpy's `stack`): the inverse of `index`. Each thread holds the new axis whole (it is
    the innermost of its slots), so after layout-selection it is a shuffle of the operands'
    slots; with `reshape` it also concatenates equal tiles or interleaves them."""

    names = ("stack",)
    signature = Signature(operands=at_least(1), results=exactly(1), attributes={"axis": INT})

    @classmethod
    def create(cls, operands: Sequence[Value], axis: int, name: str | None = None) -> StackOp:
        operands = list(operands)
        first = operands[0].type if operands else None
        if not isinstance(first, TileType):
            raise TypeCheckError(f"stack needs tiles, not {first}")
        plain = first.with_layout(None)
        for other in operands[1:]:
            if not isinstance(other.type, TileType) or other.type.with_layout(None) != plain:
                raise TypeCheckError(
                    f"stack needs tiles of one type, not {first} and {other.type}",
                    hint="cast or broadcast them to one dtype and shape first",
                )
        if not 0 <= axis <= first.rank:
            raise TypeCheckError(f"axis {axis} is out of range for stacking {first}")
        shape = (*first.shape[:axis], len(operands), *first.shape[axis:])
        result = TileType(first.dtype, shape)
        return cls("stack", operands, [result], {"axis": axis}, result_names=[name])

    @property
    def axis(self) -> int:
        return self.attributes["axis"]

    def recreate(self) -> Operation:
        return StackOp.create(self.operands, self.axis)


class ReshapeOp(Operation):
    """`%t = reshape %a {shape = [64, 4, 32]}`: the same elements in row-major order under
    another shape (numpy's `a.reshape(...)`), where the new shape splits dimensions of the old
    one into several or merges adjacent ones. Each thread keeps its elements in the same slots
    (the result's layout is `reshape` of the operand's), so it costs nothing where that layout
    exists (layout-selection converts the operand where it does not)."""

    names = ("reshape",)
    signature = Signature(operands=exactly(1), results=exactly(1), attributes={"shape": INT_LIST})

    @classmethod
    def create(cls, operand: Value, shape: tuple[int, ...], name: str | None = None) -> ReshapeOp:
        source = operand.type
        if not isinstance(source, TileType):
            raise TypeCheckError(f"reshape needs a tile, not {with_article(str(source))}")
        shape = check_shape("reshape", tuple(int(size) for size in shape))
        if math.prod(shape) != source.size:
            raise TypeCheckError(
                f"cannot reshape {source} ({source.size} elements) to {list(shape)} "
                f"({math.prod(shape)} elements)",
                hint="the new shape must hold as many elements as the tile",
            )
        if not regroups(source.shape, shape):
            raise TypeCheckError(
                f"cannot reshape {source} to {list(shape)}: a reshape splits dimensions or "
                "merges adjacent ones, and this one moves elements across dimensions",
                hint="every dimension of one shape must be a product of adjacent dimensions "
                "of the other, e.g. [64, 128] <-> [64, 4, 32]; a change such as [a * b, c] -> "
                "[a, b * c] takes two reshapes, through [a, b, c]",
            )
        result = TileType(source.dtype, shape)
        return cls("reshape", [operand], [result], {"shape": shape}, result_names=[name])

    def recreate(self) -> Operation:
        return ReshapeOp.create(self.operands[0], self.attributes["shape"])


def regroups(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether one of two shapes of the same size refines the other: every dimension of the
    coarser one is the product of adjacent dimensions of the finer one (ignoring size-1
    dimensions), so a reshape between them only splits or merges dimensions."""
    boundaries_a, boundaries_b = _boundaries(a), _boundaries(b)
    return boundaries_a <= boundaries_b or boundaries_b <= boundaries_a


def _boundaries(shape: tuple[int, ...]) -> set[int]:
    """The row-major positions where one of `shape`'s dimensions ends: its running products."""
    return set(itertools.accumulate(shape, operator.mul))


class ItemOp(Operation):
    """`%s = item %t : i32`: the one element of a 0-d tile as a scalar.

    Every thread holds a 0-d tile's element (its layout replicates it over all of them), so the
    scalar is the same in every thread, like the block's other scalars: a value loaded from
    memory (`let n = load(lengths[b])`) or one element of a register tile (`p[2]`) can be an
    index, a loop bound or an `if` condition.
    """

    names = ("item",)
    signature = Signature(operands=exactly(1), results=exactly(1))

    @classmethod
    def create(cls, tile: Value, name: str | None = None) -> ItemOp:
        if not isinstance(tile.type, TileType) or tile.type.shape != ():
            raise TypeCheckError(f"item takes a 0-d tile, not {tile.type}")
        return cls("item", [tile], [ScalarType(tile.type.dtype)], result_names=[name])

    def recreate(self) -> Operation:
        return ItemOp.create(self.operands[0])


def _check_axis(source: TileType, axis: int) -> None:
    """A reduction's, scan's or sort's axis names a dimension of `source`."""
    if not 0 <= axis < source.rank:
        raise TypeCheckError(
            f"axis {axis} is out of range for a rank-{source.rank} tile {source}",
            hint=f"use an axis between 0 and {source.rank - 1}",
        )


class ReduceOp(Operation):
    """`%r = reduce %a {kind = "sum", axis = 1}`: reduce one axis away.

    Reducing the only axis of a rank-1 tile gives a scalar. Float sums may add in any order.
    """

    names = ("reduce",)
    signature = Signature(
        operands=exactly(1),
        results=exactly(1),
        attributes={"kind": one_of(*REDUCTIONS), "axis": INT},
    )

    @classmethod
    def create(cls, operand: Value, kind: str, axis: int, name: str | None = None) -> ReduceOp:
        source = operand.type
        if kind not in REDUCTIONS:
            raise TypeCheckError(f"unknown reduction {kind!r}; use one of {REDUCTIONS}")
        if not isinstance(source, TileType):
            raise TypeCheckError(f"'{kind}' needs a tile, not {source}")
        check_compute_dtype(source.dtype, kind)
        if kind == "sum" and source.dtype.is_bool:  # (interp and threads gave OR, cpu XOR)
            raise TypeCheckError(
                "'sum' is not defined on bool",
                hint="count the true elements with sum(cast<i32>(t)); max(t) is true where any is",
            )
        _check_axis(source, axis)
        shape = source.shape[:axis] + source.shape[axis + 1 :]
        result = TileType(source.dtype, shape) if shape else ScalarType(source.dtype)
        attributes = {"kind": kind, "axis": axis}
        return cls("reduce", [operand], [result], attributes, result_names=[name])

    @property
    def kind(self) -> str:
        return self.attributes["kind"]

    @property
    def axis(self) -> int:
        return self.attributes["axis"]

    def recreate(self) -> Operation:
        return ReduceOp.create(self.operands[0], self.kind, self.axis)


class ScanOp(Operation):
    """`%r = scan %a {kind = "sum", axis = 1}`: inclusive prefix results along one axis
    (numpy's `cumsum`, `cumprod`, `maximum.accumulate`): element i of the axis combines
    elements 0..i with the kind's elementwise op (add, mul, max, min). Float sums and products
    may combine in any order; max and min pass NaNs over as `max(a, b)` does."""

    names = ("scan",)
    signature = Signature(
        operands=exactly(1),
        results=exactly(1),
        attributes={"kind": one_of(*SCANS), "axis": INT},
    )

    @classmethod
    def create(cls, operand: Value, kind: str, axis: int, name: str | None = None) -> ScanOp:
        source = operand.type
        if kind not in SCANS:
            raise TypeCheckError(f"unknown scan {kind!r}; use one of {tuple(SCANS)}")
        if not isinstance(source, TileType):
            raise TypeCheckError(f"a '{kind}' scan needs a tile, not {source}")
        check_compute_dtype(source.dtype, f"cum{kind}")
        if kind in ("sum", "prod") and source.dtype.is_bool:
            hint = (
                "count the true elements with cumsum(cast<i32>(t))"
                if kind == "sum"
                else "whether all so far are true: cummin(t)"
            )
            raise TypeCheckError(f"cum{kind} is not defined on bool", hint=hint)
        _check_axis(source, axis)
        attributes = {"kind": kind, "axis": axis}
        result = TileType(source.dtype, source.shape)  # (its layout is layout-selection's)
        return cls("scan", [operand], [result], attributes, result_names=[name])

    @property
    def kind(self) -> str:
        return self.attributes["kind"]

    @property
    def axis(self) -> int:
        return self.attributes["axis"]

    @property
    def combine(self) -> str:
        """The elementwise op that combines two partial results."""
        return SCANS[self.kind]

    def recreate(self) -> Operation:
        return ScanOp.create(self.operands[0], self.kind, self.axis)


class SortOp(Operation):
    """`%r = sort(%keys, %values) {axis = 1, descending = false}`: `values` reordered along
    one axis as sorting `keys` along it orders them (`sort(t)` is `sort(%t, %t)`, `argsort(t)`
    sorts positions). Stable: equal keys (-0.0 and 0.0 among them) keep their order, in either
    direction; NaN is larger than every number (last ascending, first descending), as in
    numpy and torch."""

    names = ("sort",)
    signature = Signature(
        operands=exactly(2),
        results=exactly(1),
        attributes={"axis": INT, "descending": NUMBER},
    )

    @classmethod
    def create(
        cls, keys: Value, values: Value, axis: int, descending: bool, name: str | None = None
    ) -> SortOp:
        key_type, value_type = keys.type, values.type
        if not isinstance(key_type, TileType) or not isinstance(value_type, TileType):
            raise TypeCheckError(f"sort needs tiles, not {key_type} and {value_type}")
        if key_type.shape != value_type.shape:
            raise TypeCheckError(
                f"sort's keys {key_type} and values {value_type} differ in shape",
                hint="sort values of the keys' shape",
            )
        check_compute_dtype(key_type.dtype, "sort")
        _check_axis(key_type, axis)
        length = key_type.shape[axis]
        if length & (length - 1):
            last = _sorting_last(key_type.dtype, descending)
            raise TypeCheckError(
                f"sort runs along an axis of a power-of-two length, not {length}",
                hint="pad the tile to the next power of two with keys that sort last "
                f"(e.g. where(arange(BN) < n, t, {last}))",
            )
        attributes = {"axis": axis, "descending": bool(descending)}
        result = TileType(value_type.dtype, value_type.shape)  # (layout-selection's layout)
        return cls("sort", [keys, values], [result], attributes, result_names=[name])

    @property
    def axis(self) -> int:
        return self.attributes["axis"]

    @property
    def descending(self) -> bool:
        return bool(self.attributes["descending"])

    def recreate(self) -> Operation:
        return SortOp.create(self.operands[0], self.operands[1], self.axis, self.descending)


def _sorting_last(dt: DType, descending: bool) -> str:
    """A key of dtype `dt` that sorts after every other (ties aside), as source text."""
    if dt.is_float:
        return "-inf" if descending else "inf"
    return f"{'min_value' if descending else 'max_value'}({dt.name})"


class DotOp(Operation):
    """`%c = dot %a, %b, %acc`: acc + a @ b for a: [M, K], b: [K, N], acc: [M, N].

    a and b share a dtype (f16, bf16, f32, i8); acc is f32 (f32 for float inputs) or i32 (for
    i8). Products are exact in the accumulator type; the order of the sum is unspecified.
    """

    names = ("dot",)
    signature = Signature(operands=exactly(3), results=exactly(1))

    @classmethod
    def create(cls, a: Value, b: Value, acc: Value, name: str | None = None) -> DotOp:
        at, bt, ct = (_matrix_type(operand) for operand in (a, b, acc))
        (m, k), (k2, n), (m2, n2) = at.shape, bt.shape, ct.shape
        if k != k2 or m != m2 or n != n2:
            raise TypeCheckError(
                f"dot shapes do not agree: [{m}, {k}] @ [{k2}, {n}] + [{m2}, {n2}]",
                hint="a is [M, K], b is [K, N] and acc is [M, N]",
            )
        if at.dtype != bt.dtype:
            raise TypeCheckError(
                f"dot operands have different dtypes {at.dtype.name} and {bt.dtype.name}",
                hint=dot_cast_hint(at.dtype, bt.dtype),
            )
        expected = DOT_ACCUMULATORS.get(at.dtype.name)
        if expected is None:
            raise TypeCheckError(
                f"dot of {at.dtype.name} tiles is not supported",
                hint=dot_cast_hint(at.dtype, bt.dtype),
            )
        if ct.dtype.name != expected:
            raise TypeCheckError(
                f"the accumulator of {with_article(at.dtype.name)} dot must be {expected}, "
                f"not {ct.dtype.name}",
                hint=f"start it with zeros<{expected}>[{m}, {n}]",
            )
        return cls("dot", [a, b, acc], [ct], result_names=[name])

    def recreate(self) -> Operation:
        a, b, acc = self.operands
        return DotOp.create(a, b, acc)


def dot_cast_hint(a: DType, b: DType) -> str:
    """The cast that gives a dot operands of one dtype it takes: where one operand's dtype is
    such a dtype and holds the other's values, cast the other to it; else cast both to the
    narrowest dtype dot takes that holds both (f16 for u8 and i8); where none does (f64, i32),
    to the one operand's dtype that dot takes, or f32."""
    for own, other in ((a, b), (b, a)):
        if own != other and own.name in DOT_ACCUMULATORS and _holds(own, other):
            return f"cast the {other.name} operand: cast<{own.name}>(...)"
    takes = "dot takes f16, bf16, f32 or i8"
    values = a.name if a == b else f"{a.name} and {b.name}"
    for name, accumulator in DOT_ACCUMULATORS.items():
        common = dtype(name)
        if _holds(common, a) and _holds(common, b):
            return (
                f"{takes} operands: cast both with cast<{name}>(...), which keeps every "
                f"{values} value, and accumulate in {accumulator}"
            )
    for own, other in ((a, b), (b, a)):
        if own.name in DOT_ACCUMULATORS:
            lost = (
                f"values {own.name} cannot hold exactly round"
                if own.is_float
                else f"values outside {own.name} wrap"
            )
            return (
                f"cast the {other.name} operand: cast<{own.name}>(...); no dtype dot takes "
                f"holds every {other.name} value: {lost}"
            )
    return f"{takes} operands: cast both to one of them, e.g. cast<f32>(...), and accumulate in f32"


def _holds(target: DType, source: DType) -> bool:
    """Whether `target` holds every value of `source` exactly."""
    if source.is_float:
        return (
            target.is_float
            and target.eps <= source.eps
            and target.max >= source.max
            and target.smallest_subnormal <= source.smallest_subnormal
            and (target.has_inf or not source.has_inf)
        )
    low, high = int(source.min), int(source.max)  # integers and bool (0 and 1)
    if target.is_float:
        return max(-low, high) <= 2 / target.eps  # every integer up to 2^(mantissa bits + 1)
    return target.min <= low and high <= target.max


def _matrix_type(operand: Value) -> TileType:
    if not isinstance(operand.type, TileType) or operand.type.rank != 2:
        raise TypeCheckError(f"dot needs 2-D tiles, not {operand.type}")
    return operand.type


class ConvertLayoutOp(Operation):
    """`%t = convert_layout %a : f32[64] @ <layout>`: the same tile under another layout."""

    names = ("convert_layout",)
    signature = Signature(operands=exactly(1), results=exactly(1))

    @classmethod
    def create(
        cls, operand: Value, layout: RegisterLayout, name: str | None = None
    ) -> ConvertLayoutOp:
        source = operand.type
        if not isinstance(source, TileType):
            raise TypeCheckError(f"convert_layout needs a tile, not {source}")
        result = source.with_layout(layout)
        return cls("convert_layout", [operand], [result], result_names=[name])

    def verify_(self) -> None:
        source, result = self.operands[0].type, self.results[0].type
        if not isinstance(source, TileType) or not isinstance(result, TileType):
            raise self.error(f"converts a tile to a tile, not {source} to {result}")
        if source.with_layout(None) != result.with_layout(None):
            raise self.error(f"changes more than the layout: {source} to {result}")


class ArangeOp(Operation):
    """`%i = arange {shape = [64]} : i32[64]`: the indices 0, 1, ..., n-1."""

    names = ("arange",)
    signature = Signature(results=exactly(1), attributes={"shape": INT_LIST})

    @classmethod
    def create(cls, size: int, name: str | None = None) -> ArangeOp:
        result = TileType(I32, check_shape("arange", (size,)))
        return cls("arange", (), [result], {"shape": (size,)}, result_names=[name])

    def recreate(self) -> Operation:
        shape = self.attributes["shape"]
        if len(shape) != 1:
            raise TypeCheckError(f"arange makes a one-dimensional tile, not shape {list(shape)}")
        return ArangeOp.create(shape[0])
