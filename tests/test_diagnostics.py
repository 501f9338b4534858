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
