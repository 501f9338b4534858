"""An unknown name in a kernel's header (an argument's shape, blocks(...), threads(...)) is
refused at its first use in the source, with a hint a header can follow. It was reported at
blocks(...) (lowered first) with the body's hint "assign R = ... before this line"."""

from __future__ import annotations

import pytest

import lpir
from lpir.errors import LpirError

BODY = "    r = block.x\n}\n"


def refusal(source: str) -> str:
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    return str(caught.value)


def assert_at(text: str, line: int, column: int, name: str) -> list[str]:
    """`text` refuses `name` at line:column, with the source line and a caret under it."""
    assert f":{line}:{column}: error: unknown name '{name}'" in text, text
    shown, caret = text.splitlines()[1:3]
    assert caret.strip() == "^" * len(name) and shown[caret.index("^")] == name[0], text
    return text.splitlines()


def test_shape_before_blocks_is_the_first_use() -> None:
    text = refusal(
        "kernel k[V = 64](\n    x: global f32[R, V], y: global f32[R],\n) blocks(R) threads(32) {\n"
        + BODY
    )
    assert_at(text, 2, 19, "R")
    assert "hint: add 'R' to the kernel's parameters (kernel k[R = ..., ...](...))" in text
    assert "make it an i32 argument (R: i32)" in text  # a first dimension and a block count
    assert "assign R" not in text


def test_inner_dimension_has_no_argument_hint() -> None:
    text = refusal("kernel k(x: global f32[4, W]) blocks(1) threads(32) {\n" + BODY)
    assert_at(text, 1, 27, "W")
    assert "kernel k[W = ...](...)" in text and "i32 argument" not in text, text


def test_in_blocks() -> None:
    text = refusal(
        "kernel k[BM = 64](x: global f32[64]) blocks(cdiv(M, BM)) threads(32) {\n" + BODY
    )
    assert_at(text, 1, 50, "M")
    assert "add 'M' to the kernel's parameters" in text and "M: i32" in text, text


def test_in_threads_with_a_near_spelling() -> None:
    text = refusal("kernel k[NT = 64](x: global f32[64]) blocks(1) threads(NTT) {\n" + BODY)
    assert_at(text, 1, 56, "NTT")
    assert "hint: did you mean 'NT'? If not, add 'NTT' to the kernel's parameters" in text
    assert "i32 argument" not in text  # a thread count is compile-time


def test_body_keeps_its_hint() -> None:
    text = refusal("kernel k(x: global f32[64]) blocks(1) threads(32) {\n    q = zz + 1\n}\n")
    assert_at(text, 2, 9, "zz")
    assert "hint: assign zz = ... before this line, or declare it in the kernel's header" in text
