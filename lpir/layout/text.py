"""The text form of register layouts: one canonical string per layout, and its parser.

Grammar (whitespace is ignored between tokens)::

    layout    := factor (("." | "*") factor)*
    factor    := primitive "(" [INT ("," INT)*] ")"
               | "layout" "(" "shape" "=" ints "," "modes" "=" "[" [ints ("," ints)*] "]" ","
                              "spatial" "=" entries "," "local" "=" ints ")"
    primitive := "local" | "spatial" | "column_local" | "column_spatial" | "replicate"
    ints      := "[" [INT ("," INT)*] "]"
    entries   := "[" [entry ("," entry)*] "]"        entry := INT | "replicate" "(" INT ")"

Factors multiply left to right (``a.b`` is ``a * b``); ``replicate(r)`` takes exactly one
argument and adapts its rank. The ``layout(...)`` factor spells the representation out (see
`RegisterLayout`; its keywords may come in any order) and covers layouts that are no product of
primitives, e.g. one whose thread index reads a dimension's digits from least significant up.

Printing: a layout prints as the shortest-found chain of primitives (``local(2,1).spatial(8,4)
.local(1,2)``, no spaces) when it is such a product, and in the ``layout(...)`` form otherwise;
``parse(str(layout)) == layout`` always.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lpir.errors import LayoutError, SourceLocation
from lpir.layout.algebra import PRIMITIVES
from lpir.layout.register import RegisterLayout

Item = TypeVar("Item")

VALID_FORMS = (
    "a layout is a chain of primitives joined by '.' or '*', e.g. "
    "local(2,1).spatial(8,4).local(1,2); primitives: local(a,b,...), spatial(a,b,...), "
    "column_local(a,b,...), column_spatial(a,b,...), replicate(r), and the explicit form "
    "layout(shape=[...], modes=[[...],...], spatial=[...], local=[...])"
)

# ------------------------------------------------------------------ printing


def format_layout(layout: RegisterLayout) -> str:
    """The canonical text of `layout` (a chain of primitives, else the explicit form)."""
    factors = _chain(layout)
    if factors is None:
        return _explicit(layout)
    if layout.rank > 0 and all(f.startswith("replicate(") for f in factors):
        # A chain of replications alone would parse back as rank 0; a local(1,...) fixes the rank.
        factors.insert(0, f"local({','.join(['1'] * layout.rank)})")
    return ".".join(factors) if factors else "local()"


def _chain(layout: RegisterLayout) -> list[str] | None:
    """Split the layout into primitives, greedily from the most significant end.

    A factor may take the next entries of the spatial (or local) list while each one is the
    next unconsumed mode of its dimension and the dimensions run strictly up (row-major) or
    strictly down (column-major). Taking a factor never blocks another, so if greed gets stuck
    the layout is no product of primitives.
    """
    dims = layout.mode_dims
    next_mode = [sum(len(m) for m in layout.modes[:d]) for d in range(layout.rank)]
    lists = {"spatial": layout.spatial_modes, "local": layout.local_modes}
    cursor = {"spatial": 0, "local": 0}
    factors: list[str] = []

    def available(entry: int) -> bool:
        return next_mode[dims[entry]] == entry

    while any(cursor[kind] < len(lists[kind]) for kind in lists):
        choice = _next_factor(lists, cursor, dims, available)
        if choice is None:
            return None
        kind, run, direction = choice
        cursor[kind] += len(run)
        if run[0] < 0:
            factors.append(f"replicate({-run[0]})")
            continue
        for mode in run:
            next_mode[dims[mode]] += 1
        factors.append(_factor_text(layout, kind, run, direction))
    return factors


def _next_factor(
    lists: dict[str, tuple[int, ...]],
    cursor: dict[str, int],
    dims: Sequence[int],
    available: Callable[[int], bool],
) -> tuple[str, list[int], int] | None:
    """The next factor as (kind, entries, direction), or None when no list can go on.

    A run cut short only because a mode waits behind the other list's factor loses to that
    factor, so ``local(2,1).column_spatial(4,8)`` is not printed as three factors.
    """
    candidates = []
    for kind, entries in lists.items():
        start = cursor[kind]
        if start >= len(entries):
            continue
        if entries[start] < 0:
            return kind, [entries[start]], 0
        run, direction = _run(entries[start:], dims, available)
        if run:
            longest, _ = _run(entries[start:], dims, lambda entry: True)
            candidates.append((len(run) < len(longest), kind, run, direction))
    if not candidates:
        return None
    _, kind, run, direction = min(candidates, key=lambda candidate: candidate[0])
    return kind, run, direction


def _run(
    entries: Sequence[int], dims: Sequence[int], available: Callable[[int], bool]
) -> tuple[list[int], int]:
    """The longest prefix of available modes of strictly increasing or decreasing dimensions."""
    run: list[int] = []
    direction = 0
    for entry in entries:
        if entry < 0 or not available(entry):
            break
        if run:
            step = (dims[entry] > dims[run[-1]]) - (dims[entry] < dims[run[-1]])
            if step == 0 or step == -direction:
                break
            direction = step
        run.append(entry)
    return run, direction


def _factor_text(layout: RegisterLayout, kind: str, run: list[int], direction: int) -> str:
    sizes = [1] * layout.rank
    for mode in run:
        sizes[layout.mode_dims[mode]] = layout.mode_sizes[mode]
    name = f"column_{kind}" if direction < 0 else kind
    return f"{name}({','.join(map(str, sizes))})"


def _explicit(layout: RegisterLayout) -> str:
    def ints(values: Sequence[int]) -> str:
        return "[" + ",".join(map(str, values)) + "]"

    spatial = ",".join(str(e) if e >= 0 else f"replicate({-e})" for e in layout.spatial_modes)
    modes = ",".join(ints(dim) for dim in layout.modes)
    return (
        f"layout(shape={ints(layout.shape)}, modes=[{modes}], spatial=[{spatial}], "
        f"local={ints(layout.local_modes)})"
    )


# ------------------------------------------------------------------ parsing

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_]\w*)|(?P<int>\d+)|(?P<punct>[()\[\],.*=]))")


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "int", "punct" or "end"
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens, position = [], 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None:
            column = len(text) - len(text[position:].lstrip()) + 1
            raise located_error(text, column, f"unexpected character {text[column - 1]!r}")
        kind = match.lastgroup or "punct"
        tokens.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    tokens.append(_Token("end", "", len(text.rstrip()) + 1))
    return tokens


def located_error(
    text: str, column: int, message: str, hint: str | None = VALID_FORMS
) -> LayoutError:
    """A LayoutError placed at `column` of the one-line layout `text`."""
    location = SourceLocation("<layout>", 1, column, text)
    return LayoutError(message, location, hint)


class LayoutParser:
    """Recursive descent over the token list; every error points at the offending token."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, message: str, token: _Token | None = None) -> LayoutError:
        return located_error(self.text, (token or self.token).column, message)

    def describe(self, token: _Token) -> str:
        return "the end of the text" if token.kind == "end" else repr(token.text)

    def expect(self, text: str) -> _Token:
        token = self.token
        if token.text != text or token.kind == "end":
            raise self.fail(f"expected {text!r} but found {self.describe(token)}")
        self.index += 1
        return token

    def accept(self, text: str) -> bool:
        if self.token.kind == "punct" and self.token.text == text:
            self.index += 1
            return True
        return False

    def integer(self) -> int:
        token = self.token
        if token.kind != "int":
            found = self.describe(token)
            raise self.fail(f"expected a size (a positive integer) but found {found}")
        self.index += 1
        if int(token.text) < 1:
            raise self.fail("sizes must be positive integers", token)
        return int(token.text)

    def sequence(self, open_: str, close: str, item: Callable[[], Item]) -> list[Item]:
        self.expect(open_)
        items: list[Item] = []
        if not self.accept(close):
            items.append(item())
            while not self.accept(close):
                if not self.accept(","):
                    found = self.describe(self.token)
                    raise self.fail(f"expected ',' or {close!r} but found {found}")
                items.append(item())
        return items

    def parse(self) -> RegisterLayout:
        if self.token.kind == "end":
            raise self.fail("empty layout")
        result = self.factor()
        while self.token.text in (".", "*") and self.token.kind == "punct":
            self.index += 1
            start = self.token
            right = self.factor()
            try:
                result = result * right
            except LayoutError as error:
                raise located_error(self.text, start.column, error.message, error.hint) from None
        if self.token.kind != "end":
            raise self.fail(f"expected '.' or the end of the layout, found {self.token.text!r}")
        return result

    def factor(self) -> RegisterLayout:
        name = self.token
        if name.kind != "name":
            raise self.fail(f"expected a layout primitive but found {self.describe(name)}")
        self.index += 1
        if name.text == "layout":
            return self.explicit(name)
        if name.text not in PRIMITIVES:
            raise self.fail(f"unknown layout primitive {name.text!r}", name)
        sizes = self.sequence("(", ")", self.integer)
        if name.text == "replicate" and len(sizes) != 1:
            raise self.fail(f"replicate takes one factor, got {len(sizes)}", name)
        return PRIMITIVES[name.text](*sizes)

    def entry(self) -> int:
        if self.token.kind == "name" and self.token.text == "replicate":
            self.index += 1
            self.expect("(")
            factor = self.integer()
            self.expect(")")
            return -factor
        if self.token.kind != "int":
            found = self.describe(self.token)
            raise self.fail(f"expected a mode id or replicate(r), found {found}")
        self.index += 1
        return int(self.tokens[self.index - 1].text)

    def mode_id(self) -> int:
        if self.token.kind != "int":
            raise self.fail(f"expected a mode id, found {self.describe(self.token)}")
        self.index += 1
        return int(self.tokens[self.index - 1].text)

    def explicit(self, name: _Token) -> RegisterLayout:
        readers: dict[str, Callable[[], list]] = {
            "shape": lambda: self.sequence("[", "]", self.integer),
            "modes": lambda: self.sequence("[", "]", lambda: self.sequence("[", "]", self.integer)),
            "spatial": lambda: self.sequence("[", "]", self.entry),
            "local": lambda: self.sequence("[", "]", self.mode_id),
        }
        fields: dict[str, list] = {}
        self.expect("(")
        while True:
            key = self.token
            if key.kind != "name" or key.text not in readers or key.text in fields:
                what = "repeated" if key.text in fields else "unknown"
                raise self.fail(f"{what} field {self.describe(key)} in layout(...)")
            self.index += 1
            self.expect("=")
            fields[key.text] = readers[key.text]()
            if self.accept(")"):
                break
            self.expect(",")
        missing = [key for key in readers if key not in fields]
        if missing:
            raise self.fail(f"layout(...) is missing {', '.join(missing)}", name)
        try:
            return RegisterLayout(
                tuple(fields["shape"]),
                tuple(tuple(dim) for dim in fields["modes"]),
                tuple(fields["spatial"]),
                tuple(fields["local"]),
            )
        except LayoutError as error:
            hint = error.hint or VALID_FORMS
            raise located_error(self.text, name.column, error.message, hint) from None


def parse(text: str) -> RegisterLayout:
    """Parse the text form of a register layout (see the module docstring for the grammar).

    Raises:
        LayoutError: located at file "<layout>", line 1, at the column of the problem.
    """
    return LayoutParser(text).parse()
