"""Canonical form: every mapping has exactly one `RegisterLayout` value (and one text)."""

from __future__ import annotations

import itertools
import math

from lpir.layout import RegisterLayout, column_local, local, replicate, spatial


def test_canonical_examples():
    assert local(2, 1) * local(3, 1) == local(6, 1)
    assert spatial(4) * spatial(2) == spatial(8)
    assert hash(spatial(4) * spatial(2)) == hash(spatial(8))
    assert local(2, 1) * local(1, 3) == local(2, 3)
    assert local(1, 3) * local(2, 1) != local(2, 3)  # slots run column-major here
    assert local(1, 3) * local(2, 1) == column_local(2, 3)
    assert replicate(2) * replicate(3) == replicate(6)
    assert spatial(4).replicate(2) != replicate(2).spatial(4)
    assert local(1, 1) * replicate(1) == local(1, 1)


def test_canonical_form_is_unique_on_every_small_mode_table():
    """Exhaustive: all layouts of rank <= 2 with up to 3 modes (sizes 2, 3, 4) and at most
    one replication; layouts with the same mapping must be the same value, and print apart."""
    by_mapping: dict[tuple, set[RegisterLayout]] = {}
    for rank, count in ((1, 0), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)):
        for sizes in itertools.product([2, 3, 4], repeat=count):
            for dims in itertools.product(range(rank), repeat=count):
                modes: list[list[int]] = [[] for _ in range(rank)]
                for size, dim in zip(sizes, dims, strict=True):
                    modes[dim].append(size)
                shape = tuple(math.prod(dim) for dim in modes)
                for layout in _all_assignments(shape, tuple(map(tuple, modes)), count):
                    key = (layout.shape, layout.threads, layout.coordinates().tobytes())
                    by_mapping.setdefault(key, set()).add(layout)
    assert all(len(group) == 1 for group in by_mapping.values())
    texts = {str(layout) for (layout,) in by_mapping.values()}
    assert len(texts) == len(by_mapping)


def _all_assignments(shape, modes, count):
    for order in itertools.permutations(range(count)):
        for cut in range(count + 1):
            spatial_entries, local_entries = list(order[:cut]), list(order[cut:])
            for position in [None, *range(len(spatial_entries) + 1)]:
                entries = list(spatial_entries)
                if position is not None:
                    entries.insert(position, -2)
                yield RegisterLayout(shape, modes, entries, local_entries)
