"""Casts from small floats and fp8 by table lookup, on hosts with AVX-512.

A float of n ≤ 8 bits has at most 256 codes, so `cast<T>` of it is a table of 2^n entries,
computed here with `lpir.dtypes.convert` (the interpreter's own semantics: the lookup is
bit-exact by construction, NaN payloads, signed zeros, rounding and saturation included). A
512-bit register holds 16 f32 or 32 f16/bf16 entries; `vpermps`/`vpermw` pick each lane's
entry out of one register and `vpermi2ps`/`vpermi2w` out of two, so a table of up to 4 register
pairs costs at most 4 permutes and 3 selects per 16 (or 32) lanes — against a dozen integer
ops for the decode of floats.py, and twice that with an encode to f16 behind it. Where the
codes with the sign bit set give the entries of the others with the sign bit set (fp8), the
lookup reads the half table and ORs the sign in: 2 register pairs and 1 select for fp8.

To f32, a format that f16 holds exactly goes through a table of f16 entries (32 per register)
and one exact `vcvtph2ps`: every small float and fp8 but the widest-range ones. Used when the
host has AVX-512 (BW for 16-bit entries, F for 32-bit ones) and the value is a vector;
everything else takes the generic path in casts.py.
"""

from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from lpir.backends.llvm.intrinsics import Intrinsics
from lpir.backends.llvm.types import F32, I16, I32, constant, element
from lpir.backends.llvm.vectors import Vectors

from lpir.dtypes import DType, convert, dtype

REGISTER_BITS = 512
MAX_REGISTER_PAIRS = 4


class TableCaster:
    """Emits table-lookup casts on an IRBuilder, given the host's CPU features."""

    def __init__(self, builder: ir.IRBuilder, intrinsics: Intrinsics, features: str):
        self.b = builder
        self.intrinsics = intrinsics
        self.vectors = Vectors(builder)
        self.features = set(features.split(","))

    def applies(self, value: ir.Value, source: DType, target: DType) -> bool:
        if not isinstance(value.type, ir.VectorType) or not source.is_float or source.nbits > 8:
            return False
        if target.name in ("f16", "bf16"):
            return "+avx512bw" in self.features
        if target.name != "f32":
            return False
        if "+avx512bw" in self.features and exact_through_f16(source):
            return True
        return "+avx512f" in self.features and fits(source, target)

    @staticmethod
    def per_register(target: DType) -> int:
        return REGISTER_BITS // target.nbits

    def cast(self, codes: ir.Value, source: DType, target: DType) -> ir.Value:
        """`cast<target>` of a vector of `source` codes (i8 lanes, or any wider lanes whose
        low bits are the codes)."""
        # Codes just cut out of i32 words (unpack_bits) index the tables as those words, with
        # no narrowing to i8 and widening back in between.
        index = wide_codes(codes) or codes
        if target.name == "f32" and index is not codes and one_register_pair(source, target):
            return self.lookup_all(index, source, target, I32)
        if target.name == "f32" and self.through_f16(source):
            # 32 f16 entries per register instead of 16 f32 ones: half the permutes, and one
            # exact vcvtph2ps per 16 lanes.
            return self.exact_f16_to_f32(self.lookup_all(index, source, dtype("f16"), I16))
        return self.lookup_all(index, source, target, I32 if target.nbits == 32 else I16)

    def cast_fields(
        self, data: ir.Value, offsets: list[int], source: DType, target: DType
    ) -> ir.Value | None:
        """`cast<target>` of the `source` fields at bit `offsets` of a byte vector (an
        `unpack_bits` the cast reads), or None where the lookup would not take 16-bit indices
        (its entries are not 16-bit). The fields go straight into 16-bit lanes, so no index is
        cut into 32 bits first and narrowed after (f6e3m2 -> f32 took 4 shifts, 4 narrowings
        and 4 register moves per 64 lanes that way; now 2 shifts)."""
        if not self.applies(data, source, target) or not self.takes_16_bit_indices(source, target):
            return None
        return self.cast(self.vectors.fields_in_words(data, source, offsets), source, target)

    def takes_16_bit_indices(self, source: DType, target: DType) -> bool:
        """Whether `cast` looks up 16-bit entries: to f16/bf16, or to f32 through f16 where
        the f32 table is more than one register pair."""
        if target.name != "f32":
            return True
        return not one_register_pair(source, target) and self.through_f16(source)

    def through_f16(self, source: DType) -> bool:
        return "+avx512bw" in self.features and exact_through_f16(source)

    def exact_f16_to_f32(self, halves: ir.Value) -> ir.Value:
        lanes = halves.type.count
        as_half = self.b.bitcast(halves, ir.VectorType(ir.HalfType(), lanes))
        return self.b.fpext(as_half, ir.VectorType(F32, lanes))

    def lookup_all(
        self, codes: ir.Value, source: DType, target: DType, entry: ir.IntType
    ) -> ir.Value:
        """The table entries of every lane, one register of indices at a time. Only the low
        `source.nbits` bits of each index are looked at."""
        b = self.b
        lanes = codes.type.count
        width = self.per_register(target)
        table = table_of(source, target)
        magnitudes = magnitude_table(source, target, entry.width)
        results = []
        for start in range(0, lanes, width):
            # lanes past the end read the zero fill (lane `lanes` of pick's second operand)
            chunk = self.vectors.pick(codes, [min(i, lanes) for i in range(start, start + width)])
            if element(chunk.type).width < entry.width:
                chunk = b.zext(chunk, ir.VectorType(entry, width))
            elif element(chunk.type).width > entry.width:
                chunk = b.trunc(chunk, ir.VectorType(entry, width))
            if magnitudes is None:
                results.append(self.lookup(chunk, table, entry, width))
            else:
                magnitude = self.lookup(chunk, magnitudes, entry, width)
                results.append(b.or_(magnitude, self.sign_of(chunk, source, entry)))
        picked = self.vectors.pick(self.vectors.concat(results), list(range(lanes)))
        if target.nbits == 32:
            return b.bitcast(picked, ir.VectorType(F32, lanes))
        return picked

    def sign_of(self, index: ir.Value, source: DType, entry: ir.IntType) -> ir.Value:
        """The code's sign bit (its top bit) moved to the entry's top bit."""
        sign = constant(index, entry, 1 << (source.nbits - 1))
        moved = constant(index, entry, entry.width - source.nbits)
        return self.b.shl(self.b.and_(index, sign), moved)

    def lookup(self, index: ir.Value, table: np.ndarray, entry: ir.IntType, width: int) -> ir.Value:
        """Each lane's entry of `table` (as integers) for its `index`."""
        b = self.b
        vector = ir.VectorType(entry, width)
        registers = table_registers(table, entry, width)
        if len(registers) == 1:
            return self.permute(registers[0], index, entry, width)
        pieces = [
            self.permute_pair(registers[i], index, registers[i + 1], entry, width)
            for i in range(0, len(registers), 2)
        ]
        # Index bits above a pair's 2·width entries choose the piece (a binary tree of selects).
        level = (2 * width).bit_length() - 1
        zero = ir.Constant(vector, [0] * width)
        while len(pieces) > 1:
            bit = ir.Constant(vector, [1 << level] * width)
            chosen = b.icmp_unsigned("!=", b.and_(index, bit), zero)
            pieces = [b.select(chosen, pieces[i + 1], pieces[i]) for i in range(0, len(pieces), 2)]
            level += 1
        return pieces[0]

    def permute(self, table: ir.Value, index: ir.Value, entry: ir.IntType, width: int) -> ir.Value:
        """vpermps / vpermw: table[index & (width - 1)] per lane."""
        name, table_type = self._permute_names(entry, width, pair=False)
        function = self._declare(name, table_type, [table_type, index.type])
        return self._call_on_floats(function, [table, index], entry, width)

    def permute_pair(
        self, low: ir.Value, index: ir.Value, high: ir.Value, entry: ir.IntType, width: int
    ) -> ir.Value:
        """vpermi2ps / vpermi2w: (low ++ high)[index & (2·width - 1)] per lane."""
        name, table_type = self._permute_names(entry, width, pair=True)
        function = self._declare(name, table_type, [table_type, index.type, table_type])
        return self._call_on_floats(function, [low, index, high], entry, width)

    def _permute_names(
        self, entry: ir.IntType, width: int, pair: bool
    ) -> tuple[str, ir.VectorType]:
        if entry == I32:
            name = "llvm.x86.avx512.vpermi2var.ps.512" if pair else "llvm.x86.avx512.permvar.sf.512"
            return name, ir.VectorType(F32, width)
        name = "llvm.x86.avx512.vpermi2var.hi.512" if pair else "llvm.x86.avx512.permvar.hi.512"
        return name, ir.VectorType(I16, width)

    def _call_on_floats(
        self, function: ir.Function, operands: list[ir.Value], entry: ir.IntType, width: int
    ) -> ir.Value:
        """Call a permute. The f32 forms take and give floats: tables (every operand but the
        index, which comes second) travel bitcast, which keeps every bit."""
        b = self.b
        if entry != I32:
            return b.call(function, operands)
        floats = ir.VectorType(F32, width)
        cast = [v if position == 1 else b.bitcast(v, floats) for position, v in enumerate(operands)]
        return b.bitcast(b.call(function, cast), ir.VectorType(I32, width))

    def _declare(self, name: str, result: ir.Type, arguments: list[ir.Type]) -> ir.Function:
        return self.intrinsics.declare(name, ir.FunctionType(result, arguments))


def table_registers(table: np.ndarray, entry: ir.IntType, width: int) -> list[ir.Constant]:
    """A table of codes (integers, unsigned) as constant registers of `width` `entry` lanes."""
    signed = np.where(table >= 1 << (entry.width - 1), table - (1 << entry.width), table)
    vector = ir.VectorType(entry, width)
    return [
        ir.Constant(vector, [int(v) for v in signed[i : i + width]])
        for i in range(0, table.size, width)
    ]


def wide_codes(codes: ir.Value) -> ir.Value | None:
    """The i32 vector that `codes` was truncated from, if it was: its low bits are the codes."""
    if isinstance(codes, ir.CastInstr) and codes.opname == "trunc":
        source = codes.operands[0]
        if element(source.type) == I32:
            return source
    return None


def one_register_pair(source: DType, target: DType) -> bool:
    """Whether the table of every source code fits one register pair of target entries."""
    return 1 << source.nbits <= 2 * TableCaster.per_register(target)


def fits(source: DType, target: DType) -> bool:
    """Whether the table of every source code fits the permutes' register pairs."""
    return 1 << source.nbits <= 2 * TableCaster.per_register(target) * MAX_REGISTER_PAIRS


@functools.cache
def magnitude_table(source: DType, target: DType, entry_bits: int) -> np.ndarray | None:
    """The first half of the table (the codes with the sign bit clear) where the second half
    is the same entries with the sign bit set and that halves the register pairs it takes:
    the lookup then reads the half, and the code's sign bit is ORed in (two instructions for
    a permute and a select or more: fp8's 256 f16 entries are 2 register pairs, not 4)."""
    table = table_of(source, target)
    size = 1 << source.nbits
    width = TableCaster.per_register(target)
    if not source.is_float or size <= 2 * width:
        return None
    half, sign = size // 2, 1 << (entry_bits - 1)
    if not np.array_equal(table[half:size], table[:half] | sign):
        return None
    return table[:half]


@functools.cache
def exact_through_f16(source: DType) -> bool:
    """Whether source -> f16 -> f32 gives the same f32 bits as source -> f32 for every code
    (true for every small float and fp8 whose range f16 covers). The f16 -> f32 step is the
    hardware's, which equals numpy's for every f16 that is not a signaling NaN; the f16 table
    holds none (checked too)."""
    if source.nbits > 8 or not fits(source, dtype("f16")):
        return False
    half = table_of(source, dtype("f16"))[: 1 << source.nbits].astype(np.uint16)
    direct = table_of(source, dtype("f32"))[: 1 << source.nbits].astype(np.uint32)
    through = half.view(np.float16).astype(np.float32).view(np.uint32)
    signaling = ((half & 0x7C00) == 0x7C00) & ((half & 0x3FF) != 0) & ((half & 0x200) == 0)
    return bool(np.array_equal(through, direct) and not signaling.any())


@functools.cache
def table_of(source: DType, target: DType) -> np.ndarray:
    """The target codes of `cast<target>` of every source code, as integers: at least one
    register's worth, and a whole number of register pairs when more."""
    codes = np.arange(1 << source.nbits, dtype=np.uint16).astype(source.code_numpy_dtype)
    values = convert(source.from_codes(codes), source, target)
    table = np.asarray(target.to_codes(values)).astype(np.int64)
    width = TableCaster.per_register(target)
    size = width if table.size <= width else -(-table.size // (2 * width)) * 2 * width
    return np.resize(table, size)  # repeats: an index's bits above the code do not matter


__all__ = ["TableCaster", "table_of", "table_registers"]
