"""Errors that carry a place in the user's source.

Every mistake in a user's kernel or in the arguments of a call is raised as an `LpirError` (or a
subclass). When the error has a `SourceLocation`, its message reads like a compiler diagnostic::

    gemv.lp:7:14: error: cannot add f32[32, 256] and f32[64]
        acc += wt * xt
               ^^^^^^^
    hint: shapes broadcast from the right; use xt[None, :] to add a leading axis

The CLI prints `str(error)` and exits with status 1, without a Python traceback.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    """A span in a source text: 1-based line and column, with the text of the line.

    `end_column` is exclusive; when it is missing the caret marks a single character.
    """

    file: str
    line: int
    column: int
    source_line: str = ""
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def caret_lines(self) -> str:
        """The source line and a caret line under the span (empty when the text is unknown)."""
        if not self.source_line:
            return ""
        raw = self.source_line.rstrip("\r\n").translate(_SHOWN_AS_SPACE)
        end = self.column + 1
        if self.end_column is not None and self.end_column > self.column:
            end = self.end_column
        # Columns count characters; the line is shown with its tabs expanded, so the caret
        # goes under the expanded text of the columns before the span and of the span.
        before = raw[: self.column - 1].expandtabs(4)
        through = raw[: end - 1].expandtabs(4)
        text = raw.expandtabs(4)
        width = max(1, min(len(through) - len(before), len(text) - len(before) + 1))
        return f"    {text}\n    {' ' * len(before)}{'^' * width}"


# Characters other than "\n" that str.splitlines breaks lines at. The lexers count lines by "\n"
# alone, so these stay inside a line; a diagnostic shows each as one space (a form feed or
# U+2028 would otherwise break the quoted line on the terminal and shift the caret).
_LINE_BREAKS_BUT_NEWLINE = "\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_SHOWN_AS_SPACE = str.maketrans(dict.fromkeys(_LINE_BREAKS_BUT_NEWLINE, " "))


def source_lines(text: str) -> list[str]:
    """The lines of `text` as the lexers number them: split at "\n" alone (a form feed or
    U+2028 in a comment does not start a line), without a "\r" that ends one, and with no
    empty last line after a final "\n". (A copy of the lines of the last few texts split:
    every op's location asks for its source's lines, which split anew made compiling an
    8000-line kernel take 28 s and one long line cost memory with the square of its length.)"""
    return list(_split_lines(text))


@functools.lru_cache(maxsize=8)
def _split_lines(text: str) -> tuple[str, ...]:
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return tuple(line.removesuffix("\r") for line in lines)


_VOWEL_SOUND_LETTERS = set("aefhilmnorsx")  # letters whose names start with a vowel: "an f16"


def with_article(word: str) -> str:
    """`word` after "a" or "an" as it is read aloud: "an f16", "an i8", "a u8", "an 8-bit"."""
    text = str(word)
    head = text[:1].lower()
    if head.isdigit():
        digits = text[: len(text) - len(text.lstrip("0123456789"))]
        eleven_or_eighteen = len(digits) in (2, 5) and digits[:2] in ("11", "18")
        return ("an " if head == "8" or eleven_or_eighteen else "a ") + text
    spelled_letter = (len(text) > 1 and text[1].isdigit()) or text[:2] == "bf"
    if spelled_letter:  # a dtype name such as f16, i8, u4: read letter by letter
        return ("an " if head in _VOWEL_SOUND_LETTERS else "a ") + text
    return ("an " if head in "aeiou" else "a ") + text


def location_in(
    text: str, file: str, line: int, column: int, end_column: int | None = None
) -> SourceLocation:
    """Build a `SourceLocation` for (line, column) of `text`, with the line's text."""
    lines = _split_lines(text)
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    return SourceLocation(file, line, column, source_line, end_column)


class LpirError(Exception):
    """Base class for every error lpir reports about a user's program or arguments.

    Args:
        message: what is wrong, in one sentence.
        location: where in the source; None when there is no source (e.g. a bad dtype name
            passed from Python).
        hint: what would fix it.
    """

    kind = "error"
    # Set on an error raised inside an inlined function once the message names the call
    # (lpir.language.lower): outer calls leave it as it is.
    call_shown = False

    def __init__(
        self, message: str, location: SourceLocation | None = None, hint: str | None = None
    ):
        self.message = message
        self.location = location
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        head = f"{self.kind}: {self.message}"
        if self.location is not None:
            head = f"{self.location}: {head}"
            carets = self.location.caret_lines()
            if carets:
                head += "\n" + carets
        if self.hint:
            head += f"\nhint: {self.hint}"
        return head

    def __reduce__(self) -> tuple:
        # Exceptions pickle as type(self)(*self.args), and args holds the formatted text: an
        # error sent back from a worker process would read "file:1:2: error: file:1:2: error:".
        state = {"call_shown": True} if self.call_shown else None
        return type(self), (self.message, self.location, self.hint), state

    def with_location(self, location: SourceLocation | None) -> LpirError:
        """The same error placed at `location` (keeps an existing location)."""
        if self.location is not None or location is None:
            return self
        return type(self)(self.message, location, self.hint)


class DTypeError(LpirError):
    """An unknown data-type name or a value that the data type cannot hold."""


class LayoutError(LpirError):
    """A layout expression that is malformed or does not fit its tile."""


class ParseError(LpirError):
    """Source text (kernel language or IR text) that does not follow the grammar."""


class TypeCheckError(LpirError):
    """A well-formed program whose names, dtypes or shapes do not agree."""


class VerifyError(LpirError):
    """IR that breaks an invariant (types, dominance, layouts); usually a compiler bug."""


class ArgumentError(LpirError):
    """An argument passed to a compiled kernel that does not match its declaration."""

    # The argument a launch refused (overlapping outputs), for the call to place the error at
    # its declaration.
    argument: str | None = None


class CompileError(LpirError):
    """A backend failed to compile generated code (a compiler bug, reported with the code)."""
