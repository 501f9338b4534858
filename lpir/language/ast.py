"""The syntax tree of a kernel source, as built by `lpir.language.syntax`.

Every node has a `span` (1-based line and column of its first character, and of the character
after its last) so that errors can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass
class Node:
    span: Span = field(repr=False, compare=False)


# ---- expressions ----------------------------------------------------------------------------
@dataclass
class IntLiteral(Node):
    value: int


@dataclass
class FloatLiteral(Node):
    value: float


@dataclass
class BoolLiteral(Node):
    value: bool


@dataclass
class StringLiteral(Node):
    """A "string": only static_assert takes one, as its message."""

    value: str


@dataclass
class Name(Node):
    id: str


@dataclass
class BinaryExpr(Node):
    """`lhs op rhs` where op is an IR binary op name (add, lt, and, ...) or logical_and/or."""

    op: str
    lhs: Node
    rhs: Node


@dataclass
class UnaryExpr(Node):
    """`-x` (neg), `~x` (not) and `not x` (logical_not)."""

    op: str
    operand: Node


@dataclass
class Attribute(Node):
    """`base.name`, e.g. `block.x`."""

    base: Node
    name: str


@dataclass
class SliceLength(Node):
    """`start :+ length` inside a subscript."""

    start: Node
    length: Node


@dataclass
class SliceRange(Node):
    """`start : stop` (either may be missing) inside a subscript."""

    start: Node | None
    stop: Node | None


@dataclass
class NewAxis(Node):
    """`None` inside a subscript: insert a size-1 axis."""


@dataclass
class Subscript(Node):
    base: Node
    items: list[Node]


@dataclass
class KeywordArg(Node):
    name: str
    value: Node


@dataclass
class Call(Node):
    """`name(args, key = value)`, or `name<T>(...)` when `type_name` is set."""

    func: str
    args: list[Node]
    keywords: list[KeywordArg]
    type_name: str | None = None
    type_span: Span | None = None


@dataclass
class TileConstructor(Node):
    """`zeros<f32>[BN, BK]`, `full<f16>[64](1.0)`, `shared<f16>[BM, BK]`."""

    func: str
    type_name: str
    dims: list[Node]
    args: list[Node]
    keywords: list[KeywordArg]
    type_span: Span | None = None


@dataclass
class LayoutCall(Node):
    """One primitive of a layout expression, e.g. `spatial(8, 4)`."""

    name: str
    args: list[Node]


@dataclass
class LayoutExpr(Node):
    """A product of chains: `local(2,1).spatial(8,4) * local(1,2)`."""

    chains: list[list[LayoutCall]]


@dataclass
class Annotate(Node):
    """`value @ layout`: fix the register layout of a tile."""

    value: Node
    layout: LayoutExpr


# ---- statements -----------------------------------------------------------------------------
@dataclass
class Assign(Node):
    target: str
    value: Node
    target_span: Span | None = None


@dataclass
class AugAssign(Node):
    """`target op= value`, op an IR binary op name."""

    target: str
    op: str
    value: Node
    target_span: Span | None = None


@dataclass
class Let(Node):
    """`let name = value`: value must be a scalar."""

    target: str
    value: Node


@dataclass
class For(Node):
    """`for var in range(bounds..., stages = S) { body }`; `keywords` holds `stages` if given."""

    var: str
    bounds: list[Node]
    body: list[Node]
    keywords: list[KeywordArg] = field(default_factory=list)


@dataclass
class If(Node):
    cond: Node
    then_body: list[Node]
    else_body: list[Node] | None


@dataclass
class ExprStmt(Node):
    value: Node


@dataclass
class Return(Node):
    """`return value` (or a bare `return`): only as the last statement of a `def`."""

    value: Node | None


# ---- declarations ---------------------------------------------------------------------------
@dataclass
class Param(Node):
    """A compile-time parameter `NAME` or `NAME = default` (a dtype name or an int expr)."""

    name: str
    default: Node | None


@dataclass
class GlobalArg(Node):
    """`name: global DTYPE[dim, ...]`."""

    name: str
    dtype_name: str
    dims: list[Node]
    dtype_span: Span | None = None


@dataclass
class ScalarArg(Node):
    """`name: DTYPE`, a runtime scalar."""

    name: str
    dtype_name: str
    dtype_span: Span | None = None


@dataclass
class KernelDef(Node):
    name: str
    params: list[Param]
    args: list[GlobalArg | ScalarArg]
    blocks: list[Node]
    threads: Node
    body: list[Node]
    name_span: Span | None = None


@dataclass
class FunctionDef(Node):
    """`def name(params) { body }`: inlined at each call, with its parameters bound to the
    call's arguments (any value: tiles, scalars, constants, dtypes, tensors, slices)."""

    name: str
    params: list[str]
    param_spans: list[Span]
    body: list[Node]
    name_span: Span | None = None


@dataclass
class Program:
    """Every kernel and function of one source text."""

    kernels: list[KernelDef]
    source: str
    file: str
    functions: dict[str, FunctionDef] = field(default_factory=dict)

    def kernel(self, name: str | None = None) -> KernelDef:
        if name is None:
            return self.kernels[0]
        for kernel in self.kernels:
            if kernel.name == name:
                return kernel
        raise KeyError(name)


def names_in(node: Node) -> list[str]:
    """The names an expression reads (`Name` nodes, left to right, each once), found without
    recursion (expressions may be long chains)."""
    found: dict[str, None] = {}
    pending: list[object] = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, Name):
            found[item.id] = None
        elif isinstance(item, list):
            pending.extend(reversed(item))
        elif isinstance(item, Node):
            pending.extend(reversed([v for k, v in vars(item).items() if k != "span"]))
    return list(found)
