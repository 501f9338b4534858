"""Data movement inside one thread's registers: shuffles, splats, lane reductions, bit fields.

`unpack_bits` cuts n-bit fields out of a byte vector: per lane it gathers the (up to three)
bytes its field touches with shufflevectors, joins them into an i32, shifts by the field's bit
offset (plus the optional run-time shift) and masks — whole-vector ops, no per-lane branches.
Many 4-bit fields are cheaper from the bytes and one copy of them shifted by 4 (no shift per
lane: `unpack_byte_fields`). A signed field (i1..i7) is shifted to the top of its word instead
and arithmetically back down: cut and sign-extended in as many instructions as an unsigned
field is cut.
Fields inside one byte each that the lanes read out of the bytes' order, from more bytes than
one byte permute reads (a tile loaded row by row and held column by column), are cut at byte
width instead (`unpack_ordered_bytes`): the bytes put in the lanes' order, each bit
position's fields cut from all of them, and each lane's picked, so the transposition moves
bytes, not the words each lane's bytes would be gathered into.
`pack_bits` is the reverse: each lane's shifted field is split into byte planes, and every
output byte ORs together the planes that land on it.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir
from lpir.backends.llvm.types import I8, I16, I32, constant, element

from lpir.dtypes import DType
from lpir.ir.ops.thread import field_shifts
from lpir.ir.order import tree_levels


def _mask(indices: list[int]) -> ir.Constant:
    return ir.Constant(ir.VectorType(I32, len(indices)), list(indices))


MAX_GATHER_BYTES = 128  # what one two-register byte permute (AVX-512 `vpermt2b`) reads
WORD_LANES = 16  # i32 lanes of a 512-bit register: one variable shift each


def _shifted_copies_fit(data: ir.Value, dt: DType, offsets: list[int]) -> bool:
    """Whether unpack_byte_fields applies and pays: every field inside one byte, the shifted
    copies of the bytes together no more than one byte permute reads, and fewer instructions
    to make them (a shift and a join each) than the variable shifts they save (one per
    register of words). So 4-bit fields (2 positions), not 2- or 1-bit ones (4, 8)."""
    if any(o % 8 + dt.nbits > 8 for o in offsets):
        return False
    copies = len({o % 8 for o in offsets})
    saved = -(-len(offsets) // WORD_LANES)
    return data.type.count * copies <= MAX_GATHER_BYTES and 2 * (copies - 1) < saved


def _lane_ordered_bytes(
    count: int, dt: DType, offsets: list[int]
) -> tuple[list[int], list[int]] | None:
    """(the byte picks, each lane's bit offset into them) that put the bytes in the order the
    lanes first read them, where every field lies inside one byte and the lanes read more
    bytes than one byte permute reads (`count`) out of order; else None (in order, a lane's
    bytes are near its register's and the gather into words reads them in place)."""
    if count <= MAX_GATHER_BYTES or any(o % 8 + dt.nbits > 8 for o in offsets):
        return None
    picks = list(dict.fromkeys(o // 8 for o in offsets))
    if picks == list(range(len(picks))):
        return None
    place = {byte: index for index, byte in enumerate(picks)}
    return picks, [8 * place[o // 8] + o % 8 for o in offsets]


def _signed_field(dt: DType) -> bool:
    """A signed integer narrower than its i8 register, which unpacking sign-extends."""
    return dt.kind == "int" and dt.nbits < 8


class Vectors:
    def __init__(self, builder: ir.IRBuilder):
        self.b = builder

    def splat(self, scalar: ir.Value, lanes: int) -> ir.Value:
        vector_type = ir.VectorType(scalar.type, lanes)
        single = self.b.insert_element(
            ir.Constant(vector_type, ir.Undefined), scalar, ir.Constant(I32, 0)
        )
        return self.b.shuffle_vector(
            single, ir.Constant(vector_type, ir.Undefined), _mask([0] * lanes)
        )

    def pick(self, vector: ir.Value, indices: list[int], fill: ir.Value | None = None) -> ir.Value:
        """A new vector of vector[i] for i in indices; an index past the end takes `fill`'s lane
        (a second vector of the same type, zeros by default)."""
        other = fill if fill is not None else ir.Constant(vector.type, None)
        if indices == list(range(vector.type.count)):
            return vector
        return self.b.shuffle_vector(vector, other, _mask(indices))

    def concat(self, vectors: list[ir.Value]) -> ir.Value:
        """The lanes of all `vectors`, in order (one element type)."""
        while len(vectors) > 1:
            merged = []
            for first, second in zip(vectors[0::2], vectors[1::2]):
                merged.append(self.concat_two(first, second))
            if len(vectors) % 2:
                merged.append(vectors[-1])
            vectors = merged
        return vectors[0]

    def concat_two(self, first: ir.Value, second: ir.Value) -> ir.Value:
        n, m = first.type.count, second.type.count
        width = max(n, m)
        if n != width:
            first = self.pick(first, list(range(n)) + [0] * (width - n))
        if m != width:
            second = self.pick(second, list(range(m)) + [0] * (width - m))
        return self.b.shuffle_vector(
            first, second, _mask(list(range(n)) + [width + j for j in range(m)])
        )

    def shuffle(self, sources: list[ir.Value], indices: list[int]) -> ir.Value:
        if len(sources) == 2 and sources[0].type == sources[1].type:
            return self.b.shuffle_vector(sources[0], sources[1], _mask(indices))
        return self.pick(self.concat(sources), list(indices))

    def reduce_lanes(
        self,
        vector: ir.Value,
        group: int,
        combine: Callable[[ir.Value, ir.Value], ir.Value],
        any_order: bool = False,
    ) -> ir.Value:
        """Lane i of the result combines lanes i*group .. i*group+group-1 as the balanced tree
        of lpir.ir.order. Each level is one vector operation: the terms are kept term-major
        (position k of every group side by side), so the left and right halves of all the
        level's pairs are two shuffles of the previous level.

        Where the combination gives the same bits in any order (`any_order`: integers' wrapping
        sums, maxima, minima), each level combines the first half of the terms with the second
        instead: LLVM's x86 code generation of the neighbours' tree over a select of 512 lanes
        took 4.9 s, of the halves 0.08 s (a search's min(where(c > t, arange(n), n)))."""
        outputs = vector.type.count // group
        level = self.pick(vector, [j * group + k for k in range(group) for j in range(outputs)])

        def lanes(positions: list[int]) -> list[int]:
            return [p * outputs + j for p in positions for j in range(outputs)]

        if any_order:
            return self.reduce_halves(level, group, outputs, combine)
        for left, right, carried in tree_levels(group):
            combined = combine(self.pick(level, lanes(left)), self.pick(level, lanes(right)))
            if carried is not None:
                combined = self.concat([combined, self.pick(level, lanes([carried]))])
            level = combined
        return level

    def reduce_halves(
        self,
        level: ir.Value,
        terms: int,
        outputs: int,
        combine: Callable[[ir.Value, ir.Value], ir.Value],
    ) -> ir.Value:
        """`terms` term-major rows of `outputs` lanes combined half with half (an odd row out
        carried to the next level) down to one row."""
        while terms > 1:
            half = terms // 2
            first = self.pick(level, list(range(half * outputs)))
            second = self.pick(level, list(range(half * outputs, 2 * half * outputs)))
            combined = combine(first, second)
            if terms % 2:
                last = self.pick(level, list(range(2 * half * outputs, terms * outputs)))
                combined = self.concat([combined, last])
            level, terms = combined, half + terms % 2
        return level

    # ---- bit fields -----------------------------------------------------------------------
    def unpack_bits(
        self, data: ir.Value, dt: DType, offsets: list[int], shift: ir.Value | None
    ) -> ir.Value:
        """Lanes of `dt` (register values, in i8 or i1) from the fields of a byte vector."""
        if shift is None and _shifted_copies_fit(data, dt, offsets):
            return self.unpack_byte_fields(data, dt, offsets)
        order = None if shift is not None else _lane_ordered_bytes(data.type.count, dt, offsets)
        if order is not None:
            return self.unpack_ordered_bytes(data, dt, *order)
        b = self.b
        lanes = len(offsets)
        slack = field_shifts(dt.nbits)[-1] if shift is not None else 0
        planes = max((o % 8 + dt.nbits - 1 + slack) // 8 + 1 for o in offsets)
        count = data.type.count
        # One shuffle gathers each lane's bytes, least significant first, into the four bytes
        # of an i32 (indices past the data pick zeros): a byte permute with zeroing on x86.
        picks = []
        for offset in offsets:
            for plane in range(4):
                byte = offset // 8 + plane
                picks.append(byte if plane < planes and byte < count else count)
        zeros = ir.Constant(data.type, None)
        gathered = b.shuffle_vector(data, zeros, _mask(picks))
        word = b.bitcast(gathered, ir.VectorType(I32, lanes))
        if _signed_field(dt):
            # Shifted up to the word's top and back down arithmetically: sign-extended in the
            # two shifts an unsigned field takes (a shift and a mask), not four.
            top = ir.Constant(ir.VectorType(I32, lanes), [32 - dt.nbits - o % 8 for o in offsets])
            if shift is not None:
                top = b.sub(top, self.splat(shift, lanes))
            spare = constant(word, I32, 32 - dt.nbits)
            return b.trunc(b.ashr(b.shl(word, top), spare), ir.VectorType(I8, lanes))
        amount = ir.Constant(ir.VectorType(I32, lanes), [o % 8 for o in offsets])
        if shift is not None:
            amount = b.add(amount, self.splat(shift, lanes))
        field = b.and_(b.lshr(word, amount), constant(word, I32, (1 << dt.nbits) - 1))
        return self.register_of_codes(field, dt)

    def unpack_ordered_bytes(
        self, data: ir.Value, dt: DType, picks: list[int], offsets: list[int]
    ) -> ir.Value:
        """`unpack_bits` of fields inside one byte each from bytes that the lanes read out of
        order (a tile loaded row by row and held column by column: a KV cache's keys,
        transposed for the dot), at byte width: the bytes put in the lanes' order by one byte
        shuffle (`picks`, `offsets` into them: `_lane_ordered_bytes`), the fields of each bit
        position cut from all of them at once, and one byte shuffle picks each lane's. Gathered
        into words first, the transposition moved 4 bytes a lane from every register of the
        bytes into every register of words."""
        b = self.b
        ordered = self.pick(data, picks)
        positions = sorted({o % 8 for o in offsets})
        copies = [self.field_at(ordered, dt, position) for position in positions]
        count = len(picks)
        lanes = [positions.index(o % 8) * count + o // 8 for o in offsets]
        fields = self.pick(self.concat(copies), lanes)
        if dt.is_bool:
            return b.trunc(fields, ir.VectorType(ir.IntType(1), len(offsets)))
        return fields

    def field_at(self, data: ir.Value, dt: DType, position: int) -> ir.Value:
        """Each byte's `dt` field at bit `position` as a register value (sign-extended where
        signed, the code in the low bits else)."""
        b = self.b
        if _signed_field(dt):
            spare = 8 - dt.nbits
            return b.ashr(
                b.shl(data, constant(data, I8, spare - position)), constant(data, I8, spare)
            )
        if position:
            data = b.lshr(data, constant(data, I8, position))
        if position + dt.nbits < 8:
            data = b.and_(data, constant(data, I8, (1 << dt.nbits) - 1))
        return data

    def unpack_byte_fields(self, data: ir.Value, dt: DType, offsets: list[int]) -> ir.Value:
        """`unpack_bits` of fields that never straddle a byte (1, 2 and 4 bits) without a
        shift per lane: the bytes are shifted once per field position instead (one 16-bit
        shift of the whole vector each; the bits that come in from the next byte are masked
        off with the rest), and the gather picks each lane's byte from the copy in which its
        field starts at bit 0. For u4 that is one shift per 64 weights where there was one
        per 16, and the byte permute stays one instruction per register."""
        b = self.b
        positions = sorted({o % 8 for o in offsets})
        count = data.type.count
        signed = _signed_field(dt)
        if signed:
            # A signed field is moved to its byte's top bits instead, and the byte to its
            # word's top byte: one arithmetic shift then cuts and sign-extends it, as one mask
            # cuts an unsigned field (a shift up and down again took two).
            lift = [8 - dt.nbits - p for p in positions]
            copies = [data if k == 0 else self.shift_bytes_left(data, k) for k in lift]
        else:
            copies = [data if p == 0 else self.shift_bytes_right(data, p) for p in positions]
        picks = []
        for offset in offsets:
            # The byte in each byte of its word: a mask (or a lookup, which reads the low bits)
            # cuts the field from the lowest and an arithmetic shift from the highest; the
            # rest need no zeros, which one byte permute of the copies cannot pick.
            picks.extend([positions.index(offset % 8) * count + offset // 8] * 4)
        gathered = self.pick(self.concat(copies), picks)
        word = b.bitcast(gathered, ir.VectorType(I32, len(offsets)))
        if signed:
            spare = constant(word, I32, 32 - dt.nbits)
            return b.trunc(b.ashr(word, spare), ir.VectorType(I8, len(offsets)))
        field = b.and_(word, constant(word, I32, (1 << dt.nbits) - 1))
        return self.register_of_codes(field, dt)

    def shift_bytes_right(self, data: ir.Value, amount: int) -> ir.Value:
        """Each byte's bits from `amount` up in its low bits, and above them the next byte's
        low bits or zeros (a 16-bit shift: one instruction, where an 8-bit one needs a mask)."""
        return self._shifted_in_pairs(data, self.b.lshr, amount)

    def shift_bytes_left(self, data: ir.Value, amount: int) -> ir.Value:
        """Each byte's bits below 8 - `amount` moved up by `amount`, and below them the
        previous byte's top bits or zeros (a 16-bit shift, as `shift_bytes_right`)."""
        return self._shifted_in_pairs(data, self.b.shl, amount)

    def _shifted_in_pairs(self, data: ir.Value, shift: Callable, amount: int) -> ir.Value:
        """`data`'s bytes shifted by `amount` as 16-bit pairs (`shift`: the builder's lshr or
        shl), an odd count padded with a zero byte for the shift and cut back after."""
        b = self.b
        count = data.type.count
        if count % 2:
            data = self.pick(data, list(range(count + 1)))  # one zero byte more
        pairs = b.bitcast(data, ir.VectorType(I16, data.type.count // 2))
        shifted = b.bitcast(shift(pairs, constant(pairs, I16, amount)), data.type)
        return self.pick(shifted, list(range(count))) if count % 2 else shifted

    def fields_in_words(self, data: ir.Value, dt: DType, offsets: list[int]) -> ir.Value:
        """<N x i16>: each lane's field (of at most 9 bits) in its low bits, and whatever
        follows the field in the bytes above it: indices for permutes that read only the low
        bits. A byte permute fills twice the lanes of 16 bits as of 32, and a 16-bit variable
        shift likewise (AVX-512BW)."""
        b = self.b
        count = data.type.count
        picks: list[int] = []
        for offset in offsets:
            picks.extend(min(offset // 8 + plane, count) for plane in (0, 1))  # past the end: 0
        gathered = self.pick(data, picks)
        words = b.bitcast(gathered, ir.VectorType(I16, len(offsets)))
        amounts = ir.Constant(words.type, [o % 8 for o in offsets])
        return b.lshr(words, amounts)

    def register_of_codes(self, codes: ir.Value, dt: DType) -> ir.Value:
        """Register values (i8 lanes; i1 for bool) of n-bit codes held in i32 lanes."""
        b = self.b
        lanes = codes.type.count
        if dt.is_bool:
            return b.trunc(codes, ir.VectorType(ir.IntType(1), lanes))
        byte = b.trunc(codes, ir.VectorType(I8, lanes))
        if dt.kind == "int" and dt.nbits < 8:
            spare = constant(byte, I8, 8 - dt.nbits)
            byte = b.ashr(b.shl(byte, spare), spare)
        return byte

    def pack_bits(
        self,
        values: ir.Value,
        dt: DType,
        offsets: list[int],
        nbytes: int,
        shift: ir.Value | None,
    ) -> ir.Value:
        b = self.b
        lanes = len(offsets)
        codes = values
        if element(values.type) != I8:
            codes = b.zext(values, ir.VectorType(I8, lanes))
        codes = b.and_(codes, constant(codes, I8, (1 << dt.nbits) - 1))
        word = b.zext(codes, ir.VectorType(I32, lanes))
        amount = ir.Constant(ir.VectorType(I32, lanes), [o % 8 for o in offsets])
        if shift is not None:
            amount = b.add(amount, self.splat(shift, lanes))
        word = b.shl(word, amount)
        slack = field_shifts(dt.nbits)[-1] if shift is not None else 0
        planes = max((o % 8 + dt.nbits - 1 + slack) // 8 + 1 for o in offsets)
        parts = []
        for plane in range(planes):
            shifted = b.lshr(word, constant(word, I32, 8 * plane)) if plane else word
            parts.append(b.trunc(shifted, ir.VectorType(I8, lanes)))
        every = self.concat([*parts, ir.Constant(ir.VectorType(I8, 1), [0])])
        zero_index = planes * lanes
        contributions: list[list[int]] = [[] for _ in range(nbytes)]
        for lane, offset in enumerate(offsets):
            for plane in range(planes):
                byte = offset // 8 + plane
                if byte < nbytes:
                    contributions[byte].append(plane * lanes + lane)
        depth = max((len(c) for c in contributions), default=0)
        result = None
        for step in range(depth):
            picks = [c[step] if step < len(c) else zero_index for c in contributions]
            part = self.pick(every, picks)
            result = part if result is None else b.or_(result, part)
        return result if result is not None else ir.Constant(ir.VectorType(I8, nbytes), None)
