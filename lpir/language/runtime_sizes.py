"""Sizes a kernel's header takes from its i32 arguments at each call.

A tensor's first dimension may be an i32 argument (`x: global f16[m, K], ..., m: i32`), and
a block count may be integer arithmetic of such arguments (`blocks(cdiv(m, BM))`). One
specialization then serves every m: strides do not depend on the first dimension, the accesses
mask their edges against m, and every launcher computes the grid at the call. The other
dimensions, like parameters, stay compile-time (they set the strides).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lpir.ir.grid import CALLS, Count, RuntimeCount
from lpir.language import ast

if TYPE_CHECKING:
    from lpir.language.lower import KernelLowering

_OPERATORS = ("add", "sub", "mul", "div")

_FORM = (
    "a block count read at run time is integer arithmetic (+, -, *, /, cdiv, min, max) of "
    "i32 arguments, parameters and literals"
)


def size_arguments(kernel_def: ast.KernelDef) -> dict[str, ast.ScalarArg]:
    """The scalar arguments of a kernel, by name: those a header may read as sizes."""
    return {arg.name: arg for arg in kernel_def.args if isinstance(arg, ast.ScalarArg)}


def reads_arguments(node: ast.Node, kernel_def: ast.KernelDef) -> bool:
    """Whether a header expression reads a scalar argument of the kernel."""
    scalars = size_arguments(kernel_def)
    return any(name in scalars for name in ast.names_in(node))


def block_count(low: KernelLowering, node: ast.Node) -> Count:
    """A `blocks(...)` count: a compile-time integer, or a `RuntimeCount` where it reads
    i32 arguments."""
    if not reads_arguments(node, low.kernel_def):
        return low.as_const_int(node, "a block count")
    return _count(low, node)


def _count(low: KernelLowering, node: ast.Node) -> Count:
    if not reads_arguments(node, low.kernel_def):
        return low.as_const_int(node, "a block count")
    if isinstance(node, ast.Name):
        return RuntimeCount.argument(size_argument(low, node, "a block count"))
    if isinstance(node, ast.BinaryExpr) and node.op in _OPERATORS:
        return _combined(low, node, node.op, node.lhs, node.rhs)
    if isinstance(node, ast.Call) and node.func in CALLS:
        if len(node.args) != 2 or node.keywords or node.type_name is not None:
            raise low.error(f"{node.func} takes two integers here", node, _FORM)
        return _combined(low, node, node.func, node.args[0], node.args[1])
    raise low.error(f"{low.text_of(node)} cannot be computed at launch", node, _FORM.capitalize())


def _combined(
    low: KernelLowering, node: ast.Node, op: str, lhs: ast.Node, rhs: ast.Node
) -> RuntimeCount:
    a, b = _count(low, lhs), _count(low, rhs)
    if op in ("div", "cdiv") and b == 0:
        raise low.error(f"{op} by zero", rhs)
    return RuntimeCount(op, (a, b))


def size_argument(low: KernelLowering, node: ast.Name, what: str) -> str:
    """The name of the i32 argument `node` reads as `what`; refused unless it is one."""
    arg = size_arguments(low.kernel_def)[node.id]
    if arg.dtype_name != "i32":
        raise low.error(
            f"{what} read at run time must be an i32 argument, but {arg.name} is {arg.dtype_name}",
            node,
            f"declare it {arg.name}: i32 (sizes and indices are i32)",
        )
    return arg.name


def first_dimension(low: KernelLowering, decl: ast.GlobalArg) -> str | None:
    """The i32 argument a tensor's first dimension is (`x: global f16[m, K]`), or None where
    every dimension is a compile-time integer. A run-time size anywhere else is refused: the
    other dimensions give the strides, which are compile-time."""
    found = None
    for index, dim in enumerate(decl.dims):
        if not reads_arguments(dim, low.kernel_def):
            continue
        if index == 0 and isinstance(dim, ast.Name):
            found = size_argument(low, dim, "a dimension")
            continue
        raise low.error(
            "only a tensor's first dimension may be a size read at run time, and only as an "
            "argument's name"
            if index
            else "a dimension read at run time is an argument's name, not an expression of one",
            dim,
            (
                "the other dimensions set the strides, which are compile-time: make this "
                "size a parameter (deduced from the arrays a call passes)"
                if index
                else "pass the size itself as an i32 argument (x: global f16[m, K], ..., m: i32)"
            ),
        )
    return found
