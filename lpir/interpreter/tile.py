"""The reference interpreter: runs tile IR on numpy arrays, one block after another.

It is slow on purpose: every op is evaluated whole-tile with the semantics of
`lpir.interpreter.elementwise`, so it is the oracle that passes and backends are tested against.
Layouts are ignored (they decide who holds what, not what is computed).

Global tensors are numpy arrays of their logical shape holding values in `dtype.numpy_dtype`
(sub-byte ints as int8/uint8 values, small floats as uint8 codes); stores write into them.
"""

from __future__ import annotations

import itertools
from typing import Any, SupportsInt

import numpy as np

from lpir.dtypes import DType
from lpir.errors import LpirError
from lpir.interpreter import elementwise as ew
from lpir.interpreter.atomics import combine_in_order
from lpir.interpreter.evaluator import Evaluator
from lpir.ir.core import Kernel, Value
from lpir.ir.grid import launch_grid
from lpir.ir.ops import (
    AllocSharedOp,
    ArangeOp,
    BlockIndexOp,
    BroadcastOp,
    CastOp,
    ConstantOp,
    ConvertLayoutOp,
    DotOp,
    ExpandDimsOp,
    ForOp,
    IfOp,
    InBoundsOp,
    IndexOp,
    ItemOp,
    LoadOp,
    ReduceOp,
    ReshapeOp,
    ScanOp,
    SelectOp,
    SortOp,
    SplatOp,
    StackOp,
    StoreOp,
    SyncOp,
    TransposeOp,
    ViewOp,
)
from lpir.ir.types import GlobalType, ScalarType, TileType, as_tile


def _float_extreme(value: np.ndarray, kind: str, axis: int, dt: DType) -> np.ndarray:
    """max or min along `axis`, passing over every NaN, quiet or signalling, as the elementwise
    max and min do; a line of NaNs gives its first NaN made quiet (what a fold of the elementwise
    op gives). np.fmax.reduce is no such reduction: its scalar steps make a signalling NaN quiet
    and keep it, so a row [7, sNaN, 2] gave 2."""
    reduce = np.maximum.reduce if kind == "max" else np.minimum.reduce
    result = np.asarray(reduce(value, axis=axis))  # NaN where a line holds one
    if not np.isnan(result).any():
        return result
    # NaNs become the identity (-inf for max, inf for min), the tile reduces again vectorised
    nan = np.isnan(value)
    numbers = value.copy()
    np.copyto(numbers, np.array(-np.inf if kind == "max" else np.inf, dt.numpy_dtype), where=nan)
    result = np.asarray(reduce(numbers, axis=axis))
    only_nans = nan.all(axis=axis)
    if only_nans.any():
        first = ew.quiet(np.take(value, 0, axis=axis), dt)
        result = np.where(only_nans, first, result)
    return result


class TileInterpreter:
    """Runs one tile-IR kernel over its whole grid."""

    def __init__(self, kernel: Kernel):
        if kernel.stage != "tile":
            raise LpirError(f"the tile interpreter runs tile IR, not {kernel.stage} IR")
        self.kernel = kernel

    def run(self, arguments: list) -> None:
        """Run every block; `arguments` are numpy arrays (tensors) and Python numbers."""
        if len(arguments) != len(self.kernel.args):
            raise LpirError(
                f"{self.kernel.name} takes {len(self.kernel.args)} arguments, got {len(arguments)}"
            )
        bound = [self.argument(v, a) for v, a in zip(self.kernel.args, arguments)]
        gx, gy, gz = launch_grid(self.kernel, arguments)
        for bz, by, bx in itertools.product(range(gz), range(gy), range(gx)):
            env = {id(v): a for v, a in zip(self.kernel.args, bound)}
            _Block(env, (bx, by, bz)).region(self.kernel.body)

    # Any: a numpy array for a tensor, a Python number for a scalar (as value.type says)
    def argument(self, value: Value, argument: Any) -> np.ndarray | np.generic:
        if isinstance(value.type, GlobalType):
            return argument
        if isinstance(value.type, ScalarType):
            return ew.scalar(argument, value.type.dtype)
        raise LpirError(f"unsupported argument type {value.type}")


class _Block(Evaluator):
    def __init__(self, env: dict, block_index: tuple[int, int, int]):
        super().__init__(env)
        self.block_index = block_index

    # ---- values
    def op_constant(self, op: ConstantOp) -> list:
        return [ew.scalar(op.attributes["value"], op.result.type.dtype)]

    def op_block_index(self, op: BlockIndexOp) -> list:
        return [np.int32(self.block_index[op.attributes["axis"]])]

    def op_splat(self, op: SplatOp) -> list:
        value = self.get(op.operands[0])
        return [np.full(op.attributes["shape"], value, dtype=op.result.type.dtype.numpy_dtype)]

    def op_broadcast(self, op: BroadcastOp) -> list:
        return [np.broadcast_to(self.get(op.operands[0]), op.attributes["shape"]).copy()]

    def op_expand_dims(self, op: ExpandDimsOp) -> list:
        return [np.expand_dims(self.get(op.operands[0]), op.attributes["axis"])]

    def op_transpose(self, op: TransposeOp) -> list:
        return [np.ascontiguousarray(np.transpose(self.get(op.operands[0]), op.dims))]

    def op_index(self, op: IndexOp) -> list:
        value = self.get(op.operands[0])
        return [np.take(value, op.attributes["position"], axis=op.attributes["axis"]).copy()]

    def op_stack(self, op: StackOp) -> list:
        return [np.stack([self.get(v) for v in op.operands], axis=op.attributes["axis"])]

    def op_reshape(self, op: ReshapeOp) -> list:
        return [self.get(op.operands[0]).reshape(op.attributes["shape"])]

    def op_arange(self, op: ArangeOp) -> list:
        return [np.arange(op.attributes["shape"][0], dtype=np.int32)]

    def op_convert_layout(self, op: ConvertLayoutOp) -> list:
        return [self.get(op.operands[0])]

    def op_where(self, op: SelectOp) -> list:
        cond, a, b = (self.get(v) for v in op.operands)
        return [ew.select(cond, a, b, op.result.type.dtype)]

    def op_cast(self, op: CastOp) -> list:
        source = op.operands[0].type.dtype
        return [ew.cast(self.get(op.operands[0]), source, op.result.type.dtype)]

    def op_view(self, op: ViewOp) -> list:
        source = op.operands[0].type.dtype
        return [ew.view(self.get(op.operands[0]), source, op.result.type.dtype)]

    def op_item(self, op: ItemOp) -> list:
        return [self.get(op.operands[0])[()]]

    def op_reduce(self, op: ReduceOp) -> list:
        value = self.get(op.operands[0])
        dt = op.operands[0].type.dtype
        kind, axis = op.attributes["kind"], op.attributes["axis"]
        with np.errstate(all="ignore"):
            if kind == "sum" and dt.is_float:
                # from -0.0, the identity of IEEE addition: a sum of -0.0s is -0.0 (np.sum
                # starts from +0.0)
                zero = np.array(-0.0, dt.numpy_dtype)
                result = np.add.reduce(value, axis=axis, dtype=dt.numpy_dtype, initial=zero)
            elif kind == "sum":
                result = np.sum(value, axis=axis, dtype=dt.numpy_dtype)
            elif dt.is_float:
                result = _float_extreme(value, kind, axis, dt)
            else:
                result = (np.max if kind == "max" else np.min)(value, axis=axis)
        return [np.asarray(result, dtype=dt.numpy_dtype)]

    def op_scan(self, op: ScanOp) -> list:
        """Each prefix combined from the last one and the next element, in order, with the
        kind's elementwise op (its rounding, wrapping and NaN rules)."""
        value = np.moveaxis(self.get(op.operands[0]), op.axis, 0)
        dt = op.operands[0].type.dtype
        result = value.copy()
        for i in range(1, value.shape[0]):
            result[i] = ew.binary(op.combine, result[i - 1], value[i], dt)
        return [np.ascontiguousarray(np.moveaxis(result, 0, op.axis))]

    def op_sort(self, op: SortOp) -> list:
        """Each line's values in the order a stable sort of its keys gives (NaN above every
        number; equal keys, -0.0 and 0.0 among them, in their order either way)."""
        keys = np.moveaxis(self.get(op.operands[0]), op.axis, -1)
        values = np.moveaxis(self.get(op.operands[1]), op.axis, -1)
        result = np.empty_like(values)
        for line in np.ndindex(keys.shape[:-1]):
            row = [(bool(k != k), k.item()) for k in keys[line]]  # (NaN?, key)
            order = sorted(range(len(row)), key=row.__getitem__, reverse=op.descending)
            result[line] = values[line][order]
        return [np.ascontiguousarray(np.moveaxis(result, -1, op.axis))]

    def op_dot(self, op: DotOp) -> list:
        a, b, acc = (self.get(v) for v in op.operands)
        acc_dtype = op.result.type.dtype
        wide = np.float64 if acc_dtype.is_float else np.int64
        # inf x 0 is NaN and an f64 sum past f32's range rounds to inf, as IEEE says; integer
        # sums wrap like i32 arithmetic
        with np.errstate(all="ignore"):
            product = np.matmul(a.astype(wide), b.astype(wide)) + acc.astype(wide)
            return [product.astype(acc_dtype.numpy_dtype)]

    # ---- memory
    def op_alloc_shared(self, op: AllocSharedOp) -> list:
        shared = op.shared_type
        return [np.zeros(shared.shape, dtype=shared.dtype.numpy_dtype)]

    def tile_window(
        self, op: LoadOp | StoreOp, memory: np.ndarray, offsets: list[SupportsInt]
    ) -> tuple[tuple[slice | int, ...], tuple[slice, ...]] | None:
        """Per memory dim: (slice into memory, slice into the tile) for in-bounds elements, or
        None when the tile misses the tensor entirely."""
        dims = op.attributes["dims"]
        memory_index: list[slice | int] = []
        tile_index: list[slice] = []
        for dim, (offset, extent) in enumerate(zip(offsets, memory.shape)):
            offset = int(offset)
            if dim in dims:
                if isinstance(op, LoadOp):
                    shape = op.attributes["shape"]
                else:
                    shape = as_tile(op.value.type).shape
                length = shape[dims.index(dim)]
                lo, hi = max(offset, 0), min(offset + length, extent)
                if lo >= hi:
                    return None
                memory_index.append(slice(lo, hi))
                tile_index.append(slice(lo - offset, hi - offset))
            else:
                if not 0 <= offset < extent:
                    return None
                memory_index.append(offset)
        return tuple(memory_index), tuple(tile_index)

    def op_load_global(self, op: LoadOp) -> list:
        memory = self.get(op.memory)
        offsets = [self.get(v) for v in op.offsets]
        tile = np.zeros(op.attributes["shape"], dtype=op.result.type.dtype.numpy_dtype)
        if _gathers(op):
            where, inside = self.element_positions(op, memory, offsets, tile.shape)
            tile[inside] = memory[tuple(position[inside] for position in where)]
        else:
            window = self.tile_window(op, memory, offsets)
            if window is not None:
                memory_index, tile_index = window
                tile[tile_index] = memory[memory_index]
        if op.mask is not None:  # masked elements read as 0, as those past the edge
            tile[~self.get(op.mask)] = 0
        return [tile]

    op_load_shared = op_load_global

    def op_in_bounds(self, op: InBoundsOp) -> list:
        memory = self.get(op.memory)
        offsets = [self.get(v) for v in op.offsets]
        _, inside = self.element_positions(op, memory, offsets, op.attributes["shape"])
        return [inside]

    def op_store_global(self, op: StoreOp) -> list:
        memory = self.get(op.memory)
        offsets = [self.get(v) for v in op.offsets]
        value = self.get(op.value)
        fetched = np.zeros_like(value)  # (the old values a fetching atomic gives; 0 elsewhere)
        if _gathers(op):
            self.scatter(op, memory, offsets, value, fetched)
            return [fetched] if op.fetches else []
        window = self.tile_window(op, memory, offsets)
        if window is not None:
            memory_index, tile_index = window
            old, new = memory[memory_index], value[tile_index]
            if op.combine is not None:  # atomic_add, _max, _min: blocks run in order here
                with np.errstate(all="ignore"):
                    new = ew.binary(op.combine, old, new, op.memory.type.dtype)
                fetched[tile_index] = old
            if op.mask is not None:
                chosen = self.get(op.mask)[tile_index]
                new = np.where(chosen, new, old)
                fetched[tile_index] = np.where(chosen, fetched[tile_index], 0)
            memory[memory_index] = new
        return [fetched] if op.fetches else []

    def element_positions(
        self,
        op: LoadOp | StoreOp | InBoundsOp,
        memory: np.ndarray,
        offsets: list,
        shape: tuple[int, ...],
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Per memory dim, each tile element's position along it (arrays of the tile's shape:
        a gathered dim's positions tile, a spanned dim's offset + coordinate, an indexed dim's
        offset), and which elements lie inside the tensor."""
        dims = op.attributes["dims"]
        inside = np.ones(shape, dtype=bool)
        where = []
        for dim, (offset, extent) in enumerate(zip(offsets, memory.shape)):
            if np.ndim(offset):  # gathered: its own position per element
                position = np.asarray(offset, dtype=np.int64)
            elif dim in dims:
                axis = dims.index(dim)
                along = np.arange(shape[axis], dtype=np.int64) + int(offset)
                position = np.broadcast_to(along.reshape(_axis_shape(axis, len(shape))), shape)
            else:
                position = np.full(shape, int(offset), dtype=np.int64)
            inside &= (position >= 0) & (position < extent)
            where.append(position)
        return where, inside

    def scatter(
        self,
        op: StoreOp,
        memory: np.ndarray,
        offsets: list,
        value: np.ndarray,
        fetched: np.ndarray,
    ) -> None:
        """A store with gathered positions: the elements inside the tensor (and the mask) are
        written (of equal positions any one, as on a GPU) or, combining, combined one after
        another in row-major order (`combine_in_order`), each element's old value kept in
        `fetched`."""
        where, chosen = self.element_positions(op, memory, offsets, value.shape)
        if op.mask is not None:
            chosen &= self.get(op.mask)
        positions = np.stack([position[chosen] for position in where], axis=-1)
        values = value[chosen]
        if op.combine is None:
            memory[tuple(positions.T)] = values  # (of equal positions, any one stays)
            return
        places = np.ravel_multi_index(tuple(positions.T), memory.shape)

        def read(at: np.ndarray) -> np.ndarray:
            return memory[np.unravel_index(at, memory.shape)]

        def write(at: np.ndarray, new: np.ndarray) -> None:
            memory[np.unravel_index(at, memory.shape)] = new

        fetched[chosen] = combine_in_order(places, values, read, write, op.combine)

    op_store_shared = op_store_global

    def op_sync(self, op: SyncOp) -> list:
        return []

    # ---- control flow
    def op_for(self, op: ForOp) -> list:
        lower, upper, step = (int(self.get(v)) for v in op.operands[:3])
        if step <= 0:
            raise LpirError(f"a loop step must be positive, not {step}", op.location)
        values = [self.get(v) for v in op.inits]
        iv_type = np.dtype(op.induction_variable.type.dtype.numpy_dtype).type
        for index in range(lower, upper, step):
            self.env[id(op.induction_variable)] = iv_type(index)
            for arg, value in zip(op.iter_args, values):
                self.env[id(arg)] = value
            values = self.region(op.body)
        return values

    def op_if(self, op: IfOp) -> list:
        taken = op.then_region if bool(self.get(op.operands[0])) else op.else_region
        return self.region(taken)


def run_tile_kernel(kernel: Kernel, arguments: list) -> None:
    """Run `kernel` (tile IR) on `arguments`, writing results into the argument arrays."""
    TileInterpreter(kernel).run(arguments)


def _gathers(op: LoadOp | StoreOp) -> bool:
    """Whether an access takes some dimension's positions from a tile (a gather or scatter)."""
    return any(isinstance(offset.type, TileType) for offset in op.offsets)


def _axis_shape(axis: int, rank: int) -> tuple[int, ...]:
    """The shape that lines a 1-d array up along `axis` of a rank-`rank` array."""
    return tuple(-1 if a == axis else 1 for a in range(rank))
