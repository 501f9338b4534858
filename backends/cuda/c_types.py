"""C types of lpir dtypes in registers and in memory, and literals.

Register representation (what a C variable of a value holds), as DESIGN §2 and the interpreter
define it:

=====================  =======================  ===========================================
dtype                  C type                   holds
=====================  =======================  ===========================================
bool                   `bool`                   the truth value
i1 .. i8, u1 .. u8     `signed/unsigned char`   the value (sub-byte ints sign-extended)
i16 .. u64             `short` .. `long long`   the value
small floats, fp8      `unsigned char`          the code (bit pattern)
f16, bf16              `__half`, `__nv_bfloat16`
f32, f64               `float`, `double`
=====================  =======================  ===========================================

In memory, a tensor of a byte-sized or wider dtype is an array of its C type; packed tensors
(fewer than 8 bits per element) are arrays of `unsigned char`.
"""

from __future__ import annotations

import math
import struct

from lpir.dtypes import DType

_INT_TYPES = {
    ("int", 8): "signed char",
    ("int", 16): "short",
    ("int", 32): "int",
    ("int", 64): "long long",
    ("uint", 8): "unsigned char",
    ("uint", 16): "unsigned short",
    ("uint", 32): "unsigned int",
    ("uint", 64): "unsigned long long",
}
_FLOAT_TYPES = {"f16": "__half", "bf16": "__nv_bfloat16", "f32": "float", "f64": "double"}
_UNSIGNED_OF_SIZE = {
    1: "unsigned char",
    2: "unsigned short",
    4: "unsigned int",
    8: "unsigned long long",
}


def c_type(dt: DType) -> str:
    """The C type of a register holding `dt`."""
    if dt.is_bool:
        return "bool"
    if dt.is_float:
        return _FLOAT_TYPES.get(dt.name, "unsigned char")
    width = 8 if dt.nbits <= 8 else dt.nbits
    return _INT_TYPES[(dt.kind, width)]


def memory_type(dt: DType) -> str:
    """The C element type of a tensor of `dt` in memory (bytes for packed dtypes)."""
    if dt.nbits < 8:
        return "unsigned char"
    return c_type(dt)


def byte_size(dt: DType) -> int:
    """Bytes of one register value of `dt` (1 for sub-byte and small-float dtypes)."""
    if dt.is_bool or dt.nbits <= 8:
        return 1
    return dt.nbits // 8


def unsigned_of_size(size: int) -> str:
    """An unsigned integer C type of `size` bytes (1, 2, 4 or 8)."""
    return _UNSIGNED_OF_SIZE[size]


def wide_type(size: int) -> str:
    """The C type of one `size`-byte memory access (1, 2, 4, 8 or 16 bytes)."""
    return {16: "uint4", 8: "uint2"}.get(size) or unsigned_of_size(size)


def is_narrow_int(dt: DType) -> bool:
    """An integer that C promotes to int before arithmetic (8 or 16 bits, or sub-byte)."""
    return dt.is_int and dt.nbits < 32


def float_literal(value: float, dt: DType) -> str:
    """An exact C expression of `value` in the float dtype `dt` (f16, bf16, f32 or f64)."""
    if dt.name == "f16":
        return f"lpir_f16_bits({_f16_bits(value)})"
    if dt.name == "bf16":
        return f"lpir_bf16_bits({_bf16_bits(value)})"
    if dt.name == "f32":
        return _decimal_float(float(struct.unpack("<f", struct.pack("<f", value))[0]), "f")
    return _decimal_float(value, "")


def _decimal_float(value: float, suffix: str) -> str:
    """The shortest decimal that reads back as `value` (exact for f32 values with `f`: the
    decimal is far closer to the f32 value than to any f32 rounding boundary)."""
    if math.isnan(value):  # its own bits: the sign and payload as the other targets keep them
        if suffix:
            bits = struct.unpack("<I", struct.pack("<f", value))[0]
            return f"__int_as_float((int)0x{bits:08x}u)"
        bits = struct.unpack("<Q", struct.pack("<d", value))[0]
        return f"__longlong_as_double((long long)0x{bits:016x}ull)"
    if math.isinf(value):
        sign = "-" if value < 0 else ""
        if suffix:
            return f"{sign}__int_as_float(0x7f800000)"
        return f"{sign}__longlong_as_double(0x7ff0000000000000LL)"
    if value == 0:
        return f"-0.0{suffix}" if math.copysign(1.0, value) < 0 else f"0.0{suffix}"
    text = repr(value)
    if "." not in text and "e" not in text:
        text += ".0"
    return text + suffix


def _f16_bits(value: float) -> str:
    import numpy as np

    bits = int(np.asarray(value, dtype=np.float16).view(np.uint16))
    return f"0x{bits:04x}"


def _bf16_bits(value: float) -> str:
    import ml_dtypes
    import numpy as np

    bits = int(np.asarray(value, dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16))
    return f"0x{bits:04x}"


def literal(value: int | float | bool, dt: DType) -> str:
    """A C expression of the register value `value` of dtype `dt`.

    Small floats are stored as codes: a float constant of such a dtype (rare: canonicalize folds
    most of them) is encoded with `dt.encode` first.
    """
    if dt.is_bool:
        return "true" if value else "false"
    if dt.is_float:
        if dt.is_small_float:
            import numpy as np

            code = int(dt.encode(np.asarray([value], dtype=np.float64))[0])
            return f"(unsigned char){code}"
        return float_literal(float(value), dt)
    number = int(value)
    if dt.nbits == 64:
        return f"{number}LL" if dt.kind == "int" else f"{number}ULL"
    if dt.kind == "uint" and dt.nbits == 32:
        return f"{number}u"
    if dt.nbits == 32 and number == -(1 << 31):
        return "(-2147483647 - 1)"
    if dt.nbits == 32:
        return str(number)
    return f"({c_type(dt)}){number}"
