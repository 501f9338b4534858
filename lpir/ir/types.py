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
`SharedType`       `shared f16[64, 32]`                        a tile in shared memory
`GlobalType`       `global u4[4096, 4096]`                     a C-contiguous tensor in global
                                                               memory (a kernel argument)
`VectorType`       `<64 x f32>`                                one thread's private array
                                                               (thread IR)
=================  ==========================================  =============================

Shapes are concrete: a kernel is specialized for each distinct set of sizes before it is
lowered to IR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lpir.dtypes import DType
from lpir.layout import RegisterLayout, SharedLayout


class Type:
    """Base class of IR types."""


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
    dtype: DType
    shape: tuple[int, ...]
    layout: SharedLayout | None = None

    def __str__(self) -> str:
        text = f"shared {self.dtype.name}{_shape_text(self.shape)}"
        if self.layout is not None:
            text += f" @ {self.layout}"
        return text


@dataclass(frozen=True)
class GlobalType(Shaped, Type):
    dtype: DType
    shape: tuple[int, ...]

    @property
    def strides(self) -> tuple[int, ...]:
        """Element strides of the C-contiguous tensor."""
        strides = []
        step = 1
        for size in reversed(self.shape):
            strides.append(step)
            step *= size
        return tuple(reversed(strides))

    def __str__(self) -> str:
        return f"global {self.dtype.name}{_shape_text(self.shape)}"


@dataclass(frozen=True)
class VectorType(Type):
    dtype: DType
    size: int

    def __str__(self) -> str:
        return f"<{self.size} x {self.dtype.name}>"


MemoryType = SharedType | GlobalType
ValueType = ScalarType | TileType | VectorType


def element_dtype(type_: Type) -> DType:
    """The dtype of a scalar, tile, vector or memory type."""
    return type_.dtype  # type: ignore[attr-defined]


def same_kind_with_dtype(type_: Type, dtype: DType) -> Type:
    """`type_` with its element dtype replaced (shape, size and layout kept)."""
    if isinstance(type_, ScalarType):
        return ScalarType(dtype)
    if isinstance(type_, TileType):
        return type_.with_dtype(dtype)
    if isinstance(type_, VectorType):
        return VectorType(dtype, type_.size)
    raise TypeError(f"no element dtype to replace in {type_}")
