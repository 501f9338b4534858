"""Shared-memory layouts: strides, the XOR swizzle, and the text form."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lpir.errors import LayoutError, LpirError
from lpir.layout import (
    SharedLayout,
    Swizzle,
    parse_shared,
    shared_row_major,
    shared_swizzled,
)


def all_coordinates(shape) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(
        -1, len(shape)
    )


@pytest.mark.parametrize("shape", [(7,), (4, 8), (3, 5, 2), (1, 16), (2, 1, 3)])
def test_row_major_offsets_are_ravel_multi_index(shape):
    layout = shared_row_major(shape)
    coordinates = all_coordinates(shape)
    expected = np.ravel_multi_index(tuple(coordinates.T), shape)
    assert np.array_equal(layout.offsets(coordinates), expected)
    for coordinate, offset in zip(coordinates[:20], expected[:20], strict=True):
        assert layout.offset(coordinate) == offset
    assert layout.span == int(np.prod(shape))


# (shape, dtype bits): rows of 32, 64, 128 and 256 bytes, and sub-byte and 32-bit elements.
SWIZZLED = [
    ((16, 16), 16),
    ((16, 32), 16),
    ((32, 64), 16),
    ((16, 128), 16),
    ((16, 64), 32),
    ((16, 128), 8),
    ((16, 256), 4),
]


def units_of(layout: SharedLayout, bits: int) -> np.ndarray:
    """The 16-byte unit each element lands in, shaped like the tile."""
    coordinates = all_coordinates(layout.shape)
    per_unit = 128 // bits
    return (layout.offsets(coordinates) // per_unit).reshape(layout.shape)


@pytest.mark.parametrize(("shape", "bits"), SWIZZLED)
def test_swizzle_is_a_bijection_that_keeps_16_byte_units_whole(shape, bits):
    layout = shared_swizzled(shape, bits)
    assert layout.swizzle is not None
    offsets = layout.offsets(all_coordinates(shape)).reshape(shape)
    assert sorted(offsets.ravel().tolist()) == list(range(int(np.prod(shape))))
    per_unit = 128 // bits
    # Each aligned group of `per_unit` elements of a row stays contiguous and in order.
    grouped = offsets.reshape(shape[0], -1, per_unit)
    assert np.all(np.diff(grouped, axis=-1) == 1)
    assert np.all(grouped[..., 0] % per_unit == 0)


@pytest.mark.parametrize(("shape", "bits"), [s for s in SWIZZLED if s[0][1] * s[1] >= 1024])
def test_swizzle_permutes_units_within_each_8_row_by_8_unit_block(shape, bits):
    layout = shared_swizzled(shape, bits)
    units = units_of(layout, bits)
    per_unit = 128 // bits
    units_per_row = shape[1] // per_unit
    unit_column = np.arange(shape[1]) // per_unit
    for row0, group in itertools.product(range(0, shape[0], 8), range(0, units_per_row, 8)):
        block = units[row0 : row0 + 8][:, (unit_column >= group) & (unit_column < group + 8)]
        original = {(row0 + r) * units_per_row + group + u for r in range(8) for u in range(8)}
        assert set(block.ravel().tolist()) == original
    # The classic rule: unit index within the row XOR (row % 8).
    row, column = 5, 3 * per_unit
    assert units[row, column] == row * units_per_row + (3 ^ 5)


@pytest.mark.parametrize(("shape", "bits"), SWIZZLED)
def test_eight_rows_of_one_unit_column_hit_eight_bank_groups(shape, bits):
    # ldmatrix reads one 16-byte unit from each of 8 rows: with the swizzle they fall into 8
    # distinct 16-byte bank groups (of the 8 in a 128-byte line), so there is no conflict.
    units = units_of(shared_swizzled(shape, bits), bits)
    per_unit = 128 // bits
    for row0 in range(0, shape[0], 8):
        for column in range(0, shape[1], per_unit):
            banks = units[row0 : row0 + 8, column] % 8
            assert len(set(banks.tolist())) == 8


TWO_TERMS = Swizzle(3, 3, 4, Swizzle(1, 3, 3))


@pytest.mark.parametrize(
    "swizzle",
    [Swizzle(1, 3, 1), Swizzle(2, 3, 3), Swizzle(3, 3, 3), Swizzle(3, 2, 4), TWO_TERMS],
    ids=str,
)
def test_offsets_a_period_apart_are_swizzled_alike(swizzle):
    """What lets the CUDA emitter swizzle a base once for accesses a period apart."""
    x = np.arange(4 * swizzle.period)
    for q in range(4):
        shifted = swizzle.apply(x + q * swizzle.period)
        assert np.array_equal(shifted, swizzle.apply(x) + q * swizzle.period)


def test_swizzle_parameters_follow_cutlass():
    assert shared_swizzled((64, 64), 16).swizzle == Swizzle(3, 3, 3)
    assert shared_swizzled((64, 32), 16).swizzle == Swizzle(2, 3, 3)
    assert shared_swizzled((64, 128), 16).swizzle == Swizzle(3, 3, 4)
    assert shared_swizzled((64, 32), 32).swizzle == Swizzle(3, 2, 3)
    assert shared_swizzled((8, 8), 16).swizzle is None  # one unit per row: nothing to permute
    assert Swizzle(3, 3, 3).apply(0b101_000_000) == 0b101_101_000


def test_swizzle_errors():
    with pytest.raises(LayoutError, match="power-of-two number"):
        shared_swizzled((16, 48), 16)
    with pytest.raises(LayoutError, match="3-bit"):
        shared_swizzled((16, 128), 3)
    with pytest.raises(LayoutError, match="shift >= bits"):
        Swizzle(3, 3, 2)


@pytest.mark.parametrize(
    "layout",
    [
        shared_row_major((4, 8)),
        shared_swizzled((64, 64), 16),
        SharedLayout((4, 4), (1, 4)),
        shared_row_major((1, 8)),
        SharedLayout((32, 128), (128, 1), Swizzle(3, 3, 4, Swizzle(1, 3, 3))),
    ],
)
def test_text_round_trips(layout):
    text = str(layout)
    assert parse_shared(text) == layout
    assert str(parse_shared(text)) == text


def test_text_forms():
    assert str(shared_swizzled((64, 64), 16)) == (
        "shared(shape=[64,64], strides=[64,1], swizzle=swizzle(3,3,3))"
    )
    assert str(shared_row_major((1, 8))) == "shared(shape=[1,8], strides=[0,1])"
    assert parse_shared("shared(strides=[1,4], shape=[4,4])") == SharedLayout((4, 4), (1, 4))


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("shard(shape=[4], strides=[1])", 1, "expected 'shared'"),
        ("shared(shape=[4])", 1, "needs shape"),
        ("shared(shape=[4], strides=[1,1])", 1, "strides"),
        ("shared(shape=[4], strides=[1], swizzle=swizzle(3,3,1))", 40, "shift >= bits"),
        ("shared(shape=[4], strides=[1]) x", 32, "after shared"),
    ],
)
def test_parse_errors(text, column, words):
    with pytest.raises(LayoutError) as info:
        parse_shared(text)
    assert words in info.value.message
    assert info.value.location.column == column
    assert "shared(shape=" in info.value.hint or "Swizzle<B,M,S>" in info.value.hint


def test_two_xor_terms_apply_in_turn_and_stay_a_bijection():
    offsets = np.arange(32 * 128)
    first, second = Swizzle(3, 3, 4), Swizzle(1, 3, 3)
    assert np.array_equal(TWO_TERMS.apply(offsets), second.apply(first.apply(offsets)))
    assert np.array_equal(np.sort(TWO_TERMS.apply(offsets)), offsets)
    assert np.array_equal(TWO_TERMS.apply(offsets) // 8, TWO_TERMS.apply(offsets // 8 * 8) // 8)
    assert TWO_TERMS.period == 1 << 10 and TWO_TERMS.chunk == 1 << 6
    assert str(TWO_TERMS) == "swizzle(3,3,4)*swizzle(1,3,3)"
    with pytest.raises(LayoutError, match="smaller units"):
        Swizzle(3, 3, 4, Swizzle(1, 2, 3))


@pytest.mark.parametrize(
    ("shape", "strides", "first", "second", "offset"),
    [
        ((64, 32), (1, 1), [0, 1], [1, 0], 1),  # aliasing: every anti-diagonal at one offset
        ((64, 32), (16, 1), [0, 16], [1, 0], 16),  # rows of 32 at a pitch of 16
        ((4, 8), (0, 1), [0, 0], [1, 0], 0),  # a stride of 0 along a dimension of 4
        ((2, 3, 2), (1, 2, 3), [0, 0, 1], [1, 1, 0], 3),  # interleaved: found by enumeration
    ],
)
def test_strides_that_put_two_elements_at_one_offset_are_refused(
    shape, strides, first, second, offset
):
    """A shared layout maps the tile one to one into its span; [1, 1] on a [64, 32] tile was
    accepted, and threads-cuda then wrote 'element 2047 of a 96-element buffer' (its span)."""
    with pytest.raises(LayoutError) as info:
        SharedLayout(shape, strides)
    message = info.value.message
    assert f"put the elements {first} and {second}" in message, message
    assert f"at one offset, {offset}: a shared layout must give every element its own" in message
    assert "row-major" in info.value.hint


@pytest.mark.parametrize(
    ("shape", "strides"),
    [
        ((32, 2, 64), (128, 1, 2)),  # the pair-interleaved copy of a bf16 matmul's b
        ((32, 64), (1, 32)),  # column-major
        ((32, 64), (72, 1)),  # padded rows
        ((3, 2), (2, 3)),  # strides that interleave but never collide (0 2 4 / 3 5 7)
        ((1, 8), (5, 1)),  # a size-1 dimension's stride does not matter
    ],
)
def test_strides_that_keep_elements_apart_are_accepted(shape, strides):
    layout = SharedLayout(shape, strides, Swizzle(1, 0, 3))
    offsets = layout.offsets(all_coordinates(shape))
    assert len(set(offsets.tolist())) == offsets.size and offsets.max() < layout.span


def test_an_aliasing_shared_layout_in_ir_text_is_placed_at_the_type():
    from lpir.ir import parse

    text = (
        "kernel @k[](%x: global f16[64, 32]) blocks(1, 1, 1) threads(128) {\n"
        "  %s = alloc_shared : shared f16[64, 32] @ "
        "shared(shape=[64,32], strides=[1,1], swizzle=swizzle(2,3,3))\n"
        "}\n"
    )
    with pytest.raises(LpirError) as info:
        parse(text, "alias.ir")
    error = info.value
    assert (error.location.line, error.location.column) == (2, 44), str(error)
    assert "strides [1,1] put the elements [0, 1] and [1, 0]" in error.message
    assert error.hint is not None and "row-major [32,1]" in error.hint
