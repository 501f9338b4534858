"""The dequantization fast path: `unpack_bits` -> `cast` (-> `sub` of a constant) in one step.

When the only use of a thread's unpacked fields (integers up to 8 bits, or small floats and
fp8 whose every code is exact in f16) is a cast to f16, bf16 or f32, the emitter skips the
per-lane extraction.

To f16, two lanes per register (so that the results land packed the way f16x2 arithmetic,
16-byte stores and mma operands want):

* fields inside bytes: one `prmt` (`__byte_perm`) moves the two bytes that hold the pair's
  fields into the two 16-bit halves of a register; fields that straddle bytes (3, 5, 6, 7
  bits): the pair's two 32-bit windows (`_Windows`, one funnel shift each, shared), which
  put each field low in its window, have their low halves joined by one `prmt`;
* integers (neighbouring lanes pair up): one `lop3` masks the fields and ORs them into the
  mantissa of 2^(10 - p) for a field at bit p of its half (1024.0 = 0x6400 at bit 0), whose
  last place is worth 1, then one `hadd2` subtracts that power of two (plus the zero point
  of a following `sub` of an integer constant, folded in: exact) (`_fields_at`);
* small floats and fp8 (lanes whose fields sit at the same bit pair up): shifts move sign and
  exponent-mantissa into f16 position and one `hmul2` rescales the exponent bias; fp8 on
  sm_89+ is one `cvt` per pair instead (lpir_cuda.cuh).

Integers to f32 or bf16 skip f16: each lane is one `lop3` (mask the field in place in its
window, OR it into the mantissa of 2^23) and one exact `fma` (about 4 SASS instructions per
weight for a GEMV's dequantize, scale and accumulate; 5.7 through f16 pairs). Small floats to
f32 and bf16 convert the exact f16 pair. Signed integers are biased by flipping their sign
bits in each 32-bit word first (one `xor` per word).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lpir.backends.cuda.c_types import float_literal
from lpir.backends.cuda.emit_bits import ByteWords, unpack_generic
from lpir.backends.cuda.emit_cast import f16_decodable, folded_sub, small_args
from lpir.backends.cuda.emitter import CValue, KernelEmitter, emits

from lpir.dtypes import DType, dtype
from lpir.ir.ops import CastOp, UnpackBitsOp

F16 = dtype("f16")
F32 = dtype("f32")
_DIRECT = ("f32", "bf16")  # integer fields reach these without f16 (`_integers_to_f32`)
_OUTPUT = {
    "f16": ("{v}.x", "{v}.y"),
    "f32": ("__low2float({v})", "__high2float({v})"),
    "bf16": ("__float2bfloat16_rn(__low2float({v}))", "__float2bfloat16_rn(__high2float({v}))"),
}


def _fusable(emitter: KernelEmitter, unpack: UnpackBitsOp) -> CastOp | None:
    cast = emitter.only_user(unpack.result)
    if unpack.shift is not None or not isinstance(cast, CastOp):
        return None
    source = unpack.result.type.dtype
    target = cast.result.type.dtype
    if target.name not in _OUTPUT or len(unpack.bit_offsets) < 2:
        return None
    if source.is_int and source.nbits <= 8:
        return cast  # any bit positions: f32/bf16 lane by lane, f16 in pairs of windows
    return cast if f16_decodable(source) else None  # straddling fields: pairs of windows


def _neighbour_pairs(lanes: int) -> list[tuple[int, int]]:
    """Lanes 2i and 2i + 1 share a register (the last lane alone when the count is odd)."""
    return [(lane, min(lane + 1, lanes - 1)) for lane in range(0, lanes, 2)]


def _pairs_by_position(positions: list[int]) -> list[tuple[int, int]]:
    """Lanes whose fields sit at the same bit position pair up (one decoder for both)."""
    by_position: dict[int, list[int]] = {}
    for lane, position in enumerate(positions):
        by_position.setdefault(position, []).append(lane)
    pairs = []
    for lanes in by_position.values():
        for index in range(0, len(lanes), 2):
            pairs.append((lanes[index], lanes[min(index + 1, len(lanes) - 1)]))
    return sorted(pairs)


def _write_pair(
    emitter: KernelEmitter,
    target: CValue,
    lanes: tuple[int, int],
    expression: str,
    output: tuple[str, str] = _OUTPUT["f16"],
) -> None:
    """`const __half2 pair = expression;` and its halves into the target's two lanes (one
    lane when both are the same: an odd lane count)."""
    lane_a, lane_b = lanes
    value = emitter.fresh("pair")
    emitter.w.line(f"const __half2 {value} = {expression};")
    emitter.w.line(f"{target.lane(lane_a)} = {output[0].format(v=value)};")
    if lane_b != lane_a:
        emitter.w.line(f"{target.lane(lane_b)} = {output[1].format(v=value)};")


def _half2(low: float, high: float) -> str:
    return f"__half2({float_literal(low, F16)}, {float_literal(high, F16)})"


def try_fuse_dequantize(emitter: KernelEmitter, unpack: UnpackBitsOp) -> bool:
    """Emit unpack_bits + cast (+ sub) together; False (nothing emitted) if it does not apply."""
    cast = _fusable(emitter, unpack)
    if cast is None:
        return False
    source_dt = unpack.result.type.dtype
    target_dt = cast.result.type.dtype
    sub, bias = folded_sub(emitter, cast)
    final = sub or cast
    source = emitter.materialize(unpack.operands[0])
    words = ByteWords(emitter, source)
    offsets = unpack.bit_offsets
    width = source_dt.nbits
    signed = source_dt.kind == "int"
    flipped: dict[int, str] = {}
    if signed:
        patterns: dict[int, int] = {}
        for bit in offsets:
            sign = bit + width - 1  # the field's top bit, possibly in the next word
            patterns[sign // 32] = patterns.get(sign // 32, 0) | 1 << (sign % 32)
        for index, pattern in sorted(patterns.items()):
            name = emitter.fresh("flipped")
            emitter.w.line(f"const unsigned {name} = {words.word(index)} ^ {hex(pattern)}u;")
            flipped[index] = name
        bias += 1 << (width - 1)

    def word(index: int) -> str:
        return flipped.get(index) or words.word(index)

    for bit in offsets:
        word(bit // 32)
    target = emitter.array(final.result)
    straddling = any(bit % 8 + width > 8 for bit in offsets)
    if source_dt.is_int and target_dt.name in _DIRECT:
        _integers_to_f32(emitter, offsets, width, bias, word, target, target_dt.name == "bf16")
    elif source_dt.is_int:
        to_f16 = _straddling_integers_to_f16 if straddling else _in_byte_integers_to_f16
        to_f16(emitter, offsets, width, bias, word, target)
    elif straddling:
        _straddling_small_floats(emitter, offsets, source_dt, word, target, target_dt)
    else:
        _in_byte_small_floats(emitter, offsets, source_dt, word, target, target_dt)
    emitter.emitted_early.update({id(cast), id(final)})
    return True


def _in_byte_small_floats(
    emitter: KernelEmitter,
    offsets: Sequence[int],
    source_dt: DType,
    word: Callable[[int], str],
    target: CValue,
    target_dt: DType,
) -> None:
    """Small floats and fp8 whose fields lie inside bytes, two lanes per register: lanes whose
    fields sit at the same bit of their bytes pair up, one `prmt` moves their two bytes into
    the halves, one decoder (`lpir_small_fields_to_f16x2`) converts both."""
    for lane_a, lane_b in _pairs_by_position([bit % 8 for bit in offsets]):
        byte_a, byte_b = offsets[lane_a] // 8, offsets[lane_b] // 8
        word_a, word_b = byte_a // 4, byte_b // 4
        position = offsets[lane_a] % 8
        if offsets[lane_b] - offsets[lane_a] == 16 and offsets[lane_a] % 32 < 16:
            # the fields already sit at the same bit of the word's two halves (a k-permuted
            # mma operand pairs fields 16 bits apart): no prmt
            decoder = f"lpir_small_fields_to_f16x2<{small_args(source_dt)}, {offsets[lane_a] % 32}>"
            expression = f"{decoder}({word(word_a)})"
            _write_pair(emitter, target, (lane_a, lane_b), expression, _OUTPUT[target_dt.name])
            continue
        second = byte_b % 4 + (4 if word_b != word_a else 0)
        selector = (byte_a % 4) | (second << 8)
        moved = f"__byte_perm({word(word_a)}, {word(word_b)}, {hex(selector)})"
        expression = f"lpir_small_fields_to_f16x2<{small_args(source_dt)}, {position}>({moved})"
        _write_pair(emitter, target, (lane_a, lane_b), expression, _OUTPUT[target_dt.name])


class _Windows:
    """32-bit windows of a thread's bytes that start at any bit: bits [start, start + 32) of
    the thread's bit string, one funnel shift of two words each (none at a word's start; a
    window that starts before the first bit is the first word shifted left), emitted once and
    reused."""

    def __init__(self, emitter: KernelEmitter, word: Callable[[int], str]):
        self.emitter = emitter
        self.word = word
        self.names: dict[int, str] = {}

    def at(self, start: int) -> str:
        index, shift = divmod(start, 32)
        if shift == 0:
            return self.word(index)
        if start < 0 and start not in self.names:  # before the first bit: zeros shifted in
            name = self.emitter.fresh("window")
            self.emitter.w.line(f"const unsigned {name} = {self.word(0)} << {-start};")
            self.names[start] = name
        if start not in self.names:
            name = self.emitter.fresh("window")
            self.emitter.w.line(
                f"const unsigned {name} = "
                f"__funnelshift_r({self.word(index)}, {self.word(index + 1)}, {shift});"
            )
            self.names[start] = name
        return self.names[start]


def _window_start(bit: int, width: int, step: int, room: int) -> tuple[int, int]:
    """(window start, position q of the field in it) for a field at `bit`: windows every
    `step` bits, unless the field would end past bit `room` of its window (it is off the
    width's grid): then a window of its own."""
    q = bit % step
    if q + width > room:
        q = 0
    return bit - q, q


def _window_bits(width: int) -> int:
    """How far apart the 32-bit windows that fields are read from start (see below)."""
    if width == 1:
        return 8
    if 16 % width == 0:
        return 16
    return width * min(8, 23 // width)


def _integers_to_f32(
    emitter: KernelEmitter,
    offsets: Sequence[int],
    width: int,
    bias: int,
    word: Callable[[int], str],
    target: CValue,
    bf16: bool,
) -> None:
    """Integer fields straight to f32 (or bf16), one lane at a time: the field, masked in
    place at bit q of a 32-bit window of the thread's bytes, is ORed into the mantissa of 2^23
    (one `lop3`) and one FMA scales it back by 2^-q and subtracts 2^(23 - q) and the bias.
    Both are exact (the result is an integer below 2^9 in magnitude, which bf16 holds exactly
    too) as long as q + width <= 23.

    Windows start every g bits (`_window_bits`: g = 16 for 2-, 4- and 8-bit fields, a multiple
    of the width otherwise, e.g. 21 for 3 bits), each one funnel shift of two words unless it
    starts a word, and a field at bit b is read from the window at b - b % g. So q takes at
    most 8 values (0, 3, ..., 18 for 3 bits), whose scale/offset constants the compiler keeps
    in registers, at one shift per g bits: by SASS counts of the GEMV this beat windows at
    whole words, half words and bytes for every width."""
    windows = _Windows(emitter, word)
    step = _window_bits(width)
    for lane, bit in enumerate(offsets):
        start, q = _window_start(bit, width, step, 23)
        mask = ((1 << width) - 1) << q
        offset = -(2.0 ** (23 - q)) - bias
        converted = (
            f"lpir_magic_f32({windows.at(start)}, {hex(mask)}u, "
            f"{float_literal(2.0**-q, F32)}, {float_literal(offset, F32)})"
        )
        if bf16:
            converted = f"__float2bfloat16_rn({converted})"
        emitter.w.line(f"{target.lane(lane)} = {converted};")


def _f16_magic(p: int) -> int:
    """The f16 bits of 2^(10 - p), whose mantissa's last place is worth 2^-p."""
    return (15 + 10 - p) << 10


def _fields_at(word: str, p: int, q: int, width: int, bias: int) -> str:
    """The f16 pair of the fields at bit p of `word`'s low half and bit q of its high half,
    minus `bias`: one `lop3` into the mantissas of 2^(10 - p) and 2^(10 - q) and one `hadd2`
    (`lpir_magic_f16x2_at`)."""
    field = (1 << width) - 1
    mask = (field << p) | (field << q) << 16
    magic = _f16_magic(p) | _f16_magic(q) << 16
    offset = _half2(-(2.0 ** (10 - p)) - bias, -(2.0 ** (10 - q)) - bias)
    return f"lpir_magic_f16x2_at({word}, {hex(mask)}u, {hex(magic)}u, {offset})"


def _shared_window(
    windows: _Windows, bit_a: int, bit_b: int, width: int
) -> tuple[int, int, int] | None:
    """(start, p, q) of a 32-bit window that holds field a at bit p of its low half and field
    b at bit q of its high half, both inside the 10-bit mantissa of 1024.0 (p, q <= 10 -
    width); None when the fields are too close or too far apart. Prefers a window at a word's
    start (no shift), then one already emitted, then the latest start (which later pairs can
    share)."""
    room = 10 - width
    starts = [
        start
        for start in range(max(bit_a - room, -31), bit_a + 1)
        if 0 <= bit_b - 16 - start <= room
    ]
    if not starts:
        return None
    start = max(starts, key=lambda s: (s % 32 == 0, s in windows.names, s))
    return start, bit_a - start, bit_b - 16 - start


def _pairs_in_windows(
    emitter: KernelEmitter,
    windows: _Windows,
    pairs: list[tuple[int, int]],
    offsets: Sequence[int],
    width: int,
    bias: int,
    target: CValue,
) -> list[tuple[int, int]]:
    """Decode the lane pairs whose two fields share one 32-bit window (`_shared_window`: a
    k-permuted mma operand pairs fields 16 bits apart) with one `lop3` and one `hadd2` each
    (`_fields_at`), no `prmt`; returns the other pairs."""
    rest = []
    for lane_a, lane_b in pairs:
        placed = None
        if lane_a != lane_b:
            placed = _shared_window(windows, offsets[lane_a], offsets[lane_b], width)
        if placed is None:
            rest.append((lane_a, lane_b))
            continue
        start, p, q = placed
        expression = _fields_at(windows.at(start), p, q, width, bias)
        _write_pair(emitter, target, (lane_a, lane_b), expression)
    return rest


def _in_byte_integers_to_f16(
    emitter: KernelEmitter,
    offsets: Sequence[int],
    width: int,
    bias: int,
    word: Callable[[int], str],
    target: CValue,
) -> None:
    """Integer fields inside bytes (1, 2, 4 bits) to f16, two neighbouring lanes per register:
    one `prmt` moves the two bytes that hold the pair's fields into the low bytes of the two
    halves, where each field sits at its bit p within its byte, then one `lop3` into the
    mantissas of 2^(10 - p) and one `hadd2` (`_fields_at`). (Through 1024.0 and a scale of
    2^-p, ptxas rematerialized the scale for every pair; through 1024.0 with every word also
    shifted so that its fields sit at bit 0, that cost a funnel shift per word.)"""
    windows = _Windows(emitter, word)
    pairs = _neighbour_pairs(len(offsets))
    for lane_a, lane_b in _pairs_in_windows(emitter, windows, pairs, offsets, width, bias, target):
        bit_a, bit_b = offsets[lane_a], offsets[lane_b]
        a, b = word(bit_a // 32), word(bit_b // 32)
        first, second = bit_a // 8 % 4, bit_b // 8 % 4
        selector = first | (second + (4 if b != a else 0)) << 8
        moved = f"__byte_perm({a}, {b}, {hex(selector)})"
        expression = _fields_at(moved, bit_a % 8, bit_b % 8, width, bias)
        _write_pair(emitter, target, (lane_a, lane_b), expression)


def _straddling_integers_to_f16(
    emitter: KernelEmitter,
    offsets: Sequence[int],
    width: int,
    bias: int,
    word: Callable[[int], str],
    target: CValue,
) -> None:
    """Integer fields that straddle bytes (3, 5, 6, 7 bits) to f16, two neighbouring lanes per
    register: each field is read from a 32-bit window (`_Windows`) that puts it at bit q with
    q + width <= 10, windows every width * (10 // width) bits; one `prmt` joins the two low
    halves, then one `lop3` into the mantissas of 2^(10 - q) and one `hadd2` (`_fields_at`:
    no scale constant, which ptxas rematerialized for every pair in an `hfma2`)."""
    windows = _Windows(emitter, word)
    step = width * (10 // width)
    pairs = _neighbour_pairs(len(offsets))
    for lane_a, lane_b in _pairs_in_windows(emitter, windows, pairs, offsets, width, bias, target):
        start_a, q_a = _window_start(offsets[lane_a], width, step, 10)
        start_b, q_b = _window_start(offsets[lane_b], width, step, 10)
        moved = f"__byte_perm({windows.at(start_a)}, {windows.at(start_b)}, 0x5410)"
        _write_pair(emitter, target, (lane_a, lane_b), _fields_at(moved, q_a, q_b, width, bias))


def _straddling_small_floats(
    emitter: KernelEmitter,
    offsets: Sequence[int],
    source_dt: DType,
    word: Callable[[int], str],
    target: CValue,
    target_dt: DType,
) -> None:
    """Small floats whose fields straddle bytes (fp6, fp7, ...), two lanes per register: each
    field is read from a 32-bit window that puts it at bit q, a multiple of its width with the
    field inside the window's low half (windows every width * (16 // width) bits); lanes with
    the same q pair up, one `prmt` joins their windows' low halves, and the in-byte decoder
    (`lpir_small_fields_to_f16x2`, shifts and one `hmul2`) converts both."""
    width = source_dt.nbits
    windows = _Windows(emitter, word)
    step = width * (16 // width)
    placed = [_window_start(bit, width, step, 16) for bit in offsets]
    for lane_a, lane_b in _pairs_by_position([q for _, q in placed]):
        a, b = windows.at(placed[lane_a][0]), windows.at(placed[lane_b][0])
        decoder = f"lpir_small_fields_to_f16x2<{small_args(source_dt)}, {placed[lane_a][1]}>"
        expression = f"{decoder}(__byte_perm({a}, {b}, 0x5410))"
        _write_pair(emitter, target, (lane_a, lane_b), expression, _OUTPUT[target_dt.name])


@emits(UnpackBitsOp)
def emit_unpack_bits(emitter: KernelEmitter, op: UnpackBitsOp) -> None:
    if not try_fuse_dequantize(emitter, op):
        unpack_generic(emitter, op)
