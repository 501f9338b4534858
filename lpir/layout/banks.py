"""Shared-memory banks on an NVIDIA GPU: what a warp's access costs, for choosing layouts.

Shared memory is 32 banks of 4-byte words. A warp's access is served in *wavefronts*: the lanes
are taken in phases of 128 bytes (all 32 lanes for accesses of up to 4 bytes, half-warps for
8, quarter-warps for 16; `ldmatrix` is the 16-byte case, 8 lanes giving the rows of each 8x8
matrix), and a phase takes as many wavefronts as the most distinct words any one bank holds
among its lanes' (lanes reading the same word share it). A conflict-free access takes one
wavefront per 128 bytes; 32 lanes reading 4-byte words 128 bytes apart take 32.

`wavefronts` is that model for one access (`wavefronts_of` for many at once); `tile_accesses`
lists the accesses a tile load or store will make from its per-thread element offsets (as
vectorize will group them) and prices them under any swizzle, so that layout selection can
compare shared layouts before any code exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lpir.layout.shared import Swizzle

WARP = 32
BANKS = 32
PHASE_BYTES = 128  # what the banks serve in one wavefront
ACCESS_BYTES = 16  # the widest access a thread makes


@dataclass(frozen=True)
class WarpAccesses:
    """Warp-wide accesses of a tile: `starts[i, lane]` the element offset lane `lane` of access
    i reads or writes from (before any swizzle), `active[i, lane]` whether it does, `nbytes[i]`
    the bytes each lane moves."""

    starts: np.ndarray  # [accesses, 32] int64
    active: np.ndarray  # [accesses, 32] bool
    nbytes: np.ndarray  # [accesses] int64
    element_bytes: int

    def cost(self, swizzle: Swizzle | None = None) -> tuple[int, int]:
        """(wavefronts, conflict-free wavefronts) of all the accesses, the offsets placed by
        `swizzle` (a `Swizzle`, which moves whole 16-byte units) or not."""
        starts = self.starts if swizzle is None else swizzle.apply(self.starts)
        return wavefronts_of(starts * self.element_bytes, self.nbytes, self.active)


def wavefronts(addresses: np.ndarray, nbytes: int, active: np.ndarray) -> tuple[int, int]:
    """(wavefronts, conflict-free wavefronts) of one warp-wide access: `addresses` the byte
    address of each of the 32 lanes, `nbytes` what each lane moves, `active` which lanes do."""
    return wavefronts_of(addresses[None, :], np.array([nbytes]), active[None, :])


def wavefronts_of(addresses: np.ndarray, nbytes: np.ndarray, active: np.ndarray) -> tuple[int, int]:
    """`wavefronts` summed over many accesses: addresses and active [accesses, 32], nbytes
    [accesses]."""
    taken = ideal = 0
    for size in np.unique(nbytes):
        chosen = nbytes == size
        more, least = _same_width(addresses[chosen], int(size), active[chosen])
        taken, ideal = taken + more, ideal + least
    return taken, ideal


def _same_width(addresses: np.ndarray, nbytes: int, active: np.ndarray) -> tuple[int, int]:
    lanes_per_phase = WARP if nbytes <= 4 else PHASE_BYTES // nbytes
    phases = WARP // lanes_per_phase
    count = addresses.shape[0] * phases  # every (access, phase), numbered
    phase = np.arange(count).reshape(addresses.shape[0], phases)
    phase = np.repeat(phase, lanes_per_phase, axis=1)  # [accesses, 32]: each lane's phase
    words = addresses // 4
    words = words[..., None] + np.arange(max(nbytes, 4) // 4)  # [accesses, 32, words a lane]
    phase = np.broadcast_to(phase[..., None], words.shape)[active]
    words = words[active]
    # distinct (phase, word) pairs: lanes reading one word share it
    pairs = np.unique(phase.astype(np.int64) << 32 | words.astype(np.int64) & 0xFFFFFFFF)
    phase_of, word_of = pairs >> 32, pairs & 0xFFFFFFFF
    per_bank = np.bincount(phase_of * BANKS + word_of % BANKS, minlength=count * BANKS)
    words_per_phase = np.bincount(phase_of, minlength=count)
    taken = int(per_bank.reshape(count, BANKS).max(axis=1).sum())
    ideal = int((-(-words_per_phase // BANKS)).sum())
    return taken, ideal


def tile_accesses(offsets: np.ndarray, element_bytes: int) -> WarpAccesses:
    """The warp-wide accesses of a tile load or store whose thread t reads or writes the
    elements at strided offsets `offsets[t]` (one per register slot).

    Each thread's elements are taken in address order, as lower-to-threads and vectorize
    group them: a run of consecutive offsets inside one aligned 16-byte unit is one access (a
    swizzle moves whole units, so a run stays a run), and the i-th access of every thread of a
    warp is one warp-wide access.
    """
    threads = offsets.shape[0] - offsets.shape[0] % WARP
    unit = max(1, ACCESS_BYTES // element_bytes)
    runs = [_runs(np.unique(row), unit) for row in offsets[:threads]]
    starts, active, nbytes = [], [], []
    for warp in range(0, threads, WARP):
        lanes = runs[warp : warp + WARP]
        for i in range(max(len(r) for r in lanes)):
            present = [r[i] if i < len(r) else (0, 0) for r in lanes]
            starts.append([first for first, _ in present])
            active.append([length > 0 for _, length in present])
            width = max(length for _, length in present) * element_bytes
            nbytes.append(1 << (width - 1).bit_length())  # a vector access's size
    return WarpAccesses(
        np.array(starts, dtype=np.int64).reshape(-1, WARP),
        np.array(active, dtype=bool).reshape(-1, WARP),
        np.array(nbytes, dtype=np.int64),
        element_bytes,
    )


def tile_access_cost(
    offsets: np.ndarray, element_bytes: int, swizzle: Swizzle | None = None
) -> tuple[int, int]:
    """(wavefronts, conflict-free wavefronts) of a tile access (`tile_accesses`), its offsets
    placed by `swizzle` or not."""
    return tile_accesses(offsets, element_bytes).cost(swizzle)


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
