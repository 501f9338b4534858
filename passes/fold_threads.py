"""fold-threads: a block whose threads each hold little runs fewer threads that hold more (CPU).

Requires: tile IR with layouts (after layout-selection and drop-replicas). Guarantees: the same
values; where every register tile's thread index can give up its F least significant values
(`fold_low_threads`), each layout deals them to the slots instead and the kernel runs
threads / F threads, F the largest power of two that keeps every tile within `REGISTER_BYTES`
a thread.

A CPU runs a block's threads one after another, each a pass through the kernel's code: a thread
that holds 8 floats of a tile pays for its index arithmetic, its broadcasts, its shared-memory
partials and each barrier's save and restore as one that holds 64 does, for an eighth of the
work, and its loads and stores are 32-byte vectors instead of full 64-byte registers. Where a
thread already holds a few registers of some tile (`FOLDED_ENOUGH_BYTES`), it stays as it is;
copies do not count there (a tile every thread holds whole amortizes nothing: each thread
repeats the same work), and a folded thread holds its threads' copies once.
Tile IR does not depend on the thread count, only its layouts do: thread t' of the folded block
does the work of threads F t' .. F t' + F - 1 (replicas among them once), the low thread digits
becoming the most significant slot digits, so a run of consecutive elements over neighbouring
threads becomes one thread's run (in address order where the threads held one run each, else
read in address order and permuted in registers: vectorize). Kernels with a `dot` keep their
threads: their tiles are register blocks chosen for the dot (layout_rules.blocked_dot). The GPU
pipeline does not run this pass.
"""

from __future__ import annotations

from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Kernel, Module
from lpir.ir.ops import DotOp, UnaryOp
from lpir.ir.rewrite import Relayout, tile_types
from lpir.ir.types import TileType
from lpir.layout import RegisterLayout

#: The most bytes of a register tile a thread holds after folding: eight 64-byte vector
#: registers. Measured (2-core Zen 4, `lpir run --bench`): 256 left quantize 4096^2 at 35 ms
#: (512: 22, 1024: 25) and rope at 1.47 ms (1.32, 1.79); tiles that fit in registers stay there.
REGISTER_BYTES = 512

#: The most bytes a thread holds of a tile that a function of a few dozen instructions a
#: vector reads (`EXPENSIVE_FUNCTIONS`): the code of a thread's vectors runs side by side, and
#: eight of them, each with its polynomial's temporaries, spill. Measured over 4096 x 4096 f32
#: (2-core Zen 4, this budget 512 -> 256 bytes, timed in turn for 21 rounds): exact GELU (erf)
#: 15.6 -> 13.6 ms, tanh GELU 13.1 -> 11.2, silu 8.4 -> 7.1, exp 8.8 -> 7.4, sin * cos 10.7
#: -> 8.0, log 10.8 -> 8.1; softmax of 4096 x 1024 2.3 -> 2.0; rope (sin and cos of a small
#: tile of angles) keeps its factor. 128 bytes: erf and tanh GELU 4-9 % faster still, log and
#: sin * cos 15 % and softmax 35 % slower. `benchmarks/cpu_math.py --compare-budget B` times
#: the functions under another budget beside this one.
MATH_REGISTER_BYTES = 256
EXPENSIVE_FUNCTIONS = ("exp", "exp2", "log", "log2", "sin", "cos", "tanh", "erf")

#: A kernel some of whose tiles already take this many bytes a thread (four vector registers)
#: keeps its threads: they amortize a thread's overhead, and more registers a thread only add
#: pressure to loops tuned for their tiles (gemv_wq u4 at 64 floats of accumulator a thread,
#: folded by 2: 8192^2 2.1 -> 2.3 ms, gemv_mx 0.73 -> 0.84).
FOLDED_ENOUGH_BYTES = 256


def fold_low_threads(layout: RegisterLayout, factor: int) -> RegisterLayout | None:
    """`layout` with the `factor` least significant values of its thread index moved into
    the slot index as its most significant digits, for a block of
    threads / factor threads; replicated thread digits among them are dropped (the folded
    thread holds their element once). None where the thread digits do not split at `factor`.
    """
    # modes as keys: (dim, position) pairs with sizes, so that splitting one keeps the others
    sizes = {(d, i): size for d, dim in enumerate(layout.modes) for i, size in enumerate(dim)}
    order = [[(d, i) for i in range(len(dim))] for d, dim in enumerate(layout.modes)]
    key_of = [key for dim in order for key in dim]
    spatial: list = [key_of[e] if e >= 0 else e for e in layout.spatial_modes]
    folded: list = []
    remaining = factor
    while remaining > 1:
        if not spatial:
            return None
        entry = spatial[-1]
        size = -entry if isinstance(entry, int) else sizes[entry]
        if size <= remaining:
            if remaining % size:
                return None
            spatial.pop()
            folded.insert(0, entry)
            remaining //= size
            continue
        if size % remaining:
            return None
        if isinstance(entry, int):  # a replication: its low part is dropped
            spatial[-1] = -(size // remaining)
        else:  # the mode splits: its high part stays with the thread, its low part folds
            low = (*entry, "low")
            sizes[entry], sizes[low] = size // remaining, remaining
            dim = order[entry[0]]
            dim.insert(dim.index(entry) + 1, low)
            folded.insert(0, low)
        remaining = 1
    # in front of the slots, in every layout alike: thread t' slot l * S + s holds what thread
    # F t' + l held in slot s, so layouts that lower-to-threads relates slot by slot (a
    # reshape, a stack, an index of another) stay related
    local = [key for key in folded if not isinstance(key, int)]
    local += [key_of[e] for e in layout.local_modes]
    ids = {key: n for n, key in enumerate(key for dim in order for key in dim)}
    local = [ids[key] for key in local]
    return RegisterLayout(
        layout.shape,
        tuple(tuple(sizes[key] for key in dim) for dim in order),
        tuple(ids[key] if not isinstance(key, int) else key for key in spatial),
        tuple(local),
    )


def _element_bytes(tile: TileType) -> int:
    return max(1, tile.dtype.nbits // 8)


def _own_bytes(tile: TileType) -> int:
    """The bytes of `tile` a thread holds that no other thread holds, on average: a
    replicated tile's copies are the same work again, not work of the thread's own."""
    layout = tile.selected_layout
    return layout.slots * _element_bytes(tile) // layout.replication


def _folded_bytes(tiles: list[TileType], factor: int) -> int | None:
    """The most bytes of `tiles` a thread holds folded by `factor` (replicas among the
    folded threads held once), of the tiles that folding makes larger: one whose folded
    threads held copies alone is held as before, whatever its size, by fewer threads (top-128
    in every thread: 7.7 -> 2.4 ms folded, see tests/test_fold_replicated.py). None where
    some layout does not fold by it."""
    most = 0
    for tile in tiles:
        folded = fold_low_threads(tile.selected_layout, factor)
        if folded is None:
            return None
        if folded.slots > tile.selected_layout.slots:
            most = max(most, folded.slots * _element_bytes(tile))
    return most


def _math_operands(kernel: Kernel) -> list[TileType]:
    """The tiles that an expensive function (`EXPENSIVE_FUNCTIONS`) reads."""
    return [
        operand
        for op in kernel.walk()
        if isinstance(op, UnaryOp) and op.name in EXPENSIVE_FUNCTIONS
        for operand in (op.operands[0].type,)
        if isinstance(operand, TileType)
    ]


def folding_factor(kernel: Kernel) -> int:
    """The largest power of two F that every tile's layout folds by (`fold_low_threads`)
    and that keeps every tile it makes larger within `REGISTER_BYTES` a thread, and every
    such tile an expensive function reads within `MATH_REGISTER_BYTES` (a replicated tile's
    copies among the folded threads held once: `_folded_bytes`); 1 for a kernel with a dot
    or with a tile of `FOLDED_ENOUGH_BYTES` a thread of its own (`_own_bytes`)."""
    if any(isinstance(op, DotOp) for op in kernel.walk()):
        return 1
    types = list(tile_types(kernel))
    if not types or max(_own_bytes(t) for t in types) >= FOLDED_ENOUGH_BYTES:
        return 1
    math_operands = _math_operands(kernel)
    factor = 1
    while kernel.threads % (2 * factor) == 0:
        largest = _folded_bytes(types, 2 * factor)
        if largest is None or largest > REGISTER_BYTES:
            break
        largest_math = _folded_bytes(math_operands, 2 * factor)
        if largest_math is None or largest_math > MATH_REGISTER_BYTES:
            break
        factor *= 2
    return factor


@register_pass
class FoldThreadsPass(Pass):
    name = "fold-threads"
    stage = "tile"
    needs_layouts = True

    def run(self, module: Module) -> Module:
        return Module(
            [
                Relayout(fold_low_threads, folding_factor(kernel)).run_kernel(kernel)
                for kernel in module.kernels
            ]
        )


__all__ = ["FoldThreadsPass", "fold_low_threads", "folding_factor"]
