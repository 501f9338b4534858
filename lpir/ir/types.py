"""IR types: scalars, register tiles, shared and global tensors, and per-thread vectors.

Every type is a small frozen dataclass (structural equality, hashable) whose `str` is its text
form in the IR:

=================  ==========================================  =============================
type               text                                        meaning
=================  ==========================================  =============================
`ScalarType`       `i32`                                       one value, the same in every
                                                               thread (tile IR) or one per
                                                               thread (thread IR)
`TileType`         `f32[32, 256]`, `f32[32, 256] @ <layout>`   a block-level register tile;
                                                               the layout is set by
                                                               layout-selection
`SharedType`       `shared f16[64, 32]`,                       a tile in shared memory,
                   `shared f16[64, 32] @ shared(...)`          optionally strided/swizzled
`GlobalType`       `global u4[4096, 4096]`,                    a C-contiguous tensor in global
                   `global f16[%m, 4096]`                      memory (a kernel argument); its
                                                               first dimension may be the
                                                               value of an i32 argument
`VectorType`       `<64 x f32>`                                one thread's private array
                                                               (thread IR)
=================  ==========================================  =============================

Shapes are concrete: a kernel is specialized for each distinct set of sizes before it is
lowered to IR, except a tensor's first dimension, which may be a run-time size (`extent`):
the value of one of the kernel's i32 scalar arguments at each call. Strides do not depend on
it, so only the accesses' edge masks (and the launch grid, `lpir.ir.grid`) read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lpir.dtypes import DType
from lpir.errors import TypeCheckError
from lpir.layout import RegisterLayout, SharedLayout, Swizzle


class Type:
    """Base class of IR types. Every type has an element dtype."""

    dtype: DType


class Shaped:
    """Sizes of a type with a `shape` and a `dtype`."""

    shape: tuple[int, ...]
    dtype: DType

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of storage (packed for sub-byte dtypes)."""
        return (self.size * self.dtype.nbits + 7) // 8


def _row_major(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


@dataclass(frozen=True)
class ScalarType(Type):
    dtype: DType

    def __str__(self) -> str:
        return self.dtype.name


@dataclass(frozen=True)
class TileType(Shaped, Type):
    dtype: DType
    shape: tuple[int, ...]
    layout: RegisterLayout | None = None

    @property
    def selected_layout(self) -> RegisterLayout:
        """The layout, which every tile has from layout-selection on."""
        if self.layout is None:
            raise TypeCheckError(f"{self} has no layout: layout-selection has not run")
        return self.layout

    def with_layout(self, layout: RegisterLayout | None) -> TileType:
        return TileType(self.dtype, self.shape, layout)

    def with_dtype(self, dtype: DType) -> TileType:
        return TileType(dtype, self.shape, self.layout)

    def __str__(self) -> str:
        text = f"{self.dtype.name}{_shape_text(self.shape)}"
        if self.layout is not None:
            text += f" @ {self.layout}"
        return text


@dataclass(frozen=True)
class SharedType(Shaped, Type):
    """A shared-memory tile. `layout`, when given, places its elements (strides and an XOR
    swizzle, `lpir.layout.SharedLayout`); without one the tile is dense row-major."""

    dtype: DType
    shape: tuple[int, ...]
    layout: SharedLayout | None = None

    def __post_init__(self) -> None:
        if self.layout is not None and self.layout.shape != tuple(self.shape):
            raise TypeCheckError(
                f"a shared layout of shape {list(self.layout.shape)} on a shared tile of shape "
                f"{list(self.shape)}",
                hint="give the layout the tile's shape",
            )
        if self.swizzle is not None and self.dtype.nbits % 8:
            raise TypeCheckError(
                f"a swizzled shared tile of {self.dtype.name}: swizzles place whole-byte elements",
                hint="swizzle a tile of the packed bytes or words instead",
            )

    @property
    def strides(self) -> tuple[int, ...]:
        """Element strides of each dimension, before the swizzle."""
        return self.layout.strides if self.layout is not None else _row_major(self.shape)

    @property
    def swizzle(self) -> Swizzle | None:
        """The XOR swizzle applied to every strided element offset, if any."""
        return self.layout.swizzle if self.layout is not None else None

    @property
    def span(self) -> int:
        """Elements of storage: the largest element offset plus one."""
        return self.layout.span if self.layout is not None else self.size

    @property
    def nbytes(self) -> int:
        """Bytes of storage (packed for sub-byte dtypes)."""
        return (self.span * self.dtype.nbits + 7) // 8

    def __str__(self) -> str:
        text = f"shared {self.dtype.name}{_shape_text(self.shape)}"
        if self.layout is not None:
            text += f" @ {self.layout}"
        return text


@dataclass(frozen=True)
class GlobalType(Shaped, Type):
    """A C-contiguous tensor. Where `extent` names an i32 scalar argument, the first
    dimension is that argument's value at each call, and `shape[0]` is only its bound: the
    most rows that i32 element indices reach (`runtime_rows`). Code that needs the size of
    the first dimension asks `extent` first."""

    dtype: DType
    shape: tuple[int, ...]
    extent: str | None = None

    @staticmethod
    def runtime_rows(dtype: DType, rest: tuple[int, ...], extent: str) -> GlobalType:
        """A tensor of `extent` rows (known at run time) of shape `rest` each."""
        return GlobalType(dtype, (rows_bound(rest), *rest), extent)

    @property
    def strides(self) -> tuple[int, ...]:
        """Element strides of the C-contiguous tensor."""
        return _row_major(self.shape)

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Whether an array of `shape` has this tensor's rank and compile-time dimensions (a
        run-time first dimension is checked against its argument at the call)."""
        shape = tuple(shape)
        if self.extent is None:
            return shape == self.shape
        return len(shape) == self.rank and shape[1:] == self.shape[1:]

    def rows(self, extent: int) -> GlobalType:
        """The tensor at a call whose first dimension is `extent`: every size known."""
        return GlobalType(self.dtype, (extent, *self.shape[1:]))

    @property
    def swizzle(self) -> None:
        """Global tensors are never swizzled (the memory-type interface of `SharedType`)."""
        return None

    def __str__(self) -> str:
        if self.extent is not None:
            rest = "".join(f", {size}" for size in self.shape[1:])
            return f"global {self.dtype.name}[%{self.extent}{rest}]"
        return f"global {self.dtype.name}{_shape_text(self.shape)}"


def rows_bound(rest: tuple[int, ...]) -> int:
    """The most rows of shape `rest` whose elements i32 indices reach (2^31 - 1 in all)."""
    return (2**31 - 1) // max(1, math.prod(rest))


@dataclass(frozen=True)
class VectorType(Type):
    dtype: DType
    size: int

    def __str__(self) -> str:
        return f"<{self.size} x {self.dtype.name}>"


MemoryType = SharedType | GlobalType
ValueType = ScalarType | TileType | VectorType


def agree(a: Type, b: Type) -> bool:
    """Whether two types can stand for one value: equal, or tiles of one dtype and shape of
    which one has no layout yet (before layout-selection, an annotated tile and the same tile
    unannotated; layout-selection then gives both one layout)."""
    if (
        isinstance(a, TileType)
        and isinstance(b, TileType)
        and (a.layout is None or b.layout is None)
    ):
        return a.dtype == b.dtype and a.shape == b.shape
    return a == b


def as_tile(type_: Type) -> TileType:
    """`type_`, which the caller has checked to be a register tile's, as a TileType."""
    if not isinstance(type_, TileType):
        raise TypeCheckError(f"expected a register tile, not {type_}")
    return type_


def as_vector(type_: Type) -> VectorType:
    """`type_`, which the caller has checked to be a thread's vector's, as a VectorType."""
    if not isinstance(type_, VectorType):
        raise TypeCheckError(f"expected a per-thread vector, not {type_}")
    return type_


def as_memory(type_: Type) -> GlobalType | SharedType:
    """`type_` as the global or shared tensor's type it must be."""
    if not isinstance(type_, GlobalType | SharedType):
        raise TypeCheckError(f"expected a global or shared tensor, not {type_}")
    return type_


def element_dtype(type_: Type) -> DType:
    """The dtype of a scalar, tile, vector or memory type."""
    return type_.dtype


def same_kind_with_dtype(type_: Type, dtype: DType) -> Type:
    """`type_` with its element dtype replaced (shape, size and layout kept)."""
    if isinstance(type_, ScalarType):
        return ScalarType(dtype)
    if isinstance(type_, TileType):
        return type_.with_dtype(dtype)
    if isinstance(type_, VectorType):
        return VectorType(dtype, type_.size)
    raise TypeError(f"no element dtype to replace in {type_}")
