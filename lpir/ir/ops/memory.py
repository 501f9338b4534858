"""Tile IR memory ops: tile loads and stores of global and shared tensors, sync.

A tile access names one offset per dimension of the tensor (i32 scalars) and, in `dims`, which
tensor dimensions the tile spans (in order); the other dimensions are indexed by their offset
alone. `a[i :+ 32, k]` on a rank-2 tensor is offsets (i, k), dims (0,), tile shape (32,).

A dimension of the tile may instead take its positions from an i32 tile of the access's shape
(a *gather*, or a *scatter* for a store): its offset operand is that tile, and the element at a
tile coordinate is at position `positions[coordinate]` along that dimension
(`load(table[ids, :])`: the tile `ids` broadcast to the loaded shape).

Edges: an element whose coordinate falls outside the tensor reads as 0 and is not written.

A load or a store may take a *mask*, a bool tile of the tile's shape: elements where it is
false are not read (they read as 0) or not written (nor combined).

A store may *combine* with what memory holds (`combine = "add"`: `atomic_add`; "max", "min":
`atomic_max`, `atomic_min`; "and", "or", "xor": `atomic_and`, ...): each element is combined
with memory atomically, so blocks may accumulate into the same elements of a global tensor
(split-K), and a block's threads into those of a shared tile (a histogram); the order of
additions is unspecified (the others do not depend on it). A combining store may have a
result, a tile of the value's shape: what memory held at each element just before that
element was combined (a fetch-and-add: the slots of a counter `slot = atomic_add(cursor[e],
1)` hands out). Elements combined into the same place get the values memory held between
the combinations, in the order they happened (unspecified); masked-off elements and those
outside the tensor get 0.
"""

from __future__ import annotations

from lpir.dtypes import dtype
from lpir.errors import TypeCheckError, with_article
from lpir.ir.core import Operation, Value
from lpir.ir.ops.arith import BOOL
from lpir.ir.ops.tile import check_shape
from lpir.ir.signature import INT_LIST, Signature, at_least, between, exactly, one_of
from lpir.ir.types import GlobalType, ScalarType, SharedType, TileType, as_memory

I32 = dtype("i32")


def _check_offsets(
    op_name: str, memory: Value, offsets: list[Value], dims: tuple[int, ...], shape: tuple
) -> None:
    rank = as_memory(memory.type).rank
    if len(offsets) != rank:
        raise TypeCheckError(
            f"'{op_name}' of a rank-{rank} tensor needs {rank} indices, got {len(offsets)}"
        )
    for dim, offset in enumerate(offsets):
        if isinstance(offset.type, TileType):  # a gathered (scattered) dimension
            positions = TileType(I32, tuple(shape))
            if dim not in dims or offset.type.dtype != I32 or offset.type.shape != positions.shape:
                raise TypeCheckError(
                    f"'{op_name}': the positions along dimension {dim} must be "
                    f"{with_article(str(positions))} tile of a dimension the tile spans, not "
                    f"{offset.type}"
                )
        elif not isinstance(offset.type, ScalarType) or not offset.type.dtype.is_int:
            raise TypeCheckError(f"tensor indices must be integer scalars, not {offset.type}")


def _check_dims(op_name: str, memory: Value, dims: tuple[int, ...], shape: tuple[int, ...]) -> None:
    rank = as_memory(memory.type).rank
    if list(dims) != sorted(set(dims)) or any(not 0 <= d < rank for d in dims):
        raise TypeCheckError(f"'{op_name}': bad tile dimensions {list(dims)} for rank {rank}")
    if len(dims) != len(shape):
        raise TypeCheckError(f"'{op_name}': {len(dims)} tile dimensions but shape {shape}")
    check_shape(op_name, shape)


def _check_mask(op_name: str, mask: Value | None, tile: TileType) -> None:
    if mask is not None and not (
        isinstance(mask.type, TileType)
        and mask.type.dtype == BOOL
        and mask.type.shape == tile.shape
    ):
        raise TypeCheckError(
            f"'{op_name}' of a {tile} tile needs a mask of type "
            f"{TileType(BOOL, tile.shape)}, not {mask.type}"
        )


def _check_operand_count(op: Operation, after_offsets: int, named: str) -> None:
    """Raise unless `op` has the memory, an offset per dimension, `after_offsets` - 1 more
    operands (`named`: ", the value") and an optional mask."""
    memory = op.operands[0]
    if not isinstance(memory.type, GlobalType | SharedType):
        return  # create() says what it accesses
    rank = memory.type.rank
    count, least = len(op.operands), rank + after_offsets
    if count not in (least, least + 1):
        offsets = f"{rank} offset{'s' if rank != 1 else ''}"
        raise op.error(
            f"takes {least} or {least + 1} operands (the memory, {offsets}{named} and an "
            f"optional mask), not {count}",
            hint="remove the operands after the mask"
            if count > least + 1
            else f"give an offset for each dimension of the memory{named.replace(',', ', then')}",
        )


def _memory_op_name(kind: str, memory: Value) -> str:
    if isinstance(memory.type, GlobalType):
        return f"{kind}_global"
    if isinstance(memory.type, SharedType):
        return f"{kind}_shared"
    raise TypeCheckError(f"cannot {kind} from {memory.type}: not a global or shared tensor")


class _TileAccess:
    """What a tile access (`load_*`, `store_*`, `in_bounds`) names: the memory, an offset per
    dimension (after it in the operands), the dimensions the tile spans."""

    operands: list[Value]
    attributes: dict

    @property
    def memory(self) -> Value:
        return self.operands[0]

    @property
    def offsets(self) -> list[Value]:
        return self.operands[1 : 1 + as_memory(self.memory.type).rank]

    @property
    def dims(self) -> tuple[int, ...]:
        return self.attributes["dims"]


class LoadOp(_TileAccess, Operation):
    """`%t = load_global %w, %i, %k [, %mask] {dims = [0, 1], shape = [32, 256]} : u4[32, 256]`:
    read a tile; elements past the edge, and those whose `mask` element is false, read as 0
    (and their memory is not touched)."""

    names = ("load_global", "load_shared")
    signature = Signature(
        operands=at_least(1), results=exactly(1), attributes={"dims": INT_LIST, "shape": INT_LIST}
    )

    @classmethod
    def create(
        cls,
        memory: Value,
        offsets: list[Value],
        dims: tuple[int, ...],
        shape: tuple[int, ...],
        name: str | None = None,
        mask: Value | None = None,
    ) -> LoadOp:
        op_name = _memory_op_name("load", memory)
        _check_dims(op_name, memory, tuple(dims), tuple(shape))
        _check_offsets(op_name, memory, offsets, tuple(dims), tuple(shape))
        result = TileType(memory.type.dtype, tuple(shape))
        _check_mask(op_name, mask, result)
        attributes = {"dims": tuple(dims), "shape": tuple(shape)}
        masks = [] if mask is None else [mask]
        return cls(op_name, [memory, *offsets, *masks], [result], attributes, result_names=[name])

    @property
    def mask(self) -> Value | None:
        """The bool tile choosing the elements read, or None: all."""
        masks = self.operands[1 + as_memory(self.memory.type).rank :]
        return masks[0] if masks else None

    def recreate(self) -> Operation:
        return LoadOp.create(
            self.memory, self.offsets, self.dims, self.attributes["shape"], mask=self.mask
        )

    def verify_(self) -> None:
        # the properties cut the operands by the memory's rank: an operand past the mask would
        # be ignored, so the count is checked here
        _check_operand_count(self, 1, "")


class InBoundsOp(_TileAccess, Operation):
    """`%in = in_bounds %x, %i, %k {dims = [0, 1], shape = [32, 256]} : bool[32, 256]`: which
    elements of the tile an access with these offsets would find inside the tensor (a load
    reads them; a masked load's `other =` fills the rest). Lowered to the access's own edge
    mask, so it costs nothing where the index analysis proves the tile inside."""

    names = ("in_bounds",)
    signature = Signature(
        operands=at_least(1), results=exactly(1), attributes={"dims": INT_LIST, "shape": INT_LIST}
    )

    @classmethod
    def create(
        cls, memory: Value, offsets: list[Value], dims: tuple[int, ...], shape: tuple[int, ...]
    ) -> InBoundsOp:
        if not isinstance(memory.type, GlobalType | SharedType):
            raise TypeCheckError(f"'in_bounds' of {memory.type}: not a global or shared tensor")
        _check_dims("in_bounds", memory, tuple(dims), tuple(shape))
        _check_offsets("in_bounds", memory, offsets, tuple(dims), tuple(shape))
        attributes = {"dims": tuple(dims), "shape": tuple(shape)}
        return cls("in_bounds", [memory, *offsets], [TileType(BOOL, tuple(shape))], attributes)

    def recreate(self) -> Operation:
        return InBoundsOp.create(self.memory, self.offsets, self.dims, self.attributes["shape"])

    def verify_(self) -> None:
        # (offsets are cut by the memory's rank: an operand past them would be ignored)
        if isinstance(self.memory.type, GlobalType | SharedType):
            rank = self.memory.type.rank
            if len(self.operands) != rank + 1:
                raise self.error(
                    f"takes {rank + 1} operands (the memory and {rank} offsets), not "
                    f"{len(self.operands)}"
                )


#: dtypes that global memory can accumulate atomically (`atomic_add`)
ATOMIC_ADD_DTYPES = ("f32", "f64", "i32", "u32", "i64", "u64")
#: the integers GPUs combine atomically other than by adding (32 and 64 bits)
ATOMIC_INTEGER_DTYPES = ("i32", "u32", "i64", "u64")
#: how a store may combine with memory, and the dtypes each takes (`atomic_add`, `atomic_max`,
#: `atomic_min`: GPUs have integer max and min only; `atomic_and`, `_or`, `_xor`: bits)
ATOMIC_DTYPES = {
    "add": ATOMIC_ADD_DTYPES,
    "max": ATOMIC_INTEGER_DTYPES,
    "min": ATOMIC_INTEGER_DTYPES,
    "and": ATOMIC_INTEGER_DTYPES,
    "or": ATOMIC_INTEGER_DTYPES,
    "xor": ATOMIC_INTEGER_DTYPES,
}
COMBINES = tuple(ATOMIC_DTYPES)


def check_combine(op_name: str, memory: Value, combine: str | None) -> None:
    """Raise unless a store may combine with memory this way (None: a plain store)."""
    if combine is None:
        return
    if combine not in COMBINES:
        raise TypeCheckError(f"'{op_name}' cannot combine by {combine!r}")
    if not isinstance(memory.type, GlobalType | SharedType):
        raise TypeCheckError(f"'{op_name}' can combine atomically into memory only")
    dt = memory.type.dtype
    if dt.name not in ATOMIC_DTYPES[combine]:
        raise TypeCheckError(
            f"cannot {combine} atomically into {with_article(dt.name)} tensor",
            hint=f"accumulate into one of {', '.join(ATOMIC_DTYPES[combine])} and cast afterwards",
        )


class StoreOp(_TileAccess, Operation):
    """`store_global %y, %i, %t [, %mask] {dims = [0]}`: write a tile; elements past the edge,
    and those whose `mask` element is false, are skipped. With `combine = "add"` each element
    is added to memory atomically instead, and `%old = store_global ... {combine = "add"}`
    also gives what memory held before (see the module docstring).

    On threads that hold a replica of an element and are not its primary copy, which do not
    combine it, `%old` is 0: layout-application routes a replicated `%old` through shared
    memory from the primary copies."""

    names = ("store_global", "store_shared")
    signature = Signature(
        operands=at_least(2),
        results=between(0, 1),
        attributes={"dims": INT_LIST},
        optional={"combine": one_of(*COMBINES)},
    )

    @classmethod
    def create(
        cls,
        memory: Value,
        offsets: list[Value],
        dims: tuple[int, ...],
        value: Value,
        combine: str | None = None,
        mask: Value | None = None,
        fetch: bool = False,
    ) -> StoreOp:
        """A store of `value`; with `fetch` (a combining store only) a result too: what memory
        held at each element before it was combined."""
        op_name = _memory_op_name("store", memory)
        check_combine(op_name, memory, combine)
        if fetch and combine is None:
            raise TypeCheckError(
                f"'{op_name}' has a result only where it combines with memory (the old values)"
            )
        if not isinstance(value.type, TileType):
            raise TypeCheckError(f"'{op_name}' stores a tile, not {value.type}")
        _check_dims(op_name, memory, tuple(dims), value.type.shape)
        _check_offsets(op_name, memory, offsets, tuple(dims), value.type.shape)
        if value.type.dtype != memory.type.dtype:
            target = memory.type.dtype.name
            raise TypeCheckError(
                f"cannot store {with_article(value.type.dtype.name)} tile into "
                f"{with_article(target)} tensor",
                hint=f"cast it first: cast<{target}>(...)",
            )
        _check_mask(op_name, mask, value.type)
        attributes: dict = {"dims": tuple(dims)}
        if combine is not None:
            attributes["combine"] = combine
        masks = [] if mask is None else [mask]
        results = [TileType(value.type.dtype, value.type.shape)] if fetch else []
        return cls(op_name, [memory, *offsets, value, *masks], results, attributes)

    @property
    def value(self) -> Value:
        return self.operands[1 + as_memory(self.memory.type).rank]

    @property
    def mask(self) -> Value | None:
        """The bool tile choosing the elements written, or None: all."""
        masks = self.operands[2 + as_memory(self.memory.type).rank :]
        return masks[0] if masks else None

    @property
    def combine(self) -> str | None:
        return self.attributes.get("combine")

    @property
    def fetches(self) -> bool:
        """Whether it gives the old values of the elements it combines into."""
        return bool(self.results)

    def recreate(self) -> Operation:
        return StoreOp.create(
            self.memory, self.offsets, self.dims, self.value, self.combine, self.mask, self.fetches
        )

    def verify_(self) -> None:
        # the properties cut the operands by the memory's rank: an operand past the mask would
        # be ignored, so the count is checked here
        _check_operand_count(self, 2, ", the value")


class AllocSharedOp(Operation):
    """`%s = alloc_shared : shared f16[64, 32]`: a tile of shared memory for the block."""

    names = ("alloc_shared",)
    signature = Signature(results=exactly(1))

    @classmethod
    def create(cls, shared_type: SharedType, name: str | None = None) -> AllocSharedOp:
        return cls("alloc_shared", (), [shared_type], result_names=[name])

    @property
    def shared_type(self) -> SharedType:
        """The type of the tile it allocates."""
        allocated = self.results[0].type
        assert isinstance(allocated, SharedType)  # verify_ checks it
        return allocated

    def verify_(self) -> None:
        if not isinstance(self.results[0].type, SharedType):
            raise self.error(f"allocates a shared tensor, not {self.results[0].type}")


class SyncOp(Operation):
    """`sync`: every thread of the block waits here; shared-memory writes before it are seen."""

    names = ("sync",)
    signature = Signature()

    @classmethod
    def create(cls) -> SyncOp:
        return cls("sync")
