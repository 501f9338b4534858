"""The registry of the functions a kernel can call, and what their lowerings share.

Each builtin is a function `(lowering, call) -> SemanticValue | None` registered in `BUILTINS`
(plain calls) or `TYPED_BUILTINS` (calls with a type argument, `cast<f16>(x)`) by the
`builtin` decorator. Arity and keyword arguments are checked by `call_arguments`, which raises
an error naming the function's signature. The builtins themselves: builtins.py and
memory_builtins.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, overload

from lpir.errors import TypeCheckError
from lpir.ir.types import GlobalType
from lpir.language import ast
from lpir.language.axis_habits import named_arguments_hint
from lpir.language.expressions import ExpressionLowering
from lpir.language.habits import keyword_hint
from lpir.language.values import Const, Memory, Runtime, SemanticValue, Slice

Builtin = Callable[[ExpressionLowering, ast.Call], "SemanticValue | None"]
BUILTINS: dict[str, tuple[str, Builtin]] = {}
TYPED_BUILTINS: dict[str, tuple[str, Builtin]] = {}


def builtin(signature: str, typed: bool = False) -> Callable[[Builtin], Builtin]:
    """Register a builtin under the name its `signature` starts with."""

    def register(function: Builtin) -> Builtin:
        name = signature.split("<")[0].split("(")[0]
        (TYPED_BUILTINS if typed else BUILTINS)[name] = (signature, function)
        return function

    return register


@overload
def call_arguments(
    low: ExpressionLowering,
    call: ast.Call,
    positional: int,
    optional: Literal[0] = 0,
    keywords: tuple[str, ...] = (),
) -> tuple[list[ast.Node], dict[str, ast.Node]]: ...


@overload
def call_arguments(
    low: ExpressionLowering,
    call: ast.Call,
    positional: int,
    optional: int,
    keywords: tuple[str, ...] = (),
) -> tuple[list[ast.Node | None], dict[str, ast.Node]]: ...


def call_arguments(
    low: ExpressionLowering,
    call: ast.Call,
    positional: int,
    optional: int = 0,
    keywords: tuple[str, ...] = (),
) -> tuple[list[ast.Node], dict[str, ast.Node]] | tuple[list[ast.Node | None], dict[str, ast.Node]]:
    """Check the call's arity; return positional nodes (None for missing optionals) and kwargs."""
    table = TYPED_BUILTINS if call.type_name is not None else BUILTINS
    signature = table[call.func][0]
    if not positional <= len(call.args) <= positional + optional:
        count = f"{positional}" if not optional else f"{positional} to {positional + optional}"
        noun = "argument" if positional + optional == 1 else "arguments"
        texts = [low.text_of(a) for a in call.args]  # numpy's sum(t, 1): the axis named
        named = named_arguments_hint(call.func, signature, texts) if not call.keywords else None
        raise low.error(
            f"{call.func} takes {count} {noun}, got {len(call.args)}",
            call,
            named or f"call it as {signature}",
        )
    given = {}
    for keyword in call.keywords:
        if keyword.name not in keywords:
            value = low.text_of(keyword.value)
            hint = keyword_hint(call.func, keyword.name, value, keywords)
            raise low.error(
                f"{call.func} has no argument '{keyword.name}'",
                keyword,
                hint or f"call it as {signature}",
            )
        if keyword.name in given:  # (the last would silently win)
            raise low.error(f"'{keyword.name}' is given twice", keyword, f"call it as {signature}")
        given[keyword.name] = keyword.value
    args = list(call.args) + [None] * (positional + optional - len(call.args))
    return args, given


def tile_or_scalar(
    low: ExpressionLowering, node: ast.Node, call: ast.Call | None = None
) -> Runtime | Const:
    """The number or tile `node` (an argument of `call`, where known) stands for."""
    value = low.expr(node)
    if isinstance(value, Const | Runtime):
        return value
    raise not_a_tile(low, "expected a number or a tile", value, node, call)


def not_a_tile(
    low: ExpressionLowering,
    needed: str,
    value: SemanticValue,
    node: ast.Node,
    call: ast.Call | None = None,
    hint: str | None = None,
) -> TypeCheckError:
    """The error for `value` (`node`, an argument of `call` where known) where `needed` says
    what the function takes: a tensor, a shared tile or a slice of one is in memory, so the
    hint shows the call with it loaded (`view<f16>(load(w[...]))`); other values get `hint`."""
    text = low.text_of(node)
    if isinstance(value, Memory) and isinstance(value.type, GlobalType):
        loaded = f"load({text}[...])"
        what = f"{value.name} is in global memory: load a slice of it into registers first, e.g."
    elif isinstance(value, Memory | Slice):
        loaded = f"load({text})"
        kind = "a slice" if isinstance(value, Slice) else "a shared tile"
        what = f"{kind} is in memory: load it into registers first:"
    else:
        return low.error(f"{needed}, but this is {value.describe()}", node, hint)
    shown = loaded if call is None else _with_argument(low, call, node, loaded)
    return low.error(f"{needed}, but this is {value.describe()}", node, f"{what} {shown}")


def _with_argument(low: ExpressionLowering, call: ast.Call, node: ast.Node, text: str) -> str:
    """`call`'s source text with its argument `node` written as `text` (just `text` where
    either spans several lines)."""
    if call.span.end_line != call.span.line or node.span.end_line != node.span.line:
        return text
    whole = low.text_of(call)
    start = node.span.column - call.span.column
    end = node.span.end_column - call.span.column
    return whole[:start] + text + whole[end:]
