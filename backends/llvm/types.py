"""How lpir dtypes are held in LLVM IR.

Register representation (matching `lpir.dtypes`): bool is `i1`; integers of 8 bits or fewer
are an `i8` holding the value (sign-extended for signed types); wider integers are native;
small floats and fp8 are an `i8` holding the code; **f16 and bf16 are an `i16` holding the bit
pattern** — arithmetic on them converts to f32 and rounds back in integer code, so no half
precision libcalls are ever needed; f32 and f64 are `float` and `double`. A thread-IR vector
of n lanes is an LLVM `<n x T>`.

In memory every type is its code: sub-byte types never appear (bit-packing rewrote their
accesses into byte accesses), f16/bf16 are 2-byte integers.
"""

from __future__ import annotations

from llvmlite import ir

from lpir.dtypes import DType
from lpir.ir.types import ScalarType, Type, VectorType

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()


class BFloatType(ir.types._BaseFloatType):
    """LLVM's `bfloat` (llvmlite has no such type): the operand and result type of the
    AVX512-BF16 intrinsics (`dot_pairs.py`, `casts.py`); bf16 values are held as i16."""

    null = "0.0"
    intrinsic_name = "bf16"

    def __str__(self) -> str:
        return "bfloat"

    def format_constant(self, value: object) -> str:
        raise NotImplementedError("no bfloat constants are emitted")


BFloatType._create_instance()
BFLOAT = BFloatType()


def lane_type(dt: DType) -> ir.Type:
    """The LLVM type of one register value of `dt`."""
    if dt.is_bool:
        return I1
    if dt.is_float:
        if dt.nbits <= 8:
            return I8
        if dt.nbits == 16:
            return I16
        return F32 if dt.nbits == 32 else F64
    return ir.IntType(max(8, dt.nbits))


def memory_type(dt: DType) -> ir.Type:
    """The LLVM type of one element of `dt` in memory (bool is a byte)."""
    return I8 if dt.is_bool else lane_type(dt)


def value_type(type_: Type) -> ir.Type:
    """The LLVM type of a thread-IR scalar or vector value."""
    if isinstance(type_, ScalarType):
        return lane_type(type_.dtype)
    if isinstance(type_, VectorType):
        return ir.VectorType(lane_type(type_.dtype), type_.size)
    raise TypeError(f"no LLVM value type for {type_}")


def is_vector(value: ir.Value) -> bool:
    return isinstance(value.type, ir.VectorType)


def lanes(value: ir.Value) -> int:
    return value.type.count if is_vector(value) else 1


def like(value: ir.Value, element: ir.Type) -> ir.Type:
    """`element`, or a vector of it with as many lanes as `value` has."""
    if is_vector(value):
        return ir.VectorType(element, value.type.count)
    return element


def constant(value: ir.Value, element: ir.Type, number: float) -> ir.Constant:
    """A constant of `element` type, splatted to `value`'s lane count."""
    if is_vector(value):
        return ir.Constant(ir.VectorType(element, value.type.count), [number] * value.type.count)
    return ir.Constant(element, number)


def storage_bytes(type_: ir.Type) -> int:
    """An upper bound of the bytes a stack slot of `type_` takes (alignment padding included)."""
    if isinstance(type_, ir.ArrayType):
        return type_.count * storage_bytes(type_.element)
    if isinstance(type_, ir.VectorType):
        return _power_of_two(type_.count * storage_bytes(type_.element))
    if isinstance(type_, ir.IntType):
        return _power_of_two(max(1, (type_.width + 7) // 8))
    if isinstance(type_, ir.DoubleType):
        return 8
    return 4


def _power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def element(type_: ir.Type) -> ir.Type:
    """The element type of a vector type, or the type itself."""
    return type_.element if isinstance(type_, ir.VectorType) else type_
