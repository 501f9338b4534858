"""Shared-memory bank conflicts of a kernel, counted on the thread interpreter (no GPU needed).

`count_bank_conflicts(kernel, buffers)` runs thread IR of the "cuda" pipeline on the thread
interpreter and replays every shared access through the bank model of `lpir.layout.banks`
(32 banks of 4-byte words, served 128 bytes a wavefront), as the CUDA emitter splits it: each
group of `vector_width` lanes is one access of up to 16 bytes (`emit_memory.access_chunks`),
other lanes one access each, an `ldmatrix` one 16-byte row per lane. The per-op totals say
which accesses a layout makes slow, before a GPU profiles them. (The per-thread `cp.async`
slots the emitter adds for pipelined loads are not in the thread IR; thread t's slot is at
t x chunk, which no two lanes of a phase share a bank in.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lpir.backends.cuda.emit_memory import access_chunks

from lpir.interpreter.thread import ThreadInterpreter
from lpir.ir.core import Kernel, Operation
from lpir.ir.ops.thread_memory import MemoryAccess
from lpir.ir.types import as_memory
from lpir.layout.banks import WARP, WarpAccesses


@dataclass
class SharedAccess:
    """What one shared-memory op of a kernel cost, summed over its warp-wide accesses."""

    op: Operation
    bytes_per_lane: int
    accesses: int = 0  # warp-wide accesses executed
    wavefronts: int = 0
    ideal: int = 0  # the wavefronts the same bytes would take without conflicts

    @property
    def conflict(self) -> float:
        """Wavefronts per conflict-free wavefront: 1.0 is conflict-free, 8.0 is 8-way."""
        return self.wavefronts / self.ideal if self.ideal else 1.0

    def describe(self) -> str:
        where = self.op.location or "?"
        return (
            f"{where}: {self.op.name} {self.bytes_per_lane} B/lane, {self.accesses} accesses, "
            f"{self.wavefronts} wavefronts ({self.conflict:.2f}x conflict-free)"
        )


class _Counter:
    """The thread interpreter's observer: replays each shared access warp by warp."""

    def __init__(self) -> None:
        self.found: dict[int, SharedAccess] = {}

    def __call__(self, op: Operation, index: np.ndarray, active: np.ndarray) -> None:
        padding = -index.shape[0] % WARP  # a last partial warp: its missing lanes are off
        for columns, nbytes, element in _instructions(op, index.shape[1]):
            record = self.found.setdefault(id(op), SharedAccess(op, nbytes))
            starts = np.pad(index[:, columns[0]], (0, padding)).reshape(-1, WARP)
            on = np.pad(active[:, columns].all(axis=1), (0, padding)).reshape(-1, WARP)
            issued = on.any(axis=1)  # warps with no lane on issue nothing
            accesses = WarpAccesses(
                starts[issued], on[issued], np.full(int(issued.sum()), nbytes), element
            )
            taken, ideal = accesses.cost()
            record.accesses += int(issued.sum())
            record.wavefronts += taken
            record.ideal += ideal


def _instructions(op: Operation, lanes: int) -> list[tuple[range, int, int]]:
    """(the lanes one access moves, its bytes per thread, bytes per element) of each access
    the CUDA emitter makes of `op`."""
    if op.name == "ldmatrix":  # each thread gives one 16-byte row (8 16-bit or 16 8-bit elements)
        return [(range(1), 16, as_memory(op.operands[0].type).dtype.nbits // 8)]
    assert isinstance(op, MemoryAccess)  # the accesses the scan collects: ld, st, st_bits
    element = max(1, op.access_dtype.nbits // 8)
    chunks = access_chunks(lanes, op.vector_width, element)
    return [
        (range(start, min(start + step, lanes)), nbytes, element) for start, step, nbytes in chunks
    ]


def count_bank_conflicts(
    kernel: Kernel, buffers: list, blocks: int | None = 1
) -> list[SharedAccess]:
    """The shared accesses of `kernel` (thread IR) run on `buffers` (as the thread interpreter
    takes them), in program order, over the first `blocks` blocks (None: all)."""
    counter = _Counter()
    ThreadInterpreter(kernel, observer=counter).run(buffers, blocks=blocks)
    order = {id(op): n for n, op in enumerate(kernel.walk())}
    return sorted(counter.found.values(), key=lambda record: order.get(id(record.op), 0))
