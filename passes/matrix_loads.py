"""Plans `ldmatrix` loads for lower-to-threads: which of a shared-tile load's slots one warp-wide
8x8-matrix load can fetch, and the row address each thread must give it.

A load of a 16-bit shared tile into a register layout reads, in thread t and slot s, the element
at (strided) offset `offsets[t, s]`. `ldmatrix` hands thread t, for each matrix j it loads, the
pair of elements (lane / 4, 2 * (lane % 4) + {0, 1}) of that matrix (or, transposed,
(2 * (lane % 4) + {0, 1}, lane / 4)), where row i of matrix j starts at the offset thread 8j + i
gave. So a pair of slots (2r, 2r + 1) is one matrix of an `ldmatrix` exactly when, in every warp,
the 32 lanes' pairs are the rows or the columns of eight 16-byte-aligned runs of 8 elements. The
mma operand layouts (`layout_rules.mma_layouts`) are built that way; other layouts simply do not
match and keep their per-lane loads.

An `ldmatrix` delivers to each thread the elements its per-lane loads would read, but reads
them through rows that other lanes address. So lower-to-threads plans none for a load that only
each thread's own program order separates from a store of the same elements (the round trips
`insert_syncs.own_round_trips` names: no barrier between): those stay per-lane loads.

A tile of 8-bit elements (the m16n8k32 operands of i8 dots) is read the same way: `ldmatrix`
moves 16-bit units, so each pair of slots holding bytes 2u and 2u + 1 is one unit at 16-bit
offset u, the units are planned as above (not transposed: `.trans` would transpose 16-bit
units, not bytes) and each thread receives 4 bytes per matrix, (lane / 4, 4 * (lane % 4) +
{0, 1, 2, 3}), with rows of 16 elements.

The row address a thread gives is a table over threads; `bit_terms` writes it as a sum of bit
fields of the thread index, `lpir.layout.Term`s like a layout's thread part, which
`thread_values.thread_digits` turns into index arithmetic for both. Tables that are not such
sums are refused (no `ldmatrix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lpir.layout import RegisterLayout, Term

WARP = 32
ROW = 8  # elements of a matrix row: 16 bytes of 16-bit elements


def row_elements(nbits: int) -> int:
    """Elements of one 16-byte matrix row: 8 of 16 bits, 16 of 8 bits."""
    return 128 // nbits


@dataclass(frozen=True)
class MatrixLoad:
    """One `ldmatrix`: `count` matrices into the given slots, rows at `rows[t]` per thread."""

    count: int
    transpose: bool
    slots: tuple[int, ...]  # the load's slots that result lanes 0 .. 2 * count - 1 fill
    rows: np.ndarray  # [threads] strided element offset of the row each thread addresses


def plan_matrix_loads(offsets: np.ndarray, nbits: int = 16) -> list[MatrixLoad] | None:
    """`ldmatrix` loads covering every slot of a load with per-thread, per-slot element
    offsets `offsets` [threads, slots] into a tile of `nbits`-bit elements (16, or 8: see
    `_byte_matrix_loads`); None when the load is not made of matrix fragments."""
    if nbits == 8:
        return _byte_matrix_loads(offsets)
    threads, slots = offsets.shape
    if threads % WARP or slots % 2 or slots == 0:
        return None
    found = [_matrix_rows(offsets[:, 2 * r], offsets[:, 2 * r + 1]) for r in range(slots // 2)]
    matrices = [m for m in found if m is not None]
    if len(matrices) != len(found) or len({m[0] for m in matrices}) != 1:
        return None
    transpose = matrices[0][0]
    lane, warp = np.arange(threads) % WARP, np.arange(threads) // WARP
    loads = []
    first = 0
    while first < len(matrices):
        count = next(c for c in (4, 2, 1) if first + c <= len(matrices))
        rows = np.empty(threads, dtype=np.int64)
        for j in range(4):
            # Threads 8 * count and up give unused addresses: repeat the used ones, which keeps
            # the table a sum of bit fields.
            matrix_rows = matrices[first + j % count][1]
            selected = lane // ROW == j
            rows[selected] = matrix_rows[warp[selected], lane[selected] % ROW]
        pairs = range(first, first + count)
        loads.append(
            MatrixLoad(count, transpose, tuple(s for r in pairs for s in (2 * r, 2 * r + 1)), rows)
        )
        first += count
    return loads


def _byte_matrix_loads(offsets: np.ndarray) -> list[MatrixLoad] | None:
    """`plan_matrix_loads` of a tile of bytes: slots 2u and 2u + 1 must hold bytes 2v and
    2v + 1 (one 16-bit unit v), the units form plain (untransposed) matrix fragments; the
    plan's slots and rows are then those of the bytes."""
    if offsets.shape[1] % 2:
        return None
    low, high = offsets[:, 0::2], offsets[:, 1::2]
    if not np.array_equal(high, low + 1) or np.any(low % 2):
        return None
    plan = plan_matrix_loads(low // 2)
    if plan is None or any(load.transpose for load in plan):
        return None
    return [
        MatrixLoad(
            load.count,
            False,
            tuple(s for u in load.slots for s in (2 * u, 2 * u + 1)),
            load.rows * 2,
        )
        for load in plan
    ]


def _matrix_rows(low: np.ndarray, high: np.ndarray) -> tuple[bool, np.ndarray] | None:
    """(transposed?, row offsets [warps, 8]) when the slot pair (low, high) of every thread is
    one 8x8 matrix fragment; None otherwise."""
    lane = np.arange(WARP)
    low, high = low.reshape(-1, WARP), high.reshape(-1, WARP)
    # Plain: lane l holds (row l / 4, columns 2 (l % 4) + {0, 1}); row i is lane 4i's.
    rows = low[:, 0::4]
    column = 2 * (lane % 4)
    if (
        np.array_equal(low, rows[:, lane // 4] + column)
        and np.array_equal(high, low + 1)
        and not np.any(rows % ROW)
    ):
        return False, rows
    # Transposed: lane l holds (rows 2 (l % 4) + {0, 1}, column l / 4); lanes 0..3 start them.
    rows = np.stack([low[:, :4], high[:, :4]], axis=-1).reshape(-1, ROW)
    if (
        np.array_equal(low, rows[:, column] + lane // 4)
        and np.array_equal(high, rows[:, column + 1] + lane // 4)
        and not np.any(rows % ROW)
    ):
        return True, rows
    return None


def bit_terms(table: np.ndarray) -> tuple[int, list[Term]] | None:
    """(constant, terms) with table[t] == constant + sum of the terms of t for every t, each a
    bit field of t (`Term("thread", 2**shift, 2**width, coefficient)`); None when the table is
    not such a sum (not additive over the bits of t)."""
    count = len(table)
    constant = int(table[0])
    bits = max(1, (count - 1).bit_length())
    coefficients = [int(table[1 << b]) - constant if 1 << b < count else 0 for b in range(bits)]
    t = np.arange(count)
    predicted = np.full(count, constant, dtype=np.int64)
    for b, coefficient in enumerate(coefficients):
        predicted += ((t >> b) & 1) * coefficient
    if not np.array_equal(predicted, table):
        return None
    terms: list[Term] = []
    for b, coefficient in enumerate(coefficients):
        if coefficient == 0:
            continue
        last = terms[-1] if terms else None
        if (
            last is not None
            and last.divisor * last.modulus == 1 << b
            and last.multiplier * last.modulus == coefficient  # the field's next bit
        ):
            terms[-1] = Term("thread", last.divisor, last.modulus * 2, last.multiplier)
        else:
            terms.append(Term("thread", 1 << b, 2, coefficient))
    return constant, terms


def fragment_offsets(layout: RegisterLayout, strides: Sequence[int]) -> np.ndarray:
    """[threads, slots] strided element offset of each slot of `layout` in a tile whose
    dimensions have these element strides (relative to the tile's origin)."""
    coordinates = layout.coordinates()  # [threads, slots, rank]
    return coordinates @ np.asarray(strides, dtype=np.int64)
