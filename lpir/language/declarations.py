"""Checks of the names a source declares: kernels, their parameters and arguments.

A name declared twice would silently shadow the first (the body would see the second argument
of two named `a`; `kernel="k"` would pick the first of two kernels `k`), and a reserved word or
`block` as an argument's name could never be read as intended. Each is a `ParseError` at the
second (or the reserved) name, naming the line of the first.
"""

from __future__ import annotations

from lpir.errors import ParseError, location_in, with_article
from lpir.language import ast

# The grammar's keywords, the typed builtins (lexed as their own tokens) and `block`, which
# always means the block's index.
KEYWORDS = frozenset(
    [
        "kernel",
        "def",
        "return",
        "global",
        "let",
        "for",
        "in",
        "range",
        "if",
        "else",
        "and",
        "or",
        "not",
        "true",
        "false",
        "None",
    ]
)
TYPED_BUILTIN_NAMES = frozenset(["cast", "view", "arange", "zeros", "ones", "full", "shared"])
RESERVED = KEYWORDS | TYPED_BUILTIN_NAMES | {"block"}


def name_span(span: ast.Span, name: str) -> ast.Span:
    """The span of `name` at the start of `span` (a declaration starts with its name)."""
    return ast.Span(span.line, span.column, span.line, span.column + len(name))


def _where(first: ast.Span, second: ast.Span) -> str:
    if first.line == second.line:
        return f"line {first.line}, column {first.column}"
    return f"line {first.line}"


def reserved_name_error(
    name: str, what: str, span: ast.Span, source: str, file: str
) -> ParseError | None:
    """The error for a declaration (`what`: "an argument", ...) named by a reserved word."""
    if name not in RESERVED:
        return None
    place = location_in(source, file, span.line, span.column, span.end_column)
    if name == "block":
        message = f"'block' cannot name {what}: it is the block's index (block.x)"
    else:
        message = f"'{name}' is a reserved word and cannot name {what}"
    return ParseError(message, place, f"choose another name, e.g. '{name}_'")


def check_kernels(kernels: list[ast.KernelDef], source: str, file: str) -> None:
    """Each kernel's name once per source; each kernel's parameter and argument names once,
    distinct from each other and from the reserved words."""
    seen: dict[str, ast.Span] = {}
    for kernel in kernels:
        span = kernel.name_span or kernel.span
        if kernel.name in seen:
            first = seen[kernel.name]
            raise ParseError(
                f"kernel '{kernel.name}' is defined twice (first at {_where(first, span)})",
                location_in(source, file, span.line, span.column, span.end_column),
                "rename one of them: --kernel (kernel=) picks a kernel by its name",
            )
        seen[kernel.name] = span
        _check_declarations(kernel, source, file)


def _check_declarations(kernel: ast.KernelDef, source: str, file: str) -> None:
    declared: dict[str, tuple[str, ast.Span]] = {}
    decls: list[tuple[str, ast.Param | ast.GlobalArg | ast.ScalarArg]]
    decls = [("parameter", p) for p in kernel.params]
    decls += [("argument", a) for a in kernel.args]
    for what, decl in decls:
        name = decl.name
        span = name_span(decl.span, name)
        error = reserved_name_error(name, with_article(what), span, source, file)
        if error is not None:
            raise error
        if name in declared:
            first_what, first = declared[name]
            same = "declared twice" if first_what == what else f"also the name of a {first_what}"
            raise ParseError(
                f"{what} '{name}' of kernel '{kernel.name}' is {same} "
                f"(first at {_where(first, span)})",
                location_in(source, file, span.line, span.column, span.end_column),
                f"give each parameter and argument its own name; the body sees one '{name}'",
            )
        declared[name] = (what, span)
