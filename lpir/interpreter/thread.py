"""An interpreter for thread IR: all threads of a block step together, one op at a time.

It checks the passes below layout-selection (lower-to-threads, bit-packing, vectorize, ...)
without any backend. A per-thread scalar is an array [threads], a vector an array
[threads, lanes]. Memory is what the backends see: each tensor is a byte buffer in the packed
storage format, so packed accesses and `st_bits` are interpreted at the bit level. Control flow
is block-uniform in lpir, so running the threads in lockstep is faithful, and `barrier` has
nothing to do. An access outside a buffer raises (it would be a lowering bug).

An `observer` sees every shared-memory access as it runs (for counting bank conflicts,
`lpir.backends.cuda.bank_conflicts`): `observer(op, index, active)` with the element indices
[threads, lanes] each thread reads or writes (swizzled) and which of them it does; an `ldmatrix`
passes the first element of the row each thread addresses.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from lpir.dtypes import DType
from lpir.errors import LpirError, with_article
from lpir.interpreter import elementwise as ew
from lpir.interpreter.atomics import COMBINE_UFUNCS, combine_in_order
from lpir.interpreter.evaluator import Evaluator
from lpir.ir.core import Kernel, Operation, Value
from lpir.ir.grid import launch_grid
from lpir.ir.ops import (
    AllocSharedOp,
    BarrierOp,
    BlockIndexOp,
    BuildVectorOp,
    CastOp,
    ConstantOp,
    DotPairsOp,
    ExtractOp,
    ForOp,
    IfOp,
    LoadMatrixOp,
    LoadThreadOp,
    MmaOp,
    PackBitsOp,
    ReduceLanesOp,
    SelectOp,
    ShuffleOp,
    SplatOp,
    StoreBitsOp,
    StoreThreadOp,
    ThreadIndexOp,
    UnpackBitsOp,
    VectorConstantOp,
    ViewOp,
    WarpShuffleOp,
)
from lpir.ir.order import balanced_tree
from lpir.ir.types import GlobalType, ScalarType, SharedType, as_memory, as_vector

#: observer(op, index [threads, lanes], active [threads, lanes]) of each shared access
SharedObserver = Callable[[Operation, np.ndarray, np.ndarray], None]


class ThreadInterpreter:
    """Runs a thread-IR kernel over its grid on byte buffers."""

    def __init__(self, kernel: Kernel, observer: SharedObserver | None = None):
        if kernel.stage != "thread":
            raise LpirError(f"the thread interpreter runs thread IR, not {kernel.stage} IR")
        self.kernel = kernel
        self.observer = observer

    def run(self, arguments: list, blocks: int | None = None) -> None:
        """`arguments`: uint8 buffers for tensors (written in place), numbers for scalars;
        `blocks`: run only the first that many blocks of the grid (all by default)."""
        threads = self.kernel.threads
        bound = []
        for value, argument in zip(self.kernel.args, arguments):
            if isinstance(value.type, GlobalType):
                bound.append(argument)
            else:
                scalar = ew.scalar(argument, value.type.dtype)
                bound.append(np.full(threads, scalar))
        gx, gy, gz = launch_grid(self.kernel, arguments)
        grid = itertools.product(range(gz), range(gy), range(gx))
        for bz, by, bx in itertools.islice(grid, blocks):
            env = {id(v): a for v, a in zip(self.kernel.args, bound)}
            block = _ThreadBlock(env, (bx, by, bz), threads, self.observer)
            block.region(self.kernel.body)


def _check_inside(verb: str, buffer: np.ndarray, access: DType, index: np.ndarray) -> None:
    """Raise unless every element `index` of `access` lies wholly inside `buffer` (below it
    too: numpy would wrap a negative index round to the end and touch another element)."""
    count = buffer.size * 8 // access.nbits
    if not index.size:
        return
    lowest, highest = int(index.min()), int(index.max())
    if lowest >= 0 and highest < count:
        return
    outside = lowest if lowest < 0 else highest
    raise LpirError(
        f"thread IR {verb} element {outside} of {with_article(f'{count}-element')} buffer",
        hint="an access's base plus its lane offsets must stay inside the memory: mask the "
        "lanes that leave it",
    )


def _elements(buffer: np.ndarray, access: DType, index: np.ndarray, verb: str) -> np.ndarray:
    """The whole elements of `access` (a byte-sized type) in `buffer`, as bytes; raises if
    `index` reaches outside them."""
    _check_inside(verb, buffer, access, index)
    size = access.nbits // 8
    return buffer[: buffer.size // size * size]


def _read(buffer: np.ndarray, access: DType, index: np.ndarray) -> np.ndarray:
    """Elements `index` of `buffer` read as `access` (packed for sub-byte types)."""
    if access.nbits % 8 == 0:
        codes = _elements(buffer, access, index, "read").view(access.code_numpy_dtype)[index]
        return access.from_codes(codes)
    _check_inside("read", buffer, access, index)
    bit = index.astype(np.int64) * access.nbits
    byte = bit // 8
    # the byte after each element's first, 0 past the buffer's end (the buffer is not copied
    # to pad it: a read of a few elements of a large tensor copied the whole tensor)
    following = np.minimum(byte + 1, buffer.size - 1)
    high = np.where(byte + 1 < buffer.size, buffer[following], 0).astype(np.uint32)
    window = buffer[byte].astype(np.uint32) | (high << 8)
    codes = (window >> (bit % 8).astype(np.uint32)) & ((1 << access.nbits) - 1)
    return access.from_codes(codes.astype(np.uint8))


def _write(buffer: np.ndarray, access: DType, index: np.ndarray, values: np.ndarray) -> None:
    if access.nbits % 8 == 0:
        view = _elements(buffer, access, index, "wrote").view(access.code_numpy_dtype)
        view[index] = access.to_codes(values)
        return
    _check_inside("wrote", buffer, access, index)
    codes = access.to_codes(values).astype(np.uint32)
    bit = index.astype(np.int64) * access.nbits
    shift = (bit % 8).astype(np.uint32)
    field = np.uint32((1 << access.nbits) - 1) << shift  # a 16-bit window: two bytes
    bits = codes << shift
    byte = bit // 8
    _merge_bits(buffer, byte, (bits & 0xFF).astype(np.uint8), (field & 0xFF).astype(np.uint8))
    spill = (field >> 8) != 0
    _merge_bits(
        buffer,
        byte[spill] + 1,
        ((bits[spill] >> 8) & 0xFF).astype(np.uint8),
        ((field[spill] >> 8) & 0xFF).astype(np.uint8),
    )


def _combine(
    buffer: np.ndarray, access: DType, index: np.ndarray, values: np.ndarray, combine: str
) -> None:
    """buffer[index] = combine(buffer[index], values) (atomic adds, maxima, minima, bits:
    repeated indices all count), in thread order."""
    view = _elements(buffer, access, index, "combined into").view(access.numpy_dtype)
    with np.errstate(all="ignore"):
        COMBINE_UFUNCS[combine].at(view, index.ravel(), values.ravel().astype(view.dtype))


def _fetch_and_combine(
    buffer: np.ndarray, access: DType, index: np.ndarray, values: np.ndarray, combine: str
) -> np.ndarray:
    """`_combine`, giving each element what memory held just before it was combined (in
    thread order: of repeated indices, the first is combined first)."""
    view = _elements(buffer, access, index, "combined into").view(access.numpy_dtype)

    def write(at: np.ndarray, new: np.ndarray) -> None:
        view[at] = new

    values = values.astype(view.dtype)
    return combine_in_order(index, values, view.__getitem__, write, combine)


def _merge_bits(buffer: np.ndarray, byte: np.ndarray, bits: np.ndarray, mask: np.ndarray) -> None:
    """buffer[byte] = (buffer[byte] & ~mask) | (bits & mask), for repeated bytes too."""
    np.bitwise_and.at(buffer, byte, ~mask)
    np.bitwise_or.at(buffer, byte, bits & mask)


class _ThreadBlock(Evaluator):
    description = "the thread interpreter"

    def __init__(
        self,
        env: dict,
        block_index: tuple[int, int, int],
        threads: int,
        observer: SharedObserver | None = None,
    ):
        super().__init__(env)
        self.block_index = block_index
        self.threads = threads
        self.observer = observer

    def observe(self, op: Operation, index: np.ndarray, active: np.ndarray | None) -> None:
        if self.observer is not None and isinstance(op.operands[0].type, SharedType):
            self.observer(op, index, np.ones(index.shape, bool) if active is None else active)

    def op(self, op: Operation) -> list:
        try:
            return super().op(op)
        except LpirError as error:  # an access outside its buffer, ...: placed at the op
            raise error.with_location(op.location) from None

    def uniform(self, value: Value) -> int:
        array = self.get(value)
        if (array != array[0]).any():
            raise LpirError("a control-flow value differs between threads")
        return int(array[0])

    # ---- values
    def op_thread_index(self, op: ThreadIndexOp) -> list:
        return [np.arange(self.threads, dtype=np.int32)]

    def op_block_index(self, op: BlockIndexOp) -> list:
        return [np.full(self.threads, self.block_index[op.attributes["axis"]], np.int32)]

    def op_constant(self, op: ConstantOp) -> list:
        return [np.full(self.threads, ew.scalar(op.attributes["value"], op.result.type.dtype))]

    def op_vector_constant(self, op: VectorConstantOp) -> list:
        values = np.asarray(op.attributes["values"]).astype(op.result.type.dtype.numpy_dtype)
        return [np.broadcast_to(values, (self.threads, values.size)).copy()]

    def op_splat(self, op: SplatOp) -> list:
        value = self.get(op.operands[0])
        size = as_vector(op.result.type).size
        return [np.repeat(value[:, None], size, axis=1)]

    def op_shuffle(self, op: ShuffleOp) -> list:
        sources = np.concatenate([self.get(v) for v in op.operands], axis=1)
        return [sources[:, list(op.attributes["indices"])]]

    def op_extract(self, op: ExtractOp) -> list:
        return [self.get(op.operands[0])[:, op.attributes["index"]]]

    def op_vector(self, op: BuildVectorOp) -> list:
        return [np.stack([self.get(v) for v in op.operands], axis=1)]

    def op_shfl_xor(self, op: WarpShuffleOp) -> list:
        """Each thread takes the value of the thread whose index differs in the mask's bits."""
        mask = op.attributes["mask"]
        partner = np.arange(self.threads) ^ mask
        if partner.max() >= self.threads:
            raise LpirError(f"shfl_xor {mask} pairs threads beyond the block's {self.threads}")
        return [self.get(op.operands[0])[partner]]

    def op_reduce_lanes(self, op: ReduceLanesOp) -> list:
        value = self.get(op.operands[0])
        group = op.attributes["group"]
        grouped = value.reshape(self.threads, -1, group)
        dt = op.result.type.dtype
        kind = op.attributes["kind"]
        name = "add" if kind == "sum" else kind
        terms = [grouped[..., index] for index in range(group)]
        with np.errstate(all="ignore"):
            return [balanced_tree(terms, lambda a, b: ew.binary(name, a, b, dt))]

    def op_dot_pairs(self, op: DotPairsOp) -> list:
        """acc + odd products + even products, each addition rounded to f32 (the products of
        bf16 numbers are exact in f32)."""
        acc, a, b = (self.get(v) for v in op.operands)
        with np.errstate(all="ignore"):  # inf x 0 is NaN, as IEEE says
            products = a.astype(np.float32) * b.astype(np.float32)
            return [(acc + products[:, 1::2]) + products[:, 0::2]]

    def op_where(self, op: SelectOp) -> list:
        cond, a, b = (self.get(v) for v in op.operands)
        return [ew.select(cond, a, b, op.result.type.dtype)]

    def op_cast(self, op: CastOp) -> list:
        return [ew.cast(self.get(op.operands[0]), op.operands[0].type.dtype, op.result.type.dtype)]

    def op_view(self, op: ViewOp) -> list:
        return [ew.view(self.get(op.operands[0]), op.operands[0].type.dtype, op.result.type.dtype)]

    # ---- bits
    def op_unpack_bits(self, op: UnpackBitsOp) -> list:
        data = self.get(op.operands[0]).astype(np.uint8)
        dt = op.result.type.dtype
        offsets = np.asarray(op.attributes["bit_offsets"], dtype=np.int64)[None, :]
        if len(op.operands) > 1:
            offsets = offsets + self.get(op.operands[1]).astype(np.int64)[:, None]
        padded = np.concatenate([data, np.zeros((self.threads, 1), np.uint8)], axis=1)
        byte = offsets // 8
        rows = np.arange(self.threads)[:, None]
        window = padded[rows, byte].astype(np.uint32) | (
            padded[rows, byte + 1].astype(np.uint32) << 8
        )
        codes = (window >> (offsets % 8).astype(np.uint32)) & ((1 << dt.nbits) - 1)
        return [dt.from_codes(codes.astype(np.uint8))]

    def op_pack_bits(self, op: PackBitsOp) -> list:
        value = self.get(op.operands[0])
        dt = op.operands[0].type.dtype
        nbytes = as_vector(op.result.type).size
        result = np.zeros((self.threads, nbytes), np.uint8)
        offsets = np.broadcast_to(
            np.asarray(op.attributes["bit_offsets"], dtype=np.int64)[None, :], value.shape
        )
        if len(op.operands) > 1:
            offsets = offsets + self.get(op.operands[1]).astype(np.int64)[:, None]
        codes = dt.to_codes(value).astype(np.uint32)
        rows = np.arange(self.threads)
        for lane in range(value.shape[1]):
            bit = offsets[:, lane]
            shifted = codes[:, lane] << (bit % 8).astype(np.uint32)
            result[rows, bit // 8] |= (shifted & 0xFF).astype(np.uint8)
            spill = bit // 8 + 1 < nbytes
            result[rows[spill], bit[spill] // 8 + 1] |= ((shifted[spill] >> 8) & 0xFF).astype(
                np.uint8
            )
        return [result]

    def op_mma(self, op: MmaOp) -> list:
        """Warp-wide D = A @ B + C with the PTX fragment layouts of the op's shape: floats
        summed exactly (float64) and rounded once to f32, 8-bit integers (m16n8k32) summed
        in i64 and wrapped to i32."""
        a, b, c = (self.get(v) for v in op.operands)
        a_map, b_map, c_map = mma_fragments(op.attributes["shape"])
        result = np.zeros_like(c)
        exact = np.int64 if c.dtype == np.int32 else np.float64
        for warp in range(0, self.threads, 32):
            lanes = slice(warp, warp + 32)
            a_tile = _gather_fragment(a[lanes], a_map).astype(exact)
            b_tile = _gather_fragment(b[lanes], b_map).astype(exact)
            c_tile = _gather_fragment(c[lanes], c_map).astype(exact)
            with np.errstate(all="ignore"):  # inf x 0 is NaN, a sum past f32's range inf
                d_tile = (a_tile @ b_tile + c_tile).astype(c.dtype)
            result[lanes] = d_tile[tuple(np.moveaxis(c_map, -1, 0))]
        return [result]

    # ---- memory
    def op_alloc_shared(self, op: AllocSharedOp) -> list:
        return [np.zeros(op.shared_type.nbytes, dtype=np.uint8)]

    def access(
        self, op: LoadThreadOp | StoreThreadOp | StoreBitsOp
    ) -> tuple[np.ndarray, DType, np.ndarray]:
        memory = self.get(op.operands[0])
        base = self.get(op.operands[1]).astype(np.int64)
        offsets = np.asarray(op.attributes["offsets"], dtype=np.int64)
        # (a base per thread, or per thread and lane: a gather or scatter)
        index = (base if base.ndim == 2 else base[:, None]) + offsets[None, :]
        access = op.access_dtype
        swizzle = as_memory(op.operands[0].type).swizzle
        return memory, access, index if swizzle is None else swizzle.apply(index)

    def op_ld(self, op: LoadThreadOp) -> list:
        memory, access, index = self.access(op)
        mask = self.get(op.operands[2]) if len(op.operands) > 2 else None
        result = np.zeros(index.shape, dtype=access.numpy_dtype)
        selected = np.ones(index.shape, bool) if mask is None else mask
        result[selected] = _read(memory, access, index[selected])
        self.observe(op, index, mask)
        return [result]

    def op_ldmatrix(self, op: LoadMatrixOp) -> list:
        """Warp-wide loads of 8x8 matrices: thread 8j + i of a warp addresses row i of matrix j."""
        memory_type = as_memory(op.operands[0].type)
        memory, rows = self.get(op.operands[0]), self.get(op.operands[1]).astype(np.int64)
        count, transpose = op.attributes["count"], bool(op.attributes["transpose"])
        if self.threads % 32:
            raise LpirError(f"ldmatrix needs whole warps, not {self.threads} threads")
        # a thread receives `per` elements of each matrix: 2 of 16 bits, 4 of 8 bits (rows of
        # 8 or 16 elements)
        per, row = 32 // memory_type.dtype.nbits, 128 // memory_type.dtype.nbits
        lane = np.arange(32)
        result = np.zeros((self.threads, per * count), memory_type.dtype.numpy_dtype)
        swizzle = memory_type.swizzle
        swizzled_rows = rows if swizzle is None else swizzle.apply(rows)
        addressing = np.arange(self.threads) % 32 < 8 * count  # the lanes that give a row
        self.observe(op, swizzled_rows[:, None], addressing[:, None])
        for warp in range(0, self.threads, 32):
            for j in range(count):
                starts = rows[warp + 8 * j : warp + 8 * j + 8]
                if np.any(starts % row):
                    raise LpirError(f"ldmatrix row offsets must be multiples of {row} elements")
                index = starts[:, None] + np.arange(row)[None, :]
                if memory_type.swizzle is not None:
                    index = memory_type.swizzle.apply(index)
                matrix = _read(memory, memory_type.dtype, index.ravel()).reshape(8, row)
                if transpose:
                    matrix = matrix.T
                for e in range(per):
                    result[warp : warp + 32, per * j + e] = matrix[lane // 4, per * (lane % 4) + e]
        return [result]

    def op_st(self, op: StoreThreadOp) -> list:
        memory, access, index = self.access(op)
        value = self.get(op.operands[2])
        mask = self.get(op.operands[3]) if len(op.operands) > 3 else None
        selected = np.ones(index.shape, bool) if mask is None else mask
        combine = op.attributes.get("combine")
        fetched = np.zeros_like(value)  # (a fetching atomic's old values; 0 masked off)
        if combine is not None and op.results:
            fetched[selected] = _fetch_and_combine(
                memory, access, index[selected], value[selected], combine
            )
        elif combine is not None:
            _combine(memory, access, index[selected], value[selected], combine)
        else:
            _write(memory, access, index[selected], value[selected])
        self.observe(op, index, mask)
        return [fetched] if op.results else []

    def op_st_bits(self, op: StoreBitsOp) -> list:
        memory, _, index = self.access(op)
        value = self.get(op.operands[2]).astype(np.uint8)
        bitmasks = self.get(op.operands[3]).astype(np.uint8)
        mask = self.get(op.operands[4]) if len(op.operands) > 4 else None
        selected = np.ones(index.shape, bool) if mask is None else mask
        if index[selected].size and index[selected].max() >= memory.size:
            raise LpirError("st_bits outside its buffer")
        _merge_bits(memory, index[selected], value[selected], bitmasks[selected])
        return []

    def op_barrier(self, op: BarrierOp) -> list:
        return []

    # ---- control flow
    def op_for(self, op: ForOp) -> list:
        lower, upper, step = (self.uniform(v) for v in op.operands[:3])
        if step <= 0:
            raise LpirError(f"a loop step must be positive, not {step}", op.location)
        values = [self.get(v) for v in op.inits]
        dt = op.induction_variable.type.dtype
        for index in range(lower, upper, step):
            self.env[id(op.induction_variable)] = np.full(self.threads, index, dt.numpy_dtype)
            for arg, value in zip(op.iter_args, values):
                self.env[id(arg)] = value
            values = self.region(op.body)
        return values

    def op_if(self, op: IfOp) -> list:
        taken = op.then_region if self.uniform(op.operands[0]) else op.else_region
        return self.region(taken)


def mma_fragments(shape: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per mma operand, the coordinates [lane, slot, 2] each thread's fragment lanes hold."""
    from lpir import layout as L

    # m16n8k32's registers hold 4 8-bit elements along k where m16n8k16's hold 2 16-bit ones
    per_register = {"m16n8k16": 2, "m16n8k32": 4}.get(shape)
    if per_register is None:
        raise LpirError(f"the thread interpreter has no mma {shape}")
    a = L.column_local(2, 2) * L.spatial(8, 4) * L.local(1, per_register)
    b = L.local(2, 1) * L.column_spatial(4, 8) * L.local(per_register, 1)
    c = L.local(2, 1) * L.spatial(8, 4) * L.local(1, 2)
    return a.coordinates(), b.coordinates(), c.coordinates()


def _gather_fragment(values: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    shape = tuple(coordinates.reshape(-1, 2).max(axis=0) + 1)
    tile = np.zeros(shape, dtype=values.dtype)
    tile[tuple(np.moveaxis(coordinates, -1, 0))] = values
    return tile


def run_thread_kernel(kernel: Kernel, buffers: list) -> None:
    """Run `kernel` (thread IR) on byte buffers and scalars, writing into the buffers."""
    ThreadInterpreter(kernel).run(buffers)


__all__ = ["ScalarType", "SharedType", "ThreadInterpreter", "run_thread_kernel"]
