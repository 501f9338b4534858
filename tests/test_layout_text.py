"""The register-layout text form: canonical printing, parsing, and located parse errors."""

from __future__ import annotations

import pytest

from lpir.errors import LayoutError
from lpir.layout import (
    RegisterLayout,
    column_spatial,
    concat,
    local,
    parse,
    permute,
    reduce,
    replicate,
    spatial,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("local(2,1).spatial(8,4).local(1,2)", "local(2,1).spatial(8,4).local(1,2)"),
        ("local(2, 1) * spatial(8, 4) * local(1, 2)", "local(2,1).spatial(8,4).local(1,2)"),
        ("  local(2,1) . local(3,1) ", "local(6,1)"),
        ("spatial(4).spatial(2)", "spatial(8)"),
        ("column_spatial(4,8)", "column_spatial(4,8)"),
        ("column_local(2,1)", "local(2,1)"),
        ("spatial(4,1).local(1,2)", "spatial(4,1).local(1,2)"),
        ("local(1,2).spatial(4,1)", "spatial(4,1).local(1,2)"),
        ("replicate(4)", "replicate(4)"),
        ("replicate(2).replicate(2)", "replicate(4)"),
        ("replicate(1)", "local()"),
        ("local()", "local()"),
        ("spatial(8).replicate(4)", "spatial(8).replicate(4)"),
        ("local(1,1).replicate(4)", "local(1,1).replicate(4)"),
        ("spatial(1,1,2).spatial(2,2,1)", "column_spatial(2,1,2).spatial(1,2,1)"),
    ],
)
def test_canonical_text(text, canonical):
    layout = parse(text)
    assert str(layout) == canonical
    assert parse(canonical) == layout


def test_reduced_and_concatenated_layouts_print_as_chains():
    acc = parse("local(2,1).spatial(8,4).local(1,2)")
    assert str(reduce(acc, 1)) == "local(2,1).spatial(8,1).replicate(4)"
    assert str(reduce(acc, [0, 1])) == "local(1,1).replicate(32)"
    assert str(concat(spatial(4), local(2))) == "spatial(4,1).local(1,2)"
    assert str(permute(acc, [1, 0])) == "local(1,2).column_spatial(4,8).local(2,1)"
    assert permute(spatial(2, 3), [1, 0]) == column_spatial(3, 2)


def test_layouts_that_are_no_product_print_explicitly():
    # Thread index reads the low digit of the coordinate first: no chain of primitives does.
    swapped = RegisterLayout((4,), ((2, 2),), (1, 0), ())
    text = str(swapped)
    assert text == "layout(shape=[4], modes=[[2,2]], spatial=[1,0], local=[])"
    assert parse(text) == swapped
    assert [swapped.map(t, 0) for t in range(4)] == [(0,), (2,), (1,), (3,)]
    replicated = RegisterLayout((4, 2), ((2, 2), (2,)), (1, -3, 0), (2,))
    assert parse(str(replicated)) == replicated
    assert "replicate(3)" in str(replicated)


def test_explicit_form_can_start_a_chain():
    text = "layout(local=[], spatial=[1,0], modes=[[2,2]], shape=[4]).local(2)"
    layout = parse(text)
    assert layout.shape == (8,)
    assert layout.slots == 2


def test_methods_spell_the_chain():
    assert local(2, 1).spatial(8, 4).local(1, 2) == parse("local(2,1).spatial(8,4).local(1,2)")
    assert spatial(8).replicate(4) == spatial(8) * replicate(4)
    assert repr(spatial(8)) == "RegisterLayout('spatial(8)')"


def error_for(text: str) -> LayoutError:
    with pytest.raises(LayoutError) as info:
        parse(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("local(2,1).spatal(8,4)", 12, "unknown layout primitive 'spatal'"),
        ("local(2,1", 10, "expected ',' or ')'"),
        ("local(2,", 9, "expected a size"),
        ("local(0,1)", 7, "positive"),
        ("local(2).spatial(2,2)", 10, "rank"),
        ("", 1, "empty"),
        ("local(2) spatial(2)", 10, "expected '.'"),
        ("local(2) $", 10, "unexpected character"),
        ("replicate(2,2)", 1, "one factor"),
        ("42", 1, "expected a layout primitive"),
        ("layout(shape=[4], modes=[[2,2]], spatial=[1], local=[])", 1, "exactly once"),
        ("layout(shape=[4], modes=[[2,2]])", 1, "missing spatial, local"),
        ("layout(shape=[4], shape=[4])", 19, "repeated field"),
        ("layout(shape=[5], modes=[[2,2]], spatial=[0,1], local=[])", 1, "multiply to 4"),
    ],
)
def test_parse_errors_point_at_the_problem(text, column, words):
    error = error_for(text)
    assert words in error.message
    assert error.location is not None
    assert (error.location.file, error.location.line) == ("<layout>", 1)
    assert error.location.column == column
    assert error.location.source_line == text
    rendered = str(error)
    assert rendered.startswith(f"<layout>:1:{column}: error:")
    if text:
        caret_line = rendered.splitlines()[2]
        assert caret_line.index("^") - 4 == column - 1


def test_parse_errors_list_the_valid_forms():
    error = error_for("lokal(2)")
    assert "local(a,b,...)" in error.hint and "layout(shape=" in error.hint
