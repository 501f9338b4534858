"""A small writer for C-like source: lines, indentation, braced blocks, unrolled lane loops.

Emitters never glue strings with newlines themselves; they call `line`, open blocks with
`with writer.block("if (c)"):` and emit lane-wise statements through `lanes`, which picks a
`#pragma unroll` loop when the statement is the same for every lane and plain statements
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager


class CodeWriter:
    """Accumulates lines of source with the current indentation."""

    def __init__(self, indent: str = "    "):
        self.lines: list[str] = []
        self.depth = 0
        self.indent = indent

    def line(self, text: str = "") -> None:
        self.lines.append(self.indent * self.depth + text if text else "")

    def lines_of(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.line(text)

    def comment(self, text: str) -> None:
        self.line(f"// {text}")

    @contextmanager
    def block(self, head: str = "", tail: str = "") -> Iterator[None]:
        """`head {` ... `}tail`: a braced block, indented one level."""
        self.line(f"{head} {{" if head else "{")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.line("}" + tail)

    def unrolled_loop(self, count: int, body: Callable[[str], None], variable: str = "i") -> None:
        """An unrolled `for (int i = 0; i < count; ++i) { body(i) }`; body("0") if count is 1."""
        if count == 1:
            body("0")
            return
        self.line("#pragma unroll")
        with self.block(f"for (int {variable} = 0; {variable} < {count}; ++{variable})"):
            body(variable)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def affine_runs(values: Sequence[int], min_length: int = 3) -> list[tuple[int, int, int, int]]:
    """Split `values` into runs `values[start + j] = first + j * stride` for j < length.

    Returns (start, length, first, stride) tuples covering the sequence in order; runs shorter
    than `min_length` are split into single elements, so the emitter prints a loop only where
    it shortens the source.
    """
    runs: list[tuple[int, int, int, int]] = []
    index = 0
    count = len(values)
    while index < count:
        end = index + 1
        if end < count:
            stride = values[end] - values[index]
            while end < count and values[end] - values[end - 1] == stride:
                end += 1
        else:
            stride = 0
        length = end - index
        if length >= min_length:
            runs.append((index, length, values[index], stride))
            index = end
        else:
            runs.append((index, 1, values[index], 0))
            index += 1
    return runs


def affine_expression(first: int, stride: int, variable: str) -> str:
    """`first + stride * variable` written without noise (`i`, `4 + i`, `8 + 2 * i`, `3`)."""
    if stride == 0:
        return str(first)
    term = variable if stride == 1 else f"{stride} * {variable}"
    if first == 0:
        return term
    return f"{first} + {term}" if first > 0 else f"{term} - {-first}"
