"""`parse_program` remembers the last texts it parsed (compiling a file again with other
parameters reuses its syntax tree) and never remembers a failure."""

from __future__ import annotations

import pytest

from lpir.errors import LpirError
from lpir.language.syntax import parse_program

SOURCE = """
kernel copy[N = 64](x: global f32[N], y: global f32[N]) blocks(1) threads(32) {
    store(y[0 :+ N], load(x[0 :+ N]))
}
"""


def test_a_text_parsed_again_gives_the_same_tree():
    first = parse_program(SOURCE, "copy.lp")
    assert parse_program(SOURCE, "copy.lp") is first
    assert parse_program("\ufeff" + SOURCE, "copy.lp") is first  # (the mark is skipped)
    assert parse_program(SOURCE, "other.lp") is not first  # locations name the file


def test_a_text_that_does_not_parse_raises_every_time():
    broken = SOURCE.replace("store(", "store((")
    for _ in range(2):
        with pytest.raises(LpirError):
            parse_program(broken, "broken.lp")
