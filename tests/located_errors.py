"""A check shared by tests of one kind of mistake: a kernel whose third line is the
expression under test must fail with a located `LpirError`."""

from __future__ import annotations

import pytest

import lpir
from lpir.errors import LpirError

# a [6, 4] register tile t (and scalars N, n) for the expression on line 3
TILE_KERNEL = """kernel bad[](a: global f32[6, 4], N: i32, n: i32) blocks(1) threads(32) {{
    t = load(a[0 :+ 6, 0 :+ 4])
    u = {expression}
}}
"""


def assert_located_error(expression: str, column: int, message: str, hint: str | None) -> None:
    """`u = expression` in TILE_KERNEL is an error at 3:column with `message` (and `hint`),
    the source line and a caret."""
    with pytest.raises(LpirError) as caught:
        lpir.compile(TILE_KERNEL.format(expression=expression), target="cpu").specialize(None)
    text = str(caught.value)
    assert f":3:{column}:" in text and message in text and "^" in text, text
    if hint is not None:
        assert hint in text, text
