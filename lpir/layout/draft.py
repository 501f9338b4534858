"""A mutable working copy of a register layout, for the algebra's rewrites.

`RegisterLayout` numbers its modes dimension-major and keeps itself canonical, which is the
wrong shape for step-by-step edits (split a mode, move it to another dimension, drop it). A
`LayoutDraft` holds modes under arbitrary integer ids; `finish()` renumbers them and builds the
canonical `RegisterLayout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lpir.layout.register import RegisterLayout


@dataclass
class LayoutDraft:
    """Modes by id, the ids of each dimension (most significant first), and the two index lists.

    Entries of `spatial` are mode ids (>= 0) or replications (-r); entries of `local` are mode
    ids. Ids need not be dense or ordered.
    """

    sizes: dict[int, int]
    dims: list[list[int]]
    spatial: list[int]
    local: list[int]

    @classmethod
    def of(cls, layout: RegisterLayout, first_id: int = 0) -> LayoutDraft:
        """A draft of `layout` whose mode ids start at `first_id`."""
        sizes = {first_id + i: size for i, size in enumerate(layout.mode_sizes)}
        dims: list[list[int]] = [[] for _ in layout.shape]
        for mode, dim in enumerate(layout.mode_dims):
            dims[dim].append(first_id + mode)

        def shift(entry: int) -> int:
            return entry if entry < 0 else first_id + entry

        return cls(
            sizes,
            dims,
            [shift(e) for e in layout.spatial_modes],
            [shift(e) for e in layout.local_modes],
        )

    def next_id(self) -> int:
        """An id no mode uses yet."""
        return max(self.sizes, default=-1) + 1

    def dim_of(self, mode: int) -> int:
        """The dimension that holds `mode`."""
        return next(d for d, dim in enumerate(self.dims) if mode in dim)

    def list_of(self, mode: int) -> list[int]:
        """The index list (spatial or local) that holds `mode`."""
        return self.spatial if mode in self.spatial else self.local

    def split(self, mode: int, low: int) -> int:
        """Split `mode` into a high part (kept under its id) and a low part of size `low`.

        The low part is less significant both in the coordinate and in the index, so it is
        placed right after the high part in the dimension and in the index list. Returns its id.
        """
        size = self.sizes[mode]
        assert size % low == 0, (size, low)
        new = self.next_id()
        self.sizes[mode] = size // low
        self.sizes[new] = low
        for order in (self.dims[self.dim_of(mode)], self.list_of(mode)):
            order.insert(order.index(mode) + 1, new)
        return new

    def remove(self, mode: int) -> None:
        """Forget `mode` (from its dimension and its index list)."""
        self.dims[self.dim_of(mode)].remove(mode)
        self.list_of(mode).remove(mode)
        del self.sizes[mode]

    def finish(self) -> RegisterLayout:
        """The canonical layout this draft describes."""
        order = [mode for dim in self.dims for mode in dim]
        renumber = {old: new for new, old in enumerate(order)}
        modes = tuple(tuple(self.sizes[m] for m in dim) for dim in self.dims)
        shape = tuple(math.prod(dim) for dim in modes)
        return RegisterLayout(
            shape,
            modes,
            tuple(renumber[e] if e >= 0 else e for e in self.spatial),
            tuple(renumber[e] for e in self.local),
        )
