"""What a name or an expression stands for while a kernel is lowered to tile IR.

* `Const`: a compile-time number or bool (literals, integer parameters, folded arithmetic).
  It has no dtype until it meets a typed value: `acc * 2.0` makes 2.0 an f32 if acc is f32.
* `DTypeConst`: a dtype parameter such as `WT = u4`.
* `Runtime`: an IR value, a scalar (i32 loop variable, block index, scalar argument) or a
  register tile.
* `Memory`: a global tensor argument or a shared tile (`shared<f16>[64, 32]`).
* `Slice`: a rectangular piece of a `Memory`, `w[i :+ 32, k0 :+ 256]`; only `load` and `store`
  take it.
* `BlockIndex`: the `block` in `block.x`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lpir.dtypes import DType
from lpir.ir.core import Value
from lpir.ir.types import GlobalType, ScalarType, SharedType, TileType, Type, as_memory


@dataclass(frozen=True)
class Const:
    value: int | float | bool

    def describe(self) -> str:
        shown = str(self.value).lower() if isinstance(self.value, bool) else repr(self.value)
        return f"the constant {shown}"


@dataclass(frozen=True)
class DTypeConst:
    dtype: DType

    def describe(self) -> str:
        return f"the dtype {self.dtype.name}"


@dataclass(frozen=True)
class Runtime:
    value: Value

    @property
    def type(self) -> Type:
        return self.value.type

    @property
    def is_tile(self) -> bool:
        return isinstance(self.value.type, TileType)

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.value.type, ScalarType)

    @property
    def is_element(self) -> bool:
        """A 0-d tile: one element of a register tile (`p[2]`)."""
        type_ = self.value.type
        return isinstance(type_, TileType) and not type_.shape

    @property
    def dtype(self) -> DType:
        return self.value.type.dtype

    def describe(self) -> str:
        kind = "tile" if self.is_tile else "scalar"
        return f"a {kind} of type {self.value.type}"


@dataclass(frozen=True)
class Memory:
    """Global or shared memory: a tensor argument (`name` is the argument's) or a shared tile.
    `alias`: bound by an assignment (`a = x`), so rebinding the name hides no tensor."""

    value: Value
    name: str
    alias: bool = False

    @property
    def type(self) -> GlobalType | SharedType:
        return as_memory(self.value.type)

    def describe(self) -> str:
        if isinstance(self.value.type, SharedType):  # made by shared<T>[...]: no name of its own
            return f"a shared tile ({self.value.type})"
        return f"the tensor {self.name}: {self.value.type}"


@dataclass(frozen=True)
class Slice:
    """`x[i :+ 32, k]`: per dimension of the memory, an i32 scalar offset, or for a gathered
    dimension (`table[ids, :]`) the 1-d i32 tile of its positions; the dimensions the tile
    spans (gathered ones included) and its shape."""

    memory: Memory
    offsets: tuple[Value, ...]
    dims: tuple[int, ...]
    shape: tuple[int, ...]

    def describe(self) -> str:
        return f"a slice of {self.memory.name}"


@dataclass(frozen=True)
class BlockIndex:
    def describe(self) -> str:
        return "the block index object"


SemanticValue = Const | DTypeConst | Runtime | Memory | Slice | BlockIndex
