"""bit-packing: accesses to packed sub-byte tensors become byte accesses plus bit extraction.

Requires: thread IR.
Guarantees: no `ld` or `st` accesses a tensor element-wise with a dtype under 8 bits. A packed
load becomes one `ld` of the bytes that hold the thread's elements (only the bytes needed, in
address order) followed by `unpack_bits`, which cuts the fields out of the byte string — fields
may straddle bytes (3-, 5-, 6-, 7-bit types). A packed store becomes `pack_bits` followed by a
plain byte `st` for bytes the thread writes whole, and an atomic `st_bits` (read-modify-write
under a bit mask) for bytes it shares with other threads or that a mask cuts. A masked store of
whole bytes whose lanes provably share the mask within each byte (a u4 tile masked by row) is a
byte `st` masked by byte: each byte is written whole or left alone.

When the index analysis proves that a thread's first element starts on a byte boundary, every
bit offset is a constant; otherwise the offset within the first byte is computed at run time and
passed to unpack_bits/pack_bits as `shift`. A masked load zeroes the fields of the lanes that
are off, unless the lanes sharing each byte provably share their mask (`lpir.ir.lane_classes`):
then the byte load's own zeros are those fields.

A `shuffle` of sub-byte lanes cut from one byte string (by `unpack_bits`, or by a `view` of
whole-byte lanes such as i32 words as u4) becomes one `unpack_bits` of those bytes with each
lane's bit offset taken in the shuffle's order: lane i of a field string is wherever its offset
says, so any order of the lanes is only other offsets, and a backend cuts them out in that order
at the cost of cutting them out at all (AWQ's words hold columns 0 2 4 6 1 3 5 7: their
reorder was a byte shuffle between the unpacking and the cast, and is now no instruction).
Only where every use of the shuffled lanes is a shuffle, so that the first unpacking goes
away and no field is cut out twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from lpir.passes.base import Pass, register_pass
from lpir.passes.thread_values import IndexBuilder

from lpir.dtypes import DType, dtype
from lpir.ir.core import Kernel, Module, Operation, Region, Value
from lpir.ir.lane_classes import lane_classes
from lpir.ir.ops import (
    BinaryOp,
    CastOp,
    ConstantOp,
    LoadThreadOp,
    PackBitsOp,
    SelectOp,
    ShuffleOp,
    SplatOp,
    StoreBitsOp,
    StoreThreadOp,
    UnpackBitsOp,
    VectorConstantOp,
    ViewOp,
)
from lpir.ir.ops.thread import field_shifts
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import VectorType, as_vector

U8 = dtype("u8")
I32 = dtype("i32")


def _is_packed_access(op: Operation) -> bool:
    if not isinstance(op, LoadThreadOp | StoreThreadOp):
        return False
    return op.access_dtype.nbits < 8


class _ByteLayout:
    """Where a thread's packed lanes sit: the bytes to access and each lane's bit offset.

    With a run-time shift every field may move on by up to 7 bits (4 for u4: the shifts are
    `field_shifts(nbits)`), so one more byte may be needed (never for 1-, 2- and 4-bit
    fields); `touch[j][lane]` is the set of shifts (bit s set) for which lane touches byte j.
    """

    def __init__(self, offsets: tuple[int, ...], nbits: int, shifted: bool):
        self.nbits = nbits
        self.shifts = field_shifts(nbits) if shifted else range(1)
        touches: dict[int, dict[int, int]] = {}
        for lane, offset in enumerate(offsets):
            first = offset * nbits
            for shift in self.shifts:
                for byte in range((first + shift) // 8, (first + shift + nbits - 1) // 8 + 1):
                    lanes = touches.setdefault(byte, {})
                    lanes[lane] = lanes.get(lane, 0) | (1 << shift)
        self.bytes = sorted(touches)
        position = {byte: index for index, byte in enumerate(self.bytes)}
        self.bit_offsets = [position[(o * nbits) // 8] * 8 + (o * nbits) % 8 for o in offsets]
        self.touch = [touches[byte] for byte in self.bytes]
        self.shifted = shifted

    def always_needed(self) -> bool:
        """Whether every byte is touched by some lane whatever the shift."""
        every = _union(1 << shift for shift in self.shifts)
        return all(_union(lanes.values()) == every for lanes in self.touch)

    def whole_bytes(self, offsets: tuple[int, ...]) -> list[bool]:
        """For each byte, whether this thread's lanes cover all 8 of its bits (no shift)."""
        covered = [0] * len(self.bytes)
        position = {byte: index for index, byte in enumerate(self.bytes)}
        for offset in offsets:
            for bit in range(offset * self.nbits, (offset + 1) * self.nbits):
                covered[position[bit // 8]] |= 1 << (bit % 8)
        return [c == 0xFF for c in covered]


def _union(masks: Iterable[int]) -> int:
    result = 0
    for mask in masks:
        result |= mask
    return result


class _BitPacking(Rewriter):
    def __init__(self) -> None:
        super().__init__()
        self.index = IndexBuilder(self.builder)
        self.users: dict[int, list[Operation]] = {}
        self.region_of: dict[int, int] = {}

    def run_kernel(self, kernel: Kernel) -> Kernel:
        self.users, self.region_of = {}, {}
        self.index_uses(kernel.body)
        return super().run_kernel(kernel)

    def index_uses(self, region: Region) -> None:
        """Record the users of every value and the region of every op (the input's)."""
        for op in region.ops:
            self.region_of[id(op)] = id(region)
            for operand in op.operands:
                self.users.setdefault(id(operand), []).append(op)
            for inner in op.regions:
                self.index_uses(inner)

    def rewrite(self, op: Operation) -> list[Value]:
        if isinstance(op, ShuffleOp):
            unpacked = self.unpacked_shuffle(op)
            if unpacked is not None:
                return [unpacked]
        if not _is_packed_access(op):
            return self.copy(op).results
        if isinstance(op, LoadThreadOp):
            return [self.load(op)]
        assert isinstance(op, StoreThreadOp)  # the other packed access
        self.store(op)
        return []

    def unpacked_shuffle(self, op: ShuffleOp) -> Value | None:
        """`op` as one unpack_bits with its lanes' offsets in its order, where its sources are
        fields of one byte string (at one shift) that only shuffles use, cut out in the
        shuffle's region (not moved into a loop); else None."""
        region = self.region_of[id(op)]
        for source in op.operands:
            if source.owner is None or self.region_of.get(id(source.owner)) != region:
                return None
            if not all(isinstance(user, ShuffleOp) for user in self.users[id(source)]):
                return None
        byte_views: dict[int, Value] = {}  # (one view as u8 of words shuffled twice)
        found = [self.fields(self.map(source), byte_views) for source in op.operands]
        fields = [f for f in found if f is not None]
        if len(fields) < len(found):
            return None
        data, _, shift = fields[0]
        if any(f[0] is not data or f[2] is not shift for f in fields):
            return None
        offsets = [offset for f in fields for offset in f[1]]
        picked = [offsets[index] for index in op.indices]
        dt = as_vector(op.result.type).dtype
        return self.builder.add(UnpackBitsOp.create(data, dt, picked, shift, op.result.name_hint))

    def fields(
        self, value: Value, byte_views: dict[int, Value]
    ) -> tuple[Value, tuple[int, ...], Value | None] | None:
        """(bytes, bit offsets, run-time shift) of lanes cut out of bytes: an unpack_bits, or a
        view of whole-byte lanes as sub-byte ones (its bytes a view as u8)."""
        owner = value.owner
        if isinstance(owner, UnpackBitsOp):
            return owner.operands[0], owner.bit_offsets, owner.shift
        if not isinstance(owner, ViewOp) or not isinstance(value.type, VectorType):
            return None
        source = owner.operands[0]
        nbits = value.type.dtype.nbits
        if source.type.dtype.nbits % 8 or source.type.dtype.is_bool or nbits % 8 == 0:
            return None
        data = byte_views.get(id(source))
        if data is None:
            data = (
                source if source.type.dtype == U8 else self.builder.add(ViewOp.create(source, U8))
            )
            byte_views[id(source)] = data
        return data, tuple(i * nbits for i in range(value.type.size)), None

    def byte_base(self, base: Value, nbits: int) -> tuple[Value, Value | None]:
        """(index of the byte holding element `base`, run-time bit shift or None)."""
        facts = self.analysis.facts(base)
        divisor = facts.divisor if facts.divisor > 0 else 8
        if divisor > 1 << 16:  # a constant start's own value (-2**31 is no i32 constant)
            divisor = math.gcd(divisor, 1 << 16)
        new_base = self.map(base)
        if divisor * nbits % 8 == 0:
            # base = divisor * q exactly, so its first bit (divisor*nbits/8) * q is a byte start.
            quotient = self.index.div(new_base, divisor)
            return self.index.value(self.index.mul(quotient, divisor * nbits // 8)), None
        if 8 % nbits == 0:  # 8 / nbits elements a byte (a power of 2), floored as below
            per_byte = 8 // nbits
            byte_index = self.index.op("shr", new_base, per_byte.bit_length() - 1)
            in_byte = self.index.op("and", new_base, per_byte - 1)
            return byte_index, self.index.value(self.index.mul(in_byte, nbits))
        if facts.nonnegative():
            groups = self.index.div(new_base, 8)  # 8 elements are exactly nbits bytes
            within = self.index.rem(new_base, 8)
        else:  # floored, so that a slice starting before the tensor (x[i - 3 :+ 16]) keeps
            # its elements 0..7 of a group in bits 0..7 * nbits of the group's bytes
            groups = self.index.op("shr", new_base, 3)
            within = self.index.op("and", new_base, 7)
        bits = self.index.mul(within, nbits)
        byte = self.index.add(self.index.mul(groups, nbits), self.index.div(bits, 8))
        shift = self.index.rem(bits, 8)
        return self.index.value(byte), self.index.value(shift)

    def byte_mask(
        self, lane_mask: Value | None, layout: _ByteLayout, shift: Value | None
    ) -> Value | None:
        """A byte is accessed when an active lane touches it (at this run-time shift)."""
        if lane_mask is None and (shift is None or layout.always_needed()):
            return None
        result = None
        depth = max(len(lanes) for lanes in layout.touch)
        for step in range(depth):
            entries = [sorted(lanes.items())[min(step, len(lanes) - 1)] for lanes in layout.touch]
            term = None
            if lane_mask is not None:
                picks = [lane for lane, _ in entries]
                term = self.builder.add(ShuffleOp.create([lane_mask], picks))
            if shift is not None:
                touched = self.shift_selects(shift, [bits for _, bits in entries])
                term = (
                    touched
                    if term is None
                    else self.builder.add(BinaryOp.create("and", term, touched))
                )
            assert term is not None  # a lane mask or a shift (else the early return)
            result = (
                term if result is None else self.builder.add(BinaryOp.create("or", result, term))
            )
        return result

    def shift_selects(self, shift: Value, sets: list[int]) -> Value:
        """Per byte, whether bit `shift` of its constant set is on."""
        count = len(sets)
        table = self.builder.add(VectorConstantOp.create(sets, I32))
        amount = self.builder.add(SplatOp.create_vector(shift, count))
        shifted = self.builder.add(BinaryOp.create("shr", table, amount))
        one = self.builder.add(SplatOp.create_vector(self.index.constant(1), count))
        bit = self.builder.add(BinaryOp.create("and", shifted, one))
        zero = self.builder.add(SplatOp.create_vector(self.index.constant(0), count))
        return self.builder.add(BinaryOp.create("ne", bit, zero))

    def load(self, op: LoadThreadOp) -> Value:
        element = op.access_dtype
        base, shift = self.byte_base(op.base, element.nbits)
        layout = _ByteLayout(op.offsets, element.nbits, shift is not None)
        lane_mask = self.map(op.mask) if op.mask is not None else None
        memory = self.map(op.memory)
        byte_mask = self.byte_mask(lane_mask, layout, shift)
        data = self.builder.add(
            LoadThreadOp.create(memory, base, layout.bytes, byte_mask, access=U8)
        )
        values = self.builder.add(
            UnpackBitsOp.create(data, element, layout.bit_offsets, shift, op.result.name_hint)
        )
        if op.mask is None or self.bytes_share_mask(op.mask, layout):
            return values
        return self.masked_to_zero(self.map(op.mask), values, element)

    def bytes_share_mask(self, mask: Value, layout: _ByteLayout) -> bool:
        """Whether the lanes that touch each byte provably have one mask value (a u4 row
        whose edge is a multiple of 2, ...): a lane that is off then sits in bytes the load
        leaves at 0, so its code is 0 with no select."""
        classes = lane_classes(mask, self.analysis)
        return all(len({classes[lane] for lane in lanes}) == 1 for lanes in layout.touch)

    def masked_to_zero(self, lane_mask: Value, values: Value, element: DType) -> Value:
        """`values` (of the packed dtype `element`) with the lanes the mask is off for at
        code 0."""
        zero = self.builder.add(ConstantOp.create(0, U8))
        zeros = self.builder.add(SplatOp.create_vector(zero, as_vector(values.type).size))
        codes_type = dtype(f"u{element.nbits}")
        zero_codes = self.builder.add(CastOp.create(zeros, codes_type))
        if element != codes_type:
            zero_codes = self.builder.add(ViewOp.create(zero_codes, element))
        return self.builder.add(SelectOp.create(lane_mask, values, zero_codes))

    def store(self, op: StoreThreadOp) -> None:
        element = op.access_dtype
        base, shift = self.byte_base(op.base, element.nbits)
        layout = _ByteLayout(op.offsets, element.nbits, shift is not None)
        memory = self.map(op.memory)
        value = self.map(op.value)
        nbytes = len(layout.bytes)
        if shift is None and all(layout.whole_bytes(op.offsets)):
            byte_mask = self.whole_byte_mask(op.mask, layout)
            if op.mask is None or byte_mask is not None:
                data = self.builder.add(PackBitsOp.create(value, layout.bit_offsets, nbytes))
                self.builder.insert(
                    StoreThreadOp.create(memory, base, data, layout.bytes, byte_mask, access=U8)
                )
                return
        lane_mask = self.map(op.mask) if op.mask is not None else None
        if lane_mask is not None and len(set(op.offsets)) < len(op.offsets):
            # lanes past an edge may sit where others are written (a tile's rows overhanging
            # a narrower tensor's row: row 0's column N is row 1's column 0), and pack_bits
            # ORs the fields of lanes at one place: those lanes must pack as zeros
            value = self.masked_to_zero(lane_mask, value, element)
        data = self.builder.add(PackBitsOp.create(value, layout.bit_offsets, nbytes, shift))
        fields = self.field_masks(element, len(op.offsets), lane_mask)
        bitmask = self.builder.add(PackBitsOp.create(fields, layout.bit_offsets, nbytes, shift))
        byte_mask = self.byte_mask(lane_mask, layout, shift)
        self.builder.insert(
            StoreBitsOp.create(memory, base, data, bitmask, layout.bytes, byte_mask)
        )

    def whole_byte_mask(self, mask: Value | None, layout: _ByteLayout) -> Value | None:
        """Per byte, the mask of the lanes that fill it, where they provably share it (a u4
        tile's rows masked by row): each byte is then written whole or left alone, so a plain
        masked byte store does what the atomic read-modify-write of `st_bits` would. None
        where there is no mask or lanes of one byte may differ (two lanes at one place, a
        row's lane past a narrower tensor's edge and the next row's first, are one off and one
        on: they keep st_bits, and their packing as zeros)."""
        if mask is None or not self.bytes_share_mask(mask, layout):
            return None
        firsts = [min(lanes) for lanes in layout.touch]
        return self.builder.add(ShuffleOp.create([self.map(mask)], firsts))

    def field_masks(self, element: DType, lanes: int, lane_mask: Value | None) -> Value:
        """Per lane, all ones of the element's width where the lane is written, else 0."""
        codes_type = dtype(f"u{element.nbits}")
        ones = self.builder.add(VectorConstantOp.create([codes_type.max] * lanes, codes_type))
        if lane_mask is None:
            return ones
        zeros = self.builder.add(VectorConstantOp.create([0] * lanes, codes_type))
        return self.builder.add(SelectOp.create(lane_mask, ones, zeros))


@register_pass
class BitPackingPass(Pass):
    name = "bit-packing"
    stage = "thread"

    def run(self, module: Module) -> Module:
        return _BitPacking().run(module)


__all__ = ["BitPackingPass", "VectorType", "math"]
