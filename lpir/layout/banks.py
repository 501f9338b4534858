"""Shared-memory banks on an NVIDIA GPU: what a warp's access costs, for choosing layouts.

Shared memory is 32 banks of 4-byte words. A warp's access is served in *wavefronts*: the lanes
are taken in phases of 128 bytes (all 32 lanes for accesses of up to 4 bytes, half-warps for
8, quarter-warps for 16; `ldmatrix` is the 16-byte case, 8 lanes giving the rows of each 8x8
matrix), and a phase takes as many wavefronts as the most distinct words any one bank holds
among its lanes' (lanes reading the same word share it). A conflict-free access takes one
wavefront per 128 bytes; 32 lanes reading 4-byte words 128 bytes apart take 32.

`wavefronts` is that model for one access; `tile_access_cost` estimates every access a tile
load or store will make from its per-thread element offsets (as vectorize will group them), so
that layout selection can compare shared layouts before any code exists.
"""

from __future__ import annotations

import numpy as np

WARP = 32
BANKS = 32
PHASE_BYTES = 128  # what the banks serve in one wavefront
ACCESS_BYTES = 16  # the widest access a thread makes


def wavefronts(addresses: np.ndarray, nbytes: int, active: np.ndarray) -> tuple[int, int]:
    """(wavefronts, conflict-free wavefronts) of one warp-wide access: `addresses` the byte
    address of each of the 32 lanes, `nbytes` what each lane moves, `active` which lanes do."""
    lanes_per_phase = WARP if nbytes <= 4 else PHASE_BYTES // nbytes
    words_per_lane = np.arange(max(nbytes, 4) // 4)
    taken = ideal = 0
    for first in range(0, WARP, lanes_per_phase):
        on = active[first : first + lanes_per_phase]
        if not on.any():
            continue
        starts = addresses[first : first + lanes_per_phase][on] // 4
        words = np.unique((starts[:, None] + words_per_lane[None, :]).ravel())
        taken += int(np.bincount(words % BANKS, minlength=BANKS).max())
        ideal += -(-len(words) // BANKS)
    return taken, ideal


def tile_access_cost(offsets: np.ndarray, element_bytes: int, swizzle=None) -> tuple[int, int]:
    """(wavefronts, conflict-free wavefronts) of a tile access whose thread t reads or writes
    the elements at strided offsets `offsets[t]` (one per register slot), with an optional
    `Swizzle` of those offsets.

    Each thread's elements are taken in address order, as lower-to-threads and vectorize
    group them: a run of consecutive offsets inside one aligned 16-byte unit is one access (the
    swizzle moves whole units, so a run stays a run), and the i-th access of every thread of a
    warp is one warp-wide access.
    """
    threads = offsets.shape[0]
    unit = max(1, ACCESS_BYTES // element_bytes)
    accesses = [_runs(np.unique(row), unit) for row in offsets]
    taken = ideal = 0
    for warp in range(0, threads - threads % WARP, WARP):
        lanes = accesses[warp : warp + WARP]
        for i in range(max(len(runs) for runs in lanes)):
            starts = np.zeros(WARP, dtype=np.int64)
            active = np.zeros(WARP, dtype=bool)
            width = 1
            for lane, runs in enumerate(lanes):
                if i < len(runs):
                    starts[lane], length = runs[i]
                    active[lane] = True
                    width = max(width, length)
            if swizzle is not None:
                starts = swizzle.apply(starts)
            nbytes = 1 << (width * element_bytes - 1).bit_length()  # a vector access's size
            more, least = wavefronts(starts * element_bytes, nbytes, active)
            taken, ideal = taken + more, ideal + least
    return taken, ideal


def _runs(offsets: np.ndarray, unit: int) -> list[tuple[int, int]]:
    """(first offset, length) of the runs of consecutive (sorted) offsets, each inside one
    aligned `unit` of elements."""
    runs: list[tuple[int, int]] = []
    for offset in (int(v) for v in offsets):
        if runs:
            first, length = runs[-1]
            if offset == first + length and offset // unit == first // unit:
                runs[-1] = (first, length + 1)
                continue
        runs.append((offset, 1))
    return runs
