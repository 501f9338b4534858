"""`ld` and `st` of sub-byte elements straight from packed storage (1 to 7 bits, and bool).

The pipeline never produces these (bit-packing turns packed accesses into byte loads with
`unpack_bits`, and stores into `pack_bits` + `st_bits`), but they are valid thread IR, so the
backend implements them simply and correctly. Element e of an n-bit tensor occupies bits
[e·n, e·n + n) of the buffer, so lane i reads the 16-bit window of bytes byte, byte + 1
(the second read as 0 past the end of the buffer) and shifts; a store merges its field into
those two bytes with atomic and/or, since neighbouring elements may belong to other threads.
Masked-off lanes read element 0 and produce 0, and write into a private dummy slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir
from lpir.backends.llvm.types import I8, I32, I64, constant

from lpir.dtypes import DType

if TYPE_CHECKING:
    from lpir.backends.llvm.memory import Memory


class PackedMemory:
    def __init__(self, memory: Memory):
        self.memory = memory
        self.b = memory.b

    def bit_positions(
        self, base: ir.Value, offsets: list[int], dt: DType, mask: ir.Value | None
    ) -> tuple[ir.Value, ir.Value]:
        """(byte index, bit shift) vectors of each lane's first bit (i64, i32)."""
        b = self.b
        lanes = len(offsets)
        wide = b.sext(base, I64) if base.type != I64 else base
        index = b.add(
            self.memory.vectors.splat(wide, lanes),
            ir.Constant(ir.VectorType(I64, lanes), list(offsets)),
        )
        if mask is not None:
            index = b.select(mask, index, constant(index, I64, 0))
        bit = b.mul(index, constant(index, I64, dt.nbits))
        byte = b.ashr(bit, constant(bit, I64, 3))
        shift = b.trunc(b.and_(bit, constant(bit, I64, 7)), ir.VectorType(I32, lanes))
        return byte, shift

    def load(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        dt: DType,
        mask: ir.Value | None,
        nbytes: int,
    ) -> ir.Value:
        b = self.b
        lanes = len(offsets)
        byte, shift = self.bit_positions(base, offsets, dt, mask)
        low = ir.Constant(ir.VectorType(I8, lanes), None)
        high = low
        last = ir.Constant(I64, max(0, nbytes - 1))
        for lane in range(lanes):
            position = ir.Constant(I32, lane)
            index = b.extract_element(byte, position)
            low = b.insert_element(low, b.load(self.address(pointer, index), typ=I8), position)
            following = b.add(index, ir.Constant(I64, 1))
            inside = b.icmp_signed("<=", following, last)
            value = b.load(self.address(pointer, b.select(inside, following, last)), typ=I8)
            high = b.insert_element(high, b.select(inside, value, ir.Constant(I8, 0)), position)
        word_type = ir.VectorType(I32, lanes)
        window = b.or_(
            b.zext(low, word_type), b.shl(b.zext(high, word_type), constant(shift, I32, 8))
        )
        code = b.and_(b.lshr(window, shift), constant(shift, I32, (1 << dt.nbits) - 1))
        value = self.memory.vectors.register_of_codes(code, dt)
        if mask is not None:
            value = b.select(mask, value, ir.Constant(value.type, None))
        return value

    def store(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        value: ir.Value,
        dt: DType,
        mask: ir.Value | None,
        nbytes: int,
    ) -> None:
        b = self.b
        lanes = len(offsets)
        byte, shift = self.bit_positions(base, offsets, dt, mask)
        word_type = ir.VectorType(I32, lanes)
        code = b.and_(b.zext(value, word_type), constant(shift, I32, (1 << dt.nbits) - 1))
        bits = b.shl(code, shift)
        field = b.shl(constant(shift, I32, (1 << dt.nbits) - 1), shift)
        last = ir.Constant(I64, max(0, nbytes - 1))
        for lane in range(lanes):
            position = ir.Constant(I32, lane)
            active = b.extract_element(mask, position) if mask is not None else None
            index = b.extract_element(byte, position)
            lane_bits = b.extract_element(bits, position)
            lane_field = b.extract_element(field, position)
            for part in (0, 1):
                part_field = b.trunc(b.lshr(lane_field, ir.Constant(I32, 8 * part)), I8)
                part_bits = b.trunc(b.lshr(lane_bits, ir.Constant(I32, 8 * part)), I8)
                target = b.add(index, ir.Constant(I64, part)) if part else index
                wanted = b.icmp_unsigned("!=", part_field, ir.Constant(I8, 0))
                if part:
                    wanted = b.and_(wanted, b.icmp_signed("<=", target, last))
                if active is not None:
                    wanted = b.and_(wanted, active)
                safe = b.select(wanted, target, ir.Constant(I64, 0))
                address = b.select(wanted, self.address(pointer, safe), self.memory.dummy)
                self.memory.merge(address, b.xor(part_field, ir.Constant(I8, 0xFF)), part_bits)

    def address(self, pointer: ir.Value, index: ir.Value) -> ir.Value:
        return self.b.gep(pointer, [index], inbounds=True, source_etype=I8)


__all__ = ["PackedMemory"]
