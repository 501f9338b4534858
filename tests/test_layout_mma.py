"""Table tests: the mma.m16n8k16 fragment layouts against the PTX ISA's formulas.

PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type": with
groupID = laneid >> 2 and threadID_in_group = laneid % 4,

* C/D (16x8, f32, 4 elements c0..c3): row = groupID + 8·(i >= 2),
  col = threadID_in_group·2 + (i & 1);
* A (16x16, f16, 8 elements a0..a7): row = groupID + 8·(i in {2, 3, 6, 7}),
  col = threadID_in_group·2 + (i & 1) + 8·(i >= 4);
* B (16x8, f16, 4 elements b0..b3): row = threadID_in_group·2 + (i & 1) + 8·(i >= 2),
  col = groupID.
"""

from __future__ import annotations

import pytest

from lpir.layout import column_local, divide, local, parse, spatial

ACCUMULATOR = "local(2,1).spatial(8,4).local(1,2)"
A_OPERAND = "column_local(2,2).spatial(8,4).local(1,2)"
B_OPERAND = "local(2,1).column_spatial(4,8).local(2,1)"


def accumulator_entry(lane: int, i: int) -> tuple[int, int]:
    return (lane >> 2) + 8 * (i >= 2), (lane % 4) * 2 + (i & 1)


def a_entry(lane: int, i: int) -> tuple[int, int]:
    return (lane >> 2) + 8 * (i in (2, 3, 6, 7)), (lane % 4) * 2 + (i & 1) + 8 * (i >= 4)


def b_entry(lane: int, i: int) -> tuple[int, int]:
    return (lane % 4) * 2 + (i & 1) + 8 * (i >= 2), lane >> 2


@pytest.mark.parametrize(
    ("text", "shape", "slots", "entry"),
    [
        (ACCUMULATOR, (16, 8), 4, accumulator_entry),
        (A_OPERAND, (16, 16), 8, a_entry),
        (B_OPERAND, (16, 8), 4, b_entry),
    ],
)
def test_fragment_matches_the_ptx_table(text, shape, slots, entry):
    layout = parse(text)
    assert (layout.shape, layout.threads, layout.slots) == (shape, 32, slots)
    assert str(layout) == text
    for lane in range(32):
        for i in range(slots):
            assert layout.map(lane, i) == entry(lane, i)
            assert layout.owners(entry(lane, i)) == {(lane, i)}


def test_accumulator_rows_and_columns_per_thread():
    layout = parse(ACCUMULATOR)
    for t in range(32):
        held = {layout.map(t, s) for s in range(layout.slots)}
        rows = {t // 4, t // 4 + 8}
        columns = {2 * (t % 4), 2 * (t % 4) + 1}
        assert held == {(r, c) for r in rows for c in columns}
    assert layout.owners((9, 3)) == {(5, 3)}
    assert layout.owners((0, 0)) == {(0, 0)}


def test_accumulator_is_the_product_of_primitives():
    assert parse(ACCUMULATOR) == local(2, 1) * spatial(8, 4) * local(1, 2)
    assert parse(A_OPERAND) == column_local(2, 2).spatial(8, 4).local(1, 2)


def test_a_fragment_pairs_are_32_bit_registers():
    # Slots (2k, 2k+1) are one .f16x2 register: two horizontally adjacent elements.
    layout = parse(A_OPERAND)
    assert divide(layout, local(1, 2)) == parse("column_local(2,2).spatial(8,4)")


def test_coordinate_terms_of_the_accumulator():
    rows, columns = parse(ACCUMULATOR).coordinate_terms()
    # row = (slot // 2 % 2) * 8 + (thread // 4 % 8); col = (thread % 4) * 2 + slot % 2
    assert [(t.source, t.divisor, t.modulus, t.multiplier) for t in rows] == [
        ("slot", 2, 2, 8),
        ("thread", 4, 8, 1),
    ]
    assert [(t.source, t.divisor, t.modulus, t.multiplier) for t in columns] == [
        ("thread", 1, 4, 2),
        ("slot", 1, 2, 1),
    ]
