"""Thread IR ops that access memory: what one thread of a block reads and writes.

* `ld` / `st`: per-lane memory accesses, `memory[base + offsets[i]]` for lane i (`base[i]` where
  `base` is a vector, a base per lane: a gather or scatter of whole-byte elements), with an
  optional lane mask (masked lanes read 0 and are not written). In shared memory with a
  swizzled layout the element is `memory[swizzle(base + offsets[i])]`: `base` and `offsets`
  are strided element offsets, the swizzle places them. `vector` promises that lanes
  come in runs of that many consecutive offsets whose first address is aligned to the run, so a
  backend may use one wide access per run (in swizzled memory a run stays inside the swizzle's
  unit of 2**base elements, which the swizzle moves whole). `dtype`, when given, accesses the
  tensor's bytes as that (byte-sized) type: `base` and `offsets` are then in units of it.
* `st` with `combine = "add"`: each lane is added to memory atomically (`atomic_add`);
  `%old = st ...` also gives each lane what memory held before it was combined (0 for lanes
  masked off).
* `st_bits`: read-modify-write of bytes under a per-byte bit mask, atomic per byte: how packed
  sub-byte stores that share a byte with other threads are written.
* `ldmatrix` (CUDA): a warp-wide load of 8x8 matrices of 16-bit elements from shared memory
  into mma operand fragments.
"""

from __future__ import annotations

from collections.abc import Sequence

from lpir.dtypes import DType, dtype
from lpir.errors import TypeCheckError
from lpir.ir.core import Operation, Value
from lpir.ir.ops.memory import COMBINES, check_combine
from lpir.ir.signature import (
    DTYPE,
    INT,
    INT_LIST,
    NUMBER,
    Signature,
    between,
    exactly,
    one_of,
)
from lpir.ir.types import GlobalType, ScalarType, SharedType, VectorType, as_memory

U8 = dtype("u8")
BOOL = dtype("bool")


def _check_memory(
    op_name: str, memory: Value, base: Value, access: DType | None, lane_bases: bool = False
) -> DType:
    if not isinstance(memory.type, GlobalType | SharedType):
        raise TypeCheckError(f"'{op_name}' needs a global or shared tensor, not {memory.type}")
    if lane_bases and isinstance(base.type, VectorType) and base.type.dtype.is_int:
        pass  # (a base per lane: `_check_lane_bases`)
    elif not isinstance(base.type, ScalarType) or not base.type.dtype.is_int:
        raise TypeCheckError(f"'{op_name}' base must be an integer scalar, not {base.type}")
    if access is None:
        return memory.type.dtype
    if access.nbits % 8:
        raise TypeCheckError(f"'{op_name}' cannot access memory as {access.name}")
    if memory.type.swizzle is not None and access != memory.type.dtype:
        raise TypeCheckError(
            f"'{op_name}' cannot access swizzled {memory.type} as {access.name}: the "
            "swizzle permutes elements of the tile's own dtype"
        )
    return access


def _check_vector(op_name: str, vector: int, lanes: int, memory: Value) -> None:
    if vector < 1 or lanes % vector:
        raise TypeCheckError(f"'{op_name}': vector width {vector} does not divide {lanes} lanes")
    swizzle = as_memory(memory.type).swizzle  # (_check_memory has checked it)
    if swizzle is not None and vector > 1 << swizzle.base:
        raise TypeCheckError(
            f"'{op_name}': vector width {vector} is wider than the {1 << swizzle.base} elements "
            f"that {swizzle} keeps together"
        )


def _check_lane_bases(
    op_name: str, memory: Value, base: Value, lanes: int, vector: int, element: DType
) -> None:
    """A base per lane (a gather or scatter: lane i at base[i] + offsets[i]) is a vector of the
    access's lanes, into memory of whole-byte elements that no swizzle permutes, lane by lane."""
    if not isinstance(base.type, VectorType):
        return
    if base.type.size != lanes:
        raise TypeCheckError(f"'{op_name}' with {lanes} offsets has lane bases of {base.type}")
    if element.nbits % 8:
        raise TypeCheckError(f"'{op_name}' with lane bases cannot access {element.name} bits")
    if as_memory(memory.type).swizzle is not None:
        raise TypeCheckError(f"'{op_name}' with lane bases cannot access swizzled memory")
    if vector > 1:
        raise TypeCheckError(f"'{op_name}' with lane bases has no vector width")


def _check_mask(op_name: str, mask: Value | None, lanes: int) -> None:
    if mask is not None and mask.type != VectorType(BOOL, lanes):
        raise TypeCheckError(f"'{op_name}' mask must be <{lanes} x bool>, not {mask.type}")


def _access(
    op_name: str,
    memory: Value,
    base: Value,
    offsets: tuple[int, ...],
    mask: Value | None,
    vector: int,
    access: DType | None,
) -> tuple[DType, dict]:
    """The element type and the attributes of an `ld` or `st`, after the checks they share."""
    element = _check_memory(op_name, memory, base, access, lane_bases=True)
    _check_lane_bases(op_name, memory, base, len(offsets), vector, element)
    _check_mask(op_name, mask, len(offsets))
    _check_vector(op_name, vector, len(offsets), memory)
    attributes: dict = {"offsets": offsets}
    if vector > 1:
        attributes["vector"] = vector
    if access is not None:
        attributes["dtype"] = access
    return element, attributes


class MemoryAccess:
    """Accessors shared by `ld`, `st` and `st_bits`."""

    operands: list[Value]
    attributes: dict

    @property
    def memory(self) -> Value:
        return self.operands[0]

    @property
    def memory_type(self) -> GlobalType | SharedType:
        """The type of the tensor accessed (the verifier checks it is one)."""
        return as_memory(self.memory.type)

    @property
    def base(self) -> Value:
        return self.operands[1]

    @property
    def offsets(self) -> tuple[int, ...]:
        return self.attributes["offsets"]

    @property
    def vector_width(self) -> int:
        return self.attributes.get("vector", 1)

    @property
    def access_dtype(self) -> DType:
        return self.attributes.get("dtype") or self.memory.type.dtype


MEMORY_ACCESS_OPTIONS = {"vector": INT, "dtype": DTYPE}


class LoadThreadOp(MemoryAccess, Operation):
    """`%v = ld %w, %base [mask %m] {offsets = [...], vector = 8} : <64 x f32>`."""

    names = ("ld",)
    signature = Signature(
        operands=between(2, 3),
        results=exactly(1),
        attributes={"offsets": INT_LIST},
        optional=MEMORY_ACCESS_OPTIONS,
    )

    @classmethod
    def create(
        cls,
        memory: Value,
        base: Value,
        offsets: Sequence[int],
        mask: Value | None = None,
        vector: int = 1,
        access: DType | None = None,
        name: str | None = None,
    ) -> LoadThreadOp:
        lanes = tuple(int(o) for o in offsets)
        element, attributes = _access("ld", memory, base, lanes, mask, vector, access)
        operands = [memory, base] + ([mask] if mask is not None else [])
        result = VectorType(element, len(lanes))
        return cls("ld", operands, [result], attributes, result_names=[name])

    @property
    def mask(self) -> Value | None:
        return self.operands[2] if len(self.operands) > 2 else None

    def recreate(self) -> Operation:
        return LoadThreadOp.create(
            self.memory,
            self.base,
            self.offsets,
            self.mask,
            self.vector_width,
            self.attributes.get("dtype"),
        )


class StoreThreadOp(MemoryAccess, Operation):
    """`st %y, %base, %v [mask %m] {offsets = [...]}`: lane i goes to memory[base + offsets[i]];
    with `combine = "add"`, lane i is added to it atomically, and `%old = st ...` gives what
    memory held there before (lanes masked off: 0)."""

    names = ("st",)
    signature = Signature(
        operands=between(3, 4),
        results=between(0, 1),
        attributes={"offsets": INT_LIST},
        optional={**MEMORY_ACCESS_OPTIONS, "combine": one_of(*COMBINES)},
    )

    @classmethod
    def create(
        cls,
        memory: Value,
        base: Value,
        value: Value,
        offsets: Sequence[int],
        mask: Value | None = None,
        vector: int = 1,
        access: DType | None = None,
        combine: str | None = None,
        fetch: bool = False,
    ) -> StoreThreadOp:
        lanes = tuple(int(o) for o in offsets)
        element, attributes = _access("st", memory, base, lanes, mask, vector, access)
        check_combine("st", memory, combine)
        if fetch and combine is None:
            raise TypeCheckError("'st' has a result only where it combines with memory")
        if value.type != VectorType(element, len(lanes)):
            raise TypeCheckError(f"'st' of {value.type} with {len(lanes)} offsets of {element}")
        if combine is not None:
            attributes["combine"] = combine
        operands = [memory, base, value] + ([mask] if mask is not None else [])
        return cls("st", operands, [value.type] if fetch else [], attributes)

    @property
    def value(self) -> Value:
        return self.operands[2]

    @property
    def mask(self) -> Value | None:
        return self.operands[3] if len(self.operands) > 3 else None

    @property
    def combine(self) -> str | None:
        return self.attributes.get("combine")

    @property
    def fetches(self) -> bool:
        """Whether it gives the old values of the lanes it combines into."""
        return bool(self.results)

    def recreate(self) -> Operation:
        return StoreThreadOp.create(
            self.memory,
            self.base,
            self.value,
            self.offsets,
            self.mask,
            self.vector_width,
            self.attributes.get("dtype"),
            self.combine,
            self.fetches,
        )


class StoreBitsOp(MemoryAccess, Operation):
    """`st_bits(%w, %base, %bytes, %bitmask [, %mask]) {offsets = [...]}`: merge bits into bytes.

    For lane i, byte b = base + offsets[i] of the tensor's storage becomes
    (b & ~bitmask[i]) | (bytes[i] & bitmask[i]), atomically with respect to other threads that
    write other bits of the same byte. Lanes whose `mask` is false do not touch memory.
    """

    names = ("st_bits",)
    signature = Signature(
        operands=between(4, 5), attributes={"offsets": INT_LIST}, optional={"dtype": DTYPE}
    )

    @classmethod
    def create(
        cls,
        memory: Value,
        base: Value,
        value: Value,
        bitmask: Value,
        offsets: Sequence[int],
        mask: Value | None = None,
    ) -> StoreBitsOp:
        _check_memory("st_bits", memory, base, U8)
        offsets = tuple(int(o) for o in offsets)
        lanes = VectorType(U8, len(offsets))
        if value.type != lanes or bitmask.type != lanes:
            raise TypeCheckError(f"'st_bits' of {value.type} with {len(offsets)} offsets")
        _check_mask("st_bits", mask, len(offsets))
        operands = [memory, base, value, bitmask] + ([mask] if mask is not None else [])
        return cls("st_bits", operands, (), {"offsets": offsets, "dtype": U8})

    @property
    def value(self) -> Value:
        return self.operands[2]

    @property
    def bitmask(self) -> Value:
        return self.operands[3]

    @property
    def mask(self) -> Value | None:
        return self.operands[4] if len(self.operands) > 4 else None

    def verify_(self) -> None:
        if self.attributes.get("dtype", U8) != U8:
            raise self.error(f"st_bits writes bytes (dtype = u8), not {self.attributes['dtype']}")

    def recreate(self) -> Operation:
        return StoreBitsOp.create(
            self.memory, self.base, self.value, self.bitmask, self.offsets, self.mask
        )


LDMATRIX_COUNTS = (1, 2, 4)


class LoadMatrixOp(Operation):
    """`%v = ldmatrix %w, %row {count = 4, transpose = false} : <8 x f16>`: a warp-wide load of
    `count` 8x8 matrices of 16-bit elements from shared memory (PTX
    `ldmatrix.sync.aligned.m8n8.x{count}[.trans].shared.b16`).

    Thread 8j + i of each warp gives in `row` the element offset of row i of matrix j: 8
    consecutive elements starting at a multiple of 8 (in swizzled memory the offset is the
    strided one and the swizzle places the row, which it keeps whole). Threads 8 * count and
    above give addresses nobody reads. Every thread receives two lanes per matrix: lanes 2j and
    2j + 1 hold matrix j's elements (lane / 4, 2 * (lane % 4) + {0, 1}), or with `transpose`
    (2 * (lane % 4) + {0, 1}, lane / 4), where lane is the thread's index in its warp. These are
    the mma operand fragments, so one x4 load feeds a whole m16n8k16 A operand or two B
    operands. From a tile of 8-bit elements (not transposed) rows are 16 elements, offsets
    multiples of 16, and each thread receives four lanes per matrix, 4j .. 4j + 3 holding
    (lane / 4, 4 * (lane % 4) + {0, 1, 2, 3}): one x4 load is a whole m16n8k32 A operand.
    The CUDA backend implements it, the thread interpreter defines it.
    """

    names = ("ldmatrix",)
    signature = Signature(
        operands=exactly(2),
        results=exactly(1),
        attributes={"count": INT, "transpose": NUMBER},
    )

    @classmethod
    def create(
        cls, memory: Value, row: Value, count: int, transpose: bool, name: str | None = None
    ) -> LoadMatrixOp:
        if count not in LDMATRIX_COUNTS:
            raise TypeCheckError(f"'ldmatrix' loads 1, 2 or 4 matrices, not {count}")
        if not isinstance(memory.type, SharedType) or memory.type.dtype.nbits not in (8, 16):
            raise TypeCheckError(
                f"'ldmatrix' needs a shared tile of 16-bit or 8-bit elements, not {memory.type}"
            )
        nbits = memory.type.dtype.nbits
        if nbits == 8 and transpose:
            raise TypeCheckError(
                "'ldmatrix' transposes 16-bit elements, not the bytes of an 8-bit tile"
            )
        if not isinstance(row.type, ScalarType) or not row.type.dtype.is_int:
            raise TypeCheckError(f"'ldmatrix' row must be an integer scalar, not {row.type}")
        swizzle = memory.type.swizzle
        row_bits = (128 // nbits).bit_length() - 1  # log2 of a row's elements: 3 or 4
        if swizzle is not None and swizzle.base < row_bits:
            raise TypeCheckError(
                f"'ldmatrix' reads rows of {128 // nbits} elements, which {swizzle} does not "
                "keep together"
            )
        attributes = {"count": count, "transpose": bool(transpose)}
        result = VectorType(memory.type.dtype, count * 32 // nbits)
        return cls("ldmatrix", [memory, row], [result], attributes, result_names=[name])

    @property
    def memory(self) -> Value:
        return self.operands[0]

    @property
    def row(self) -> Value:
        return self.operands[1]

    @property
    def count(self) -> int:
        return self.attributes["count"]

    @property
    def transpose(self) -> bool:
        return bool(self.attributes["transpose"])

    def recreate(self) -> Operation:
        memory, row = self.operands
        return LoadMatrixOp.create(memory, row, self.count, self.transpose)
