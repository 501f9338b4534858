"""Memory access of one thread: `ld`, `st` and `st_bits`.

Accesses marked `vector = W` become one W-wide load or store per group of lanes (masked groups
through `llvm.masked.load/store`); others read and write their runs of consecutive offsets as
vectors, else the 64-byte windows their offsets fall in (a vector access and a shuffle each:
two rows read as one pair-interleaved register), else per-lane scalar accesses. A
masked-off scalar lane reads element 0 of the buffer (always valid) and keeps zero, and its
store is a one-lane `llvm.masked.store`, so no lane ever touches memory it must not. A vector
access whose lanes are all masked off goes to the buffer's start (`guarded_address`); a masked
load is one `llvm.masked.load` per vector register of the host (`Memory.masked_load`). `st_bits`
merges bits into bytes with two atomic read-modify-writes (blocks run on several cores at
once, and neighbouring blocks may share a byte of packed data).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from llvmlite import ir
from lpir.backends.llvm.intrinsics import Intrinsics
from lpir.backends.llvm.packed import PackedMemory
from lpir.backends.llvm.types import I1, I8, I32, I64, memory_type
from lpir.backends.llvm.vectors import Vectors

from lpir.dtypes import DType, dtype
from lpir.ir.types import GlobalType, SharedType
from lpir.layout import Swizzle

ZERO = ir.Constant(I32, 0)
GATHER_LANES = 64  # per-lane accesses of more lanes than this: one masked gather / scatter
VECTOR_BYTES = 64  # the widest access of a run of consecutive lanes (one AVX-512 register)
MIN_RUN = 4  # lanes a run of consecutive offsets averages for unaligned vector accesses
# The widest window a store of 1-byte elements writes: half a register. A store window's lanes
# are spread over it by a shuffle, and LLVM 22's x86 code generator legalizes the 512-bit one
# that spreads 32 bytes over every other byte (the store half of a byte tile's transpose
# through shared memory) forever, turning it into an i16 shuffle and back (LLVM issue 224266,
# fixed after LLVM 22.1). A 256-bit byte shuffle lowers at once.
STORE_BYTE_WINDOW = 32


def consecutive_runs(offsets: list[int], max_lanes: int) -> list[tuple[int, int]] | None:
    """(first lane, lanes) of each run of consecutive offsets, runs cut at `max_lanes`, where
    the runs average at least MIN_RUN lanes; else None. An access without `vector` (its
    runs' first addresses not known to be aligned: a row of 461 elements) still reads each
    run as one unaligned vector, which x86 does at little cost, rather than lane by lane or
    through a gather (461 lanes of one took LLVM 100 s to compile, rmsnorm at N = 461)."""
    runs: list[tuple[int, int]] = []
    for lane, offset in enumerate(offsets):
        if runs:
            start, length = runs[-1]
            if offset == offsets[start] + length and length < max_lanes:
                runs[-1] = (start, length + 1)
                continue
        runs.append((lane, 1))
    return runs if len(offsets) >= MIN_RUN * len(runs) else None


def offset_windows(offsets: list[int], max_lanes: int) -> list[int] | None:
    """The first offsets of the windows of `max_lanes` consecutive elements that cover
    `offsets`, taken greedily from the lowest, where the windows average at least MIN_RUN
    distinct offsets each; else None. An access whose lanes are not consecutive runs but lie
    close together (a row of a tile and the next interleaved, every other element) reads or
    writes each window as one vector, masked where it has gaps, and shuffles the lanes into
    place: `[0, 64, 1, 65, ...]` is two loads and one permute, not 32 scalar loads."""
    distinct = sorted(set(offsets))
    starts: list[int] = []
    for offset in distinct:
        if not starts or offset >= starts[-1] + max_lanes:
            starts.append(offset)
    return starts if len(distinct) >= MIN_RUN * len(starts) else None


def register_bytes(features: str) -> int:
    """The bytes of the widest vector register of a host with LLVM's `features` (x86: 64 with
    AVX-512, else 32; elsewhere 32 bounds what the backend gives LLVM as one masked load)."""
    return 64 if "+avx512f" in features.split(",") else 32


def store_window_lanes(align: int) -> int:
    """The most elements of `align` bytes one window of a store holds (see STORE_BYTE_WINDOW)."""
    return STORE_BYTE_WINDOW if align == 1 else VECTOR_BYTES // align


# atomicrmw's operation for each way a store combines with memory, by the dtype's kind
_ATOMIC_OPERATIONS = {
    ("add", "float"): "fadd",
    ("add", "int"): "add",
    ("add", "uint"): "add",
    ("max", "int"): "max",
    ("max", "uint"): "umax",
    ("min", "int"): "min",
    ("min", "uint"): "umin",
    **{(bits, kind): bits for bits in ("and", "or", "xor") for kind in ("int", "uint")},
}


class Memory:
    def __init__(
        self,
        builder: ir.IRBuilder,
        intrinsics: Intrinsics,
        vectors: Vectors,
        dummy: ir.Value,
        register_bytes: int = VECTOR_BYTES,
    ):
        self.b = builder
        self.intrinsics = intrinsics
        self.vectors = vectors
        self.dummy = dummy  # a private slot that masked-off packed stores write into
        self.register_bytes = register_bytes  # the host's widest vector (`register_bytes`)
        # set by `swizzle_of` around accesses to swizzled shared memory
        self.swizzle: Swizzle | None = None
        self.packed = PackedMemory(self)

    def address(self, pointer: ir.Value, index: ir.Value, dt: DType) -> ir.Value:
        wide = self.b.sext(index, I64) if index.type != I64 else index
        return self.b.gep(pointer, [wide], inbounds=True, source_etype=memory_type(dt))

    def guarded_address(self, pointer: ir.Value, address: ir.Value, lanes: ir.Value) -> ir.Value:
        """`address` where any of the mask `lanes` (<n x i1>) is on, else `pointer` (the
        buffer's first element). A masked-off row may lie outside the buffer (a gathered row
        index of -1: the padding of a MoE permute), and x86 masked loads and stores whose
        masked-off lanes fall on a page that is not present or not accessible take a
        fault-suppression assist: 9 ms instead of 0.2 ms for 528 such f16 rows of 128."""
        any_on = self.any_on(lanes)
        return address if any_on is None else self.b.select(any_on, address, pointer)

    def any_on(self, lanes: ir.Value) -> ir.Value | None:
        """An i1: whether any of the mask `lanes` (<n x i1>) is on; None for a constant."""
        if isinstance(lanes, ir.Constant):
            return None
        bits = self.b.bitcast(lanes, ir.IntType(lanes.type.count))
        return self.b.icmp_unsigned("!=", bits, ir.Constant(bits.type, 0))

    def index(self, base: ir.Value, offset: int) -> ir.Value:
        index = self.b.add(base, ir.Constant(base.type, offset)) if offset else base
        return self.swizzled(index)

    def vector_runs(
        self, offsets: list[int], align: int, width: int
    ) -> list[tuple[int, int]] | None:
        """(first lane, lanes) of each vector access of an ld/st: its runs of `width` (the
        `vector` attribute, aligned), else its `consecutive_runs` except in swizzled memory
        (where consecutive offsets are consecutive addresses only inside a unit of the
        swizzle, which `vector` promises a run stays in); None: lane by lane or a gather."""
        if width > 1:
            return [(start, width) for start in range(0, len(offsets), width)]
        if self.swizzle is not None:
            return None
        return consecutive_runs(offsets, VECTOR_BYTES // align)

    @contextlib.contextmanager
    def swizzle_of(self, memory_type: GlobalType | SharedType) -> Iterator[None]:
        """Accesses inside go through the swizzle of `memory_type` (a swizzled shared tile),
        if it has one: element index = swizzle(base + offset)."""
        self.swizzle = memory_type.swizzle
        try:
            yield
        finally:
            self.swizzle = None

    def swizzled(self, index: ir.Value) -> ir.Value:
        """index ^ ((index >> (base + shift)) & (2**bits - 1)) << base, for an index or a
        vector of them (`lpir.layout.Swizzle`)."""
        swizzle = self.swizzle
        if swizzle is None:
            return index

        def constant(value: int) -> ir.Constant:
            if isinstance(index.type, ir.VectorType):
                return ir.Constant(index.type, [value] * index.type.count)
            return ir.Constant(index.type, value)

        b = self.b
        for term in swizzle.terms:
            high = b.lshr(index, constant(term.base + term.shift))
            moved = b.shl(b.and_(high, constant((1 << term.bits) - 1)), constant(term.base))
            index = b.xor(index, moved)
        return index

    def to_register(self, loaded: ir.Value, dt: DType) -> ir.Value:
        if dt.is_bool:
            return self.b.icmp_unsigned("!=", loaded, ir.Constant(loaded.type, None))
        return loaded

    def to_memory(self, value: ir.Value, dt: DType) -> ir.Value:
        if dt.is_bool:
            target = (
                ir.VectorType(I8, value.type.count) if isinstance(value.type, ir.VectorType) else I8
            )
            return self.b.zext(value, target)
        return value

    # ---- loads ----------------------------------------------------------------------------
    def load(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        dt: DType,
        mask: ir.Value | None,
        width: int,
        nbytes: int,
        sized: bool = False,
    ) -> ir.Value:
        """The elements at `base + offsets` of the memory at `pointer` (`nbytes` long: a
        packed field's second byte is read only inside it), as a vector; masked-off lanes
        read 0. `width`: the ld's `vector` attribute (see `vector_runs`). `sized`: whether
        `nbytes` is the memory's size (not only a bound: a run-time first dimension), which
        a gather of 8- or 16-bit elements needs to read whole words (`gather`; without it, the
        lanes are read one by one)."""
        if dt.nbits % 8:
            return self.packed.load(pointer, base, offsets, dt, mask, nbytes)
        element = memory_type(dt)
        align = max(1, dt.nbits // 8)
        size = nbytes if sized else None
        if isinstance(base.type, ir.VectorType):  # a base per lane: a gather
            gathered = self.gather(pointer, base, offsets, element, mask, align, size)
            return self.to_register(gathered, dt)
        runs = self.vector_runs(offsets, align, width)
        if runs is not None:
            pieces = []
            for start, length in runs:
                address = self.address(pointer, self.index(base, offsets[start]), dt)
                vector_type = ir.VectorType(element, length)
                if mask is None:
                    pieces.append(self.b.load(address, typ=vector_type, align=align))
                    continue
                lanes = self.vectors.pick(mask, list(range(start, start + length)))
                pieces.append(self.masked_load(pointer, address, lanes, element, align))
            return self.to_register(self.vectors.concat(pieces), dt)
        starts = self.windows(offsets, align, mask, VECTOR_BYTES // align)
        if starts is not None:
            return self.to_register(self.load_windows(pointer, base, offsets, dt, mask, starts), dt)
        if len(offsets) > GATHER_LANES:
            gathered = self.gather(pointer, base, offsets, element, mask, align, size)
            return self.to_register(gathered, dt)
        result = ir.Constant(ir.VectorType(element, len(offsets)), None)
        for lane, offset in enumerate(offsets):
            index = self.index(base, offset)
            active = None
            if mask is not None:
                active = self.b.extract_element(mask, ir.Constant(I32, lane))
                index = self.b.select(active, index, ir.Constant(index.type, 0))
            value = self.b.load(self.address(pointer, index, dt), typ=element, align=align)
            if active is not None:
                value = self.b.select(active, value, ir.Constant(element, None))
            result = self.b.insert_element(result, value, ir.Constant(I32, lane))
        return self.to_register(result, dt)

    def windows(
        self, offsets: list[int], align: int, mask: ir.Value | None, max_lanes: int
    ) -> list[int] | None:
        """`offset_windows` of an access that has no runs, where it can take them: not in
        swizzled memory (a window's addresses are consecutive only inside a swizzle unit),
        and a masked access only with distinct offsets (each window lane one lane's mask)."""
        if self.swizzle is not None or (mask is not None and len(set(offsets)) < len(offsets)):
            return None
        return offset_windows(offsets, max_lanes)

    def window_lanes(self, offsets: list[int], start: int, max_lanes: int) -> list[int | None]:
        """For each element of the window from `start` (up to its last offset), the lane that
        accesses it, or None (a gap)."""
        inside = {
            offset - start: lane
            for lane, offset in enumerate(offsets)
            if start <= offset < start + max_lanes
        }
        return [inside.get(position) for position in range(max(inside) + 1)]

    def window_mask(
        self, owners: list[int | None], mask: ir.Value | None, lanes: int
    ) -> ir.Value | None:
        """The window's mask: its gaps off, each element on where its lane is (None: all on)."""
        if mask is None and None not in owners:
            return None
        if mask is None:
            return ir.Constant(ir.VectorType(I1, len(owners)), [o is not None for o in owners])
        # an index past the mask's lanes picks the fill's lane: false
        return self.vectors.pick(mask, [lanes if o is None else o for o in owners])

    def load_windows(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        dt: DType,
        mask: ir.Value | None,
        starts: list[int],
    ) -> ir.Value:
        """A load through `offset_windows`: each window one (masked) vector load, then one
        shuffle puts every lane's element in place (masked-off lanes read 0)."""
        element = memory_type(dt)
        align = max(1, dt.nbits // 8)
        max_lanes = VECTOR_BYTES // align
        pieces: list[ir.Value] = []
        position: dict[int, int] = {}  # offset -> lane of the windows' concatenation
        loaded = 0
        for start in starts:
            owners = self.window_lanes(offsets, start, max_lanes)
            position.update((start + index, loaded + index) for index in range(len(owners)))
            loaded += len(owners)
            address = self.address(pointer, self.index(base, start), dt)
            vector_type = ir.VectorType(element, len(owners))
            window_mask = self.window_mask(owners, mask, len(offsets))
            if window_mask is None:
                pieces.append(self.b.load(address, typ=vector_type, align=align))
                continue
            pieces.append(self.masked_load(pointer, address, window_mask, element, align))
        return self.vectors.pick(
            self.vectors.concat(pieces), [position[offset] for offset in offsets]
        )

    def masked_load(
        self, pointer: ir.Value, address: ir.Value, lanes: ir.Value, element: ir.Type, align: int
    ) -> ir.Value:
        """The elements (of `align` bytes) from `address` on, where the mask `lanes` is on, else
        0: one `llvm.masked.load` per vector register of the host, each at its own guarded
        address (`guarded_address`) and, without AVX-512, taken only where any of its lanes is
        on (else 0).

        Both work around LLVM 22's x86 code generator on hosts without AVX-512, where a mask is
        a vector of 32- or 64-bit lanes whose sign bits count. It splits a load wider than a
        register into register-wide parts, and makes a part whose mask it finds all off a
        plain load. And a register-wide load whose mask becomes constant only there (a part
        of a tile's row past the array's last column: `and(row inside, column inside)` with
        its constant lanes all off) has its mask rewritten for the sign bits alone (to 1s,
        off), which a later rewrite reads as all on: a plain load again. Either way masked-off
        lanes read memory (the next row, or the buffer's first elements) instead of 0. LLVM's
        IR passes do see such a part's mask all off (`any_on`): the select makes them drop
        the load. With AVX-512 the code is as it was (masks are mask registers there)."""
        count = lanes.type.count
        step = max(1, self.register_bytes // align)
        parts = []
        for first in range(0, count, step):
            part = self.vectors.pick(lanes, list(range(first, min(count, first + step))))
            start = address
            if first:
                start = self.b.gep(address, [ir.Constant(I64, first)], source_etype=element)
            part_type = ir.VectorType(element, part.type.count)
            function = self.intrinsics.masked_load(part_type)
            zero = ir.Constant(part_type, None)
            any_on = self.any_on(part)
            if any_on is not None:
                start = self.b.select(any_on, start, pointer)  # (see `guarded_address`)
            loaded = self.b.call(function, [start, ir.Constant(I32, align), part, zero])
            if any_on is not None and self.register_bytes < VECTOR_BYTES:
                loaded = self.b.select(any_on, loaded, zero)
            parts.append(loaded)
        return self.vectors.concat(parts)

    def prefetch(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offset: int,
        dt: DType,
        ahead: int,
        locality: int,
    ) -> None:
        """A prefetch of the byte `ahead` bytes past element base + offset, `locality` 0-3 as
        llvm.prefetch has it (3: into every cache level; 2: not the first). A hint only: it
        never faults, wherever that byte is."""
        index = self.index(base, offset)
        wide = self.b.sext(index, I64) if index.type != I64 else index
        byte = self.b.add(
            self.b.mul(wide, ir.Constant(I64, dt.nbits // 8)), ir.Constant(I64, ahead)
        )
        # not `inbounds`: the address may lie past the array (or be a masked-off lane's)
        target = self.b.gep(pointer, [byte], source_etype=I8)
        read, level, data = (ir.Constant(I32, n) for n in (0, locality, 1))
        self.b.call(self.intrinsics.prefetch(), [target, read, level, data])

    def gather(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        element: ir.Type,
        mask: ir.Value | None,
        align: int,
        nbytes: int | None = None,
    ) -> ir.Value:
        """Lanes at base + offsets (constants) through one `llvm.masked.gather`: for wide
        scattered reads (a thread gathering the partial results of a whole block), where a
        scalar load and an insertelement per lane would give LLVM's SLP vectorizer thousands of
        lanes to ponder (it ran for minutes on 1024). 8- and 16-bit elements of memory whose
        size `nbytes` is known (at least 4) go through 32-bit windows (`narrow_gather`)."""
        b = self.b
        lanes = len(offsets)
        narrow = isinstance(element, ir.IntType) and element.width < 32
        if narrow and nbytes is not None and nbytes >= 4 and self.swizzle is None:
            return self.narrow_gather(pointer, base, offsets, element, mask, nbytes)
        addresses = self.lane_addresses(pointer, base, offsets, element)
        if mask is None:
            mask = ir.Constant(ir.VectorType(I1, lanes), [True] * lanes)
        vector = ir.VectorType(element, lanes)
        function = self.intrinsics.masked_gather(vector)
        return b.call(
            function, [addresses, ir.Constant(I32, align), mask, ir.Constant(vector, None)]
        )

    def narrow_gather(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        element: ir.IntType,
        mask: ir.Value | None,
        nbytes: int,
    ) -> ir.Value:
        """A gather of 8- or 16-bit elements as one of 32-bit words: x86 gathers 32-bit
        elements only, and LLVM expands a narrower gather into a load (and a branch, where
        masked) per lane. Each lane reads the 4 bytes from its element's first byte, or from
        `nbytes` - 4 where those would pass the memory's end, and shifts its element down:
        every byte read lies inside the memory (`nbytes` long, at least 4), so a last element
        at a page's end reads no further. Masked-off lanes read nothing and give 0."""
        b = self.b
        lanes = len(offsets)
        index_type = base.type.element if isinstance(base.type, ir.VectorType) else base.type
        if nbytes >= 2**31 or index_type != I32:
            index_type = I64
        vector = ir.VectorType(index_type, lanes)

        def constant(value: int) -> ir.Constant:
            return ir.Constant(vector, [value] * lanes)

        if isinstance(base.type, ir.VectorType):
            bases = base if base.type == vector else b.sext(base, vector)
        else:
            bases = self.vectors.splat(
                base if base.type == index_type else b.sext(base, index_type), lanes
            )
        indices = b.add(bases, ir.Constant(vector, list(offsets)))
        first_bytes = b.mul(indices, constant(element.width // 8))
        last_window = constant(nbytes - 4)
        windows = b.select(b.icmp_signed("<", first_bytes, last_window), first_bytes, last_window)
        shifts = b.mul(b.sub(first_bytes, windows), constant(8))
        wide = windows if index_type == I64 else b.sext(windows, ir.VectorType(I64, lanes))
        addresses = b.gep(pointer, [wide], source_etype=I8)
        addresses.type = ir.VectorType(ir.PointerType(), lanes)  # llvmlite types it as one ptr
        if mask is None:
            mask = ir.Constant(ir.VectorType(I1, lanes), [True] * lanes)
        words = ir.VectorType(I32, lanes)
        function = self.intrinsics.masked_gather(words)
        gathered = b.call(
            function, [addresses, ir.Constant(I32, 1), mask, ir.Constant(words, None)]
        )
        if index_type != I32:
            shifts = b.trunc(shifts, words)
        return b.trunc(b.lshr(gathered, shifts), ir.VectorType(element, lanes))

    def lane_addresses(
        self, pointer: ir.Value, base: ir.Value, offsets: list[int], element: ir.Type
    ) -> ir.Value:
        """<n x ptr>: the address of each lane, base + offset, as one vector GEP (`base`: one
        for all lanes, or a vector of one per lane)."""
        b = self.b
        lanes = len(offsets)
        if isinstance(base.type, ir.VectorType):
            wide = ir.VectorType(I64, lanes)
            splat = b.sext(base, wide) if base.type != wide else base
        else:
            splat = self.vectors.splat(b.sext(base, I64) if base.type != I64 else base, lanes)
        indices = self.swizzled(b.add(splat, ir.Constant(ir.VectorType(I64, lanes), list(offsets))))
        addresses = b.gep(pointer, [indices], inbounds=True, source_etype=element)
        addresses.type = ir.VectorType(ir.PointerType(), lanes)  # llvmlite types it as one ptr
        return addresses

    # ---- stores ---------------------------------------------------------------------------
    def store(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        value: ir.Value,
        dt: DType,
        mask: ir.Value | None,
        width: int,
        nbytes: int,
    ) -> None:
        """`value`'s lanes into `base + offsets` of the memory at `pointer` (`nbytes` long), as
        `load` reads them; masked-off lanes leave memory as it is."""
        if dt.nbits % 8:
            self.packed.store(pointer, base, offsets, value, dt, mask, nbytes)
            return
        value = self.to_memory(value, dt)
        align = max(1, dt.nbits // 8)
        if isinstance(base.type, ir.VectorType):  # a base per lane: a scatter
            self.scatter(pointer, base, offsets, value, mask, align)
            return
        runs = self.vector_runs(offsets, align, width)
        if runs is not None:
            for start, length in runs:
                address = self.address(pointer, self.index(base, offsets[start]), dt)
                part = self.vectors.pick(value, list(range(start, start + length)))
                if mask is None:
                    self.b.store(part, address, align=align)
                    continue
                lanes = self.vectors.pick(mask, list(range(start, start + length)))
                address = self.guarded_address(pointer, address, lanes)
                function = self.intrinsics.masked_store(part.type)
                self.b.call(function, [part, address, ir.Constant(I32, align), lanes])
            return
        max_lanes = store_window_lanes(align)
        distinct = len(set(offsets)) == len(offsets)
        starts = self.windows(offsets, align, mask, max_lanes) if distinct else None
        if starts is not None:
            self.store_windows(pointer, base, offsets, value, dt, mask, starts)
            return
        if len(offsets) > GATHER_LANES:
            self.scatter(pointer, base, offsets, value, mask, align)
            return
        for lane, offset in enumerate(offsets):
            address = self.address(pointer, self.index(base, offset), dt)
            lane_value = self.b.extract_element(value, ir.Constant(I32, lane))
            if mask is None:
                self.b.store(lane_value, address, align=align)
                continue
            # A one-lane llvm.masked.store, not a store through select(active, address, dummy):
            # LLVM turns the latter into a branch, and its loop vectorizer then widens the
            # thread loop with predication, where it takes an address like y[base + tid % 16]
            # for consecutive (LLVM 22; tests/test_random_kernels.py found it).
            lane_type = ir.VectorType(lane_value.type, 1)
            single = self.b.insert_element(ir.Constant(lane_type, None), lane_value, ZERO)
            active = self.b.extract_element(mask, ir.Constant(I32, lane))
            no_lane = ir.Constant(ir.VectorType(I1, 1), None)
            lane_mask = self.b.insert_element(no_lane, active, ZERO)
            function = self.intrinsics.masked_store(lane_type)
            self.b.call(function, [single, address, ir.Constant(I32, align), lane_mask])

    def store_windows(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        value: ir.Value,
        dt: DType,
        mask: ir.Value | None,
        starts: list[int],
    ) -> None:
        """A store through `offset_windows` (distinct offsets): each window's lanes shuffled
        into place and written by one vector store, masked where the window has gaps (which
        keep what memory holds) or the access a mask."""
        align = max(1, dt.nbits // 8)
        max_lanes = store_window_lanes(align)
        for start in starts:
            owners = self.window_lanes(offsets, start, max_lanes)
            part = self.vectors.pick(value, [0 if o is None else o for o in owners])
            address = self.address(pointer, self.index(base, start), dt)
            window_mask = self.window_mask(owners, mask, len(offsets))
            if window_mask is None:
                self.b.store(part, address, align=align)
                continue
            address = self.guarded_address(pointer, address, window_mask)
            function = self.intrinsics.masked_store(part.type)
            self.b.call(function, [part, address, ir.Constant(I32, align), window_mask])

    def atomic_combine(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        value: ir.Value,
        dt: DType,
        combine: str,
        mask: ir.Value | None = None,
        atomic: bool = True,
    ) -> ir.Value:
        """memory[base + offsets[i]] += value[i] (`combine` "add"; "max", "min": the larger
        or smaller of the two), lane after lane, each an atomic read-modify-write (blocks run
        on several native threads and may combine into the same elements of global memory),
        or, with `atomic` False (a shared tile: its block's threads run one after another on
        one native thread), a plain load, combine and store: a block histogram of 2**20 bytes
        took 13.6 ms with lock-prefixed adds, 0.67 ms so (numpy's bincount: 1.2 ms).

        Returns the vector of what memory held before each lane was combined (0 for lanes
        masked off): a fetching atomic's old values, unused (and deleted by LLVM) elsewhere."""
        b = self.b
        operation = _ATOMIC_OPERATIONS[combine, dt.kind]
        fetched = ir.Constant(value.type, None)
        for lane, offset in enumerate(offsets):
            lane_index = ir.Constant(I32, lane)
            lane_value = b.extract_element(value, lane_index)
            address = self.address(pointer, self.index(base, offset), dt)
            if mask is None:
                old = self.combine_at(address, lane_value, operation, atomic)
            else:
                before = b.block
                with b.if_then(b.extract_element(mask, lane_index)):
                    combined = self.combine_at(address, lane_value, operation, atomic)
                    combined_in = b.block
                old = b.phi(lane_value.type)
                old.add_incoming(ir.Constant(lane_value.type, 0), before)
                old.add_incoming(combined, combined_in)
            fetched = b.insert_element(fetched, old, lane_index)
        return fetched

    def combine_at(
        self, address: ir.Value, value: ir.Value, operation: str, atomic: bool
    ) -> ir.Value:
        """memory[address] = operation(memory[address], value), atomically or plainly; returns
        what memory held before."""
        b = self.b
        if atomic:
            return b.atomic_rmw(operation, address, value, "monotonic")
        old = b.load(address, typ=value.type)
        if operation == "fadd":
            b.store(b.fadd(old, value), address)
        elif operation == "add":
            b.store(b.add(old, value), address)
        elif operation in ("and", "or", "xor"):
            combined = {"and": b.and_, "or": b.or_, "xor": b.xor}[operation](old, value)
            b.store(combined, address)
        else:  # (max, min, umax, umin)
            compare = b.icmp_unsigned if operation.startswith("u") else b.icmp_signed
            larger = compare(">" if operation.endswith("max") else "<", value, old)
            b.store(b.select(larger, value, old), address)
        return old

    def scatter(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        value: ir.Value,
        mask: ir.Value | None,
        align: int,
    ) -> None:
        """Lanes to base + offsets through one `llvm.masked.scatter` (see `gather`)."""
        lanes = len(offsets)
        addresses = self.lane_addresses(pointer, base, offsets, value.type.element)
        if mask is None:
            mask = ir.Constant(ir.VectorType(I1, lanes), [True] * lanes)
        function = self.intrinsics.masked_scatter(value.type)
        self.b.call(function, [value, addresses, ir.Constant(I32, align), mask])

    def store_bits(
        self,
        pointer: ir.Value,
        base: ir.Value,
        offsets: list[int],
        data: ir.Value,
        bitmask: ir.Value,
        mask: ir.Value | None = None,
    ) -> None:
        """memory[base + offsets[i]] = (old & ~bitmask[i]) | (data[i] & bitmask[i]), atomic."""
        b = self.b
        for lane, offset in enumerate(offsets):
            lane_index = ir.Constant(I32, lane)
            bits = b.extract_element(bitmask, lane_index)
            value = b.and_(b.extract_element(data, lane_index), bits)
            clear = b.xor(bits, ir.Constant(I8, 0xFF))
            address = self.address(pointer, self.index(base, offset), _BYTE)
            if mask is not None:
                active = b.extract_element(mask, lane_index)
                with b.if_then(active):
                    self.merge(address, clear, value)
            else:
                self.merge(address, clear, value)

    def merge(self, address: ir.Value, clear: ir.Value, value: ir.Value) -> None:
        self.b.atomic_rmw("and", address, clear, "monotonic")
        self.b.atomic_rmw("or", address, value, "monotonic")


_BYTE = dtype("u8")
__all__ = ["I1", "Memory"]
