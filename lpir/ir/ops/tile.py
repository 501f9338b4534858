"""Tile IR ops that build and reshape register tiles: splat, broadcast, reduce, dot, ...

`splat` and `block_index` also appear in thread IR (a vector splat, the block's index).
"""

from __future__ import annotations

from lpir.dtypes import dtype
from lpir.errors import TypeCheckError
from lpir.ir.core import Operation, Value
from lpir.ir.ops.arith import check_compute_dtype
from lpir.ir.types import ScalarType, TileType, VectorType
from lpir.layout import RegisterLayout

REDUCTIONS = ("sum", "max", "min")
I32 = dtype("i32")


class BlockIndexOp(Operation):
    """`%bx = block_index {axis = 0} : i32`: this block's index along x (0), y (1) or z (2)."""

    names = ("block_index",)

    @classmethod
    def create(cls, axis: int, name: str | None = None):
        return cls("block_index", (), [ScalarType(I32)], {"axis": axis}, result_names=[name])

    @property
    def axis(self) -> int:
        return self.attributes["axis"]

    def verify_(self) -> None:
        if self.axis not in (0, 1, 2):
            raise self.error(f"axis must be 0, 1 or 2, not {self.axis}")


class SplatOp(Operation):
    """`%t = splat %s {shape = [32, 256]} : f32[32, 256]`: a tile (or vector) of one scalar."""

    names = ("splat",)

    @classmethod
    def create(cls, scalar: Value, shape: tuple[int, ...], name: str | None = None):
        if not isinstance(scalar.type, ScalarType):
            raise TypeCheckError(f"splat needs a scalar, not {scalar.type}")
        result = TileType(scalar.type.dtype, tuple(shape))
        return cls("splat", [scalar], [result], {"shape": tuple(shape)}, result_names=[name])

    @classmethod
    def create_vector(cls, scalar: Value, size: int, name: str | None = None):
        result = VectorType(scalar.type.dtype, size)  # type: ignore[attr-defined]
        return cls("splat", [scalar], [result], {"shape": (size,)}, result_names=[name])


class BroadcastOp(Operation):
    """`%t = broadcast %a {shape = [32, 256]}`: repeat size-1 dimensions (equal ranks)."""

    names = ("broadcast",)

    @classmethod
    def create(cls, operand: Value, shape: tuple[int, ...], name: str | None = None):
        source = operand.type
        if not isinstance(source, TileType):
            raise TypeCheckError(f"broadcast needs a tile, not {source}")
        shape = tuple(shape)
        if len(shape) != source.rank or any(s not in (1, t) for s, t in zip(source.shape, shape)):
            raise TypeCheckError(
                f"cannot broadcast {source} to shape {list(shape)}",
                hint="only size-1 dimensions can be repeated; add them with t[:, None]",
            )
        result = TileType(source.dtype, shape)
        return cls("broadcast", [operand], [result], {"shape": shape}, result_names=[name])


class ExpandDimsOp(Operation):
    """`%t = expand_dims %a {axis = 1}`: insert a size-1 dimension (numpy's `a[:, None]`)."""

    names = ("expand_dims",)

    @classmethod
    def create(cls, operand: Value, axis: int, name: str | None = None):
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


class ReduceOp(Operation):
    """`%r = reduce %a {kind = "sum", axis = 1}`: reduce one axis away.

    Reducing the only axis of a rank-1 tile gives a scalar. Float sums may add in any order.
    """

    names = ("reduce",)

    @classmethod
    def create(cls, operand: Value, kind: str, axis: int, name: str | None = None):
        source = operand.type
        if kind not in REDUCTIONS:
            raise TypeCheckError(f"unknown reduction {kind!r}; use one of {REDUCTIONS}")
        if not isinstance(source, TileType):
            raise TypeCheckError(f"'{kind}' needs a tile, not {source}")
        check_compute_dtype(source.dtype, kind)
        if not 0 <= axis < source.rank:
            raise TypeCheckError(
                f"axis {axis} is out of range for a rank-{source.rank} tile {source}",
                hint=f"use an axis between 0 and {source.rank - 1}",
            )
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


class DotOp(Operation):
    """`%c = dot %a, %b, %acc`: acc + a @ b for a: [M, K], b: [K, N], acc: [M, N].

    a and b share a dtype (f16, bf16, f32, i8); acc is f32 (f32 for float inputs) or i32 (for
    i8). Products are exact in the accumulator type; the order of the sum is unspecified.
    """

    names = ("dot",)

    @classmethod
    def create(cls, a: Value, b: Value, acc: Value, name: str | None = None):
        for operand in (a, b, acc):
            if not isinstance(operand.type, TileType) or operand.type.rank != 2:
                raise TypeCheckError(f"dot needs 2-D tiles, not {operand.type}")
        at, bt, ct = a.type, b.type, acc.type
        (m, k), (k2, n), (m2, n2) = at.shape, bt.shape, ct.shape
        if k != k2 or m != m2 or n != n2:
            raise TypeCheckError(
                f"dot shapes do not agree: [{m}, {k}] @ [{k2}, {n}] + [{m2}, {n2}]",
                hint="a is [M, K], b is [K, N] and acc is [M, N]",
            )
        if at.dtype != bt.dtype:
            raise TypeCheckError(
                f"dot operands have different dtypes {at.dtype.name} and {bt.dtype.name}",
                hint=f"cast one: cast<{at.dtype.name}>(...)",
            )
        allowed = {"f16": "f32", "bf16": "f32", "f32": "f32", "i8": "i32"}
        expected = allowed.get(at.dtype.name)
        if expected is None:
            raise TypeCheckError(
                f"dot of {at.dtype.name} tiles is not supported",
                hint="cast the operands to f16, bf16, f32 or i8",
            )
        if ct.dtype.name != expected:
            raise TypeCheckError(
                f"the accumulator of a {at.dtype.name} dot must be {expected}, not {ct.dtype.name}",
                hint=f"start it with zeros<{expected}>[{m}, {n}]",
            )
        return cls("dot", [a, b, acc], [ct], result_names=[name])


class ConvertLayoutOp(Operation):
    """`%t = convert_layout %a : f32[64] @ <layout>`: the same tile under another layout."""

    names = ("convert_layout",)

    @classmethod
    def create(cls, operand: Value, layout: RegisterLayout, name: str | None = None):
        source = operand.type
        if not isinstance(source, TileType):
            raise TypeCheckError(f"convert_layout needs a tile, not {source}")
        result = source.with_layout(layout)
        return cls("convert_layout", [operand], [result], result_names=[name])

    def verify_(self) -> None:
        source, result = self.operands[0].type, self.results[0].type
        if source.with_layout(None) != result.with_layout(None):  # type: ignore[attr-defined]
            raise self.error(f"changes more than the layout: {source} to {result}")


class ArangeOp(Operation):
    """`%i = arange {shape = [64]} : i32[64]`: the indices 0, 1, ..., n-1."""

    names = ("arange",)

    @classmethod
    def create(cls, size: int, name: str | None = None):
        result = TileType(I32, (size,))
        return cls("arange", (), [result], {"shape": (size,)}, result_names=[name])
