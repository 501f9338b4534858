"""The layout algebra: primitives, product, concat, reduce, divide, permute, reshape.

Every function returns a new canonical `RegisterLayout`; none mutates its arguments.

Rank-0 layouts (``replicate(r)``, ``local()``) adapt to the other operand of a product, a
concat or a divide: they act as a layout of the same rank whose dimensions all have size 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from lpir.errors import LayoutError
from lpir.layout.draft import LayoutDraft
from lpir.layout.register import RegisterLayout

# ------------------------------------------------------------------ primitives


def _primitive(sizes: Sequence[int], in_threads: bool, column_major: bool) -> RegisterLayout:
    rank = len(sizes)
    ids = list(range(rank))
    if column_major:
        ids.reverse()
    entries = tuple(ids)
    return RegisterLayout(
        tuple(sizes),
        tuple((size,) for size in sizes),
        entries if in_threads else (),
        () if in_threads else entries,
    )


def local(*sizes: int) -> RegisterLayout:
    """One thread holds all axbx… elements; slot = row-major index of the element."""
    return _primitive(sizes, in_threads=False, column_major=False)


def spatial(*sizes: int) -> RegisterLayout:
    """axbx… threads hold one element each; thread = row-major index of the element."""
    return _primitive(sizes, in_threads=True, column_major=False)


def column_local(*sizes: int) -> RegisterLayout:
    """Like `local`, but the slot is the column-major index (the first dimension is fastest)."""
    return _primitive(sizes, in_threads=False, column_major=True)


def column_spatial(*sizes: int) -> RegisterLayout:
    """Like `spatial`, but the thread is the column-major index (the first dim is fastest)."""
    return _primitive(sizes, in_threads=True, column_major=True)


def replicate(factor: int) -> RegisterLayout:
    """`factor` threads that all hold the same (single) element: a rank-0 layout.

    In a product it takes the rank of the other operand, so ``spatial(8, 4).replicate(2)`` is a
    64-thread layout of an 8x4 tile in which threads 2k and 2k+1 hold the same element.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise LayoutError(f"a replication factor must be a positive integer, got {factor!r}")
    return RegisterLayout((), (), (-factor,) if factor > 1 else (), ())


PRIMITIVES: dict[str, Callable[..., RegisterLayout]] = {
    "local": local,
    "spatial": spatial,
    "column_local": column_local,
    "column_spatial": column_spatial,
    "replicate": replicate,
}

# ------------------------------------------------------------------ operators


def _with_rank(layout: RegisterLayout, rank: int) -> RegisterLayout:
    """A rank-0 layout seen as a layout of `rank` size-1 dimensions."""
    return RegisterLayout((1,) * rank, ((),) * rank, layout.spatial_modes, ())


def _match_ranks(
    first: RegisterLayout, second: RegisterLayout, operation: str
) -> tuple[RegisterLayout, RegisterLayout]:
    if first.rank == 0 and second.rank > 0:
        first = _with_rank(first, second.rank)
    elif second.rank == 0 and first.rank > 0:
        second = _with_rank(second, first.rank)
    if first.rank != second.rank:
        raise LayoutError(
            f"cannot {operation} a rank-{first.rank} layout ({first}) "
            f"and a rank-{second.rank} layout ({second})",
            hint="both operands need the same rank; pad the smaller one with size-1 dimensions",
        )
    return first, second


def product(outer: RegisterLayout, inner: RegisterLayout) -> RegisterLayout:
    """``outer * inner``: tile `outer` with copies of `inner`.

    shape = outer.shape x inner.shape (elementwise); coordinate = a·inner.shape + b;
    thread = thread_outer(a)·inner.threads + thread_inner(b); slot likewise with slots.
    """
    outer, inner = _match_ranks(outer, inner, "multiply")
    a = LayoutDraft.of(outer)
    b = LayoutDraft.of(inner, first_id=len(outer.mode_sizes))
    return LayoutDraft(
        {**a.sizes, **b.sizes},
        [high + low for high, low in zip(a.dims, b.dims, strict=True)],
        a.spatial + b.spatial,
        a.local + b.local,
    ).finish()


def concat(first: RegisterLayout, second: RegisterLayout) -> RegisterLayout:
    """The layouts side by side: their dimensions concatenated, threads and slots multiplied.

    The result has shape ``first.shape + second.shape``; the element (a..., b...) is held by
    thread ``thread_first(a)·second.threads + thread_second(b)`` in slot
    ``slot_first(a)·second.slots + slot_second(b)``. So `first` picks the thread group and the
    slot block, `second` the thread and slot within them. ``concat(spatial(4), local(2)) ==
    spatial(4, 1).local(1, 2)``.
    """
    head = RegisterLayout(
        first.shape + (1,) * second.rank,
        first.modes + ((),) * second.rank,
        first.spatial_modes,
        first.local_modes,
    )
    tail = RegisterLayout(
        (1,) * first.rank + second.shape,
        ((),) * first.rank + second.modes,
        second.spatial_modes,
        second.local_modes,
    )
    return product(head, tail)


def _axes(dims: int | Sequence[int], rank: int, extra: int = 0) -> list[int]:
    """Normalize (possibly negative) axis numbers; `extra` widens the range (expand_dims)."""
    listed = [dims] if isinstance(dims, int) else list(dims)
    result = []
    for axis in listed:
        if not -(rank + extra) <= axis < rank + extra:
            raise LayoutError(f"axis {axis} is out of range for a rank-{rank} layout")
        result.append(axis % (rank + extra))
    if len(set(result)) != len(result):
        raise LayoutError(f"repeated axis in {listed}")
    return result


def reduce(layout: RegisterLayout, dims: int | Sequence[int]) -> RegisterLayout:
    """The layout of the tensor reduced over `dims` (kept as size-1 dimensions).

    Spatial modes of those dimensions become replication (in place, so thread numbering is
    unchanged) and their local modes disappear (slots are renumbered densely). The owners of a
    reduced coordinate are exactly the threads that own some element along the reduced
    dimensions, and each thread keeps the result in one slot.
    """
    draft = LayoutDraft.of(layout)
    for dim in _axes(dims, layout.rank):
        for mode in draft.dims[dim]:
            if mode in draft.spatial:
                draft.spatial[draft.spatial.index(mode)] = -draft.sizes[mode]
            else:
                draft.local.remove(mode)
            del draft.sizes[mode]
        draft.dims[dim] = []
    return draft.finish()


def permute(layout: RegisterLayout, dims: Sequence[int]) -> RegisterLayout:
    """Transpose: dimension i of the result is dimension ``dims[i]`` of `layout`.

    Threads and slots keep holding the same elements.
    """
    axes = _axes(dims, layout.rank)
    if len(axes) != layout.rank:
        raise LayoutError(f"{list(dims)} is not a permutation of the {layout.rank} dimensions")
    draft = LayoutDraft.of(layout)
    draft.dims = [draft.dims[axis] for axis in axes]
    return draft.finish()


def expand_dims(layout: RegisterLayout, axis: int) -> RegisterLayout:
    """Insert a size-1 dimension at `axis` (numpy semantics; negative counts from the end)."""
    (position,) = _axes(axis, layout.rank, extra=1)
    draft = LayoutDraft.of(layout)
    draft.dims.insert(position, [])
    return draft.finish()


def reshape(layout: RegisterLayout, shape: Sequence[int]) -> RegisterLayout:
    """The same threads and slots holding a row-major reshaped tensor.

    Exists when the row-major digits of the old shape can be regrouped into the new one
    (modes are split where a new dimension boundary falls inside them); raises LayoutError
    otherwise, e.g. reshaping ``local(6)`` (one mode of 6) to (4, ...) is impossible since
    4 does not divide 6 evenly into digits.
    """
    shape = tuple(int(size) for size in shape)
    if any(size < 1 for size in shape) or math.prod(shape) != layout.size:
        raise LayoutError(f"cannot reshape a {list(layout.shape)} layout to {list(shape)}")
    draft = LayoutDraft.of(layout)
    queue = [mode for dim in draft.dims for mode in dim]
    new_dims = []
    for target in shape:
        dim, size = [], 1
        while size < target:
            mode, need = queue[0], target // size
            mode_size = draft.sizes[mode]
            if need % mode_size == 0:
                dim.append(queue.pop(0))
                size *= mode_size
            elif mode_size % need == 0:
                queue[0] = draft.split(mode, mode_size // need)
                dim.append(mode)
                size = target
            else:
                raise LayoutError(
                    f"cannot reshape {layout} (shape {list(layout.shape)}) to {list(shape)}: "
                    f"a mode of size {mode_size} straddles a dimension of size {target}"
                )
        new_dims.append(dim)
    draft.dims = new_dims
    return draft.finish()


def divide(layout: RegisterLayout, divisor: RegisterLayout) -> RegisterLayout | None:
    """The quotient Q with ``Q * divisor == layout``, or None when there is none.

    Returns None (rather than raising) because callers ask "does this layout divide by the
    atom?" as a question — instruction selection tries an mma fragment, a 16-byte vector or a
    SIMD vector (``local(1, 8)``) and takes the first that divides. The quotient is unique when
    it exists. Raises LayoutError only when the ranks differ (a rank-0 divisor adapts).
    """
    layout, divisor = _match_ranks(layout, divisor, "divide")
    draft = LayoutDraft.of(layout)
    matched = _match_modes(draft, divisor)
    if matched is None:
        return None
    if not _match_tail(draft.spatial, divisor.spatial_modes, matched, allow_split=True):
        return None
    if not _match_tail(draft.local, divisor.local_modes, matched, allow_split=False):
        return None
    del draft.spatial[len(draft.spatial) - len(divisor.spatial_modes) :]
    del draft.local[len(draft.local) - len(divisor.local_modes) :]
    for mode in matched.values():
        draft.dims[draft.dim_of(mode)].remove(mode)
        del draft.sizes[mode]
    return draft.finish()


def _match_modes(draft: LayoutDraft, divisor: RegisterLayout) -> dict[int, int] | None:
    """Pair each divisor mode with the least significant modes of its dimension in `draft`.

    The low digits of a coordinate belong to the divisor (x = q·shape + r), so each dimension's
    modes must end with the divisor's; a longer mode is split to expose the piece.
    """
    matched: dict[int, int] = {}
    for dim in range(divisor.rank):
        unmatched = len(draft.dims[dim])
        ids = [m for m in range(len(divisor.mode_sizes)) if divisor.mode_dims[m] == dim]
        for divisor_mode in reversed(ids):
            if unmatched == 0:
                return None
            mode = draft.dims[dim][unmatched - 1]
            want = divisor.mode_sizes[divisor_mode]
            if draft.sizes[mode] % want:
                return None
            if draft.sizes[mode] == want:
                matched[divisor_mode] = mode
                unmatched -= 1
            else:
                matched[divisor_mode] = draft.split(mode, want)
    return matched


def _match_tail(
    entries: list[int], divisor_entries: tuple[int, ...], matched: dict[int, int], allow_split: bool
) -> bool:
    """Check that `entries` ends with the divisor's entries, splitting replications if needed."""
    for back, wanted in enumerate(reversed(divisor_entries)):
        index = len(entries) - 1 - back
        if index < 0:
            return False
        entry = entries[index]
        if wanted >= 0:
            if entry != matched[wanted]:
                return False
        elif not (allow_split and entry < 0 and entry % wanted == 0):
            return False
        elif entry != wanted:
            entries[index] = -(entry // wanted)
            entries.insert(index + 1, wanted)
    return True
