"""Parse the IR's text form back into a `Module` (the inverse of `lpir.ir.printer`).

`parse(print_module(m))` gives a module that prints identically; tests check this on every
example and every FileCheck input. Errors are `ParseError`s placed in the IR text.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

import lark

import lpir.ir.ops  # noqa: F401  (registers every op name)
from lpir.dtypes import DType, dtype
from lpir.errors import (
    DTypeError,
    LayoutError,
    LpirError,
    ParseError,
    SourceLocation,
    TypeCheckError,
    location_in,
)
from lpir.grammar_cache import cached_lark
from lpir.ir.core import OPERATION_CLASSES, Kernel, Module, Operation, Region, Value
from lpir.ir.grid import CALLS, Count, RuntimeCount
from lpir.ir.ops.control import ForOp, IfOp, YieldOp
from lpir.ir.types import GlobalType, ScalarType, SharedType, TileType, Type, VectorType
from lpir.layout import RegisterLayout, SharedLayout, parse_shared
from lpir.layout import parse as parse_layout

_F64_QUIET = 1 << 51  # the f64 fraction of `nan` (math.nan, numpy's and x86's default NaN)

AnyLayout = TypeVar("AnyLayout", RegisterLayout, SharedLayout)

# A child in the parse tree: a rule's subtree or a token (which one, the grammar decides).
Node = lark.Tree | lark.Token


def _int(node: Node) -> int:
    """The value of an integer token."""
    assert isinstance(node, lark.Token)  # the grammar puts an INT here
    return int(node)


def _combined(op: str, a: Count, b: Count) -> Count:
    """`op` of two counts; of two integers, folded (as the language folds constants)."""
    count = RuntimeCount(op, (a, b))
    return count.evaluate({}) if isinstance(a, int) and isinstance(b, int) else count


@functools.cache
def _lark() -> lark.Lark:
    grammar = resources.files("lpir.ir").joinpath("ir.lark").read_text()
    return cached_lark(grammar, propagate_positions=True, maybe_placeholders=True)


def parse(text: str, file: str = "<ir>") -> Module:
    """Parse IR text into a module; raise `ParseError` with a location on bad input."""
    try:
        tree = _lark().parse(text)
    except lark.UnexpectedInput as error:
        location = location_in(text, file, error.line, error.column)
        raise ParseError(f"unexpected input in IR text: {_describe(error)}", location) from None
    return _ModuleBuilder(text, file).module(tree)


def _describe(error: lark.UnexpectedInput) -> str:
    if isinstance(error, lark.UnexpectedToken):
        token = error.token
        found = "end of input" if token.type == "$END" else repr(str(token))
        expected = ", ".join(sorted({_terminal_text(name) for name in error.expected})[:8])
        return f"{found} (expected {expected})"
    if isinstance(error, lark.UnexpectedCharacters):
        return f"character {error.char!r}"
    return "end of input"


def _terminal_text(name: str) -> str:
    """`','` for a literal terminal such as COMMA; the lower-case name (`value`) otherwise."""
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return repr(pattern.value) if pattern.type == "str" else name.lower()


class _ModuleBuilder:
    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.scopes: list[dict[str, Value]] = []

    def location(self, item: Any) -> SourceLocation:
        meta = getattr(item, "meta", None)
        line = getattr(meta, "line", None) or getattr(item, "line", None) or 1
        column = getattr(meta, "column", None) or getattr(item, "column", None) or 1
        return location_in(self.text, self.file, line, column)

    def span_location(self, tree: lark.Tree) -> SourceLocation:
        """`tree`'s place with a caret under all of it where it fits on its first line."""
        meta = tree.meta
        end = meta.end_column if meta.end_line == meta.line else None
        return location_in(self.text, self.file, meta.line, meta.column, end)

    def fail(self, message: str, item: Any) -> ParseError:
        return ParseError(message, self.location(item))

    # ---- names -------------------------------------------------------------------------
    def define(self, token: Node, type_: Type) -> Value:
        name = str(token)[1:]
        if any(name in scope for scope in self.scopes):
            raise self.fail(f"%{name} is defined twice", token)
        value = Value(type_, name)
        self.scopes[-1][name] = value
        return value

    def use(self, token: Node) -> Value:
        name = str(token)[1:]
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise self.fail(f"%{name} is used before it is defined", token)

    # ---- structure ---------------------------------------------------------------------
    def module(self, tree: lark.Tree) -> Module:
        return Module([self.kernel(k) for k in tree.children])

    def kernel(self, tree: lark.Tree) -> Kernel:
        name, *rest = tree.children
        params = [c for c in rest if isinstance(c, lark.Tree) and c.data == "param"]
        arguments = [c for c in rest if isinstance(c, lark.Tree) and c.data == "argument"]
        grid = next(c for c in rest if isinstance(c, lark.Tree) and c.data == "grid")
        threads = next(c for c in rest if isinstance(c, lark.Tree) and c.data == "threads")
        stage = next((c for c in rest if isinstance(c, lark.Tree) and c.data == "stage"), None)
        ops = [c for c in rest if isinstance(c, lark.Tree) and c.data == "op"]
        self.scopes = [{}]
        param_values = {str(p.children[0]): self.attribute_value(p.children[1]) for p in params}
        args = [self.define(a.children[0], self.type(a.children[1])) for a in arguments]
        body = Region(args)
        self.ops_into(body, ops)
        kernel = Kernel(
            str(name),
            param_values,
            body,
            (
                self.count(grid.children[0]),
                self.count(grid.children[1]),
                self.count(grid.children[2]),
            ),
            _int(threads.children[0]),
            stage=str(stage.children[0]) if stage is not None else "tile",
            location=self.location(tree),
        )
        kernel.argument_locations = [self.span_location(a) for a in arguments]
        kernel.grid_locations = [self.location(count) for count in grid.children]
        kernel.threads_location = self.location(threads)
        return kernel

    def ops_into(self, region: Region, ops: list[lark.Tree]) -> None:
        for op_tree in ops:
            region.append(self.op(op_tree))

    def op(self, tree: lark.Tree) -> Operation:
        results_tree, body = tree.children
        result_tokens = list(results_tree.children) if results_tree is not None else []
        if body.data == "for_body":
            return self.for_op(body, result_tokens)
        if body.data == "if_body":
            return self.if_op(body, result_tokens)
        return self.generic_op(body, result_tokens)

    def generic_op(self, tree: lark.Tree, result_tokens: list) -> Operation:
        name_token, operands_tree, attributes_tree, types_tree = tree.children
        name = str(name_token)
        cls = OPERATION_CLASSES.get(name)
        if cls is None:
            raise self.fail(f"unknown op '{name}'", name_token)
        operands = [self.use(t) for t in operands_tree.children] if operands_tree else []
        attributes = {}
        if attributes_tree is not None:
            for attribute in attributes_tree.children:
                if attribute is not None:
                    key, value = attribute.children
                    attributes[str(key)] = self.attribute_value(value)
        types = [self.type(t) for t in types_tree.children] if types_tree else []
        if len(types) != len(result_tokens):
            raise self.fail(
                f"'{name}' names {len(result_tokens)} results but gives {len(types)} types",
                name_token,
            )
        op = cls(name, operands, types, attributes, location=self.location(tree))
        self.bind_results(op, result_tokens)
        return op

    def bind_results(self, op: Operation, tokens: list[lark.Token]) -> None:
        for value, token in zip(op.results, tokens):
            defined = self.define(token, value.type)
            value.name_hint = defined.name_hint
            self.scopes[-1][str(token)[1:]] = value

    def for_op(self, tree: lark.Tree, result_tokens: list) -> Operation:
        iv_token, lower, upper, step, stages, iter_tree, _types_tree, *ops = tree.children
        lower_value, upper_value, step_value = (self.use(t) for t in (lower, upper, step))
        pairs = [p.children for p in iter_tree.children] if iter_tree is not None else []
        inits = [self.use(value) for _, value in pairs]
        try:
            op = ForOp.create(lower_value, upper_value, step_value, inits)
        except LpirError as error:
            raise error.with_location(self.location(tree)) from None
        if stages is not None:
            op.attributes["stages"] = _int(stages)
        op.location = self.location(tree)
        self.scopes.append({})
        self.bind_region_args(op.body, [iv_token] + [name for name, _ in pairs])
        self.ops_into(op.body, ops)
        self.scopes.pop()
        self.bind_results(op, result_tokens)
        return op

    def bind_region_args(self, region: Region, tokens: list[Node]) -> None:
        for arg, token in zip(region.args, tokens):
            arg.name_hint = str(token)[1:]
            if any(arg.name_hint in scope for scope in self.scopes):
                raise self.fail(f"{token} is defined twice", token)
            self.scopes[-1][arg.name_hint] = arg

    def if_op(self, tree: lark.Tree, result_tokens: list) -> Operation:
        cond_token, types_tree, then_tree, else_tree = tree.children
        types = [self.type(t) for t in types_tree.children] if types_tree else []
        try:
            op = IfOp.create(self.use(cond_token), types)
        except LpirError as error:
            raise error.with_location(self.location(tree)) from None
        op.location = self.location(tree)
        for region, block in ((op.then_region, then_tree), (op.else_region, else_tree)):
            self.scopes.append({})
            if block is not None:
                self.ops_into(region, list(block.children))
            else:
                region.append(YieldOp.create())
            self.scopes.pop()
        self.bind_results(op, result_tokens)
        return op

    # ---- types and attributes ------------------------------------------------------------
    def dtype(self, token: Node) -> DType:
        try:
            return dtype(str(token))
        except DTypeError as error:
            raise self.fail(error.message, token) from None

    def register_layout(self, token: Node | None) -> RegisterLayout | None:
        return None if token is None else self.parsed_layout(token, parse_layout)

    def shared_layout(self, token: Node | None) -> SharedLayout | None:
        return None if token is None else self.parsed_layout(token, parse_shared)

    def parsed_layout(self, token: Node, parse: Callable[[str], AnyLayout]) -> AnyLayout:
        try:
            return parse(str(token))
        except (LayoutError, LpirError) as error:
            location = self.location(token)
            raise ParseError(f"bad layout: {error.message}", location, error.hint) from None

    def count(self, tree: Node) -> Count:
        """A block count: an integer, or arithmetic of the kernel's i32 arguments."""
        if isinstance(tree, lark.Token):  # (an INT: `count_int` of one token is inlined)
            return _int(tree)
        kind, children = tree.data, tree.children
        if kind == "count_int":
            return _int(children[0])
        if kind == "count_arg":
            arg = self.use(children[0])
            if not isinstance(arg.type, ScalarType) or arg.type.dtype.name != "i32":
                raise self.fail(
                    f"a block count reads i32 arguments, but {children[0]} is {arg.type}",
                    children[0],
                )
            return RuntimeCount.argument(str(children[0])[1:])
        if kind == "count_call":
            name = str(children[0])
            if name not in CALLS:
                raise self.fail(
                    f"a block count calls cdiv, min or max, not {name}",
                    children[0],
                )
            op, operands = name, children[1:]
        else:
            op, operands = kind.removeprefix("count_"), children
        a, b = self.count(operands[0]), self.count(operands[1])
        try:
            if op in ("div", "cdiv") and b == 0:
                raise ZeroDivisionError
            return _combined(op, a, b)
        except ZeroDivisionError:
            raise self.fail("a block count divides by zero", tree) from None

    def type(self, tree: lark.Tree) -> Type:
        kind, children = tree.data, tree.children
        if kind == "scalar_type":
            return ScalarType(self.dtype(children[0]))
        if kind == "vector_type":
            return VectorType(self.dtype(children[1]), _int(children[0]))
        if kind == "global_type":
            return self.global_type(children)
        shape = tuple(_int(s) for s in children[1].children if s is not None)
        if kind == "tile_type":
            return TileType(self.dtype(children[0]), shape, self.register_layout(children[2]))
        if kind == "shared_type":
            try:
                layout = self.shared_layout(children[2])
                return SharedType(self.dtype(children[0]), shape, layout)
            except TypeCheckError as error:
                location = self.location(children[2] or children[0])
                raise ParseError(error.message, location, error.hint) from None
        raise AssertionError(kind)  # the grammar has no other type

    def global_type(self, children: list) -> GlobalType:
        """`global f16[4096, 128]`, or `global f16[%m, 128]` of `m` rows known at run time
        (the verifier checks that `m` is an i32 argument)."""
        dims = [d for d in children[1].children if d is not None]
        dt = self.dtype(children[0])
        if dims and dims[0].type == "VALUE":
            return GlobalType.runtime_rows(dt, tuple(_int(d) for d in dims[1:]), str(dims[0])[1:])
        return GlobalType(dt, tuple(_int(d) for d in dims))

    def float_value(self, token: Node) -> float:
        """A FLOAT token's value; `-nan(0x...)` as the printer writes it, bit for bit."""
        text = str(token)
        if "nan" not in text:
            return float(text)
        negative = text.startswith("-")
        fraction = _F64_QUIET
        if "(" in text:
            fraction = int(text[text.index("(") + 1 : -1], 16)
            if not 0 < fraction < 1 << 52:
                raise ParseError(
                    f"{text} is not a NaN: the payload is an f64 fraction, 0x1 to 0xfffffffffffff",
                    self.location(token),
                    "write nan for the default quiet NaN (fraction 0x8000000000000)",
                )
        bits = (1 << 63 if negative else 0) | 0x7FF << 52 | fraction
        return struct.unpack("<d", struct.pack("<Q", bits))[0]

    def attribute_value(self, tree: Any) -> Any:
        kind = tree.data
        if kind == "int_value":
            return int(tree.children[0])
        if kind == "float_value":
            return self.float_value(tree.children[0])
        if kind in ("true_value", "false_value"):
            return kind == "true_value"
        if kind == "string_value":
            raw = str(tree.children[0])[1:-1]
            return raw.replace('\\"', '"').replace("\\\\", "\\")
        if kind == "name_value":
            return self.dtype(tree.children[0])
        return tuple(self.attribute_value(c) for c in tree.children if c is not None)
