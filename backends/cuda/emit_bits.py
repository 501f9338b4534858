"""Emitters of bit-level ops: `unpack_bits`, `pack_bits` and `view`.

A thread's bytes are read as 32-bit words (`lpir_word`, one per 4 bytes, each read once);
a field of up to 32 bits at a constant bit offset is a shift and a mask of one word, or a
funnel shift of two words when it straddles them. With a run-time shift (0..7) fields are cut
from 64-bit windows of two words. `pack_bits` ORs each lane's code into 32-bit words (64-bit
windows with a shift) and stores the words into the byte array. A `view` of 64-bit lanes (u64,
i64, f64) as narrower fields, or of fields as 64-bit lanes, copies the lanes' bytes (their bits
in order, LSB first) instead of cutting 64-bit codes.
"""

from __future__ import annotations

from collections.abc import Callable

from lpir.backends.cuda import c_types
from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits
from lpir.backends.cuda.writer import affine_expression, affine_runs

from lpir.dtypes import DType, dtype
from lpir.errors import LpirError, SourceLocation
from lpir.ir.ops import PackBitsOp, UnpackBitsOp, ViewOp
from lpir.ir.types import VectorType, as_vector

_U8 = dtype("u8")


def _no_bit_access(dt: DType, location: SourceLocation | None) -> LpirError:
    return LpirError(
        f"the CUDA backend cuts bit fields of at most 32 bits, not {dt.name} lanes",
        location,
        "this is a limitation of the CUDA backend: take a 64-bit lane apart as two u32 with "
        "view<u32>(t)",
    )


def code_of_value(expression: str, dt: DType, location: SourceLocation | None = None) -> str:
    """The bit pattern (as `unsigned`, in the low `nbits` bits) of a register value;
    `location` is the op's, for the error of a lane wider than 32 bits."""
    mask = f" & {hex((1 << dt.nbits) - 1)}u" if dt.nbits < 32 else ""
    if dt.is_bool:
        return f"(unsigned){expression}"
    if dt.name == "f16":
        return f"(unsigned)__half_as_ushort({expression})"
    if dt.name == "bf16":
        return f"(unsigned)__bfloat16_as_ushort({expression})"
    if dt.name == "f32":
        return f"__float_as_uint({expression})"
    if dt.nbits > 32:
        raise _no_bit_access(dt, location)
    unsigned = c_types.unsigned_of_size(c_types.byte_size(dt))
    return f"((unsigned)({unsigned}){expression}{mask})"


def value_of_code(field: str, dt: DType, location: SourceLocation | None = None) -> str:
    """The register value of a bit pattern `field` (an `unsigned` expression, masked)."""
    if dt.is_bool:
        return f"({field} != 0u)"
    if dt.name == "f16":
        return f"__ushort_as_half((unsigned short)({field}))"
    if dt.name == "bf16":
        return f"__ushort_as_bfloat16((unsigned short)({field}))"
    if dt.name == "f32":
        return f"__uint_as_float({field})"
    if dt.nbits > 32:
        raise _no_bit_access(dt, location)
    if dt.kind == "int" and dt.nbits < 8:
        return f"lpir_wrap_signed<{dt.nbits}>((int)({field}))"
    return f"({c_types.c_type(dt)})({field})"


class ByteWords:
    """The 32-bit words of a thread's byte array, each read into a local once, on demand."""

    def __init__(self, emitter: KernelEmitter, source: CValue):
        self.emitter = emitter
        self.source = source
        self.words: dict[int, str] = {}
        self.windows: dict[int, str] = {}

    def word(self, index: int) -> str:
        if index in self.words:
            return self.words[index]
        first = 4 * index
        if first >= self.source.lanes:
            return "0u"
        name = self.emitter.fresh(f"{self.source.text}_w")
        if first + 4 <= self.source.lanes:
            text = f"lpir_word({self.source.address(0)}, {first})"
        else:
            present = range(first, self.source.lanes)
            text = " | ".join(
                f"((unsigned){self.source.lane(b)} << {8 * (b - first)})" for b in present
            )
        self.emitter.w.line(f"const unsigned {name} = {text};")
        self.words[index] = name
        return name

    def window(self, index: int) -> str:
        """Words index and index + 1 as one 64-bit value (for run-time shifted fields)."""
        if index in self.windows:
            return self.windows[index]
        low, high = self.word(index), self.word(index + 1)
        name = self.emitter.fresh(f"{self.source.text}_window")
        self.emitter.w.line(
            f"const unsigned long long {name} = ((unsigned long long){high} << 32) | {low};"
        )
        self.windows[index] = name
        return name

    def field(self, bit: int | str, width: int, word: int, shift: str | None) -> str:
        """The `width`-bit field at `bit` (relative to word `word`) as an unsigned expression."""
        mask = f" & {hex((1 << width) - 1)}u" if width < 32 else ""
        if shift is not None:
            window = self.window(word)
            return f"((unsigned)({window} >> ({bit} + {shift})){mask})"
        if isinstance(bit, int) and bit + width > 32:
            high = self.word(word + 1)
            return f"(__funnelshift_r({self.word(word)}, {high}, {bit}){mask})"
        shifted = self.word(word) if bit == 0 else f"({self.word(word)} >> {bit})"
        return f"({shifted}{mask})"


def unpack_fields(
    emitter: KernelEmitter,
    source: CValue,
    bit_offsets: tuple[int, ...],
    width: int,
    shift: str | None,
    assign: Callable[[int | str, str], None],
) -> None:
    """Call `assign(lane, field expression)` for each lane, as loops where offsets are affine.

    `lane` is an int or a loop expression; fields never straddle words inside a loop.
    """
    words = ByteWords(emitter, source)
    for bit in bit_offsets:  # declare the words before any loop uses them
        word = bit // 32
        if shift is not None:
            words.window(word)
        else:
            words.word(word)
            if bit % 32 + width > 32:
                words.word(word + 1)
    runs = affine_runs(list(bit_offsets))
    for start, length, first, stride in runs:
        for part_start, part_length in _same_word_parts(first, stride, length, width, shift):
            bit = first + stride * part_start
            word = bit // 32
            lane0 = start + part_start
            if part_length == 1:
                assign(lane0, words.field(bit - 32 * word, width, word, shift))
                continue

            def body(
                j: str, lane0: int = lane0, bit: int = bit, word: int = word, stride: int = stride
            ) -> None:
                local = affine_expression(bit - 32 * word, stride, j)
                assign(affine_expression(lane0, 1, j), words.field(local, width, word, shift))

            emitter.w.unrolled_loop(part_length, body, variable="j")


def _same_word_parts(
    first: int, stride: int, length: int, width: int, shift: str | None
) -> list[tuple[int, int]]:
    """Split a run of fields into parts that each lie in one word (or one 64-bit window)."""
    span = 32 if shift is None else 64 - 7
    parts = []
    index = 0
    while index < length:
        bit = first + stride * index
        word = bit // 32
        end = index + 1
        if bit - 32 * word + width <= span:
            while end < length:
                next_bit = first + stride * end
                if next_bit // 32 != word or next_bit - 32 * word + width > span:
                    break
                end += 1
        parts.append((index, end - index))
        index = end
    return parts


def unpack_generic(emitter: KernelEmitter, op: UnpackBitsOp) -> None:
    """Per-lane extraction (the `unpack_bits` emitter, in emit_dequant, falls back to this)."""
    source = emitter.materialize(op.operands[0])
    dt = op.result.type.dtype
    shift = emitter.value(op.shift).text if op.shift is not None else None
    target = emitter.array(op.result)

    def assign(lane: int | str, field: str) -> None:
        emitter.w.line(f"{target.lane(lane)} = {value_of_code(field, dt, op.location)};")

    unpack_fields(emitter, source, op.bit_offsets, dt.nbits, shift, assign)


def pack_words(
    emitter: KernelEmitter,
    value: CValue,
    bit_offsets: tuple[int, ...],
    nbytes: int,
    shift: str | None,
    location: SourceLocation | None = None,
) -> list[str]:
    """OR the codes of `value`'s lanes into 32-bit words; return the words' C names."""
    dt = value.dtype
    width = dt.nbits
    count = -(-nbytes // 4)
    w = emitter.w
    wide = shift is not None
    accumulators = []
    for _ in range(count):
        name = emitter.fresh("packed")
        w.line(f"{'unsigned long long' if wide else 'unsigned'} {name} = 0;")
        accumulators.append(name)
    for lane, bit in enumerate(bit_offsets):
        code = code_of_value(value.lane(lane), dt, location)
        word, local = bit // 32, bit % 32
        if wide:
            w.line(f"{accumulators[word]} |= (unsigned long long){code} << ({local} + {shift});")
            continue
        w.line(f"{accumulators[word]} |= {code} << {local};")
        if local + width > 32 and word + 1 < count:
            w.line(f"{accumulators[word + 1]} |= {code} >> {32 - local};")
    if not wide:
        return accumulators
    words = []
    for index in range(count):
        name = emitter.fresh("word")
        spill = f" | (unsigned)({accumulators[index - 1]} >> 32)" if index else ""
        w.line(f"const unsigned {name} = (unsigned){accumulators[index]}{spill};")
        words.append(name)
    return words


def store_words(emitter: KernelEmitter, target: CValue, words: list[str], nbytes: int) -> None:
    for index, word in enumerate(words):
        first = 4 * index
        if first + 4 <= nbytes:
            emitter.w.line(f"lpir_set_word({target.address(0)}, {first}, {word});")
            continue
        for byte in range(first, nbytes):
            emitter.w.line(
                f"{target.lane(byte)} = (unsigned char)({word} >> {8 * (byte - first)});"
            )


@emits(PackBitsOp)
def emit_pack_bits(emitter: KernelEmitter, op: PackBitsOp) -> None:
    value = emitter.value(op.operands[0])
    shift = emitter.value(op.shift).text if op.shift is not None else None
    nbytes = as_vector(op.result.type).size
    words = pack_words(emitter, value, op.bit_offsets, nbytes, shift, op.location)
    target = emitter.array(op.result)
    store_words(emitter, target, words, nbytes)


@emits(ViewOp)
def emit_view(emitter: KernelEmitter, op: ViewOp) -> None:
    source_dt = op.operands[0].type.dtype
    target_dt = op.result.type.dtype
    if not isinstance(op.result.type, VectorType):
        a = emitter.value(op.operands[0]).text
        if source_dt.nbits % 8 == 0 and not source_dt.is_bool and not target_dt.is_bool:
            text = f"lpir_bit_cast<{c_types.c_type(target_dt)}>({a})"
        else:
            code = code_of_value(a, source_dt, op.location)
            text = value_of_code(code, target_dt, op.location)
        emitter.scalar(op.result, text)
        return
    source = emitter.materialize(op.operands[0])
    whole_bytes = all(d.nbits % 8 == 0 and not d.is_bool for d in (source_dt, target_dt))
    target = emitter.array(op.result)
    if whole_bytes:
        nbytes = source.lanes * source_dt.nbits // 8
        emitter.w.line(f"memcpy({target.address(0)}, {source.address(0)}, {nbytes});")
        return
    nbytes = -(-source.lanes * source_dt.nbits // 8)
    packed = emitter.fresh("bytes")
    emitter.declare_array(packed, _U8, nbytes)
    packed_value = CValue("array", packed, _U8, nbytes)
    # The bit string of the row, LSB first: a 64-bit lane's bytes in memory order are its bits
    # in order, and no field of a 32-bit word holds a whole one.
    if source_dt.nbits == 64:
        emitter.w.line(f"memcpy({packed}, {source.address(0)}, {nbytes});")
    else:
        offsets = tuple(i * source_dt.nbits for i in range(source.lanes))
        words = pack_words(emitter, source, offsets, nbytes, None, op.location)
        store_words(emitter, packed_value, words, nbytes)
    if target_dt.nbits == 64:
        emitter.w.line(f"memcpy({target.address(0)}, {packed}, {nbytes});")
        return

    def assign(lane: int | str, field: str) -> None:
        emitter.w.line(f"{target.lane(lane)} = {value_of_code(field, target_dt, op.location)};")

    offsets = tuple(i * target_dt.nbits for i in range(target.lanes))
    unpack_fields(emitter, packed_value, offsets, target_dt.nbits, None, assign)
