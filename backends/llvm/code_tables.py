"""Elementwise functions of small codes as table lookups (hosts with AVX-512F).

A vector computed elementwise from the codes of a type of at most 5 bits (u4 weights) and from
values that are the same across each 16-lane register (a row's scale, a zero point) takes, in
each register, at most 32 values: F(code) for one function F per register. It is therefore
`table[code]`, the table F(0), F(1), ... computed once on 16 (or 32) lanes with the same LLVM
operations, and each register of the result is one `vpermps` (`vpermi2ps` for 32 entries).
examples/gemv_wq.lp's `(cast<f32>(w) - 8) * s` then costs one multiply of a 16-entry table by
s per row and one permute per 16 weights, where it cost a conversion, a subtraction and a
multiply per 16 weights; the mask that cuts the fields out of their words goes too (a permute
reads the low 4 or 5 bits of its index, and a table of fewer codes repeats to fill them).
Values of 16-bit lanes (f16, bf16) are tabulated too, and casts of tabulated values:
the tensor-core kernels' `cast<f16>(w) - ZERO`, cast to f32 for the CPU's dot, is one table
of f32 entries (a 16-bit value's own lookups permute its entries zero-extended to 32 bits,
and are left to LLVM to drop where nothing reads them). A bf16 chain (`cast<bf16>(w) - ZERO`
of skinny_wq with bf16 x, which the CPU's `dot_pairs` multiplies as bf16) is tabulated in
16-bit lanes instead, on hosts with AVX-512BW: its codes are cut straight into 16-bit words
(`fields_in_words`) and each register of 32 lanes is one `vpermw` of a 32-entry table, where
32-bit lanes took two index registers, two `vpermps` and a permute to narrow them.

A gathered load from a table (`ld` with a base per lane, lower-to-threads' form of a gather)
whose bases and bounds mask are functions of codes is one too: NF4's `cb[cast<i32>(q)]`, a
16-entry codebook indexed by u4 codes. Each table register of positions is read once (a masked
vector load where the positions are constants, else a masked gather), its lanes masked by the
access's bounds as the codes' lanes are (a code whose position lies outside the tensor reads
0, and nothing outside is read), and each register of the result is one permute. A mask term
that is no function of the code (an edge of the other dimensions) selects after it. Values
that only such lookups read are tabulated when a reader asks (`lazy`), and emitted as they
are: comparisons and masks of codes, shuffles of codes that share one table (bytes' high and
low nibbles interleaved), casts of fields cut out by a shift or a mask of at most 5 bits.

The results are the bits the direct computation gives: each entry is computed by the same
operations (`Arithmetic`, the casts' tables) on the same operands, once per distinct operand
instead of once per lane. A value is tabulated only where that is cheaper: a table built
from constants (LLVM folds it), or fewer distinct tables than registers of lanes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llvmlite import ir
from lpir.backends.llvm.lookup import TableCaster, table_of, table_registers
from lpir.backends.llvm.types import F32, I16, I32, lane_type, memory_type

from lpir.dtypes import DType, dtype
from lpir.ir.core import Operation, Value
from lpir.ir.types import VectorType, as_memory, as_vector

if TYPE_CHECKING:
    from lpir.backends.llvm.kernel import KernelEmitter

REGISTER_LANES = 16  # f32 or i32 lanes of a 512-bit register
WORD_LANES = 32  # 16-bit lanes of a 512-bit register
MAX_CODE_BITS = 5  # 32 entries: one register pair (of 32-bit entries; one of 16-bit ones)


@dataclass
class Tabulated:
    """A vector value as table lookups: lane i is
    `tables[chunk_tables[i // lanes]][index[i]]`."""

    index: ir.Value  # <N x i32> (<N x i16> for 16-bit lanes): each lane's code in its low bits
    tables: list[list[ir.Value]]  # each table as 1 or 2 registers of `lanes` entries
    chunk_tables: tuple[int, ...]  # which table each register of `lanes` lanes reads
    constant: bool  # every table built from constants only
    emitted: ir.Value | None = field(default=None)  # the lookups, as registered for the value
    lanes: int = REGISTER_LANES  # 16 (32-bit entries) or 32 (16-bit entries in 16-bit lanes)


@dataclass
class Uniform:
    """A vector operand that is one value across each register of lanes: `keys[c]` names
    register c's value and `scalars[key]` is that value."""

    keys: tuple
    scalars: dict
    constant: bool


class CodeTables:
    """Tabulates casts of small codes and the elementwise ops that follow them, as the kernel
    emitter `e` reaches them (`emit` returns None where an op is emitted directly)."""

    def __init__(self, e: KernelEmitter, features: str):
        self.e = e
        self.enabled = "+avx512f" in features.split(",")
        self.word_lanes = "+avx512bw" in features.split(",")  # vpermw, 16-bit shifts
        self.forms: dict[int, Tabulated] = {}
        self.lazy: dict[int, Operation] = {}  # values tabulated only when a reader asks
        self.untabulated: dict[int, ir.Value] = {}  # lazy values found not to be, as emitted

    def emit(self, op: Operation) -> ir.Value | None:
        if not self.enabled:
            return None
        if _lazily_tabulable(op):
            self.lazy[id(op.result)] = op
            return None
        if not _tabulable_result(op):
            return None
        if op.name == "ld":
            return self.table_load(op)
        if op.name == "cast":
            form = self.codes_cast(op) or self.cast_of_tables(op)
        elif op.__class__.__name__ in ("BinaryOp", "UnaryOp"):
            form = self.derived(op)
        else:
            return None
        if form is None:
            return None
        if op.name == "cast" and _widens_signed_codes(op):
            # The value is the sign extension unpacking made (one shift): the lookups would
            # copy it. The tables stay, for the ops that follow.
            source, target = _dtype(op.operands[0]), _dtype(op.result)
            form.emitted = self.e.caster.cast(self.e.get(op.operands[0]), source, target)
        else:
            form.emitted = self.lookups(form, op.result)
        self.forms[id(op.result)] = form
        return form.emitted

    # ---- building tables ------------------------------------------------------------------
    def codes_cast(self, op: Operation) -> Tabulated | None:
        """`cast<T>(q)` of codes of at most 5 bits: a constant table (the interpreter's own
        conversion of every code, `lookup.table_of`)."""
        source, target = _dtype(op.operands[0]), _dtype(op.result)
        if source.is_bool or source.nbits > MAX_CODE_BITS or not self.e.has(op.operands[0]):
            return None
        if target.name == "bf16":
            words = self.codes_in_words(op)
            if words is not None:
                return words
        index = code_index(self.e.b, self.e.get(op.operands[0]))
        entries = table_of(source, target)  # 16 entries, or 32: the codes repeat to fill them
        lane = lane_type(target)
        registers = table_registers(entries, I16 if lane == I16 else I32, REGISTER_LANES)
        if lane == F32:
            registers = [self.e.b.bitcast(r, ir.VectorType(F32, REGISTER_LANES)) for r in registers]
        chunks = _chunks(op.result)
        return Tabulated(index, [registers], (0,) * chunks, constant=True)

    def codes_in_words(self, op: Operation) -> Tabulated | None:
        """`cast<bf16>(q)` of codes that `unpack_bits` just cut out of bytes, in 16-bit lanes
        (hosts with AVX-512BW): each lane's field in its low bits (`fields_in_words`: the
        permutes read 5 bits, and the table of fewer codes repeats), one 32-entry table."""
        fields = self.e.unpacked_fields(op.operands[0]) if self.word_lanes else None
        if fields is None:
            return None
        source, target = _dtype(op.operands[0]), _dtype(op.result)
        data, offsets = fields
        index = self.e.vectors.fields_in_words(data, source, offsets)
        registers = table_registers(table_of(source, target), I16, WORD_LANES)
        chunks = _chunks(op.result, WORD_LANES)
        return Tabulated(index, [registers], (0,) * chunks, constant=True, lanes=WORD_LANES)

    def cast_of_tables(self, op: Operation) -> Tabulated | None:
        """`cast<T>(v)` of a tabulated v (skinny_wq's `cast<f16>(w) - ZERO`, an f16 table,
        into the f32 of its dot): the cast of each table."""
        form = self.form_of(op.operands[0])
        if form is None or form.lanes != REGISTER_LANES:
            return None  # (16-bit lanes: the values are cast as computed)
        source, target = _dtype(op.operands[0]), _dtype(op.result)
        cast = self.e.caster.cast
        tables = [[cast(register, source, target) for register in table] for table in form.tables]
        return Tabulated(form.index, tables, form.chunk_tables, form.constant)

    def derived(self, op: Operation, always: bool = False) -> Tabulated | None:
        """An elementwise op whose operands are tabulated (on one index) or uniform per
        register: its table per distinct combination of its operands' tables and values
        (`always`: however many; else where that is cheaper than computing the lanes)."""
        forms = self.operand_forms(op)
        if forms is None:
            return None
        lead = next(form for form in forms if isinstance(form, Tabulated))
        index, lanes = lead.index, lead.lanes
        chunks = _chunks(op.result, lanes)
        keys = [tuple(_key(form, chunk) for form in forms) for chunk in range(chunks)]
        distinct = list(dict.fromkeys(keys))
        constant = all(form.constant for form in forms)
        if not constant and not always and len(distinct) >= chunks:
            return None  # as many tables as registers: computing the lanes costs no more
        tables = [self.table(op, forms, key, lanes) for key in distinct]
        chunk_tables = tuple(distinct.index(key) for key in keys)
        return Tabulated(index, tables, chunk_tables, constant, lanes=lanes)

    def operand_forms(self, op: Operation) -> list[Tabulated | Uniform] | None:
        """`op`'s operands as tables on one index, the others uniform per register (None where
        that cannot be). An operand tabulated on another index may be uniform all the same:
        a per-group zero point's codes have a table of their own (`cast<f32>(z)`), but the
        zero, broadcast along a row (`zt[:, None]`), is one value per register of weights."""
        tabulated = [self.form_of(operand) for operand in op.operands]
        leads = {id(form.index): form for form in tabulated if form is not None}
        for lead in leads.values():
            forms: list[Tabulated | Uniform] = []
            for operand, found in zip(op.operands, tabulated, strict=True):
                on_lead = found is not None and found.index is lead.index
                form = found if on_lead else self.uniform(operand, lead.lanes)
                if form is None:
                    break
                forms.append(form)
            else:
                return forms
        return None

    def table(self, op: Operation, forms: list, key: tuple, lanes: int) -> list[ir.Value]:
        """The table of `op` for one combination of its operands (one key per operand)."""
        e = self.e
        dt = _dtype(op.operands[0])
        size = max(len(f.tables[part]) for f, part in zip(forms, key) if isinstance(f, Tabulated))
        registers = []
        for r in range(size):
            operands = []
            for form, part in zip(forms, key):
                if isinstance(form, Tabulated):
                    table = form.tables[part]
                    operands.append(table[r % len(table)])  # a 16-entry table repeats
                else:
                    operands.append(e.vectors.splat(form.scalars[part], lanes))
            if len(operands) == 1:
                registers.append(e.arith.unary(op.name, operands[0], dt))
            else:
                registers.append(e.arith.binary(op.name, operands[0], operands[1], dt))
        return registers

    def form_of(self, value: Value) -> Tabulated | None:
        """`value`'s tables, if it was tabulated where its current LLVM value was emitted (a
        value reloaded in another segment of the kernel is not); a `lazy` value's are built
        now, from its operands' tables."""
        e = self.e
        if not e.has(value):
            return None
        emitted = e.get(value)
        form = self.forms.get(id(value))
        if form is not None and emitted is form.emitted:
            return form
        op = self.lazy.get(id(value))
        if op is None or self.untabulated.get(id(value)) is emitted:
            return None
        if not isinstance(emitted, ir.Instruction) or isinstance(emitted, ir.PhiInstr):
            return None  # (no place right after it to build tables that every reader sees)
        if id(emitted) in self.e.reloaded:
            return None  # reloaded past a barrier: its operands, if reloaded too, come later
        # Built right after the value, not at this reader: the form is kept for later readers,
        # which may lie in blocks this one does not dominate (after an `if`, past a loop).
        with _positioned_after(self.e.b, emitted):
            if op.name == "cast":
                form = self.field_cast(op)
            elif op.name == "shuffle":
                form = self.shuffled(op)
            else:
                form = self.derived(op, always=True)
        if form is None:
            self.untabulated[id(value)] = emitted
            return None
        form.emitted = emitted
        self.forms[id(value)] = form
        return form

    # ---- lazily: values that table loads read ------------------------------------------------
    def field_cast(self, op: Operation) -> Tabulated | None:
        """`cast<T>(f)` of a field of at most 5 bits cut out of wider unsigned integers by a
        shift right (`b >> 4` of bytes) or a mask (`b & 0x0F`): the table of its values."""
        if not self.e.has(op.operands[0]):
            return None  # (the field did not cross a barrier with its cast)
        source = self.e.producer(op.operands[0])
        bits = None if source is None else _field_bits(self.e, source)
        target = _dtype(op.result)
        if bits is None or target.nbits != 32 or target.is_bool:
            return None
        index = code_index(self.e.b, self.e.get(op.operands[0]))
        registers = table_registers(table_of(dtype(f"u{bits}"), target), I32, REGISTER_LANES)
        if lane_type(target) == F32:
            registers = [self.e.b.bitcast(r, ir.VectorType(F32, REGISTER_LANES)) for r in registers]
        return Tabulated(index, [registers], (0,) * _chunks(op.result), constant=True)

    def shuffled(self, op: Operation) -> Tabulated | None:
        """A shuffle of values tabulated by one constant table each, the same one (the high
        and low nibbles of bytes interleaved): that table, indexed by the indices shuffled."""
        forms = [self.form_of(operand) for operand in op.operands]
        if any(f is None or f.lanes != REGISTER_LANES or len(f.tables) != 1 for f in forms):
            return None
        first = forms[0]
        assert first is not None
        key = _constant_key(first.tables[0])
        if key is None or any(_constant_key(f.tables[0]) != key for f in forms):  # type: ignore[union-attr]
            return None
        indices = list(op.attributes["indices"])
        index = self.e.vectors.shuffle([f.index for f in forms], indices)  # type: ignore[union-attr]
        chunks = _chunks(op.result)
        return Tabulated(index, first.tables, (0,) * chunks, constant=True)

    # ---- table loads ------------------------------------------------------------------------
    def table_load(self, op: Operation) -> ir.Value | None:
        """An `ld` with a base per lane whose bases and bounds are functions of codes: each
        distinct table of positions read once, masked by the bounds' table, and one permute
        per register of lanes; the mask's other terms select after (None: not such a load)."""
        e = self.e
        memory, bases = op.operands[0], op.operands[1]
        memory_type_ = as_memory(memory.type)
        dt = memory_type_.dtype
        if not isinstance(bases.type, VectorType) or dt != _dtype(op.result):
            return None
        if memory_type_.swizzle is not None or op.attributes.get("vector", 1) > 1:
            return None
        positions = self.form_of(bases)
        if positions is None or positions.lanes != REGISTER_LANES:
            return None
        mask = op.operands[2] if len(op.operands) > 2 else None
        bounds, rest = self.split_mask(mask, positions.index)
        if bounds is None:
            return None  # (read with no bounds, a table's other entries might lie outside)
        if rest is not None and getattr(memory_type_, "extent", None):
            # The rest (selected after the read) may hold the edge of a run-time dimension,
            # and the tensor's size is not known here to mask the read by: no table.
            return None
        offsets = list(op.attributes["offsets"])
        chunks = _chunks(op.result)
        chunk_offsets = []
        for chunk in range(chunks):
            lane_offsets = set(offsets[chunk * REGISTER_LANES : (chunk + 1) * REGISTER_LANES])
            if len(lane_offsets) != 1:
                return None
            chunk_offsets.append(lane_offsets.pop())
        keys = [
            (positions.chunk_tables[c], bounds.chunk_tables[c], chunk_offsets[c])
            for c in range(chunks)
        ]
        distinct = list(dict.fromkeys(keys))
        loads = [
            self.table_read(op, positions.tables[p], bounds.tables[b], o) for p, b, o in distinct
        ]
        if any(table is None for table in loads) or (
            len(distinct) >= chunks and not all(t for t, _ in loads)  # type: ignore[misc]
        ):
            return None  # (gathering as many tables as registers costs no less)
        tables = [registers for _, registers in loads]  # type: ignore[misc]
        form = Tabulated(
            positions.index, tables, tuple(distinct.index(k) for k in keys), constant=False
        )
        value = self.lookups(form, op.result)
        if rest is not None:
            return e.b.select(rest, value, ir.Constant(value.type, None))
        form.emitted = value
        self.forms[id(op.result)] = form
        return value

    def table_read(
        self, op: Operation, positions: list[ir.Value], bounds: list[ir.Value], offset: int
    ) -> tuple[bool, list[ir.Value]] | None:
        """(whether plain vector loads read it, its registers): the elements at each register
        of `positions` (+ `offset`) where `bounds` holds, 0 elsewhere. Positions outside the
        tensor's elements are masked off as well where its size is known."""
        e = self.e
        memory = op.operands[0]
        memory_type_ = as_memory(memory.type)
        dt = memory_type_.dtype
        pointer = e.get(memory)
        elements = (
            None if getattr(memory_type_, "extent", None) else memory_type_.nbytes * 8 // dt.nbits
        )
        nbytes = memory_type_.nbytes
        registers, plain = [], True
        for r in range(len(positions)):
            where = positions[r]
            mask = bounds[r % len(bounds)]
            values = _constant_values(where)
            if values is not None:
                lanes = [v + offset for v in values]
                if elements is not None:
                    inside = [0 <= v < elements for v in lanes]
                    mask = e.b.and_(mask, ir.Constant(mask.type, inside))
                zero = ir.Constant(I32, 0)
                sized = elements is not None
                registers.append(e.memory.load(pointer, zero, lanes, dt, mask, 1, nbytes, sized))
                continue
            plain = False
            if where.type.element != I32:
                return None
            if elements is not None:
                top = ir.Constant(where.type, [elements - offset] * REGISTER_LANES)
                floor = ir.Constant(where.type, [-offset] * REGISTER_LANES)
                inside = e.b.and_(
                    e.b.icmp_signed(">=", where, floor), e.b.icmp_signed("<", where, top)
                )
                mask = e.b.and_(mask, inside)
            element = memory_type(dt)
            align = max(1, dt.nbits // 8)
            size = None if elements is None else nbytes
            gathered = e.memory.gather(
                pointer, where, [offset] * REGISTER_LANES, element, mask, align, size
            )
            registers.append(e.memory.to_register(gathered, dt))
        return plain, registers

    def split_mask(
        self, mask: Value | None, index: ir.Value
    ) -> tuple[Tabulated | None, ir.Value | None]:
        """(the mask's term tabulated on `index`, the LLVM value of the rest or None)."""
        if mask is None:
            return None, None
        form = self.form_of(mask)
        if form is not None and form.index is index:
            return form, None
        op = self.e.producer(mask)
        if op is None or op.name != "and":
            return None, None
        for term, other in (op.operands, op.operands[::-1]):
            form = self.form_of(term)
            if form is not None and form.index is index and self.e.has(other):
                return form, self.e.get(other)
        return None, None

    def uniform(self, value: Value, lanes: int) -> Uniform | None:
        """`value` as one value per register of `lanes` lanes: a splat of a scalar, a shuffle
        that repeats one lane of a vector across each register, a constant vector that does."""
        e = self.e
        op = e.producer(value)
        if op is None or not isinstance(value.type, VectorType):
            return None
        chunks = _chunks(value, lanes)
        if op.name == "splat" and e.has(op.operands[0]):
            scalar = op.operands[0]
            producer = e.producer(scalar)
            constant = producer is not None and producer.name == "constant"
            return Uniform((0,) * chunks, {0: e.get(scalar)}, constant)
        if op.name == "shuffle" and len(op.operands) == 1 and e.has(op.operands[0]):
            keys = _per_register(list(op.attributes["indices"]), lanes)
            if keys is None:
                return None
            source = e.get(op.operands[0])
            scalars = {k: e.b.extract_element(source, ir.Constant(I32, k)) for k in set(keys)}
            return Uniform(keys, scalars, constant=False)
        if op.name == "vector_constant" and _dtype(value).nbits == 32:
            values = list(op.attributes["values"])
            keys = _per_register(values, lanes)
            if keys is None:
                return None
            lane = F32 if _dtype(value).is_float else I32
            return Uniform(keys, {k: ir.Constant(lane, k) for k in set(keys)}, constant=True)
        return None

    # ---- reading tables -------------------------------------------------------------------
    def lookups(self, form: Tabulated, result: Value) -> ir.Value:
        """Every lane's entry: one permute (or permute of a pair) per register of lanes."""
        e = self.e
        caster: TableCaster = e.caster.tables
        lanes = as_vector(result.type).size
        width = form.lanes
        entry = I16 if width == WORD_LANES else I32  # (f32 lanes: the permute bitcasts them)
        pieces = []
        for chunk, table_number in enumerate(form.chunk_tables):
            start = chunk * width
            index = e.vectors.pick(form.index, [min(i, lanes) for i in range(start, start + width)])
            table = form.tables[table_number]
            # 16-bit entries in 32-bit lanes travel zero-extended
            narrow = entry == I32 and table[0].type.element == I16
            if narrow:
                table = [e.b.zext(r, ir.VectorType(I32, width)) for r in table]
            if len(table) == 1:
                picked = caster.permute(table[0], index, entry, width)
            else:
                picked = caster.permute_pair(table[0], index, table[1], entry, width)
            if narrow:
                picked = e.b.trunc(picked, ir.VectorType(I16, width))
            pieces.append(picked)
        joined = e.vectors.pick(e.vectors.concat(pieces), list(range(lanes)))
        if lane_type(_dtype(result)) == F32:
            return e.b.bitcast(joined, ir.VectorType(F32, lanes))
        return joined


def code_index(b: ir.IRBuilder, codes: ir.Value) -> ir.Value:
    """An i32 vector whose low bits are the lanes' codes: the word the codes were cut from by
    `unpack_bits` where they were (its mask dropped: the permutes read the low bits only, and
    tables of fewer codes repeat), else the codes zero-extended. A signed field that
    `unpack_bits` shifted to the top of its word and back down (`ashr(shl(word, up), down)`)
    is read as the word shifted right by down - up instead: one shift where the sign
    extension took two. One cut by a single arithmetic shift (2- and 4-bit fields) is read
    as that shifted word: its code is in the low bits, and the sign bits above it pick the
    repeats of the table."""
    if _is(codes, "ashr") and _is(codes.operands[0], "shl"):  # a signed field's sign extension
        codes = codes.operands[0].operands[0]
    if isinstance(codes, ir.CastInstr) and codes.opname == "trunc":
        word = codes.operands[0]
        if isinstance(word.type, ir.VectorType) and word.type.element == I32:
            if _is(word, "and") and isinstance(word.operands[1], ir.Constant):
                mask = _splat_value(word.operands[1])
                if mask is not None and mask + 1 <= 1 << MAX_CODE_BITS and not mask & (mask + 1):
                    return word.operands[0]
            if _is(word, "ashr") and _is(word.operands[0], "shl"):
                up, down = word.operands[0].operands[1], word.operands[1]
                return b.lshr(word.operands[0].operands[0], b.sub(down, up))
            return word
    width = codes.type.element.width
    if width == 32:
        return codes
    if width > 32:  # a field of u64 words (`w >> 60`): its at most 5 bits are the low ones
        return b.trunc(codes, ir.VectorType(I32, codes.type.count))
    return b.zext(codes, ir.VectorType(I32, codes.type.count))


def _is(value: ir.Value, opname: str) -> bool:
    return isinstance(value, ir.Instruction) and value.opname == opname


def _splat_value(constant: ir.Constant) -> int | None:
    values = constant.constant
    if not isinstance(values, list):
        return None
    numbers = {v.constant if isinstance(v, ir.Constant) else v for v in values}
    return numbers.pop() if len(numbers) == 1 else None


@contextlib.contextmanager
def _positioned_after(builder: ir.IRBuilder, instruction: ir.Instruction) -> Iterator[None]:
    """Emit right after `instruction`, then return to where the builder was (the instructions
    inserted before that place moving it along)."""
    block = builder.block
    anchor = builder._anchor  # llvmlite keeps the insertion index here; no public getter
    before = len(block.instructions)
    builder.position_after(instruction)
    try:
        yield
    finally:
        anchor += len(block.instructions) - before  # all inserted ahead of the old place
        if anchor == len(block.instructions):
            builder.position_at_end(block)
        else:
            builder.position_before(block.instructions[anchor])


def _widens_signed_codes(op: Operation) -> bool:
    """A cast of a signed sub-byte integer (held sign-extended) to a wider integer."""
    source, target = _dtype(op.operands[0]), _dtype(op.result)
    return source.kind == "int" and source.nbits < 8 and target.is_int


def _lazily_tabulable(op: Operation) -> bool:
    """Values tabulated when a reader asks (`CodeTables.form_of`): a comparison or a boolean
    op of vectors (a gather's bounds), a shuffle of 32-bit lanes, a cast to 32 bits of a field
    cut out of wider integers."""
    if len(op.results) != 1 or not isinstance(op.result.type, VectorType):
        return False
    dt = _dtype(op.result)
    if op.__class__.__name__ == "BinaryOp":
        return dt.is_bool
    if op.name == "shuffle":
        return dt.nbits == 32 and not dt.is_bool
    if op.name == "cast":
        source = _dtype(op.operands[0])
        return source.kind == "uint" and source.nbits > MAX_CODE_BITS and dt.nbits == 32
    return False


def _field_bits(e: KernelEmitter, op: Operation) -> int | None:
    """How many bits the unsigned values of `op` take, where that is at most 5 because it
    shifts right a wider unsigned integer (`b >> 4` of bytes) or masks one (`b & 0x0F`) by
    a constant."""
    if op.__class__.__name__ != "BinaryOp" or op.name not in ("shr", "and"):
        return None
    dt = _dtype(op.result)
    amount = _splat_constant(e, op.operands[1])
    if dt.kind != "uint" or amount is None or amount < 0:
        return None
    bits = dt.nbits - amount if op.name == "shr" else int(amount).bit_length()
    return bits if 0 < bits <= MAX_CODE_BITS else None


def _splat_constant(e: KernelEmitter, value: Value) -> int | None:
    """The integer of a splat of a constant, or None."""
    op = e.producer(value)
    if op is None or op.name != "splat":
        return None
    scalar = e.producer(op.operands[0])
    if scalar is None or scalar.name != "constant":
        return None
    number = scalar.attributes["value"]
    return number if isinstance(number, int) else None


def _constant_key(table: list[ir.Value]) -> tuple | None:
    """A table's registers as a comparable key where they are constants (or bitcasts of
    constants), else None."""
    key = []
    for register in table:
        if isinstance(register, ir.CastInstr) and register.opname == "bitcast":
            register = register.operands[0]
        if not isinstance(register, ir.Constant):
            return None
        key.append(str(register))
    return tuple(key)


def _constant_values(register: ir.Value) -> list[int] | None:
    """The integers of a constant register of i32 lanes, or None."""
    if not isinstance(register, ir.Constant) or not isinstance(register.constant, list):
        return None
    values = [v.constant if isinstance(v, ir.Constant) else v for v in register.constant]
    return values if all(isinstance(v, int) for v in values) else None


def _tabulable_result(op: Operation) -> bool:
    """Ops with one vector result of 32-bit lanes (f32, i32, u32: what a permute gives) or
    16-bit ones (f16, bf16, i16, u16: a permute of the entries zero-extended, narrowed)."""
    if len(op.results) != 1 or not isinstance(op.result.type, VectorType):
        return False
    dt = _dtype(op.result)
    return dt.nbits in (16, 32) and not dt.is_bool


def _chunks(value: Value, lanes: int = REGISTER_LANES) -> int:
    return -(-as_vector(value.type).size // lanes)


def _per_register(values: list, lanes: int) -> tuple | None:
    """The one value of each register of `lanes` lanes, or None where a register holds two."""
    keys = []
    for start in range(0, len(values), lanes):
        chunk = set(values[start : start + lanes])
        if len(chunk) != 1:
            return None
        keys.append(chunk.pop())
    return tuple(keys)


def _key(form: Tabulated | Uniform, chunk: int) -> int | float:
    return form.chunk_tables[chunk] if isinstance(form, Tabulated) else form.keys[chunk]


def _dtype(value: Value) -> DType:
    return value.type.dtype


__all__ = ["CodeTables", "code_index"]
