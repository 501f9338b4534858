"""Property tests for the register-layout algebra (hypothesis).

Random layouts come from two sources: products of random primitives (then reduced, permuted,
expanded or concatenated), and random explicit mode tables, which also yield layouts that are
no product of primitives. Every law is checked against an independent reference decoder of the
representation, so `map` and `coordinate_terms` are not their own oracle.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lpir.errors import LayoutError
from lpir.layout import (
    RegisterLayout,
    column_local,
    column_spatial,
    concat,
    divide,
    local,
    parse,
    permute,
    reduce,
    replicate,
    spatial,
)
from lpir.layout.algebra import expand_dims, reshape

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUDGET = 512  # threads x slots of a generated layout, to keep the exhaustive checks fast
KINDS = [local, spatial, column_local, column_spatial]


@st.composite
def primitives(draw, rank: int) -> RegisterLayout:
    if draw(st.integers(0, 5)) == 0:
        return replicate(draw(st.sampled_from([2, 3, 4])))
    kind = draw(st.sampled_from(KINDS))
    return kind(*draw(st.lists(st.sampled_from([1, 1, 2, 3, 4]), min_size=rank, max_size=rank)))


@st.composite
def chains(draw, rank: int | None = None) -> RegisterLayout:
    """A product of 1 to 3 random primitives of one rank."""
    rank = draw(st.integers(0, 3)) if rank is None else rank
    layout = draw(primitives(rank))
    for _ in range(draw(st.integers(0, 2))):
        factor = draw(primitives(rank))
        if (layout * factor).threads * (layout * factor).slots <= BUDGET:
            layout = layout * factor
    return layout


@st.composite
def explicit_layouts(draw) -> RegisterLayout:
    """A random mode table: any order of modes in the thread and slot indices."""
    rank = draw(st.integers(1, 3))
    modes = [[] for _ in range(rank)]
    for _ in range(draw(st.integers(0, 4))):
        modes[draw(st.integers(0, rank - 1))].append(draw(st.sampled_from([2, 3, 4])))
    count = sum(len(dim) for dim in modes)
    ids = draw(st.permutations(range(count)))
    cut = draw(st.integers(0, count))
    spatial_entries, local_entries = list(ids[:cut]), list(ids[cut:])
    for factor in draw(st.lists(st.sampled_from([2, 3]), max_size=2)):
        spatial_entries.insert(draw(st.integers(0, len(spatial_entries))), -factor)
    shape = tuple(math.prod(dim) for dim in modes)
    return RegisterLayout(shape, tuple(map(tuple, modes)), spatial_entries, local_entries)


@st.composite
def transformed(draw) -> RegisterLayout:
    """A chain or explicit layout, then maybe reduced, permuted, expanded or concatenated."""
    layout = draw(st.one_of(chains(), explicit_layouts()))
    for _ in range(draw(st.integers(0, 2))):
        step = draw(st.sampled_from(["reduce", "permute", "expand", "concat"]))
        if step == "reduce" and layout.rank:
            dims = draw(st.lists(st.integers(0, layout.rank - 1), unique=True, min_size=1))
            layout = reduce(layout, dims)
        elif step == "permute" and layout.rank:
            layout = permute(layout, draw(st.permutations(range(layout.rank))))
        elif step == "expand" and layout.rank < 4:
            layout = expand_dims(layout, draw(st.integers(-layout.rank - 1, layout.rank)))
        elif step == "concat" and layout.rank < 3:
            other = draw(chains(draw(st.integers(0, 1))))
            if layout.threads * layout.slots * other.threads * other.slots <= BUDGET:
                layout = concat(layout, other)
    return layout


layouts = st.one_of(chains(), explicit_layouts(), transformed())


def reference_table(layout: RegisterLayout) -> np.ndarray:
    """coordinates() recomputed by decoding thread and slot digits straight from the fields."""
    table = np.zeros((layout.threads, layout.slots, layout.rank), dtype=np.int64)
    sizes = layout.mode_sizes
    for thread in range(layout.threads):
        for slot in range(layout.slots):
            digit = {}
            for entries, index in ((layout.spatial_modes, thread), (layout.local_modes, slot)):
                for entry in reversed(entries):
                    size = -entry if entry < 0 else sizes[entry]
                    digit[entry], index = index % size, index // size
            mode = 0
            for d, dim in enumerate(layout.modes):
                for size in dim:
                    table[thread, slot, d] = table[thread, slot, d] * size + digit[mode]
                    mode += 1
    return table


def table_owners(table: np.ndarray, coordinate: tuple[int, ...]) -> frozenset:
    hits = np.argwhere(np.all(table == np.array(coordinate, dtype=np.int64), axis=-1))
    return frozenset((int(t), int(s)) for t, s in hits)


# ------------------------------------------------------------------ tables and queries


@SETTINGS
@given(layouts)
def test_coordinates_and_terms_agree_with_the_reference(layout):
    expected = reference_table(layout)
    assert np.array_equal(layout.coordinates(), expected)
    threads = np.arange(layout.threads)[:, None]
    slots = np.arange(layout.slots)[None, :]
    for d, terms in enumerate(layout.coordinate_terms()):
        value = sum(
            (term.evaluate(threads if term.source == "thread" else slots) for term in terms),
            start=np.zeros((layout.threads, layout.slots), dtype=np.int64),
        )
        assert np.array_equal(value, expected[..., d])
    modes = len(layout.mode_sizes)
    assert sum(len(terms) for terms in layout.coordinate_terms()) == modes


@SETTINGS
@given(layouts)
def test_every_coordinate_is_owned_replication_times(layout):
    table = layout.coordinates().reshape(layout.threads * layout.slots, layout.rank)
    if layout.rank:
        flat = np.ravel_multi_index(tuple(table.T), layout.shape)
    else:
        flat = np.zeros(len(table), dtype=np.int64)
    counts = np.bincount(flat, minlength=layout.size)
    assert np.all(counts == layout.replication)
    assert layout.threads * layout.slots == layout.size * layout.replication


@SETTINGS
@given(layouts, st.data())
def test_map_and_owners_are_inverse(layout, data):
    table = reference_table(layout)
    thread = data.draw(st.integers(0, layout.threads - 1))
    slot = data.draw(st.integers(0, layout.slots - 1))
    coordinate = layout.map(thread, slot)
    owners = layout.owners(coordinate)
    assert owners == table_owners(table, coordinate)
    if layout.is_replicated:
        assert (thread, slot) in owners and len(owners) == layout.replication
    else:
        assert owners == {(thread, slot)}
    assert len({s for _, s in owners}) == 1
    primary = [
        t for t, _ in owners if all(term.evaluate(t) == 0 for term in layout.replica_terms())
    ]
    assert len(primary) == 1


@SETTINGS
@given(layouts, st.data())
def test_map_array_matches_map(layout, data):
    threads = data.draw(st.lists(st.integers(0, layout.threads - 1), min_size=1, max_size=5))
    slots = data.draw(st.lists(st.integers(0, layout.slots - 1), min_size=1, max_size=5))
    grid = layout.map_array(np.array(threads)[:, None], np.array(slots)[None, :])
    assert grid.shape == (len(threads), len(slots), layout.rank)
    for i, t in enumerate(threads):
        for j, s in enumerate(slots):
            assert tuple(grid[i, j]) == layout.map(t, s)


# ------------------------------------------------------------------ operators


@st.composite
def same_rank_triples(draw):
    rank = draw(st.integers(0, 2))
    return tuple(draw(chains(rank)) for _ in range(3))


@SETTINGS
@given(same_rank_triples())
def test_product_is_associative(triple):
    a, b, c = triple
    assume((a * b * c).threads * (a * b * c).slots <= BUDGET)
    left, right = (a * b) * c, a * (b * c)
    assert np.array_equal(left.coordinates(), right.coordinates())
    assert left == right
    assert hash(left) == hash(right)


@SETTINGS
@given(same_rank_triples())
def test_product_follows_its_definition(triple):
    a, b, _ = triple
    ab = a * b
    # A rank-0 operand (replicate) takes the other's rank: compare in that rank.
    a, b = (a * local(*[1] * ab.rank), b * local(*[1] * ab.rank))
    assert ab.shape == tuple(x * y for x, y in zip(a.shape, b.shape, strict=True))
    ta, tb = np.meshgrid(np.arange(a.threads), np.arange(b.threads), indexing="ij")
    sa, sb = np.meshgrid(np.arange(a.slots), np.arange(b.slots), indexing="ij")
    got = ab.map_array((ta * b.threads + tb)[:, :, None, None], (sa * b.slots + sb)[None, None])
    expected = a.map_array(ta[:, :, None, None], sa[None, None]) * np.array(
        b.shape, dtype=np.int64
    ) + b.map_array(tb[:, :, None, None], sb[None, None])
    assert np.array_equal(got, expected)


@SETTINGS
@given(same_rank_triples())
def test_divide_undoes_product(triple):
    a, b, _ = triple
    if a.rank == 0 and b.rank == 0:
        assert divide(a * b, b) == a
    else:
        # A rank-0 `a` comes back with the product's rank.
        assert divide(a * b, b) == (a if a.rank else a * local(*[1] * b.rank))


@SETTINGS
@given(layouts, st.data())
def test_divide_answers_are_exact(layout, data):
    divisor = data.draw(chains(layout.rank))
    quotient = divide(layout, divisor)
    if quotient is not None:
        assert quotient * divisor == layout


def test_divide_examples():
    acc = parse("local(2,1).spatial(8,4).local(1,2)")
    assert divide(acc, local(1, 2)) == parse("local(2,1).spatial(8,4)")
    assert divide(acc, local(1, 8)) is None
    assert divide(acc, spatial(8, 4).local(1, 2)) == local(2, 1)
    assert divide(local(4, 8), local(1, 8)) == local(4, 1)
    assert divide(local(8), local(2)) == local(4)
    assert divide(spatial(4).replicate(8), replicate(2)) == spatial(4).replicate(4)
    assert divide(spatial(4).local(2), local(4)) is None
    with pytest.raises(LayoutError):
        divide(local(2, 2), local(2))


@SETTINGS
@given(layouts, st.data())
def test_reduce_owners_are_the_owners_along_the_reduced_dims(layout, data):
    assume(layout.rank > 0)
    dims = data.draw(st.lists(st.integers(0, layout.rank - 1), unique=True, min_size=1))
    reduced = reduce(layout, dims)
    assert reduced.shape == tuple(1 if d in dims else n for d, n in enumerate(layout.shape))
    assert reduced.threads == layout.threads
    table = layout.coordinates()
    projected = table.copy()
    projected[..., dims] = 0
    slot_of: dict[tuple[int, int], int] = {}
    for thread in range(layout.threads):
        for slot in range(layout.slots):
            owners = reduced.owners(tuple(projected[thread, slot]))
            (reduced_slot,) = [s for t, s in owners if t == thread]
            # Two slots of a thread reduce together exactly when they differ only along dims.
            key = (thread, reduced_slot)
            assert slot_of.setdefault(key, tuple(projected[thread, slot])) == tuple(
                projected[thread, slot]
            )
    for coordinate in {tuple(c) for c in projected.reshape(-1, layout.rank)}:
        holders = {t for t, _ in table_owners(projected, coordinate)}
        assert {t for t, _ in reduced.owners(coordinate)} == holders


@SETTINGS
@given(layouts, st.data())
def test_permute_transposes(layout, data):
    order = data.draw(st.permutations(range(layout.rank)))
    permuted = permute(layout, order)
    assert np.array_equal(permuted.coordinates(), layout.coordinates()[..., list(order)])
    assert permute(permuted, np.argsort(order).tolist()) == layout


@SETTINGS
@given(layouts, st.data())
def test_expand_dims_inserts_a_zero_coordinate(layout, data):
    axis = data.draw(st.integers(-layout.rank - 1, layout.rank))
    expanded = expand_dims(layout, axis)
    assert np.array_equal(
        expanded.coordinates(), np.insert(layout.coordinates(), axis % (layout.rank + 1), 0, -1)
    )


@SETTINGS
@given(layouts, st.data())
def test_reshape_reinterprets_the_row_major_index(layout, data):
    assume(layout.rank > 0)
    flat = reshape(layout, (layout.size,))
    table = layout.coordinates()
    linear = np.ravel_multi_index(tuple(np.moveaxis(table, -1, 0)), layout.shape)
    assert np.array_equal(flat.coordinates()[..., 0], linear)
    assert reshape(flat, layout.shape) == layout
    target = tuple(data.draw(st.permutations(layout.shape)))
    try:
        reshaped = reshape(layout, target)
    except LayoutError:
        return
    expected = np.stack(np.unravel_index(linear, target), axis=-1)
    assert np.array_equal(reshaped.coordinates(), expected)


@SETTINGS
@given(chains(), chains())
def test_concat_places_the_layouts_side_by_side(first, second):
    assume(first.threads * first.slots * second.threads * second.slots <= BUDGET)
    joined = concat(first, second)
    assert joined.shape == first.shape + second.shape
    for t in range(joined.threads):
        for s in range(joined.slots):
            head = first.map(t // second.threads, s // second.slots)
            tail = second.map(t % second.threads, s % second.slots)
            assert joined.map(t, s) == head + tail


# ------------------------------------------------------------------ canonical form and text


@SETTINGS
@given(layouts)
def test_text_round_trips(layout):
    text = str(layout)
    assert parse(text) == layout
    assert str(parse(text)) == text


@st.composite
def refinements(draw, layout: RegisterLayout) -> RegisterLayout:
    """The same layout written non-canonically: modes split, size-1 modes and factors added."""
    modes: list[list[int]] = []
    pieces: dict[int, list[int]] = {}
    for dim in layout.modes:
        modes.append([])
        for size in dim:
            mode = len(pieces)
            parts = [size // 2, 2] if size % 2 == 0 and size > 2 and draw(st.booleans()) else [size]
            if draw(st.booleans()):
                parts.insert(draw(st.integers(0, len(parts))), 1)
            pieces[mode] = list(range(sum(map(len, modes)), sum(map(len, modes)) + len(parts)))
            modes[-1].extend(parts)

    def expand(entries):
        out = []
        for entry in entries:
            out.extend(
                pieces[entry]
                if entry >= 0
                else ([-2, entry // 2] if entry % 2 == 0 and entry < -2 else [entry])
            )
        return out

    spatial_entries = expand(layout.spatial_modes)
    if draw(st.booleans()):
        spatial_entries.insert(draw(st.integers(0, len(spatial_entries))), -1)
    return RegisterLayout(
        layout.shape, tuple(map(tuple, modes)), spatial_entries, expand(layout.local_modes)
    )


@SETTINGS
@given(layouts, st.data())
def test_canonical_form_is_independent_of_how_the_layout_is_written(layout, data):
    rewritten = data.draw(refinements(layout))
    assert rewritten == layout
    assert hash(rewritten) == hash(layout)


@SETTINGS
@given(layouts, layouts)
def test_equal_layouts_are_exactly_equal_mappings(a, b):
    same_mapping = (
        a.shape == b.shape
        and (a.threads, a.slots) == (b.threads, b.slots)
        and np.array_equal(a.coordinates(), b.coordinates())
    )
    assert (a == b) == same_mapping
