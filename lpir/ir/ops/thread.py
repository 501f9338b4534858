"""Thread IR ops: what one thread of a block does.

A thread's share of a register tile is a `VectorType` value (its slots in local-index order).
Arithmetic, `cast`, `view`, `where`, `splat`, `for`, `if` are the ops shared with tile IR; the
ops here exist only at the thread level:

* `thread_index`: this thread's index in the block, 0 ≤ t < threads.
* `vector_constant`, `shuffle`, `extract`, `vector`, `reduce_lanes`: data movement within one
  thread's registers.
* `dot_pairs` (CPU): lane i of an f32 accumulator adds the products of bf16 lanes 2i + 1 and
  2i of two operands, as AVX512-BF16's `vdpbf16ps` does.
* `ld`, `st`, `st_bits` and `ldmatrix`: memory accesses (thread_memory.py).
* `unpack_bits` / `pack_bits`: convert between bytes and sub-byte lanes at constant bit offsets
  of the LSB-first packed bit string.
* `shfl_xor` (CUDA): every thread of a warp receives a value from the thread whose index
  differs from its own in given bits (a butterfly step of a warp-wide reduction).
* `barrier`: every thread of the block waits; shared-memory writes before it are seen after it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lpir.dtypes import DType, dtype
from lpir.errors import TypeCheckError
from lpir.ir.core import Operation, Value
from lpir.ir.ops.arith import check_compute_dtype
from lpir.ir.ops.tile import REDUCTIONS
from lpir.ir.signature import (
    INT,
    INT_LIST,
    NUMBER_LIST,
    Signature,
    at_least,
    between,
    exactly,
    one_of,
)
from lpir.ir.types import ScalarType, VectorType

I32 = dtype("i32")
U8 = dtype("u8")


class ThreadIndexOp(Operation):
    """`%t = thread_index : i32`."""

    names = ("thread_index",)
    signature = Signature(results=exactly(1))

    @classmethod
    def create(cls, name: str | None = "tid") -> ThreadIndexOp:
        return cls("thread_index", (), [ScalarType(I32)], result_names=[name])

    def recreate(self) -> Operation:
        return ThreadIndexOp.create()


class VectorConstantOp(Operation):
    """`%v = vector_constant {values = [0, 1, 2, 3]} : <4 x i32>`."""

    names = ("vector_constant",)
    signature = Signature(results=exactly(1), attributes={"values": NUMBER_LIST})

    @classmethod
    def create(
        cls, values: Sequence[int | float | bool], dt: DType | str, name: str | None = None
    ) -> VectorConstantOp:
        dt = dtype(dt)
        convert = float if dt.is_float else (bool if dt.is_bool else int)
        values = tuple(convert(v) for v in values)
        result = VectorType(dt, len(values))
        return cls("vector_constant", (), [result], {"values": values}, result_names=[name])

    @property
    def values(self) -> tuple:
        return self.attributes["values"]

    def recreate(self) -> Operation:
        dt = getattr(self.results[0].type, "dtype", None)
        if not isinstance(self.results[0].type, VectorType) or dt is None:
            raise TypeCheckError(f"a vector constant is a vector, not {self.results[0].type}")
        if not dt.is_float and any(isinstance(v, float) for v in self.values):
            raise TypeCheckError(f"float values in a vector of {dt.name}")
        return VectorConstantOp.create(self.values, dt)


class ShuffleOp(Operation):
    """`%r = shuffle(%a, %b, ...) {indices = [...]}`: lane i of the result is lane indices[i] of
    the concatenation a ++ b ++ ... of the sources (one or more vectors of one dtype)."""

    names = ("shuffle",)
    signature = Signature(
        operands=at_least(1), results=exactly(1), attributes={"indices": INT_LIST}
    )

    @classmethod
    def create(
        cls, sources: Sequence[Value], indices: Sequence[int], name: str | None = None
    ) -> ShuffleOp:
        sources = list(sources)
        vectors = [s.type for s in sources if isinstance(s.type, VectorType)]
        if not sources or len(vectors) != len(sources):
            raise TypeCheckError("shuffle takes one or more vectors")
        if len({vector.dtype for vector in vectors}) != 1:
            raise TypeCheckError("shuffled vectors must share a dtype")
        total = sum(vector.size for vector in vectors)
        indices = tuple(int(i) for i in indices)
        if any(not 0 <= i < total for i in indices):
            raise TypeCheckError(f"shuffle index out of range 0..{total - 1}")
        result = VectorType(sources[0].type.dtype, len(indices))
        return cls("shuffle", sources, [result], {"indices": indices}, result_names=[name])

    @property
    def indices(self) -> tuple[int, ...]:
        return self.attributes["indices"]

    def recreate(self) -> Operation:
        return ShuffleOp.create(self.operands, self.indices)


class ExtractOp(Operation):
    """`%s = extract %v {index = 3} : f32`: one lane as a scalar."""

    names = ("extract",)
    signature = Signature(operands=exactly(1), results=exactly(1), attributes={"index": INT})

    @classmethod
    def create(cls, vector: Value, index: int, name: str | None = None) -> ExtractOp:
        if not isinstance(vector.type, VectorType) or not 0 <= index < vector.type.size:
            raise TypeCheckError(f"cannot extract lane {index} of {vector.type}")
        result = ScalarType(vector.type.dtype)
        return cls("extract", [vector], [result], {"index": index}, result_names=[name])

    @property
    def index(self) -> int:
        return self.attributes["index"]

    def recreate(self) -> Operation:
        return ExtractOp.create(self.operands[0], self.index)


class BuildVectorOp(Operation):
    """`%v = vector %a, %b, %c : <3 x f32>`: a vector from scalars of one dtype."""

    names = ("vector",)
    signature = Signature(operands=at_least(1), results=exactly(1))

    @classmethod
    def create(cls, scalars: Sequence[Value], name: str | None = None) -> BuildVectorOp:
        scalars = list(scalars)
        if not scalars or len({s.type for s in scalars}) != 1:
            raise TypeCheckError("vector needs one or more scalars of one type")
        if not isinstance(scalars[0].type, ScalarType):
            raise TypeCheckError(f"vector needs scalars, not {scalars[0].type}")
        result = VectorType(scalars[0].type.dtype, len(scalars))
        return cls("vector", scalars, [result], result_names=[name])

    def recreate(self) -> Operation:
        return BuildVectorOp.create(self.operands)


class ReduceLanesOp(Operation):
    """`%r = reduce_lanes %v {kind = "sum", group = 8}`: lane i = kind(v[i*group : (i+1)*group]),
    combined as the balanced tree of `lpir.ir.order` (which fixes float rounding)."""

    names = ("reduce_lanes",)
    signature = Signature(
        operands=exactly(1),
        results=exactly(1),
        attributes={"kind": one_of(*REDUCTIONS), "group": INT},
    )

    @classmethod
    def create(cls, vector: Value, kind: str, group: int, name: str | None = None) -> ReduceLanesOp:
        vt = vector.type
        if not isinstance(vt, VectorType) or kind not in REDUCTIONS:
            raise TypeCheckError(f"cannot reduce_lanes {kind} of {vt}")
        check_compute_dtype(vt.dtype, kind)
        if group < 1 or vt.size % group:
            raise TypeCheckError(f"group {group} does not divide {vt.size} lanes")
        result = VectorType(vt.dtype, vt.size // group)
        attributes = {"kind": kind, "group": group}
        return cls("reduce_lanes", [vector], [result], attributes, result_names=[name])

    @property
    def kind(self) -> str:
        return self.attributes["kind"]

    @property
    def group(self) -> int:
        return self.attributes["group"]

    def recreate(self) -> Operation:
        return ReduceLanesOp.create(self.operands[0], self.kind, self.group)


class DotPairsOp(Operation):
    """`%r = dot_pairs(%acc, %a, %b) : <n x f32>`: lane i is
    `(acc[i] + a[2i+1] * b[2i+1]) + a[2i] * b[2i]`, each addition rounded to f32, for `a` and
    `b` of 2n bf16 lanes (a product of two bf16 numbers is exact in f32).

    How the CPU multiplies bf16 dot operands: one `vdpbf16ps` per register on hosts with
    AVX512-BF16 (which flushes subnormal inputs and results to zero, so there a lane can differ
    by less than 2**-126), two FMAs elsewhere. lower-to-threads emits it for dots of bf16
    operands into f32 accumulators on the CPU.
    """

    names = ("dot_pairs",)
    signature = Signature(operands=exactly(3), results=exactly(1))

    @classmethod
    def create(cls, acc: Value, a: Value, b: Value, name: str | None = None) -> DotPairsOp:
        ok = (
            isinstance(acc.type, VectorType)
            and acc.type.dtype.name == "f32"
            and a.type == VectorType(dtype("bf16"), 2 * acc.type.size)
            and b.type == a.type
        )
        if not ok:
            raise TypeCheckError(
                f"dot_pairs needs an f32 vector and two bf16 vectors of twice its lanes, "
                f"not {acc.type}, {a.type}, {b.type}"
            )
        return cls("dot_pairs", [acc, a, b], [acc.type], {}, result_names=[name])

    def recreate(self) -> Operation:
        acc, a, b = self.operands
        return DotPairsOp.create(acc, a, b)


def field_shifts(nbits: int) -> range:
    """The run-time `shift`s of `unpack_bits`/`pack_bits` fields of `nbits` bits: where an
    element's field starts in its byte, (element * nbits) % 8, a multiple of gcd(nbits, 8)
    (a u4 field starts at bit 0 or 4; a u3 field anywhere)."""
    return range(0, 8, math.gcd(nbits, 8))


def _check_shift(op_name: str, shift: Value | None, nbits: int) -> list[Value]:
    if shift is None:
        return []
    if not isinstance(shift.type, ScalarType) or not shift.type.dtype.is_int:
        raise TypeCheckError(f"'{op_name}' shift must be an integer scalar, not {shift.type}")
    if len(field_shifts(nbits)) == 1:
        raise TypeCheckError(f"'{op_name}' of {nbits}-bit fields takes no shift (always 0)")
    return [shift]


class UnpackBitsOp(Operation):
    """`%v = unpack_bits(%bytes [, %shift]) {bit_offsets = [0, 3, 6, ...]} : <64 x u3>`.

    Lane i is the field of `dtype.nbits` bits starting at bit bit_offsets[i] + shift of the
    LSB-first bit string of `bytes` (it may straddle bytes). The optional runtime `shift` (0 to
    the largest of `field_shifts(nbits)`) handles tiles whose first element
    does not start on a byte boundary.
    """

    names = ("unpack_bits",)
    signature = Signature(
        operands=between(1, 2), results=exactly(1), attributes={"bit_offsets": INT_LIST}
    )

    @classmethod
    def create(
        cls,
        data: Value,
        dt: DType | str,
        bit_offsets: Sequence[int],
        shift: Value | None = None,
        name: str | None = None,
    ) -> UnpackBitsOp:
        dt = dtype(dt)
        if data.type.dtype != U8 or not isinstance(data.type, VectorType):
            raise TypeCheckError(f"unpack_bits reads bytes, not {data.type}")
        bit_offsets = tuple(int(b) for b in bit_offsets)
        slack = field_shifts(dt.nbits)[-1] if shift is not None else 0
        if any(b < 0 or b + slack + dt.nbits > 8 * data.type.size for b in bit_offsets):
            raise TypeCheckError("unpack_bits offset past the end of its bytes")
        operands = [data, *_check_shift("unpack_bits", shift, dt.nbits)]
        result = VectorType(dt, len(bit_offsets))
        attributes = {"bit_offsets": bit_offsets}
        return cls("unpack_bits", operands, [result], attributes, result_names=[name])

    @property
    def bit_offsets(self) -> tuple[int, ...]:
        return self.attributes["bit_offsets"]

    @property
    def shift(self) -> Value | None:
        return self.operands[1] if len(self.operands) > 1 else None

    def recreate(self) -> Operation:
        result = self.results[0].type
        if not isinstance(result, VectorType):
            raise TypeCheckError(f"unpack_bits makes a vector, not {result}")
        return UnpackBitsOp.create(self.operands[0], result.dtype, self.bit_offsets, self.shift)


class PackBitsOp(Operation):
    """`%b = pack_bits(%v [, %shift]) {bit_offsets = [...]} : <24 x u8>`: unpack_bits reversed.

    Bits that no lane covers are 0.
    """

    names = ("pack_bits",)
    signature = Signature(
        operands=between(1, 2), results=exactly(1), attributes={"bit_offsets": INT_LIST}
    )

    @classmethod
    def create(
        cls,
        value: Value,
        bit_offsets: Sequence[int],
        nbytes: int,
        shift: Value | None = None,
        name: str | None = None,
    ) -> PackBitsOp:
        vt = value.type
        if not isinstance(vt, VectorType) or len(bit_offsets) != vt.size:
            raise TypeCheckError(f"pack_bits needs one bit offset per lane of {vt}")
        bit_offsets = tuple(int(b) for b in bit_offsets)
        slack = field_shifts(vt.dtype.nbits)[-1] if shift is not None else 0
        if any(b < 0 or b + slack + vt.dtype.nbits > 8 * nbytes for b in bit_offsets):
            raise TypeCheckError("pack_bits offset past the end of its bytes")
        operands = [value, *_check_shift("pack_bits", shift, vt.dtype.nbits)]
        result = VectorType(U8, nbytes)
        attributes = {"bit_offsets": bit_offsets}
        return cls("pack_bits", operands, [result], attributes, result_names=[name])

    @property
    def bit_offsets(self) -> tuple[int, ...]:
        return self.attributes["bit_offsets"]

    @property
    def shift(self) -> Value | None:
        return self.operands[1] if len(self.operands) > 1 else None

    def recreate(self) -> Operation:
        result = self.results[0].type
        if not isinstance(result, VectorType):
            raise TypeCheckError(f"pack_bits makes a vector of bytes, not {result}")
        return PackBitsOp.create(self.operands[0], self.bit_offsets, result.size, self.shift)


class BarrierOp(Operation):
    """`barrier`: the thread-level form of `sync`."""

    names = ("barrier",)
    signature = Signature()

    @classmethod
    def create(cls) -> BarrierOp:
        return cls("barrier")


WARP_SIZE = 32


class WarpShuffleOp(Operation):
    """`%r = shfl_xor %v {mask = 4} : <2 x f32>`: each thread receives the lanes of `v` that the
    thread of its warp with index `thread_index ^ mask` holds (PTX `shfl.sync.bfly`).

    All threads of the warp take part (all threads of the block, when it has fewer than 32), so
    it may only appear where control flow is uniform, like `barrier`. `mask` is below 32: the
    partner is in the same warp. Only the CUDA backend implements it.
    """

    names = ("shfl_xor",)
    signature = Signature(operands=exactly(1), results=exactly(1), attributes={"mask": INT})

    @classmethod
    def create(cls, value: Value, mask: int, name: str | None = None) -> WarpShuffleOp:
        vt = value.type
        if not isinstance(vt, VectorType | ScalarType):
            raise TypeCheckError(f"cannot shuffle {vt} between threads")
        if not 0 < mask < WARP_SIZE:
            raise TypeCheckError(f"shfl_xor mask {mask} leaves the warp (it must be 1 .. 31)")
        return cls("shfl_xor", [value], [vt], {"mask": mask}, result_names=[name])

    @property
    def mask(self) -> int:
        return self.attributes["mask"]

    def recreate(self) -> Operation:
        return WarpShuffleOp.create(self.operands[0], self.mask)


MMA_SHAPES = {
    # shape: (lanes of a, lanes of b, lanes of c/d) per thread of a warp
    "m16n8k16": (8, 4, 4),
    "m16n8k8": (4, 2, 4),
    "m16n8k32": (16, 8, 4),
}
MMA_INTEGERS = ("i8", "u8")  # the operands of m16n8k32 (any pair of them), into i32


def _mma_dtypes_fit(shape: str, a: str, b: str, c: str) -> bool:
    """f16 or bf16 (both alike) into f32 for m16n8k16 and m16n8k8; 8-bit integers (signed or
    not, each operand its own) into i32 for m16n8k32."""
    if shape == "m16n8k32":
        return a in MMA_INTEGERS and b in MMA_INTEGERS and c == "i32"
    return a in ("f16", "bf16") and b == a and c == "f32"


class MmaOp(Operation):
    """`%d = mma(%a, %b, %c) {shape = "m16n8k16"} : <4 x f32>`: one warp-wide matrix multiply.

    The 32 threads of a warp together compute D = A @ B + C for a 16xK A (row major), a Kx8
    B (column major) and a 16x8 C/D, each thread holding the fragment lanes of the PTX
    `mma.sync.aligned.m16n8kK.row.col` layouts: m16n8k16 (A: 8 f16/bf16 lanes, B: 4, C and D:
    4 f32), m16n8k8 (4, 2, 4), and m16n8k32 of 8-bit integers (A: 16 i8 or u8 lanes, B: 8 of
    either, C and D: 4 i32, sums wrapping modulo 2^32 as the PTX without `.satfinite`).
    The CUDA backend implements it, the thread interpreter defines it.
    """

    names = ("mma",)
    signature = Signature(
        operands=exactly(3), results=exactly(1), attributes={"shape": one_of(*MMA_SHAPES)}
    )

    @classmethod
    def create(
        cls, a: Value, b: Value, c: Value, shape: str = "m16n8k16", name: str | None = None
    ) -> MmaOp:
        if shape not in MMA_SHAPES:
            raise TypeCheckError(f"unknown mma shape {shape!r}")
        lanes_a, lanes_b, lanes_c = MMA_SHAPES[shape]
        if (
            not isinstance(a.type, VectorType)
            or not isinstance(b.type, VectorType)
            or a.type != VectorType(a.type.dtype, lanes_a)
            or b.type != VectorType(b.type.dtype, lanes_b)
            or c.type != VectorType(c.type.dtype, lanes_c)
            or not _mma_dtypes_fit(shape, a.type.dtype.name, b.type.dtype.name, c.type.dtype.name)
        ):
            raise TypeCheckError(f"mma {shape} of {a.type}, {b.type}, {c.type}")
        attributes = {"shape": shape}
        return cls("mma", [a, b, c], [c.type], attributes, result_names=[name])

    @property
    def shape(self) -> str:
        return self.attributes["shape"]

    def recreate(self) -> Operation:
        a, b, c = self.operands
        return MmaOp.create(a, b, c, self.shape)
