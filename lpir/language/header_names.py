"""The refusal of a name a kernel's header reads but nothing declares.

The header (the arguments' shapes, `blocks(...)`, `threads(...)`) is lowered grid first, but a
reader meets it in source order: an unknown name there is reported at its first use in the
source, with the two ways a header declares a size: a parameter in the kernel's `[...]`, or an
i32 argument where a size may be read at run time (a block count, a tensor's first dimension;
lpir/language/runtime_sizes.py). "Assign it before this line" would be impossible to follow.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from lpir.errors import TypeCheckError
from lpir.language import ast
from lpir.language.expressions import NAMED_CONSTANTS
from lpir.language.habits import foreign_name_hint

if TYPE_CHECKING:
    from lpir.language.lower import KernelLowering

# (the use, whether an i32 argument may stand there)
HeaderUse = tuple[ast.Name, bool]


def unknown_header_name(low: KernelLowering, name: str) -> TypeCheckError | None:
    """The error for `name`, read by the header of `low.kernel_def` and declared nowhere:
    located at its first use in the source, with a hint that fits a header. (None where no
    header expression spells it: the body's refusal then applies.)"""
    kernel = low.kernel_def
    uses = header_uses(kernel, name)
    if not uses:
        return None
    first = min(uses, key=lambda use: (use[0].span.line, use[0].span.column))[0]
    return low.error(f"unknown name '{name}'", first, declare_hint(kernel, name, uses))


def header_uses(kernel: ast.KernelDef, name: str) -> list[HeaderUse]:
    """Each `Name` node of the header that reads `name`."""
    uses: list[HeaderUse] = []
    for arg in kernel.args:
        if isinstance(arg, ast.GlobalArg):
            for index, dim in enumerate(arg.dims):
                uses += [(node, index == 0 and node is dim) for node in name_nodes(dim, name)]
    for count in kernel.blocks:
        uses += [(node, True) for node in name_nodes(count, name)]
    uses += [(node, False) for node in name_nodes(kernel.threads, name)]
    return uses


def name_nodes(node: ast.Node, name: str) -> list[ast.Name]:
    """The `Name` nodes reading `name` in an expression, found without recursion (header
    expressions may be long chains)."""
    found: list[ast.Name] = []
    pending: list[object] = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, ast.Name):
            if item.id == name:
                found.append(item)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, ast.Node):
            pending.extend(v for k, v in vars(item).items() if k != "span")
    return found


def declare_hint(kernel: ast.KernelDef, name: str, uses: list[HeaderUse]) -> str:
    """How to declare `name`: as a parameter, or (where every use may be a run-time size) an
    i32 argument; a near spelling of a declared name first."""
    others = ", ..." if kernel.params else ""
    hint = (
        f"add '{name}' to the kernel's parameters (kernel {kernel.name}[{name} = ...{others}]"
        f"(...)), given by lpir.compile(..., {name}=...) or -D {name}=..."
    )
    if all(runtime for _, runtime in uses):
        hint += (
            f", or make it an i32 argument ({name}: i32), a size read at run time (a block "
            "count, a tensor's first dimension)"
        )
    declared = [p.name for p in kernel.params] + [a.name for a in kernel.args]
    close = difflib.get_close_matches(name, declared, n=1)
    if close:
        hint = f"did you mean '{close[0]}'? If not, {hint}"
    return hint


def is_builtin_name(name: str) -> bool:
    """Whether lookup has its own answer for `name` whatever the scopes hold: a named
    constant (`inf`), `None`, or Python's spelling of one (`True`)."""
    return name in NAMED_CONSTANTS or name == "None" or foreign_name_hint(name) is not None
