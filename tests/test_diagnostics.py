"""Small things diagnostics must get right: articles before dtype names, bool constants in
arithmetic, hints for a zero range step and an unknown dtype, `-D`/`--kernel` on IR text."""

from __future__ import annotations

import pytest

from lpir.errors import with_article


@pytest.mark.parametrize(
    "word, expected",
    [
        ("f16", "an f16"),
        ("i8", "an i8"),
        ("u8", "a u8"),
        ("bf16", "a bf16"),
        ("bool", "a bool"),
        ("f8e4m3", "an f8e4m3"),
        ("u4", "a u4"),
        ("8-element", "an 8-element"),
        ("11-bit", "an 11-bit"),
        ("18", "an 18"),
        ("16-byte", "a 16-byte"),
        ("180", "a 180"),
        ("1-bit", "a 1-bit"),
        ("integer", "an integer"),
        ("tile", "a tile"),
    ],
)
def test_with_article_reads_dtype_names_letter_by_letter(word: str, expected: str):
    assert with_article(word) == expected


BOOL_KERNEL = """kernel k(y: global i32[64], n: i32) blocks(1) threads(64) {{
    let flag = n > 0
    let other = n < 8
    let b = {expression}
    store(y[0:64], zeros<i32>[64] + n)
}}
"""
# the same operation on constants and on run-time bools (flag, other): both fold or both fail
BOOL_PAIRS = [
    ("true + 1", "flag + 1", False),
    ("1 + true", "1 + flag", False),
    ("true + true", "flag + other", False),
    ("true * false", "flag * other", False),
    ("true << 1", "flag << 1", False),
    ("true << true", "flag << other", False),
    ("-true", "-flag", False),
    ("abs(true)", "abs(flag)", False),
    ("max(true, 1)", "max(flag, 1)", False),
    ("true == 1", "flag == 1", False),
    ("true and 1", "flag and 1", False),
    ("cdiv(true, true)", "cdiv(flag, other)", False),
    ("true & false", "flag & other", True),
    ("true ^ true", "flag ^ other", True),
    ("~true", "~flag", True),
    ("not true", "not flag", True),
    ("true and false", "flag and other", True),
    ("max(true, false)", "max(flag, other)", True),
    ("true == false", "flag == other", True),
    ("true < false", "flag < other", True),
]


def lower_expression(expression: str):
    from lpir.language.specialize import specialize
    from lpir.language.syntax import parse_program

    program = parse_program(BOOL_KERNEL.format(expression=expression), "bools.lp")
    return specialize(program, None, {})


@pytest.mark.parametrize("constant, runtime, allowed", BOOL_PAIRS)
def test_bool_constants_fold_by_the_run_time_rules(constant: str, runtime: str, allowed: bool):
    from lpir.errors import TypeCheckError

    for expression in (constant, runtime):
        if allowed:
            lower_expression(expression)
            continue
        with pytest.raises(TypeCheckError) as caught:
            lower_expression(expression)
        assert caught.value.location is not None and caught.value.location.line == 4
        assert caught.value.hint, caught.value


def test_folded_bool_operations_give_bools():
    from lpir.language.folding import fold_binary

    assert fold_binary("and", True, False) is False
    assert fold_binary("xor", True, True) is False
    assert fold_binary("max", True, False) is True
    assert fold_binary("logical_or", False, True) is True


@pytest.mark.parametrize(
    "name, hint",
    [
        ("f33", "did you mean 'f32'?"),
        ("F32", "did you mean 'f32'?"),
        ("i33", "did you mean 'i32'?"),
        ("uint12", "did you mean 'u16'?"),
        ("f128", "did you mean 'f64'?"),
        ("float8", "the 8-bit floats are f8e4m3 and f8e5m2"),
        ("bf15", "did you mean 'bf16'?"),
        ("int", "lpir calls this type 'i32'"),
        ("xyz", "write a dtype name such as f32, f16, bf16, i32, u8, u4 or bool"),
    ],
)
def test_an_unknown_dtype_hints_what_to_write(name: str, hint: str):
    from lpir.dtypes import dtype
    from lpir.errors import DTypeError

    with pytest.raises(DTypeError) as caught:
        dtype(name)
    assert caught.value.hint == hint
