"""`cast` between any two dtypes, with the semantics of `lpir.dtypes.convert`.

Vectors of small floats and fp8 become f32, f16 or bf16 by table lookup where the host has
AVX-512 (lookup.py). Every other conversion goes through one of three hubs: an integer (i64),
f32 or f64. Floats narrower than f32 decode exactly to f32 and encode from it
(`floats.FloatCodec`); f64 sources round to f32 *to odd* first, so the final rounding to a
narrower format is still correct. f16 converts with the host's instructions where it has F16C
(`vcvtph2ps`/`vcvtps2ph`, 16 lanes an instruction with AVX-512). Those keep a NaN's payload
where the codec's thirty-odd integer operations (hosts without F16C) drop it; one select
makes a stored cast's NaNs the codec's, so every host stores the same bits. The select is left
out where nothing can see a NaN's payload (`nan_payload_unseen`: a cast only arithmetic reads,
whose NaN results may carry any payload, and f16 widened for arithmetic): it cost three
vector instructions per register of x in skinny_wq's loop.
Float to int uses LLVM's saturating conversions (truncate, saturate, NaN -> 0); int to int
truncates and re-extends (wrap).
"""

from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from lpir.backends.llvm import jit
from lpir.backends.llvm.branches import branch_value
from lpir.backends.llvm.floats import FloatCodec, round_to_odd_f32
from lpir.backends.llvm.intrinsics import Intrinsics
from lpir.backends.llvm.lookup import TableCaster
from lpir.backends.llvm.types import (
    BFLOAT,
    F16,
    F32,
    F64,
    I1,
    I16,
    I32,
    I64,
    constant,
    element,
    lane_type,
    like,
)
from lpir.backends.llvm.vectors import Vectors

from lpir.dtypes import DType, dtype
from lpir.ir.core import Kernel, Operation, Value, users_of
from lpir.ir.ops.arith import ARITHMETIC, COMPARISONS, FLOAT_UNARY


def _narrow_float(dt: DType) -> bool:
    """Floats held as codes (everything below f32)."""
    return dt.is_float and dt.nbits < 32


def hub_type(dt: DType) -> ir.IntType:
    """The integer type a conversion from `dt` goes through: i32 when it holds every value."""
    return I32 if dt.nbits < 32 or (dt.nbits == 32 and dt.kind == "int") else I64


def int_value(b: ir.IRBuilder, value: ir.Value, dt: DType, hub: ir.IntType = I64) -> ir.Value:
    """The value of an integer or bool register value as `hub` (i64 unless given)."""
    target = like(value, hub)
    if dt.is_bool or dt.kind == "uint":
        return b.zext(value, target) if value.type != target else value
    return b.sext(value, target) if value.type != target else value


def from_int(b: ir.IRBuilder, value: ir.Value, dt: DType) -> ir.Value:
    """Wrap an i64 into the register value of integer type `dt` (keep the low bits)."""
    if dt.is_bool:
        return b.icmp_unsigned("!=", value, constant(value, I64, 0))
    if dt.nbits == 64:
        return value
    narrow = b.trunc(value, like(value, ir.IntType(dt.nbits)))
    register = like(value, lane_type(dt))
    if element(register).width == dt.nbits:
        return narrow
    return b.sext(narrow, register) if dt.kind == "int" else b.zext(narrow, register)


class Caster:
    """Emits casts on an IRBuilder; `intrinsics` is a `backends.llvm.intrinsics.Intrinsics`."""

    def __init__(self, builder: ir.IRBuilder, intrinsics: Intrinsics, features: str | None = None):
        self.b = builder
        self.intrinsics = intrinsics
        if features is None:
            features = jit.host()[2]
        self.tables = TableCaster(builder, intrinsics, features)
        self.native_f16 = "+f16c" in features.split(",")
        self.native_bf16 = "+avx512bf16" in features.split(",")

    def codec(self, dt: DType) -> FloatCodec:
        return FloatCodec(self.b, self.intrinsics, dt)

    def to_f32(self, value: ir.Value, dt: DType, nan_bits: bool = False) -> ir.Value:
        """A float register value as f32 (exact for every format but f64); NaNs are the
        codec's only with `nan_bits` (else they keep sign and NaN-ness, any payload)."""
        if dt.nbits == 32:
            return value
        if dt.nbits == 64:
            return self.b.fptrunc(value, like(value, F32))
        if dt.name == "f16" and self.native_f16:
            return self._f16_to_f32(value, nan_bits)
        return self.codec(dt).decode(value)

    def from_f32(self, value: ir.Value, dt: DType, nan_bits: bool = False) -> ir.Value:
        """The code(s) of a narrower float format nearest f32 value(s) (`FloatCodec.encode`);
        `nan_bits` as in `to_f32`."""
        if dt.name == "f16" and self.native_f16:
            return self._f32_to_f16(value, nan_bits)
        if dt.name == "bf16" and self.native_bf16 and isinstance(value.type, ir.VectorType):
            if value.type.count & (value.type.count - 1):
                return self._bf16_by_registers(value)
            return self._f32_to_bf16(value)
        return self.codec(dt).encode(value)

    def _bf16_by_registers(self, value: ir.Value) -> ir.Value:
        """The codec's bf16 codes of f32 lanes, a register of 16 at a time, with no branch:
        for a lane count that is not a power of two. The vcvtne2ps2bf16 branch took the
        thread's values live across it (its codes, the store's mask of rows) from block to
        block lane by lane and bit by bit there (224 lanes, K = 7168 over 128 threads: 420
        vpextrw, 196 vpinsrw, 588 kshift; 1.7x this codec, 1.7x the f16 cast)."""
        codec, vectors = self.codec(dtype("bf16")), Vectors(self.b)
        pieces = [codec.encode(register) for register in self._f32_registers(value)]
        return vectors.pick(vectors.concat(pieces), list(range(value.type.count)))

    def _f32_to_bf16(self, value: ir.Value) -> ir.Value:
        """bf16 codes of f32 lanes (a power of two of them) by `vcvtne2ps2bf16` (32 lanes an
        instruction), which rounds to nearest even on the bits as the codec does, where no
        lane is a NaN (whose payload it keeps, the codec's NaN being canonical) or subnormal
        (which it flushes to zero); else, a branch rarely taken, the codec's own integer
        code. The same codes either way: one instruction per 32 lanes where the codec takes
        about 10 per 16."""
        b = self.b
        registers = self._f32_registers(value)
        # vfpclassps (AVX512-DQ, which every AVX512-BF16 CPU has): QNaN, SNaN, subnormal
        classify = self.intrinsics.declare(
            "llvm.x86.avx512.fpclass.ps.512",
            ir.FunctionType(ir.VectorType(I1, 16), [registers[0].type, I32]),
        )
        mask = ir.Constant(I32, 0x01 | 0x80 | 0x20)
        found = [b.call(classify, [register, mask]) for register in registers]
        special = functools.reduce(b.or_, found)
        any_special = b.call(self.intrinsics.vector_reduce("or", special.type), [special])
        return branch_value(
            b,
            any_special,
            lambda: self.codec(dtype("bf16")).encode(value),
            lambda: self._bf16_instructions(registers, value.type.count),
            "bf16",
            rarely_true=True,
        )

    def _f32_registers(self, value: ir.Value) -> list[ir.Value]:
        """`value`'s lanes as registers of 16 f32 (zeros past its lanes)."""
        vectors = Vectors(self.b)
        lanes = value.type.count
        width = -(-lanes // 16) * 16
        padded = vectors.pick(value, [min(i, lanes) for i in range(width)])
        return [vectors.pick(padded, list(range(s, s + 16))) for s in range(0, width, 16)]

    def _bf16_instructions(self, registers: list[ir.Value], lanes: int) -> ir.Value:
        """vcvtne2ps2bf16 on each two registers (vcvtneps2bf16 on a last one): the first
        `lanes` codes, as i16."""
        b, vectors = self.b, Vectors(self.b)
        pieces = []
        for start in range(0, len(registers), 2):
            halves = registers[start : start + 2]
            # the two-source form takes the high half first
            name = "cvtne2ps2bf16" if len(halves) == 2 else "cvtneps2bf16"
            result = ir.VectorType(BFLOAT, 16 * len(halves))
            function = self.intrinsics.declare(
                f"llvm.x86.avx512bf16.{name}.512",
                ir.FunctionType(result, [halves[0].type] * len(halves)),
            )
            converted = b.call(function, halves[::-1])
            pieces.append(b.bitcast(converted, ir.VectorType(I16, result.count)))
        return vectors.pick(vectors.concat(pieces), list(range(lanes)))

    def _f16_to_f32(self, code: ir.Value, nan_bits: bool) -> ir.Value:
        b = self.b
        wide = b.fpext(b.bitcast(code, like(code, F16)), like(code, F32))
        if not nan_bits:
            return wide
        bits = b.bitcast(wide, like(code, I32))
        sign = b.and_(bits, constant(bits, I32, 0x80000000))
        nan = b.bitcast(b.or_(sign, constant(bits, I32, 0x7FC00000)), like(code, F32))
        return b.select(b.fcmp_unordered("uno", wide, wide), nan, wide)

    def _f32_to_f16(self, value: ir.Value, nan_bits: bool) -> ir.Value:
        b = self.b
        code = b.bitcast(b.fptrunc(value, like(value, F16)), like(value, I16))
        if not nan_bits:
            return code
        high = b.lshr(b.bitcast(value, like(value, I32)), constant(value, I32, 16))
        sign = b.and_(b.trunc(high, like(value, I16)), constant(value, I16, 0x8000))
        nan = b.or_(sign, constant(value, I16, 0x7E00))
        return b.select(b.fcmp_unordered("uno", value, value), nan, code)

    def cast(
        self, value: ir.Value, source: DType, target: DType, nan_bits: bool = True
    ) -> ir.Value:
        """`value` of `source` as `target`; without `nan_bits` a NaN result may carry any
        payload (for results only arithmetic reads)."""
        if source == target:
            return value
        if target.is_bool:
            return self.to_bool(value, source)
        if source.is_float and target.is_float:
            return self.float_to_float(value, source, target, nan_bits)
        if source.is_float:
            return self.float_to_int(value, source, target)
        if target.is_float:
            return self.int_to_float(value, source, target)
        return from_int(self.b, int_value(self.b, value, source), target)

    def to_bool(self, value: ir.Value, source: DType) -> ir.Value:
        b = self.b
        if source.is_float:
            wide = value if source.nbits == 64 else self.to_f32(value, source)
            return b.fcmp_unordered("!=", wide, constant(wide, element(wide.type), 0.0))
        return b.icmp_unsigned("!=", value, constant(value, element(value.type), 0))

    def float_to_float(
        self, value: ir.Value, source: DType, target: DType, nan_bits: bool
    ) -> ir.Value:
        b = self.b
        if self.tables.applies(value, source, target):
            return self.tables.cast(value, source, target)
        if target.nbits == 64:
            return (
                b.fpext(self.to_f32(value, source, nan_bits), like(value, F64))
                if source.nbits < 64
                else value
            )
        if source.nbits == 64:
            wide = (
                b.fptrunc(value, like(value, F32))
                if target.nbits == 32
                else round_to_odd_f32(b, self.intrinsics, value)
            )
        else:
            wide = self.to_f32(value, source, nan_bits and target.nbits == 32)
        if target.nbits == 32:
            return wide
        return self.from_f32(wide, target, nan_bits)

    def float_to_int(self, value: ir.Value, source: DType, target: DType) -> ir.Value:
        b = self.b
        wide = value if source.nbits >= 32 else self.to_f32(value, source)
        if element(wide.type) == F32 and target.nbits <= 32:
            return self.f32_to_int(wide, target, like(value, lane_type(target)))
        width = 64 if target.nbits > 32 else max(target.nbits, 1)
        result_type = like(wide, ir.IntType(width))
        convert = self.intrinsics.fp_to_int_saturating(target.kind == "int", result_type, wide.type)
        converted = b.call(convert, [wide])
        register = like(value, lane_type(target))
        if converted.type == register:
            return converted
        if target.kind == "int":
            return b.sext(converted, register)
        return b.zext(converted, register)

    def f32_to_int(self, value: ir.Value, target: DType, register: ir.Type) -> ir.Value:
        """f32 to an integer of up to 32 bits as llvm.fpto[su]i.sat does it (truncate toward
        zero, saturate, NaN -> 0), in instructions that vectorize: clamp to the target's range
        (compares that pass a NaN over), one 32-bit conversion, then NaN and, where the largest
        f32 below the target's maximum is not the maximum (i32, u32), the values past it
        selected. LLVM 14 expands the intrinsic on vectors lane by lane: quantize.lp's cast to
        i4 was a vmaxss, vminss, vcvttss2si and vpinsrb for every element."""
        b = self.b
        low, high = float(target.min), float(np.float32(target.max))
        if high > target.max:  # rounded up: the next f32 below it
            high = float(np.nextafter(np.float32(high), np.float32(0)))
        above_low = b.fcmp_ordered(">", value, constant(value, F32, low))
        clamped = b.select(above_low, value, constant(value, F32, low))
        below_high = b.fcmp_ordered("<", clamped, constant(value, F32, high))
        clamped = b.select(below_high, clamped, constant(value, F32, high))
        word = like(value, I32)
        unsigned_word = target.kind == "uint" and target.nbits == 32
        converted = b.fptoui(clamped, word) if unsigned_word else b.fptosi(clamped, word)
        if high < target.max:
            maximum = int(target.max)
            bits = maximum if maximum < 2**31 else maximum - 2**32  # u32's maximum as i32
            past = b.fcmp_ordered(">", value, constant(value, F32, high))
            converted = b.select(past, constant(value, I32, bits), converted)
        is_nan = b.fcmp_unordered("uno", value, value)
        converted = b.select(is_nan, constant(value, I32, 0), converted)
        return converted if register == word else b.trunc(converted, register)

    def int_to_float(self, value: ir.Value, source: DType, target: DType) -> ir.Value:
        b = self.b
        hub = hub_type(source)
        integer = int_value(b, value, source, hub)
        # Values of fewer than 32 bits are non-negative or signed within i32: sitofp is exact.
        signed = source.kind == "int" or hub == I32
        if target.nbits == 64:
            return (
                b.sitofp(integer, like(value, F64))
                if signed
                else b.uitofp(integer, like(value, F64))
            )
        if target.nbits == 32 or source.nbits <= 24:
            # f32 holds every integer of 24 bits or fewer: a narrower target rounds once, from it
            wide = (
                b.sitofp(integer, like(value, F32))
                if signed
                else b.uitofp(integer, like(value, F32))
            )
            return wide if target.nbits == 32 else self.from_f32(wide, target)
        # Narrower targets: through f64, rounded to odd into f32. A 32-bit integer is exact in
        # f64; a 64-bit one past 2**53 first folds the bits f64 drops into a sticky bit (a
        # rounded f64 rounded again is not the integer's rounding: 2**53 + 2**45 + 1 to bf16).
        if source.nbits > 32:
            integer = self.sticky_below_f64(integer, signed)
        wide = (
            b.sitofp(integer, like(value, F64)) if signed else b.uitofp(integer, like(value, F64))
        )
        return self.from_f32(round_to_odd_f32(b, self.intrinsics, wide), target)

    def sticky_below_f64(self, integer: ir.Value, signed: bool) -> ir.Value:
        """A 64-bit integer whose magnitude, from 2**53 on, has its 11 low bits (which f64
        cannot hold) folded into bit 11 (set if any was): exact in f64, and on the same side
        of every rounding point of a format of 24 bits or fewer (f32's last place is 2**29 or
        more above 2**53) as the integer."""
        b = self.b

        def splat(number: int) -> ir.Constant:
            if isinstance(integer.type, ir.VectorType):
                return ir.Constant(integer.type, [number] * integer.type.count)
            return ir.Constant(integer.type, number)

        negative = b.icmp_signed("<", integer, splat(0)) if signed else None
        magnitude = b.select(negative, b.neg(integer), integer) if signed else integer
        low = b.and_(magnitude, splat(0x7FF))
        sticky = b.select(b.icmp_unsigned("!=", low, splat(0)), splat(0x800), splat(0))
        folded = b.or_(b.and_(magnitude, splat(~0x7FF & (2**64 - 1))), sticky)
        large = b.icmp_unsigned(">=", magnitude, splat(2**53))
        magnitude = b.select(large, folded, magnitude)
        return b.select(negative, b.neg(magnitude), magnitude) if signed else magnitude


# Ops that read no NaN payload of their operands: the NaN results of arithmetic may carry any
# payload, comparisons and float -> int casts do not depend on one.
_PAYLOAD_BLIND = {*ARITHMETIC, *COMPARISONS, *FLOAT_UNARY, "neg", "abs", "reduce_lanes"}
# Ops that pass their operand's lanes on unchanged: a payload is seen where their result's is.
_LANE_MOVES = {"shuffle", "extract"}


def nan_payload_unseen(kernel: Kernel) -> set[int]:
    """The ids of values (of the thread-IR `kernel`) whose NaNs' payloads nothing can observe:
    every use reads none (arithmetic, comparisons, casts to integers) or moves lanes into a
    value of which that holds. Loop-carried values, stores, views, `where` and casts to other
    floats observe them."""
    users = users_of(kernel)
    unseen: dict[int, bool] = {}

    def blind(op: Operation) -> bool:
        if op.name in _PAYLOAD_BLIND:
            return True
        if op.name == "cast":
            return not op.result.type.dtype.is_float
        return op.name in _LANE_MOVES and is_unseen(op.result)

    def is_unseen(value: Value) -> bool:
        if id(value) not in unseen:
            unseen[id(value)] = all(blind(op) for op in users.get(id(value), []))
        return unseen[id(value)]

    return {
        id(result)
        for op in kernel.walk()
        if op.name == "cast"
        for result in op.results
        if is_unseen(result)
    }


__all__ = ["I1", "Caster", "from_int", "int_value", "nan_payload_unseen"]
