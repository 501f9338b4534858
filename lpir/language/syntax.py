"""Parse kernel source text into the syntax tree of `lpir.language.ast`.

The grammar lives in grammar.lark (LALR, its tables kept on disk by `lpir.grammar_cache`). A
post-lexer drops newlines inside parentheses and brackets, so statements end at a newline but
argument lists may span lines. Syntax errors become `ParseError`s with the place, the line, a
caret and what was expected.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import lark
from lark import Token, Transformer_NonRecursive, v_args
from lark.tree import Meta

from lpir.errors import ParseError, location_in, source_lines
from lpir.grammar_cache import cached_lark
from lpir.language import ast
from lpir.language.declarations import KEYWORDS, check_kernels, reserved_name_error
from lpir.language.habits import foreign_syntax, quoted_float


class _BracketNewlines:
    """Post-lexer: newlines inside (), [] are not statement separators."""

    always_accept = ("_NEWLINE",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        for token in stream:
            if token.type == "_NEWLINE":
                if depth == 0:
                    yield token
                continue
            if token.type in ("LPAR", "LSQB"):
                depth += 1
            elif token.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            yield token


@functools.cache
def _parser() -> lark.Lark:
    grammar = resources.files("lpir.language").joinpath("grammar.lark").read_text()
    return cached_lark(
        grammar,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=_BracketNewlines(),
    )


_READABLE = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "_NEWLINE": "a new line",
    "SEMICOLON": "';'",
    "MORETHAN": "'>'",
    "LESSTHAN": "'<'",
    "$END": "the end of the file",
}


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "_NEWLINE":
        return "end of line"
    return f"'{token.value}'"


def _expected_text(expected: set[str]) -> str:
    names = sorted({_READABLE.get(e, e.lower().strip("_")) for e in expected})
    if len(names) > 6:
        names = [*names[:6], "..."]
    return ", ".join(names)


def _end_of_code(source: str) -> tuple[int, int]:
    """(line, column) just past the last line that holds code (not blank, not only a comment)."""
    lines = source_lines(source)
    for number in range(len(lines), 0, -1):
        text = lines[number - 1].rstrip()
        if text and not text.lstrip().startswith("#"):
            return number, len(text) + 1
    return 1, 1


# `while` opening a statement (at the start of its line or after ; { }, and not assigned to)
_WHILE = re.compile(r"(?:^|[;{}])\s*(while)\b(?!\s*(?:[-+*/%&|^]|<<|>>)?=(?!=))[^;{}]*$")


def _known_mistake(source: str, file: str, error: lark.UnexpectedToken) -> ParseError | None:
    """A clear error for a syntax error that is a construct lpir does not have (`while`,
    `elif`, Python's `**` and the others of `habits.foreign_syntax`), or None for the generic
    "unexpected ..." error."""
    token = error.token
    if token.type == "$END" or error.line is None or error.column is None:
        return None
    lines = source_lines(source)
    line = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
    glued = _number_glued_to_name(source, file, error, line)
    if glued is not None:
        return glued
    if token.type == "NAME" and token.value == "elif":
        place = location_in(source, file, error.line, error.column, error.column + 4)
        return ParseError("lpir has no elif", place, "write else if: } else if condition { ... }")
    if token.value in _COMPARISONS and "AND" in error.expected:  # a comparison just ended
        end = error.column + len(token.value)
        place = location_in(source, file, error.line, error.column, end)
        return ParseError(
            "comparisons do not chain",
            place,
            f"compare twice and join with and: {_unchained(line, error.column, token.value)}",
        )
    reserved = _reserved_word_as_name(source, file, error, line)
    if reserved is not None:
        return reserved
    if token.type in ("LBRACE", "IF"):
        before = _WORD_BEFORE.search(line[: error.column - 1])
        if before is not None and before.group(1) == "else" and not line[: before.start(1)].strip():
            column = before.start(1) + 1
            place = location_in(source, file, error.line, column, column + 4)
            return ParseError(
                "'else' must follow the '}' of its if on the same line: a new line after '}' "
                "ends the if statement",
                place,
                "write } else { ... } (or } else if condition { ... }) on one line",
            )
    habit = foreign_syntax(line, error.column, str(token.value))  # t ** 2, tl.exp(t), ...
    if habit is not None:
        place = location_in(source, file, error.line, habit.start, habit.end)
        return ParseError(habit.message, place, habit.hint)
    annotated = _after_annotation(source, file, error)
    if annotated is not None:
        return annotated
    found = _WHILE.search(line[: error.column - 1])
    if found is not None:
        column = found.start(1) + 1
        place = location_in(source, file, error.line, column, column + 5)
        return ParseError(
            "lpir has no while loop",
            place,
            "loop with for i in range(start, stop): the bounds may be i32 scalars computed at "
            "run time (let n = load(lengths[block.x])); to stop early, carry a flag (done = "
            "false before the loop; done = done or ... inside) and guard the body with "
            "if not done { ... }",
        )
    return None


# An integer as a source writes it (grammar.lark's INT, with a sign): decimal (010 is ten),
# 0x..., 0b...; no octal, no digit separators.
_INTEGER_TEXT = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)")


def integer_of_text(text: str) -> int | None:
    """The integer `text` writes as a kernel source's literal does, or None (the command
    line's -D and --arg read numbers by these rules too)."""
    text = text.strip()
    if _INTEGER_TEXT.fullmatch(text) is None:
        return None
    digits = text.lstrip("-")
    value = int(digits) if digits.isdigit() else int(digits, 0)  # (int("010", 0) refuses)
    return -value if text.startswith("-") else value


_NUMBER_BEFORE = re.compile(r"(?<![\w.])(0[xXbB][0-9A-Fa-f]*|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)$")


_HEX_FLOAT = re.compile(r"0[xX][0-9A-Fa-f]+[pP][-+]?\d+")


def _number_glued_to_name(
    source: str, file: str, error: lark.UnexpectedToken, line: str
) -> ParseError | None:
    """A name right after a number (`1_000`, `0o17`, `0x1p3`, `2x`): a literal form lpir does
    not have, or a missing operator."""
    token = error.token
    if token.type != "NAME" or error.column is None:
        return None
    number = _NUMBER_BEFORE.search(line[: error.column - 1])
    if number is None:
        return None
    text, word = number.group(1), str(token.value)
    column = number.start(1) + 1
    place = location_in(source, file, error.line, column, error.column + len(word))
    digits = word.lstrip("_")
    if word.startswith("_") and digits.isdigit():
        written = (text + word).replace("_", "")
        return ParseError(
            f"lpir has no digit separators: {text + word}",
            place,
            f"write the number without '_': {written}",
        )
    if text == "0" and word[0] in "oO":
        value = word[1:]
        hint = "write it in decimal, 0x... or 0b..."
        if value and all(c in "01234567" for c in value):
            hint = f"write it in decimal or hexadecimal: {int(value, 8)} or {hex(int(value, 8))}"
        return ParseError(f"lpir has no octal literals: {text + word}", place, hint)
    if text[:2] in ("0x", "0X") and word[0] in "pP":
        whole = _HEX_FLOAT.match(line, column - 1)
        shown = whole.group(0) if whole else text + word
        end = column + len(shown)
        place = location_in(source, file, error.line, column, end)
        hint = "write the value as a decimal float (0x1p3 is 8.0)"
        if whole is not None:
            hint = f"write the value as a decimal float: {float.fromhex(shown)!r}"
        return ParseError(f"lpir has no hexadecimal floats: {shown}", place, hint)
    return ParseError(
        f"a number followed by a name: {text + word}",
        place,
        f"put an operator between them, e.g. {text} * {word}",
    )


# tokens that would continue an expression past a layout annotation
_CONTINUING = {"+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "|", "^", "&", "<<"}
_CONTINUING |= {">>", "[", "and", "or"}


def _after_annotation(source: str, file: str, error: lark.UnexpectedToken) -> ParseError | None:
    """An operator after a whole layout annotation (`t @ L + b`, `t @ L * 2.0`, whose `*`
    joins layouts): `@` binds loosest, so the annotation ends the expression it is in."""
    parser = getattr(error, "interactive_parser", None)
    if parser is None:
        return None
    stack = parser.parser_state.value_stack
    ats = [i for i, v in enumerate(stack) if isinstance(v, Token) and v.type == "AT"]
    layout = stack[ats[-1] + 1 :] if ats else []
    after = [v.type for v in layout if isinstance(v, Token)]
    if not layout or after.count("LPAR") != after.count("RPAR"):  # inside the layout
        return None
    token = error.token
    joined = after[-1:] == ["STAR"] or (after[-2:] == ["STAR", "NAME"] and token.type != "LPAR")
    if joined:  # `t @ L * 2.0`, `t @ L * scale`: what follows `*` is read as a layout
        token = token if after[-1] == "STAR" else layout[-1]
        operator = "*"
        read = "after @, '*' joins layouts (spatial(8, 2) * local(1, 4)), and "
    elif isinstance(layout[-1], Token) and layout[-1].type != "RPAR":
        return None  # `t @ spatial(8) .`: the layout itself is unfinished
    elif str(token.value) in _CONTINUING:
        operator = str(token.value)
        read = ""
    else:
        return None
    if token.type in ("$END", "_NEWLINE"):
        place = location_in(source, file, error.line, error.column)
    else:
        end = token.column + len(str(token.value))
        place = location_in(source, file, token.line, token.column, end)
    shown = "(t @ L)[...]" if operator == "[" else f"(t @ L) {operator} ..."
    return ParseError(
        f"unexpected {_describe_token(token)} after a layout annotation",
        place,
        f"{read}@ binds loosest of all operators and ends the expression it is in: "
        f"parenthesize the annotated tile, {shown}, or annotate the whole result, "
        "(t * 2.0) @ L",
    )


_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
_OPERAND = r"-?[A-Za-z0-9_.]+(?:\[[^\[\]]*\])?"


def _unchained(line: str, column: int, second: str) -> str:
    """`(a < x) and (x < b)` for `a < x < b` (the second comparison at `column`), with the
    line's operands where they are simple, else with a, x, b."""
    before, after = line[: column - 1], line[column - 1 + len(second) :]
    found = re.search(rf"({_OPERAND})\s*(<=|>=|==|!=|<|>)\s*({_OPERAND})\s*$", before)
    right = re.match(rf"\s*({_OPERAND})", after)
    if found is None or right is None:
        return f"(a < x) and (x {second} b)"
    left, first, middle = found.groups()
    return f"({left} {first} {middle}) and ({middle} {second} {right.group(1)})"


_BUILTIN_FORMS = {
    "cast": "cast<T>(x)",
    "view": "view<T>(x)",
    "arange": "arange(n)",
    "zeros": "zeros<T>[d, ...]",
    "ones": "ones<T>[d, ...]",
    "full": "full<T>[d, ...](value)",
    "shared": "shared<T>[d, ...]",
}
_WORD_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")
_ASSIGNED = re.compile(r"\s*(?:[-+*/%&|^]|<<|>>)?=(?!=)")  # `=`, `+=`, ... after a name


def _declaration_of(word: str, source: str) -> tuple[str, ast.Span] | None:
    """Where a source that failed to parse declares `word` as a kernel's argument or a def's
    parameter (the first place), to report a reserved word there."""
    patterns = [
        ("an argument", rf"[(,]\s*({word})\s*:"),
        ("a parameter", rf"\bdef\s+\w+\s*\((?:[^()]*?[\s,])?({word})\s*[,)]"),
    ]
    found = []
    for what, pattern in patterns:
        match = re.search(pattern, source)
        if match is not None:
            found.append((match.start(1), what))
    if not found:
        return None
    offset, what = min(found)
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return what, ast.Span(line, column, line, column + len(word))


def _reserved_word_as_name(
    source: str, file: str, error: lark.UnexpectedToken, line: str
) -> ParseError | None:
    """A typed builtin (`cast`, `zeros`, ...) where a name is read or declared, or a keyword
    being assigned (`for = 3`): the word is reserved, whatever the parser expected after it."""
    token = error.token
    before = _WORD_BEFORE.search(line[: error.column - 1])
    word, column = (before.group(1), before.start(1) + 1) if before else (None, 0)
    if token.type in ("TYPED_FN", "TILE_FN") and "NAME" in error.expected:  # let zeros = 1
        word, column = str(token.value), error.column
    elif token.value in KEYWORDS and _ASSIGNED.match(line, error.column - 1 + len(token.value)):
        word, column = str(token.value), error.column  # `kernel = 2.0`: read as the keyword
    elif word in _BUILTIN_FORMS and token.type not in ("LESSTHAN", "LPAR"):
        pass  # `cast = 3`, `zeros[0 :+ 64]`, `return cast`: the builtin read as a name
    elif not (word in KEYWORDS and token.type in ("EQUAL", "AUGOP")):
        return None
    assert word is not None
    declared = _declaration_of(word, source)
    if declared is not None:  # `zeros: global f32[N]`, `def f(cast)`: the error at the name
        what, span = declared
        return reserved_name_error(word, what, span, source, file)
    place = location_in(source, file, error.line, column, column + len(word))
    form = _BUILTIN_FORMS.get(word)
    if form is None:
        return ParseError(
            f"'{word}' is a reserved word and cannot name a value",
            place,
            f"choose another name, e.g. '{word}_'",
        )
    return ParseError(
        f"'{word}' is a reserved word, the builtin {form}, and cannot be a name",
        place,
        f"to name a value, choose another name, e.g. '{word}_'; to call the builtin, write {form}",
    )


def parse_program(source: str, file: str = "<source>") -> ast.Program:
    """Parse a whole source text (one or more kernels). A UTF-8 byte order mark that
    opens it (an editor's, read without encoding="utf-8-sig") is skipped.

    The last few texts parsed are remembered: compiling one file again with other parameters
    (a sweep, a test's cases) reuses its syntax tree, which nothing changes after parsing
    (lowering builds new nodes with `dataclasses.replace`). A text that does not parse is
    parsed again each time, to raise its error."""
    return _parse_remembered(source.removeprefix("\ufeff"), file)


@functools.lru_cache(maxsize=64)
def _parse_remembered(source: str, file: str) -> ast.Program:
    try:
        tree = _parser().parse(source + "\n")
    except lark.UnexpectedToken as error:
        token = error.token
        end = token.column + len(str(token.value)) if token.type != "$END" else None
        location = location_in(source, file, error.line or 1, error.column or 1, end)
        closers = [("RPAR", "')'"), ("RSQB", "']'")]
        if token.type == "$END":
            location = location_in(source, file, *_end_of_code(source))
            closers.append(("RBRACE", "'}'"))
        known = _known_mistake(source, file, error)
        if known is not None:
            raise known from None
        message = f"unexpected {_describe_token(token)}"
        hint = f"expected {_expected_text(error.expected)}"
        closing = next((c for t, c in closers if t in error.expected), None)
        if closing and token.type in ("NAME", "$END"):
            hint = f"is a {closing} missing? {hint}"
        raise ParseError(message, location, hint) from None
    except lark.UnexpectedCharacters as error:
        raise _unexpected_character(source, file, error) from None
    except lark.UnexpectedEOF:
        lines = source_lines(source) or [""]
        location = location_in(source, file, len(lines), len(lines[-1]) + 1)
        raise ParseError("unexpected end of file", location, "close every '{' and '('") from None
    try:
        definitions = _ToAst().transform(tree)
    except lark.exceptions.VisitError as error:
        if isinstance(error.orig_exc, _PositionalAfterKeyword):
            raise _positional_after_keyword(source, file, error.orig_exc) from None
        raise
    kernels = [d for d in definitions if isinstance(d, ast.KernelDef)]
    check_kernels(kernels, source, file)
    functions = _functions([d for d in definitions if isinstance(d, ast.FunctionDef)], source, file)
    return ast.Program(kernels, source, file, functions)


def _positional_after_keyword(
    source: str, file: str, mistake: _PositionalAfterKeyword
) -> ParseError:
    """Python's error for `f(b = 2.0, x)`, at the positional argument, with the call's
    arguments reordered where they are each on one line."""
    span = mistake.argument.span
    place = location_in(source, file, span.line, span.column, span.end_column)
    lines = source_lines(source)
    texts: list[str] = []
    for argument in mistake.call_args:
        s = argument.span
        if s.line != s.end_line:
            texts = []
            break
        texts.append(lines[s.line - 1][s.column - 1 : s.end_column - 1])
    positional = [t for t, a in zip(texts, mistake.call_args) if not isinstance(a, ast.KeywordArg)]
    keywords = [t for t, a in zip(texts, mistake.call_args) if isinstance(a, ast.KeywordArg)]
    written = f", e.g. {mistake.func}({', '.join(positional + keywords)})" if texts else ""
    named_too = "" if mistake.func == "range" else ", or give this one by name too"
    return ParseError(
        "positional argument follows keyword argument",
        place,
        "pass the arguments given by position first, then those given by name"
        + written
        + named_too,
    )


def _unexpected_character(source: str, file: str, error: lark.UnexpectedCharacters) -> ParseError:
    """A character no token starts with; a quote that opens no string says what is wrong with
    it (a string is "..." on one line, no escapes)."""
    lines = source_lines(source)
    line = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
    rest = line[error.column :]
    if error.char == '"' and '"' not in rest:
        end = len(line.rstrip()) + 1
        place = location_in(source, file, error.line, error.column, end)
        return ParseError(
            "unterminated string",
            place,
            'close it with " on the same line (a string does not span lines)',
        )
    habit = quoted_float(line, error.column) if error.char == "'" else None
    if habit is not None:  # float('-inf')
        place = location_in(source, file, error.line, habit.start, habit.end)
        return ParseError(habit.message, place, habit.hint)
    if error.char == "'" and "'" in rest:
        closing = error.column + rest.index("'") + 1
        text = line[error.column : closing - 1]
        place = location_in(source, file, error.line, error.column, closing + 1)
        hint = f'write "{text}"'
        if '"' in text:
            hint = (
                f"""write "{text.replace('"', "'")}": a string cannot hold a double quote """
                "(there are no escapes), so rephrase it"
            )
        return ParseError("a string is written in double quotes", place, hint)
    place = location_in(source, file, error.line, error.column)
    hint = "remove or replace it"
    if error.char.isalpha() or error.char.isdigit():  # a Greek or accented letter
        hint = "names are ASCII: letters a-z and A-Z, digits and '_' (write alpha, not \u03b1)"
    return ParseError(f"unexpected character {error.char!r}", place, hint)


def _functions(defs: list[ast.FunctionDef], source: str, file: str) -> dict[str, ast.FunctionDef]:
    """The functions by name; a name defined twice, one that names a builtin, or a parameter
    listed twice is an error at its place."""
    from lpir.language.builtins import BUILTINS, TYPED_BUILTINS

    functions: dict[str, ast.FunctionDef] = {}
    for function in defs:
        span = function.name_span or function.span
        place = location_in(source, file, span.line, span.column, span.end_column)
        if function.name in functions:
            first = functions[function.name].span.line
            raise ParseError(
                f"function '{function.name}' is defined twice (first at line {first})",
                place,
                "rename one of them",
            )
        if function.name in BUILTINS or function.name in TYPED_BUILTINS or function.name == "block":
            raise ParseError(
                f"cannot define '{function.name}': it names a builtin", place, "choose another name"
            )
        reserved = reserved_name_error(function.name, "a def", span, source, file)
        if reserved is not None:
            raise reserved
        seen: set[str] = set()
        for name, name_span in zip(function.params, function.param_spans):
            reserved = reserved_name_error(name, "a parameter", name_span, source, file)
            if reserved is not None:
                raise reserved
            if name in seen:
                raise ParseError(
                    f"parameter '{name}' of '{function.name}' is listed twice",
                    location_in(
                        source, file, name_span.line, name_span.column, name_span.end_column
                    ),
                    "give each parameter its own name",
                )
            seen.add(name)
        functions[function.name] = function
    return functions


def _span(meta: Meta) -> ast.Span:
    if getattr(meta, "empty", False):
        return ast.Span(1, 1, 1, 2)
    return ast.Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(token: Token) -> ast.Span:
    line, column, end_line, end_column = token.line, token.column, token.end_line, token.end_column
    if line is None or column is None or end_line is None or end_column is None:
        return ast.Span(1, 1, 1, 2)  # a token the parser made up: no place in the text
    return ast.Span(line, column, end_line, end_column)


class _PositionalAfterKeyword(Exception):
    """`f(b = 2.0, x)`: raised while the tree is transformed, where the source is not at
    hand; `parse_program` makes it a located `ParseError`."""

    def __init__(self, func: str, argument: ast.Node, call_args: list[ast.Node]):
        super().__init__(func)
        self.func, self.argument, self.call_args = func, argument, call_args


def _split_args(
    call_args: list[ast.Node] | None, func: str
) -> tuple[list[ast.Node], list[ast.KeywordArg]]:
    """The positional and the keyword arguments of a call of `func`; a positional argument
    after a keyword one is an error, as in Python (it bound to the first parameter)."""
    if call_args is None:
        return [], []
    named = False
    for argument in call_args:
        if isinstance(argument, ast.KeywordArg):
            named = True
        elif named:
            raise _PositionalAfterKeyword(func, argument, call_args)
    positional = [a for a in call_args if not isinstance(a, ast.KeywordArg)]
    keywords = [a for a in call_args if isinstance(a, ast.KeywordArg)]
    return positional, keywords


_AUGMENTED = {
    "+=": "add",
    "-=": "sub",
    "*=": "mul",
    "/=": "div",
    "%=": "rem",
    "&=": "and",
    "|=": "or",
    "^=": "xor",
    "<<=": "shl",
    ">>=": "shr",
}


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """Turn the lark parse tree into `lpir.language.ast` nodes (iteratively: a chain of 20000
    `+` is a parse tree as deep, past Python's recursion limit)."""

    def start(self, meta: Meta, definitions: list[object]) -> list[ast.KernelDef | ast.FunctionDef]:
        return [d for d in definitions if isinstance(d, ast.KernelDef | ast.FunctionDef)]

    def function(self, meta: Meta, children: list[Any]) -> ast.FunctionDef:
        name, *params, body = children
        params = [p for p in params if p is not None]
        return ast.FunctionDef(
            _span(meta),
            str(name),
            [str(p) for p in params],
            [_token_span(p) for p in params],
            body,
            _token_span(name),
        )

    def kernel(self, meta: Meta, children: list[Any]) -> ast.KernelDef:
        name, params, *rest = children
        *args, launch, body = rest
        blocks, threads = launch
        args = [a for a in args if a is not None]
        return ast.KernelDef(
            _span(meta), str(name), params or [], args, blocks, threads, body, _token_span(name)
        )

    def params(self, meta: Meta, children: list[ast.Param | None]) -> list[ast.Param]:
        return [c for c in children if c is not None]

    def param(self, meta: Meta, children: list[Any]) -> ast.Param:
        name, default = children
        return ast.Param(_span(meta), str(name), default)

    def global_arg(self, meta: Meta, children: list[Any]) -> ast.GlobalArg:
        name, dtype_name, *dims = children
        return ast.GlobalArg(_span(meta), str(name), str(dtype_name), dims, _token_span(dtype_name))

    def scalar_arg(self, meta: Meta, children: list[Token]) -> ast.ScalarArg:
        name, dtype_name = children
        return ast.ScalarArg(_span(meta), str(name), str(dtype_name), _token_span(dtype_name))

    def launch(self, meta: Meta, children: list[ast.Node]) -> tuple[list[ast.Node], ast.Node]:
        *blocks, threads = children
        return blocks, threads

    def block(self, meta: Meta, children: list[ast.Node | None]) -> list[ast.Node]:
        return [c for c in children if c is not None]

    # ---- statements
    def assign(self, meta: Meta, children: list[Any]) -> ast.Assign:
        target, value = children
        return ast.Assign(_span(meta), str(target), value, _token_span(target))

    def aug_assign(self, meta: Meta, children: list[Any]) -> ast.AugAssign:
        target, op, value = children
        return ast.AugAssign(
            _span(meta), str(target), _AUGMENTED[str(op)], value, _token_span(target)
        )

    def let(self, meta: Meta, children: list[Any]) -> ast.Let:
        target, value = children
        return ast.Let(_span(meta), str(target), value)

    def for_stmt(self, meta: Meta, children: list[Any]) -> ast.For:
        var, call_args, body = children
        bounds, keywords = _split_args(call_args, "range")
        return ast.For(_span(meta), str(var), bounds, body, keywords)

    def if_stmt(self, meta: Meta, children: list[Any]) -> ast.If:
        cond, then_body, else_part = children
        if isinstance(else_part, ast.If):
            else_part = [else_part]
        return ast.If(_span(meta), cond, then_body, else_part)

    def expr_stmt(self, meta: Meta, children: list[ast.Node]) -> ast.ExprStmt:
        return ast.ExprStmt(_span(meta), children[0])

    def return_stmt(self, meta: Meta, children: list[ast.Node | None]) -> ast.Return:
        return ast.Return(_span(meta), children[0])

    # ---- expressions
    def annotate(self, meta: Meta, children: list[Any]) -> ast.Annotate:
        value, layout = children  # layout_chain and layout_product both make a LayoutExpr
        return ast.Annotate(_span(meta), value, layout)

    def logical_or(self, meta: Meta, children: list[ast.Node]) -> ast.BinaryExpr:
        return ast.BinaryExpr(_span(meta), "logical_or", *children)

    def logical_and(self, meta: Meta, children: list[ast.Node]) -> ast.BinaryExpr:
        return ast.BinaryExpr(_span(meta), "logical_and", *children)

    def logical_not(self, meta: Meta, children: list[ast.Node]) -> ast.UnaryExpr:
        return ast.UnaryExpr(_span(meta), "logical_not", children[0])

    def neg(self, meta: Meta, children: list[ast.Node]) -> ast.UnaryExpr:
        return ast.UnaryExpr(_span(meta), "neg", children[0])

    def attribute(self, meta: Meta, children: list[Any]) -> ast.Attribute:
        base, name = children
        return ast.Attribute(_span(meta), base, str(name))

    def subscript(self, meta: Meta, children: list[ast.Node]) -> ast.Subscript:
        base, *items = children
        return ast.Subscript(_span(meta), base, items)

    def slice_length(self, meta: Meta, children: list[ast.Node]) -> ast.SliceLength:
        return ast.SliceLength(_span(meta), *children)

    def slice_range(self, meta: Meta, children: list[ast.Node | None]) -> ast.SliceRange:
        return ast.SliceRange(_span(meta), *children)

    def new_axis(self, meta: Meta, children: list[object]) -> ast.NewAxis:
        return ast.NewAxis(_span(meta))

    def index(self, meta: Meta, children: list[ast.Node]) -> ast.Node:
        return children[0]

    def int_literal(self, meta: Meta, children: list[Token]) -> ast.IntLiteral:
        value = integer_of_text(str(children[0]))
        assert value is not None  # the grammar's INT token
        return ast.IntLiteral(_span(meta), value)

    def float_literal(self, meta: Meta, children: list[Token]) -> ast.FloatLiteral:
        return ast.FloatLiteral(_span(meta), float(str(children[0])))

    def string_literal(self, meta: Meta, children: list[Token]) -> ast.StringLiteral:
        return ast.StringLiteral(_span(meta), str(children[0])[1:-1])

    def true_literal(self, meta: Meta, children: list[object]) -> ast.BoolLiteral:
        return ast.BoolLiteral(_span(meta), True)

    def false_literal(self, meta: Meta, children: list[object]) -> ast.BoolLiteral:
        return ast.BoolLiteral(_span(meta), False)

    def name(self, meta: Meta, children: list[Token]) -> ast.Name:
        return ast.Name(_span(meta), str(children[0]))

    def call_args(self, meta: Meta, children: list[ast.Node | None]) -> list[ast.Node]:
        return [c for c in children if c is not None]

    def keyword_arg(self, meta: Meta, children: list[Any]) -> ast.KeywordArg:
        name, value = children
        return ast.KeywordArg(_span(meta), str(name), value)

    def call(self, meta: Meta, children: list[Any]) -> ast.Call:
        func, call_args = children
        positional, keywords = _split_args(call_args, str(func))
        return ast.Call(_span(meta), str(func), positional, keywords)

    def typed_call(self, meta: Meta, children: list[Any]) -> ast.Call:
        func, type_name, call_args = children
        positional, keywords = _split_args(call_args, f"{func}<{type_name}>")
        return ast.Call(
            _span(meta), str(func), positional, keywords, str(type_name), _token_span(type_name)
        )

    def tile_constructor(self, meta: Meta, children: list[Any]) -> ast.TileConstructor:
        func, type_name, *dims, call_args = children
        positional, keywords = _split_args(call_args, f"{func}<{type_name}>[...]")
        return ast.TileConstructor(
            _span(meta),
            str(func),
            str(type_name),
            dims,
            positional,
            keywords,
            _token_span(type_name),
        )

    def layout_call(self, meta: Meta, children: list[Any]) -> ast.LayoutCall:
        name, *args = children
        return ast.LayoutCall(_span(meta), str(name), [a for a in args if a is not None])

    def layout_chain(self, meta: Meta, children: list[ast.LayoutCall]) -> ast.LayoutExpr:
        return ast.LayoutExpr(_span(meta), [list(children)])

    def layout_product(self, meta: Meta, children: list[ast.LayoutExpr]) -> ast.LayoutExpr:
        left, right = children
        return ast.LayoutExpr(_span(meta), left.chains + right.chains)


def _binary(op: str) -> Callable[[_ToAst, Meta, list[ast.Node]], ast.BinaryExpr]:
    def method(self: _ToAst, meta: Meta, children: list[ast.Node]) -> ast.BinaryExpr:
        return ast.BinaryExpr(_span(meta), op, *children)

    return method


def _bitwise_not(self: _ToAst, meta: Meta, children: list[ast.Node]) -> ast.UnaryExpr:
    return ast.UnaryExpr(_span(meta), "not", children[0])


# Operators of the grammar map one-to-one onto IR op names, some of which are Python keywords.
_BINARY_RULES = ("add", "sub", "mul", "div", "rem", "lt", "le", "gt", "ge", "eq", "ne")
for _op in (*_BINARY_RULES, "or", "xor", "and", "shl", "shr"):
    setattr(_ToAst, _op, v_args(meta=True)(_binary(_op)))
setattr(_ToAst, "not", v_args(meta=True)(_bitwise_not))
