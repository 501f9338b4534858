"""Layout rules used by layout-selection: one function per relation an op imposes.

* `default_layout`: a tile nobody constrains (the target's preferred distribution);
* `broadcast_operand`, `expand_dims_result`, `squeeze`, `reduce_result`, `transposed`,
  `reshaped`, `indexed_result` / `indexed_operand`: how a layout passes through shape ops;
* `view_result` / `view_operand`: bit reinterpretation to a narrower or wider dtype;
* `dot_anchor`: the accumulator layout a dot prefers (mma fragments on a GPU, register
  blocks on a CPU);
* `dot_layouts`: the operand layouts that a `dot` with a given accumulator layout needs;
* `shared_layout`: the swizzle of a shared tile with the fewest bank conflicts on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from lpir.passes.matrix_loads import MatrixLoad, fragment_offsets, plan_matrix_loads

from lpir import layout as L
from lpir.dtypes import DType
from lpir.errors import LayoutError
from lpir.ir.layout_checks import line_chunks
from lpir.ir.ops.thread import WARP_SIZE
from lpir.ir.types import SharedType
from lpir.layout import (
    RegisterLayout,
    SharedLayout,
    Swizzle,
    banks,
    shared_row_major,
    shared_swizzled,
)
from lpir.layout.draft import LayoutDraft
from lpir.targets import Target


def _replicated(layout: RegisterLayout, threads: int) -> RegisterLayout:
    if layout.threads == threads:
        return layout
    return L.replicate(threads // layout.threads) * layout


def contiguous_layout(shape: tuple[int, ...], threads: int) -> RegisterLayout:
    """Each thread holds a block that is as long as possible along the last dimensions.

    Threads that would get nothing replicate the tile: with fewer elements than threads, or a
    size that does not divide by the thread count, some threads hold copies.
    """
    size = math.prod(shape)
    used = math.gcd(size, threads)
    remaining = size // used
    local_sizes = [1] * len(shape)
    for dim in reversed(range(len(shape))):
        local_sizes[dim] = math.gcd(shape[dim], remaining)
        remaining //= local_sizes[dim]
    if remaining != 1:
        return _replicated(L.local(*shape), threads)
    spatial_sizes = [s // l for s, l in zip(shape, local_sizes)]
    return _replicated(L.spatial(*spatial_sizes) * L.local(*local_sizes), threads)


def coalesced_layout(
    shape: tuple[int, ...], nbits: int, threads: int, vector_bytes: int
) -> RegisterLayout:
    """GPU style: each thread holds `vector_bytes` of consecutive elements of the last
    dimension, neighbouring threads hold neighbouring vectors, and the pattern repeats.

    A tile too small to give every thread a whole vector gets narrower vectors (down to 4
    bytes) rather than replicas: a warp still reads one contiguous run, and no two threads
    load, and then dequantize, the same elements. A vector is a power of two of elements, as
    many as the tile has per thread, at most `vector_bytes` of them or 32 sub-byte fields
    (whole words: u5's 20 bytes): a 32 x 128 u3 tile over 128 threads gives each 32 weights
    (12 bytes, three aligned words), not two runs of 16 (6 bytes, 2-byte aligned), and u5
    runs of 20 bytes are word-aligned where 10-byte ones are not."""
    widest = _power_of_two_below(max(1, vector_bytes * 8 // nbits))
    if nbits < 8:  # 32 fields of any width are whole 32-bit words: 4-byte aligned runs
        widest = max(widest, 32)
    narrowest = _power_of_two_below(max(1, 32 // nbits))  # 4 bytes
    per_thread = min(widest, _power_of_two_below(max(1, math.prod(shape) // threads)))
    per_thread = max(narrowest, per_thread)
    vector = math.gcd(shape[-1], per_thread)
    inner = [*list(shape[:-1]), shape[-1] // vector]
    # A row spans at most a warp when the other dimensions take the remaining threads: its
    # reductions are then warp shuffles, not shared memory, and a warp's load is one
    # contiguous run all the same (32 x 16 bytes).
    thread_sizes, idle = _spread_threads(inner, threads, WARP_SIZE)
    if idle > 1:
        thread_sizes, _ = _spread_threads(inner, threads, threads)
    repeat = [i // t for i, t in zip(inner, thread_sizes)]
    vector_sizes = [1] * (len(shape) - 1) + [vector]
    layout = L.local(*repeat) * L.spatial(*thread_sizes) * L.local(*vector_sizes)
    return _replicated(layout, threads)


def _spread_threads(inner: list[int], threads: int, row_threads: int) -> tuple[list[int], int]:
    """Threads per dimension (the last dimension first, at most `row_threads` along it), and
    the factor of threads left over (replicas)."""
    sizes = [1] * len(inner)
    remaining = threads
    for dim in reversed(range(len(inner))):
        # what divides the threads left (48 threads: 16 along a row of a warp's 32, not 32)
        limit = math.gcd(remaining, row_threads) if dim == len(inner) - 1 else remaining
        sizes[dim] = math.gcd(inner[dim], limit)
        remaining //= sizes[dim]
    return sizes, remaining


def _power_of_two_below(n: int) -> int:
    """The largest power of two not above n (n >= 1)."""
    return 1 << (n.bit_length() - 1)


def default_layout(
    shape: tuple[int, ...], nbits: int, threads: int, target: Target
) -> RegisterLayout:
    if target.coalesced_loads and shape:  # a rank-0 tile has nothing to coalesce
        return coalesced_layout(shape, nbits, threads, target.vector_bytes)
    return contiguous_layout(shape, threads)


def squeeze(layout: RegisterLayout, axis: int) -> RegisterLayout:
    """Drop the size-1 dimension `axis`."""
    shape = layout.shape[:axis] + layout.shape[axis + 1 :]
    return L.reshape(layout, shape)


def broadcast_operand(result: RegisterLayout, operand_shape: tuple[int, ...]) -> RegisterLayout:
    """The operand layout a broadcast needs: each thread already holds what it repeats."""
    dims = [d for d, (a, b) in enumerate(zip(operand_shape, result.shape)) if a == 1 and b != 1]
    return L.reduce(result, dims) if dims else result


def transposed(layout: RegisterLayout, dims: Sequence[int]) -> RegisterLayout:
    """`transpose`'s result layout from its operand's: dimension i is the operand's `dims[i]`
    (each thread keeps its elements)."""
    return L.permute(layout, dims)


def untransposed(layout: RegisterLayout, dims: Sequence[int]) -> RegisterLayout:
    """`transpose`'s operand layout from its result's: the inverse permutation."""
    return L.permute(layout, [dims.index(d) for d in range(len(dims))])


def reshaped(layout: RegisterLayout, shape: tuple[int, ...]) -> RegisterLayout:
    """A layout with the same threads and slots under another (row-major) shape: `reshape`'s
    result from its operand's layout, or its operand from its result's. Raises LayoutError
    where a mode of the layout straddles a new dimension's boundary (merging adjacent
    dimensions always works; splitting one works where its modes divide at the split)."""
    return L.reshape(layout, shape)


def indexed_result(operand: RegisterLayout, axis: int) -> RegisterLayout:
    """`index`'s result layout: the operand's without `axis`, which must be held whole by each
    thread (all its modes local: the result is a choice of slots). Raises LayoutError where
    threads split the axis (a thread would need another's element)."""
    split = [
        mode
        for mode in operand.spatial_modes
        if mode >= 0 and operand.mode_dims[mode] == axis and operand.mode_sizes[mode] > 1
    ]
    if split:
        raise LayoutError(f"the threads of {operand} split dimension {axis}: index needs it whole")
    return reduce_result(operand, axis)


#: An `index` whose result the threads hold in replicas (`c[BV - 1]`, a 0-d tile, is in every
#: thread) takes its operand whole along the axis in every replica (`indexed_operand`) only up
#: to this many elements of a line; past it the operand keeps a layout of its own and the
#: elements go through shared memory (`indexes_through_shared`): a cumsum of 1024 elements
#: whose total was taken so was scanned whole by each of the GPU's 128 threads.
INDEXED_REPLICA_LINE = 8


#: On the CPU the operand is held whole in every replica while every tile of its class (the
#: values that share its layout: `c = cumsum(load(...))` is two, a search's `min(where(c > th,
#: arange(BV), BV))` on c adds seven more) would hold at most this many elements a thread:
#: where every tile is so replicated, drop-replicas leaves one thread doing the block's work
#: in its registers, 1.2-1.5x faster than a shared copy and the threads' exchanges (a cumsum of
#: 1024 or 2048 and one to six of its elements: 0.133 -> 0.192 ms, one thread). A long chain so
#: replicated is one thread's straight-line code over vectors of the whole line, whose compile
#: time LLVM grows faster than the line (an inverse-CDF search over chunks of 512, 1024, 2048
#: logits: 5.3, 24, 250 s, where the shared copy compiles in 0.4-0.6 s and runs as fast); a
#: top-k's 8192 logits would pass the CPU's 4096 elements a thread (passes/thread_limits.py).
CPU_INDEXED_REPLICA_ELEMENTS = 4096


def indexes_through_shared(
    result: RegisterLayout, size: int, target: Target, class_tiles: int = 1
) -> bool:
    """Whether an `index` along an axis of `size` with this result layout reads its elements
    through shared memory where its operand's threads split the axis, rather than the operand
    taking the axis whole in every thread holding a result (`INDEXED_REPLICA_LINE` on the
    GPU; on the CPU `CPU_INDEXED_REPLICA_ELEMENTS` a thread over the `class_tiles` tiles of
    the operand's class)."""
    if not result.is_replicated:
        return False
    if target.is_gpu:
        return size > INDEXED_REPLICA_LINE
    return result.slots * size * class_tiles > CPU_INDEXED_REPLICA_ELEMENTS


def indexed_operand(result: RegisterLayout, axis: int, size: int) -> RegisterLayout:
    """The operand layout `index` needs for its result's layout: the result's, each thread
    also holding the whole of `axis` (size `size`) as its innermost slots."""
    ones = [1] * (result.rank + 1)
    ones[axis] = size
    return L.product(L.expand_dims(result, axis), L.local(*ones))


def scanned(layout: RegisterLayout, axis: int) -> RegisterLayout:
    """The layout a scan or sort along `axis` runs in, from its class's `layout`: that layout
    where each thread holds whole lines, or one run of each of its lines with one thread digit
    telling the runs apart (`line_chunks`); else the lines spread over the threads and the
    threads left over splitting each line into equal runs (`chunked_lines`)."""
    if line_chunks(layout, axis) is not None:
        return layout
    return chunked_lines(layout.shape, axis, layout.threads)


def sorted_lines(layout: RegisterLayout, axis: int) -> RegisterLayout:
    """The layout a sort along `axis` runs in: as a scan's (`scanned`), except that the
    lines spread over the threads (`chunked_lines`) are taken where they give each thread
    fewer elements: every element a thread holds goes through each of the network's steps
    (a [64, 64] tile coalesced over 64 threads holds 64 runs of 4 a thread; spread, one line)."""
    spread = chunked_lines(layout.shape, axis, layout.threads)
    if line_chunks(layout, axis) is None or spread.slots < layout.slots:
        return spread
    return layout


def chunked_lines(shape: tuple[int, ...], axis: int, threads: int) -> RegisterLayout:
    """The lines of `axis` spread over as many threads as divide them (`contiguous_layout`),
    then the threads left over splitting each line into chunks of consecutive elements, one
    run a thread (replicas where neither divides further)."""
    length = shape[axis]
    lines_shape = tuple(1 if d == axis else n for d, n in enumerate(shape))
    line_threads = math.gcd(math.prod(lines_shape), threads)
    chunks = math.gcd(length, threads // line_threads)
    spread, run = [1] * len(shape), [1] * len(shape)
    spread[axis], run[axis] = chunks, length // chunks
    lines = contiguous_layout(lines_shape, line_threads)
    return _replicated(L.product(lines, L.spatial(*spread) * L.local(*run)), threads)


def expand_dims_result(operand: RegisterLayout, axis: int) -> RegisterLayout:
    return L.expand_dims(operand, axis)


def reduce_result(operand: RegisterLayout, axis: int) -> RegisterLayout:
    return squeeze(L.reduce(operand, [axis]), axis)


def _last_dim_factor(rank: int, factor: int) -> RegisterLayout:
    return L.local(*([1] * (rank - 1) + [factor]))


def view_result(
    operand: RegisterLayout, source_bits: int, target_bits: int
) -> RegisterLayout | None:
    """Each element splits into (or several merge into) consecutive local slots; where
    neither width divides the other (u8 as u3), each run of lcm bits does: 3 bytes' slots
    become 8 fields' slots. None where the threads' slots are not whole runs (merging
    elements, or a run of lcm bits: u8 as u3 needs 3 bytes a run)."""
    rank = operand.rank
    if source_bits == target_bits:
        return operand
    if source_bits > target_bits and source_bits % target_bits == 0:
        return operand * _last_dim_factor(rank, source_bits // target_bits)
    if target_bits % source_bits == 0:
        return L.divide(operand, _last_dim_factor(rank, target_bits // source_bits))
    group_bits = math.lcm(source_bits, target_bits)
    groups = L.divide(operand, _last_dim_factor(rank, group_bits // source_bits))
    return None if groups is None else groups * _last_dim_factor(rank, group_bits // target_bits)


def view_operand(
    result: RegisterLayout, source_bits: int, target_bits: int
) -> RegisterLayout | None:
    return view_result(result, target_bits, source_bits)


def grouped_view_operand(
    shape: tuple[int, ...], source_bits: int, target_bits: int, threads: int
) -> RegisterLayout:
    """A layout for a view's operand of `shape` in which each thread holds whole runs of
    lcm(source_bits, target_bits) bits of the last dimension, for a view whose result's
    layout cannot be traced back to one (its threads split such runs)."""
    run = math.lcm(source_bits, target_bits) // source_bits
    runs = (*shape[:-1], shape[-1] // run)
    return contiguous_layout(runs, threads) * _last_dim_factor(len(shape), run)


def dot_accumulator_layout(m: int, n: int, threads: int) -> RegisterLayout:
    """SIMT dot: each thread owns a near-square block of the accumulator, so the rows of a and
    columns of b it must hold are few."""
    size = m * n
    used = math.gcd(size, threads)
    best = None
    for spatial_m in _divisors(m):
        spatial_n = used // spatial_m
        if used % spatial_m or n % spatial_n:
            continue
        local_m, local_n = m // spatial_m, n // spatial_n
        cost = (local_m + local_n, -local_n)
        if best is None or cost < best[0]:
            best = (cost, spatial_m, spatial_n, local_m, local_n)
    if best is None:
        return contiguous_layout((m, n), threads)
    _, spatial_m, spatial_n, local_m, local_n = best
    layout = L.spatial(spatial_m, spatial_n) * L.local(local_m, local_n)
    return _replicated(layout, threads)


def blocked_dot_accumulator_layout(
    m: int, n: int, threads: int, lanes: int
) -> RegisterLayout | None:
    """CPU: each thread owns R rows by C columns of the accumulator, C a multiple of a vector
    register's `lanes`, so that a step of k is R x C / lanes FMAs, each of one register of
    b's row k by a's element (i, k) broadcast (an operand of the FMA itself). None where a
    thread's accumulator fits one register or no such block tiles it (a GEMV's few columns,
    attention's scores: `dot_accumulator_layout`, each slot's products summed in lanes along
    k instead, as lower-to-threads does for at most a register of slots).

    Of the blocks that fit, the one that reads the fewest registers a step (R broadcasts,
    C / lanes rows of b): 2 x 16 rather than 1 x 32 on a tie, broadcasts being free loads."""
    if (m * n) % threads or m * n // threads <= lanes:
        return None
    slots = m * n // threads
    best = None
    for columns in range(lanes, min(n, slots) + 1, lanes):
        rows = slots // columns
        if n % columns or slots % columns or m % rows:
            continue
        cost = (rows + columns // lanes, -rows)
        if best is None or cost < best[0]:
            best = (cost, rows, columns)
    if best is None:
        return None
    _, rows, columns = best
    return L.spatial(m // rows, n // columns) * L.local(rows, columns)


def steps_in_registers(accumulator: RegisterLayout, target: Target) -> bool:
    """Whether the CPU computes a SIMT dot with this accumulator layout one step of k at a
    time, whole registers of the accumulator multiplied and added (a thread holds more than
    one register of it; lower-to-threads `simt_dot` asks this too), rather than summing each
    slot's products in lanes along k. Dot accumulators are 32-bit (f32, i32)."""
    return not target.is_gpu and accumulator.slots > target.lanes(32)


def dot_layouts(
    accumulator: RegisterLayout, k: int, pairs: bool = False
) -> tuple[RegisterLayout, RegisterLayout]:
    """Operand layouts for a SIMT dot: the thread owning acc[i, j] holds a[i, :] and b[:, j].
    With `pairs`, b's rows 2p and 2p + 1 are interleaved in the thread's slots (each column's
    two elements side by side): a register of them is what one `dot_pairs` lane pair takes."""
    a = L.reduce(accumulator, [1]) * L.local(1, k)
    if pairs:
        return a, L.local(k // 2, 1) * L.reduce(accumulator, [0]) * L.local(2, 1)
    b = L.local(k, 1) * L.reduce(accumulator, [0])
    return a, b


def pairs_in_registers(
    accumulator: RegisterLayout, operand_dtype: DType, k: int, target: Target
) -> bool:
    """Whether a CPU dot adds whole registers of accumulator each step (a matmul's) and
    multiplies two steps of k at a time (`dot_pairs`: bf16 operands on a host with
    AVX512-BF16, an even k), so that its b is held pair-interleaved (`dot_layouts`)."""
    return (
        target.bf16_dot_pairs
        and operand_dtype.name == "bf16"
        and k % 2 == 0
        and steps_in_registers(accumulator, target)
    )


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# ---- tensor cores (mma.sync m16n8k16, and m16n8k32 for 8-bit integers) ----------------
MMA_A = L.column_local(2, 2) * L.spatial(8, 4) * L.local(1, 2)  # a 16x16 A fragment
MMA_B = L.local(2, 1) * L.column_spatial(4, 8) * L.local(2, 1)  # a 16x8 B fragment
MMA_C = L.local(2, 1) * L.spatial(8, 4) * L.local(1, 2)  # a 16x8 accumulator fragment
# m16n8k32 (8-bit integers into s32): each 32-bit register holds 4 elements along k instead of
# 2, so the fragments are the 16-bit ones with k twice as long (PTX "Matrix Fragments for
# mma.m16n8k32"); the accumulator's is MMA_C
MMA_A8 = L.column_local(2, 2) * L.spatial(8, 4) * L.local(1, 4)  # a 16x32 A fragment
MMA_B8 = L.local(2, 1) * L.column_spatial(4, 8) * L.local(4, 1)  # a 32x8 B fragment

#: the k of one mma by operand dtype: the dtypes whose dots run on tensor cores
MMA_K = {"f16": 16, "bf16": 16, "i8": 32}


def mma_k(operand_dtype: DType) -> int | None:
    """The k one mma takes for a dot of `operand_dtype` (16 for f16/bf16, 32 for 8-bit
    integers), or None where the dot has no tensor-core form."""
    return MMA_K.get(operand_dtype.name)


def mma_warps(
    m: int, n: int, k: int, threads: int, split_rows: bool = False, k_step: int = 16
) -> tuple[int, int] | None:
    """How the warps split an [m, n] accumulator into blocks of m16n8 atoms (None: no mma,
    k_step being the mma's k): the squarest block per warp, or with `split_rows` over as many
    warps along m as divide it (no row of a held by two warps: a's loads and decoding are not
    repeated)."""
    if threads % 32 or m % 16 or n % 8 or k % k_step:
        return None
    warps = threads // 32
    best = None
    for warps_m in range(1, warps + 1):
        warps_n = warps // warps_m
        if warps % warps_m or (m // 16) % warps_m or (n // 8) % warps_n:
            continue
        per_warp = (m // 16 // warps_m, n // 8 // warps_n)
        squarest = (abs(per_warp[0] * 2 - per_warp[1]), warps_m)
        cost = (-warps_m, 0) if split_rows else squarest
        if best is None or cost < best[0]:
            best = (cost, warps_m, warps_n)
    return None if best is None else (best[1], best[2])


def mma_layouts(
    m: int, n: int, k: int, threads: int, split_rows: bool = False, k_step: int = 16
) -> tuple[RegisterLayout, RegisterLayout, RegisterLayout] | None:
    """(a, b, acc) layouts for a tensor-core dot, or None when the shapes do not fit.

    Warps form a warps_m x warps_n grid (`mma_warps`); each owns a contiguous block of m16n8
    atoms of the accumulator, all of its rows of a and all of its columns of b (replicated
    over the warps that share them). `k_step` is the mma's k (`mma_k`): 16 (f16/bf16
    fragments), or 32 (8-bit integer fragments, `MMA_A8` and `MMA_B8`).
    """
    warps = mma_warps(m, n, k, threads, split_rows, k_step)
    if warps is None:
        return None
    warps_m, warps_n = warps
    repeat_m, repeat_n, steps = m // 16 // warps_m, n // 8 // warps_n, k // k_step
    fragment_a, fragment_b = (MMA_A, MMA_B) if k_step == 16 else (MMA_A8, MMA_B8)
    acc = L.spatial(warps_m, warps_n) * L.local(repeat_m, repeat_n) * MMA_C
    a = L.spatial(warps_m, 1) * L.replicate(warps_n) * L.local(repeat_m, steps) * fragment_a
    b = L.replicate(warps_m) * L.spatial(1, warps_n) * L.local(steps, repeat_n) * fragment_b
    return a, b, acc


PAIR_DISTANCES = (1, 2, 4, 8, 16)  # the `pair` values of k-permuted mma operands


def pair_distance(element: DType, k: int) -> int:
    """How far apart along k the two elements of an operand register are in a k-permuted mma
    operand (`mma_layouts_permuted`) loaded from elements of dtype `element`.

    Packed integers (up to 7 bits) become f16 pairs by one `lop3` into two mantissas when both
    fields of a pair lie in one 32-bit window, one at bit p <= 10 - nbits of the low half and
    one at bit q <= 10 - nbits of the high half: fields d elements apart with 6 + nbits <= d *
    nbits <= 26 - nbits, best 16 (one window serves two pairs). Small floats pair fields at
    the same bit of their 16-bit windows (one decoder for both): d = 16 // nbits (fp4 4, fp6
    and fp7 2; none for fp3 and fp5). Whole bytes (8-bit ints, fp8)
    and wider elements keep neighbours together (d = 1: a thread's slots are then its row's
    addresses in order). d divides 2 * k / 16, the register pairs a thread holds per row.
    """
    pairs, nbits = 2 * (k // 16), element.nbits
    if nbits >= 8:
        return 1
    if element.is_float:  # fields at the same bit of 16-bit windows: 16 // nbits apart
        candidates = [d for d in PAIR_DISTANCES[1:] if d == 16 // nbits]
    else:
        candidates = [d for d in PAIR_DISTANCES[1:] if 6 + nbits <= d * nbits <= 26 - nbits]
    candidates = [d for d in candidates if pairs % d == 0]
    return min(candidates, key=lambda d: abs(d * nbits - 16), default=1)


def mma_layouts_permuted(
    m: int, n: int, k: int, threads: int, pair: int
) -> tuple[RegisterLayout, RegisterLayout] | None:
    """(a, b) layouts of a tensor-core dot whose k coordinate is renumbered alike in both.

    A dot sums over k, so the mma may pair a's and b's elements in any order as long as both
    use the same one (`mma_k_permutation`). Here each thread's k values are one contiguous run
    of k / 4 (so a row-major a, e.g. a weight matrix W[N, K], is loaded straight into the
    fragments, 16 bytes a time, without an exchange through shared memory) and the two
    elements of each operand register lie `pair` apart along k (see `pair_distance`: packed
    fields decode in pairs without a `prmt`). Threads and accumulator are those of
    `mma_layouts` with `split_rows` (a's rows, the weights, are each loaded and decoded by
    one warp); a thread's slots run row by row (row g, then g + 8) and, for `pair` 1, in
    address order, so 8- and 16-bit rows load without a permutation of bytes.
    """
    warps = mma_warps(m, n, k, threads, split_rows=True)
    if warps is None or (2 * (k // 16)) % pair:
        return None
    warps_m, warps_n = warps
    repeat_m, repeat_n, steps = m // 16 // warps_m, n // 8 // warps_n, k // 16
    low = max(pair // 2, 1)  # the steps inside one run of `pair` register pairs
    # k = tq * k/4 + u1 * 2 * pair + e * pair + s_lo * 2 + c (mode ids 0..4), where the
    # step is u1 * low + s_lo, c the fragment's k half, e the element of a register pair
    k_sizes = {0: 4, 1: steps // low, 2: 2, 3: low, 4: 2}
    k_dims, k_local = ([0, 1, 4, 2], [1, 4, 2]) if pair == 1 else ([0, 1, 2, 3, 4], [1, 3, 4, 2])
    # a: rows (warp 10, repeat 11, half 12, group 13); b: columns (warp 20, repeat 21, group 22)
    a = LayoutDraft(
        {**k_sizes, 10: warps_m, 11: repeat_m, 12: 2, 13: 8},
        [[10, 11, 12, 13], k_dims],
        [10, -warps_n, 13, 0],
        [11, 12, *k_local],
    )
    b = LayoutDraft(
        {**k_sizes, 20: warps_n, 21: repeat_n, 22: 8},
        [k_dims, [20, 21, 22]],
        [-warps_m, 20, 22, 0],
        [21, *k_local],
    )
    return _without_unit_entries(a).finish(), _without_unit_entries(b).finish()


def mma_k_permutation(k: int, pair: int | None) -> list[int]:
    """Where `mma_layouts_permuted` puts each k of `mma_layouts` (identity for None)."""
    if pair is None:
        return list(range(k))
    run, permutation = k // 4, []
    for kk in range(k):
        step, c, tq, e = kk // 16, kk // 8 % 2, kk // 2 % 4, kk % 2
        u = 2 * step + c
        if pair == 1:
            permutation.append(tq * run + 2 * u + e)
        else:
            permutation.append(tq * run + u // pair * 2 * pair + e * pair + u % pair)
    return permutation


def _without_unit_entries(draft: LayoutDraft) -> LayoutDraft:
    """The draft without replications of 1 (size-1 modes the layout drops itself)."""
    draft.spatial = [e for e in draft.spatial if e != -1]
    return draft


def uses_mma(operand_dtype: DType, m: int, n: int, k: int, threads: int, target: Target) -> bool:
    """Whether a dot of `operand_dtype` runs on tensor cores on `target` (f16/bf16 into f32,
    i8 into i32: `MMA_K`; the shapes a whole number of the mma's atoms over whole warps)."""
    k_step = mma_k(operand_dtype)
    return (
        target.is_gpu
        and k_step is not None
        and mma_layouts(m, n, k, threads, k_step=k_step) is not None
    )


def dot_anchor(
    operand_dtype: DType,
    m: int,
    n: int,
    k: int,
    threads: int,
    target: Target,
    split_rows: bool = False,
) -> RegisterLayout:
    """The accumulator layout a dot prefers on `target` (`split_rows`: see `mma_warps`)."""
    k_step = mma_k(operand_dtype)
    if k_step is not None and uses_mma(operand_dtype, m, n, k, threads, target):
        layouts = mma_layouts(m, n, k, threads, split_rows, k_step)
        assert layouts is not None  # uses_mma: the shapes fit (split_rows or not)
        return layouts[2]
    blocked = blocked_dot(m, n, threads, target)
    return blocked or dot_accumulator_layout(m, n, threads)


def blocked_dot(m: int, n: int, threads: int, target: Target) -> RegisterLayout | None:
    """The accumulator layout of a SIMT dot on the CPU in register blocks
    (`blocked_dot_accumulator_layout`; accumulators are 32-bit), or None (a GPU, or a
    GEMV-shaped dot)."""
    if target.is_gpu:
        return None
    return blocked_dot_accumulator_layout(m, n, threads, target.lanes(32))


def dot_operands(
    accumulator: RegisterLayout,
    operand_dtype: DType,
    k: int,
    target: Target,
    pair: int | None = None,
) -> tuple[RegisterLayout, RegisterLayout]:
    """(a, b) layouts a dot with this accumulator layout needs on `target`; with `pair`, the
    k-permuted tensor-core operands (`mma_layouts_permuted`: f16 and bf16 only)."""
    m, n = accumulator.shape
    threads = accumulator.threads
    k_step = mma_k(operand_dtype)
    if k_step is not None and uses_mma(operand_dtype, m, n, k, threads, target):
        pair = pair if k_step == 16 else None
        for split_rows in (False, True) if pair is None else (True,):
            layouts = mma_layouts(m, n, k, threads, split_rows, k_step)
            assert layouts is not None  # uses_mma: the shapes fit (split_rows or not)
            a, b, acc = layouts
            if acc == accumulator:
                if pair is not None:
                    permuted = mma_layouts_permuted(m, n, k, threads, pair)
                    assert permuted is not None  # `pair` is a pair_distance: it divides k's pairs
                    return permuted
                return a, b
    return dot_layouts(accumulator, k, pairs_in_registers(accumulator, operand_dtype, k, target))


def shared_layout(
    memory_type: SharedType,
    loads: Sequence[tuple[RegisterLayout, Sequence[int]]],
    target: Target,
    stores: Sequence[tuple[RegisterLayout, Sequence[int]]] = (),
) -> SharedLayout | None:
    """The layout of a shared tile that `loads` read and `stores` write, each a (register
    layout, dims) pair.

    On a GPU, a row-major tile of whole-byte elements gets the XOR swizzle that makes its
    accesses take the fewest shared-memory wavefronts (`lpir.layout.banks`: 32 banks of 4-byte
    words), among the classic one (`lpir.layout.shared_swizzled`, which puts the eight 16-byte
    rows of each 8x8 matrix an `ldmatrix` reads in distinct banks) and the `Swizzle(bits, M,
    shift)` that move whole 16-byte units, and, where none of those is conflict-free, each of
    them followed by a one-bit second term; a tie keeps the classic swizzle where a load uses
    `ldmatrix`, and no swizzle otherwise. An explicit layout stays; elsewhere the tile is
    row-major (None).
    """
    if memory_type.layout is not None:
        return memory_type.layout
    nbits = memory_type.dtype.nbits
    if not target.is_gpu or nbits % 8 or nbits > 32 or not (loads or stores):
        return None
    strides = memory_type.strides
    accesses: list[banks.WarpAccesses] = []
    matrix_loads = False
    for pairs, is_load in ((loads, True), (stores, False)):
        for register_layout, dims in pairs:
            offsets = fragment_offsets(register_layout, [strides[d] for d in dims])
            plan = plan_matrix_loads(offsets, nbits) if is_load and nbits in (8, 16) else None
            matrix_loads |= plan is not None
            accesses.append(
                banks.tile_accesses(offsets, nbits // 8)
                if plan is None
                else _matrix_accesses(plan, nbits // 8)
            )
    candidates = _swizzle_candidates(memory_type, matrix_loads)

    def cost(layout: SharedLayout | None) -> tuple[int, int]:
        swizzle = layout.swizzle if layout is not None else None
        totals = [access.cost(swizzle) for access in accesses]
        return sum(t for t, _ in totals), sum(i for _, i in totals)

    taken, ideal = cost(candidates[0])
    if taken == ideal:  # the preferred layout is conflict-free: nothing to gain
        return candidates[0]
    costs = {id(layout): cost(layout)[0] for layout in candidates}
    ranked = sorted(candidates, key=lambda layout: costs[id(layout)])  # stable: ties in order
    best, best_cost = ranked[0], costs[id(ranked[0])]
    if best_cost == ideal:
        return best
    # No single XOR term is conflict-free: try a second term after the cheapest few (a row into
    # the bank bits, then a higher bit of the unit into one of them), kept only if cheaper.
    for layout in _two_term_candidates(memory_type, ranked[:TWO_TERM_FIRSTS]):
        taken = cost(layout)[0]
        if taken < best_cost:
            best, best_cost = layout, taken
            if taken == ideal:
                break
    return best


def _swizzle_candidates(memory_type: SharedType, matrix_loads: bool) -> list[SharedLayout | None]:
    """The shared layouts to compare, the preferred one first: the classic swizzle where
    `ldmatrix` reads the tile (else row-major), then every swizzle of whole 16-byte units
    that keeps offsets inside the tile."""
    nbits, shape = memory_type.dtype.nbits, memory_type.shape
    row_major = shared_row_major(shape)
    try:
        classic = shared_swizzled(shape, nbits)
    except LayoutError:  # rows that are not a power of two of 16-byte units
        classic = row_major
    preferred = classic if matrix_loads and classic.swizzle is not None else None
    base = (128 // nbits).bit_length() - 1  # log2(elements per 16 bytes)
    size = math.prod(shape)
    others: list[SharedLayout | None] = [None]
    if classic.swizzle is not None:
        others.append(classic)
    for bits in (1, 2, 3):
        if size % (1 << (base + bits)):  # the XOR would leave the tile
            continue
        for shift in range(bits, max(bits, (size - 1).bit_length() - base - bits) + 1):
            swizzle = Swizzle(bits, base, shift)
            layout = SharedLayout(row_major.shape, row_major.strides, swizzle)
            if layout not in others:
                others.append(layout)
    return [preferred, *(layout for layout in others if layout != preferred)]


#: how many of the cheapest single-term layouts get a second term tried after them
TWO_TERM_FIRSTS = 4


def _two_term_candidates(
    memory_type: SharedType, singles: Sequence[SharedLayout | None]
) -> list[SharedLayout]:
    """Each swizzled layout of `singles` followed by a one-bit XOR term into one of the three
    bits that pick a 16-byte unit's group of banks, from any higher bit of the tile."""
    nbits, size = memory_type.dtype.nbits, math.prod(memory_type.shape)
    base = (128 // nbits).bit_length() - 1
    found = []
    for single in singles:
        if single is None:
            continue
        for target in range(base, base + 3):
            for shift in range(1, (size - 1).bit_length() - target):
                first = single.swizzle
                assert first is not None  # _swizzle_candidates: every layout but None swizzles
                swizzle = Swizzle(first.bits, first.base, first.shift, Swizzle(1, target, shift))
                found.append(SharedLayout(single.shape, single.strides, swizzle))
    return found


def _matrix_accesses(plan: list[MatrixLoad], element_bytes: int) -> banks.WarpAccesses:
    """The `ldmatrix` loads of `plan` as warp-wide accesses: 16 bytes from each lane that
    gives a row (lanes 0 .. 8 x count - 1 of each warp; rows at element offsets)."""
    starts = np.concatenate([load.rows.reshape(-1, banks.WARP) for load in plan])
    giving = [np.arange(banks.WARP) < 8 * load.count for load in plan]
    active = np.concatenate(
        [np.tile(lanes, (len(load.rows) // banks.WARP, 1)) for lanes, load in zip(giving, plan)]
    )
    return banks.WarpAccesses(starts, active, np.full(len(starts), 16), element_bytes)
