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

from lpir.language import ast
from lpir.language.expressions import ExpressionLowering
from lpir.language.values import Const, Runtime, SemanticValue

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
        raise low.error(
            f"{call.func} takes {count} {noun}, got {len(call.args)}",
            call,
            f"call it as {signature}",
        )
    given = {}
    for keyword in call.keywords:
        if keyword.name not in keywords:
            raise low.error(
                f"{call.func} has no argument '{keyword.name}'", keyword, f"call it as {signature}"
            )
        given[keyword.name] = keyword.value
    args = list(call.args) + [None] * (positional + optional - len(call.args))
    return args, given


def tile_or_scalar(low: ExpressionLowering, node: ast.Node) -> Runtime | Const:
    value = low.expr(node)
    if isinstance(value, Const | Runtime):
        return value
    raise low.error(f"expected a number or a tile, but this is {value.describe()}", node)
