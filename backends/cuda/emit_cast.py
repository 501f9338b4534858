"""Emitter of `cast`: value conversion between dtypes, bit for bit as `lpir.dtypes.convert`.

Generic rules (one C expression per lane):

* float -> float: the f16/bf16 intrinsics (round to nearest even, IEEE overflow); small floats
  and fp8 decode exactly (`lpir_decode_small`) and encode with round-to-nearest-even and
  saturation (`lpir_encode_small`); f64 sources reach them through f32 rounded to odd, which
  keeps the result correctly rounded.
* float -> int: truncate, saturate, NaN -> 0 (`cvt.rzi` saturates; narrower targets clamp).
* int -> float: exact where the value fits (magic-number conversions for <= 16-bit ints), one
  correct rounding otherwise (`__int2half_rn`, ..., f64 for integers to small floats).
* int -> int keeps the low bits; anything -> bool is `!= 0`; bool -> number is 0 or 1.

Fast paths for the dequantization casts, two lanes at a time in one 32-bit register:

* <= 8-bit integers -> f16: OR into the mantissa of 1024.0 (0x6400) and subtract 1024 (one
  `lop3` and one `hsub2` per two lanes);
* small floats and fp8 whose exponent fits f16 (E <= 4, and f8e5m2) -> f16/f32/bf16: move the
  sign and the exponent-mantissa field into an f16 and multiply by 2^(15 - bias) (`hmul2`).

And four lanes per word of the thread's bytes for 8-bit integers: to f32 one `prmt` puts a
byte into the mantissa of 2^23 (0x4b0000XX) and one `fadd` subtracts 2^23 and the zero point;
to f16 one `prmt` puts two bytes under 0x64 (1024.0) and one `hsub2` subtracts (signed bytes:
the word's sign bits flipped first, one `lop3` per four lanes).
"""

from __future__ import annotations

from lpir.backends.cuda import c_types
from lpir.backends.cuda.emit_arith import emit_elementwise, from_f32, to_f32
from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits

from lpir.dtypes import DType, dtype
from lpir.ir.core import Value
from lpir.ir.ops import BinaryOp, CastOp, ConstantOp, SplatOp, VectorConstantOp
from lpir.ir.types import VectorType

_VARIANT = {"finite": 0, "fn": 1, "ieee": 2}
_F32 = dtype("f32")


def small_args(dt: DType) -> str:
    """`E, M, V` template arguments of a small float or fp8 dtype."""
    return f"{dt.exponent_bits}, {dt.mantissa_bits}, {_VARIANT[dt.variant]}"


def f16_decodable(dt: DType) -> bool:
    """Small floats whose every code is exact in f16 with f16's own meaning of the fields."""
    return dt.is_small_float and (
        dt.exponent_bits <= 4 or (dt.exponent_bits == 5 and dt.variant == "ieee")
    )


def _int_magic(a: str, dt: DType) -> tuple[str, float]:
    """(an unsigned expression u, bias) with u - bias == the value of int `a` (<= 16 bits)."""
    width = 8 if dt.nbits <= 8 else 16
    if dt.kind == "uint":
        return f"(unsigned){a}", 0.0
    unsigned = "unsigned char" if width == 8 else "unsigned short"
    sign = 1 << (width - 1)
    return f"((unsigned)({unsigned}){a} ^ {hex(sign)}u)", float(sign)


def _float_literal(value: float) -> str:
    return f"{value!r}f" if value != int(value) else f"{float(value):.1f}f"


def int_to_f32(a: str, dt: DType, zero: int = 0) -> str:
    if dt.nbits <= 16:
        unsigned, bias = _int_magic(a, dt)
        return f"lpir_u23_to_f32({unsigned}, {_float_literal(bias + zero)})"
    return f"(float){a}"


_INT_TO_HALF = {16: ("short", "ushort"), 32: ("int", "uint"), 64: ("ll", "ull")}


def int_to_float(a: str, source: DType, target: DType, zero: int = 0) -> str:
    name = target.name
    if name == "f32":
        return int_to_f32(a, source, zero)
    if name == "f64":
        return f"(double){a}"
    if name in ("f16", "bf16"):
        if name == "f16" and source.nbits <= 8:
            unsigned, bias = _int_magic(a, source)
            bias += zero
            return f"__low2half(lpir_u10x2_to_f16x2({unsigned}, 0u, {_float_literal(bias)}))"
        if source.nbits <= 16 and name == "bf16":
            return f"__float2bfloat16_rn({int_to_f32(a, source, zero)})"
        signed, unsigned = _INT_TO_HALF[max(16, source.nbits)]
        prefix = signed if source.kind == "int" else unsigned
        suffix = "half_rn" if name == "f16" else "bfloat16_rn"
        return f"__{prefix}2{suffix}({a})"
    # small floats: exact in f32 up to 24 bits, else through f64 (64-bit integers with their
    # low bits folded into a sticky one) and f32 rounded to odd
    if source.nbits <= 16:
        wide = int_to_f32(a, source)
    else:
        return f"lpir_encode_small_f64<{small_args(target)}>({int_to_f64_sticky(a, source)})"
    return f"lpir_encode_small<{small_args(target)}>({wide})"


def int_to_f64_sticky(a: str, source: DType) -> str:
    """An integer as a double that rounds to narrower formats as the integer does (exact for
    32 bits; 64-bit values past 2^53 keep a sticky bit for the bits a double drops)."""
    if source.nbits <= 32:
        return f"(double){a}"
    return f"lpir_{'i' if source.kind == 'int' else 'u'}64_to_f64_sticky({a})"


def float_to_f32(a: str, source: DType) -> str:
    """An f16, bf16 or small-float value as an exact float."""
    if source.is_small_float:
        helper = "lpir_small_to_f32_fast" if f16_decodable(source) else "lpir_decode_small"
        return f"{helper}<{small_args(source)}>({a})"
    return to_f32(a, source)


def float_to_float(a: str, source: DType, target: DType) -> str:
    if source.name == "f64":
        if target.name == "f32":
            return f"(float){a}"
        if target.name == "f16":
            return f"__double2half({a})"
        if target.name == "bf16":
            return f"__double2bfloat16({a})"
        return f"lpir_encode_small_f64<{small_args(target)}>({a})"
    if target.name == "f16" and f16_decodable(source):
        return f"lpir_small_to_f16<{small_args(source)}>({a})"
    wide = float_to_f32(a, source)
    if target.name == "f64":
        return f"(double){wide}"
    if target.is_small_float:
        return f"lpir_encode_small_sign<{small_args(target)}>({wide}, {_sign_bit(a, source)})"
    return from_f32(wide, target)


def _sign_bit(a: str, source: DType) -> str:
    """The sign bit (0 or 1) of a float register value, NaN included."""
    if source.name == "f16":
        return f"(__half_as_ushort({a}) >> 15)"
    if source.name == "bf16":
        return f"(__bfloat16_as_ushort({a}) >> 15)"
    if source.name == "f32":
        return f"(__float_as_uint({a}) >> 31)"
    return f"(((unsigned){a} >> {source.nbits - 1}) & 1u)"


def float_to_int(a: str, source: DType, target: DType) -> str:
    if source.name == "f64":
        wide, prefix = a, "lpir_f64"
    else:
        wide, prefix = float_to_f32(a, source), "lpir_f32"
    if target.nbits in (32, 64):
        letter = "i" if target.kind == "int" else "u"
        return f"{prefix}_to_{letter}{target.nbits}({wide})"
    ctype = c_types.c_type(target)
    return f"({ctype}){prefix}_to_narrow<{int(target.min)}, {int(target.max)}>({wide})"


def int_to_int(a: str, source: DType, target: DType) -> str:
    if target.nbits < 8:
        kind = "signed" if target.kind == "int" else "unsigned"
        return f"lpir_wrap_{kind}<{target.nbits}>((int){a})"
    return f"({c_types.c_type(target)}){a}"


def cast_expression(a: str, source: DType, target: DType, zero: int = 0) -> str:
    """The C expression of `cast<target>(a)` for a register value `a` of `source` (minus the
    integer `zero` where a `sub` was folded in: only for int -> f16/bf16/f32, see
    `folded_sub`)."""
    if zero:
        return int_to_float(a, source, target, zero)
    if source == target:
        return a
    if target.is_bool:
        if source.is_small_float:
            return f"(({a} & {hex((1 << (source.nbits - 1)) - 1)}) != 0)"
        if source.is_float:
            return f"({to_f32(a, source)} != 0)"
        return f"({a} != 0)"
    if source.is_bool:
        if target.is_float:
            return float_to_float(f"({a} ? 1.0f : 0.0f)", _F32, target)
        return int_to_int(f"(int){a}", source, target)
    if source.is_float and target.is_float:
        return float_to_float(a, source, target)
    if source.is_float:
        return float_to_int(a, source, target)
    if target.is_float:
        return int_to_float(a, source, target)
    return int_to_int(a, source, target)


def splat_constant(value: Value) -> float | None:
    """The constant every lane of `value` holds, if it is a splat of a constant."""
    op = value.owner
    if isinstance(op, SplatOp) and isinstance(op.operands[0].owner, ConstantOp):
        return op.operands[0].owner.value
    if isinstance(op, VectorConstantOp) and len(set(op.values)) == 1:
        return op.values[0]
    return None


def folded_sub(emitter: KernelEmitter, cast: CastOp) -> tuple[BinaryOp | None, int]:
    """A following `cast - c` of an integer constant c (a zero point) that the magic-number
    conversion can subtract for free: exact when the integer and c are exact in the target."""
    source = cast.operands[0].type.dtype
    target = cast.result.type.dtype
    exact_bits = {"f32": 16, "f16": 8, "bf16": 8}.get(target.name, 0)
    if not (source.is_int and source.nbits <= exact_bits):
        return None, 0
    sub = emitter.only_user(cast.result)
    if not isinstance(sub, BinaryOp) or sub.name != "sub" or sub.operands[0] is not cast.result:
        return None, 0
    constant = splat_constant(sub.operands[1])
    if constant is None or float(constant) != int(constant) or abs(constant) > 256:
        return None, 0
    return sub, int(constant)


def _pairwise(emitter: KernelEmitter, op: CastOp, source: DType, target: DType, zero: int) -> bool:
    """Two lanes per 32-bit register for the dequantization casts; False if none applies."""
    value = emitter.value(op.operands[0])
    if value.kind != "array" or value.lanes < 2:
        return False
    if source.is_int and source.nbits <= 8 and target.name == "f16":
        unsigned_a, bias = _int_magic("{a}", source)
        bias += zero

        def pair(a: str, b: str) -> str:
            low = unsigned_a.replace("{a}", a)
            high = unsigned_a.replace("{a}", b)
            return f"lpir_u10x2_to_f16x2({low}, {high}, {_float_literal(bias)})"

    elif f16_decodable(source) and target.name in ("f16", "f32", "bf16"):

        def pair(a: str, b: str) -> str:
            return f"lpir_small_to_f16x2<{small_args(source)}>({a}, {b})"

    elif source.name == "f32" and target.name in ("f16", "bf16"):
        return _pairwise_narrowing(emitter, op, value, target)
    else:
        return False
    result = emitter.array(final_result(emitter, op))
    w = emitter.w
    convert = {
        "f16": ("{h}.x", "{h}.y"),
        "f32": ("__low2float({h})", "__high2float({h})"),
        "bf16": (
            "__float2bfloat16_rn(__low2float({h}))",
            "__float2bfloat16_rn(__high2float({h}))",
        ),
    }[target.name]

    def body(j: str) -> None:
        first = f"2 * {j}" if j != "0" else "0"
        second = f"2 * {j} + 1" if j != "0" else "1"
        h = emitter.fresh("pair")
        w.line(f"const __half2 {h} = {pair(value.lane(first), value.lane(second))};")
        w.line(f"{result.lane(first)} = {convert[0].format(h=h)};")
        w.line(f"{result.lane(second)} = {convert[1].format(h=h)};")

    w.unrolled_loop(value.lanes // 2, body, variable="j")
    if value.lanes % 2:
        last = value.lanes - 1
        text = cast_expression(value.lane(last), source, target, zero)
        w.line(f"{result.lane(last)} = {text};")
    return True


def _pairwise_narrowing(emitter: KernelEmitter, op: CastOp, value: CValue, target: DType) -> bool:
    """f32 -> f16/bf16 two lanes per `cvt.rn.f16x2.f32` (the same rounding as one at a time)."""
    pair_type, convert, low, high = {
        "f16": ("__half2", "__floats2half2_rn", "__low2half", "__high2half"),
        "bf16": ("__nv_bfloat162", "__floats2bfloat162_rn", "__low2bfloat16", "__high2bfloat16"),
    }[target.name]
    result = emitter.array(op.result)
    w = emitter.w

    def body(j: str) -> None:
        first = f"2 * {j}" if j != "0" else "0"
        second = f"2 * {j} + 1" if j != "0" else "1"
        name = emitter.fresh("pair")
        w.line(f"const {pair_type} {name} = {convert}({value.lane(first)}, {value.lane(second)});")
        w.line(f"{result.lane(first)} = {low}({name});")
        w.line(f"{result.lane(second)} = {high}({name});")

    w.unrolled_loop(value.lanes // 2, body, variable="j")
    if value.lanes % 2:
        last = value.lanes - 1
        w.line(f"{result.lane(last)} = {cast_expression(value.lane(last), _F32, target)};")
    return True


def final_result(emitter: KernelEmitter, op: CastOp) -> Value:
    """The value a cast defines: its own result, or that of the `sub` folded into it."""
    sub, _ = folded_sub(emitter, op)
    if sub is None:
        return op.result
    emitter.emitted_early.add(id(sub))
    return sub.result


def _bytewise(emitter: KernelEmitter, op: CastOp, source: DType, target: DType, zero: int) -> bool:
    """8-bit integers -> f32 or f16 four lanes per 32-bit word of the thread's byte array (a
    byte read from the array costs a shift or a mask before the OR; `prmt` places it
    directly); False where the lanes are not whole words of an array."""
    value = emitter.value(op.operands[0])
    words, rest = divmod(value.lanes, 4)
    if not (source.is_int and source.nbits == 8 and target.name in ("f32", "f16")):
        return False
    if value.kind != "array" or words == 0 or rest or value.offset % 4:
        return False
    result = emitter.array(final_result(emitter, op))
    signed = source.kind == "int"
    bytes_ = f"reinterpret_cast<const unsigned char*>({value.text})"
    w = emitter.w

    def body(j: str) -> None:
        at = f"{value.offset} + 4 * {j}" if value.offset else f"4 * {j}"
        word = emitter.fresh("word")
        flip = " ^ 0x80808080u" if signed else ""  # i8 + 128: an unsigned byte
        w.line(f"const unsigned {word} = lpir_word({bytes_}, {at}){flip};")
        lanes = [result.lane(f"4 * {j} + {lane}") for lane in range(4)]
        if target.name == "f32":
            bias = _float_literal(8388608.0 + zero + (128 if signed else 0))
            for lane, target_lane in enumerate(lanes):
                field = f"__byte_perm({word}, 0x4b000000u, {hex(0x7440 | lane)})"
                w.line(f"{target_lane} = __uint_as_float({field}) - {bias};")
            return
        bias = _float_literal(zero + (128 if signed else 0))
        for pair, selector in enumerate(("0x4140", "0x4342")):
            h = emitter.fresh("pair")
            bits = f"__byte_perm({word}, 0x64646464u, {selector})"
            w.line(f"const __half2 {h} = lpir_magic_f16x2_sub({bits}, {bias});")
            w.line(f"{lanes[2 * pair]} = {h}.x;")
            w.line(f"{lanes[2 * pair + 1]} = {h}.y;")

    w.unrolled_loop(words, body, variable="j")
    return True


@emits(CastOp)
def emit_cast(emitter: KernelEmitter, op: CastOp) -> None:
    source = op.operands[0].type.dtype
    target = op.result.type.dtype
    _, zero = folded_sub(emitter, op)
    if isinstance(op.result.type, VectorType) and (
        _bytewise(emitter, op, source, target, zero) or _pairwise(emitter, op, source, target, zero)
    ):
        return
    result = final_result(emitter, op)
    emit_elementwise(emitter, op, lambda a: cast_expression(a, source, target, zero), result=result)
