"""Lowering of expressions to tile IR: names, literals, operators, broadcasting, subscripts.

`ExpressionLowering` is the half of `KernelLowering` that turns one expression into a
`SemanticValue`, emitting tile-IR ops through `self.builder`. The rules:

* Constants fold at compile time (integer `/` and `%` truncate toward zero, like C).
* A constant meeting a typed value takes that value's dtype (an int constant fits any numeric
  dtype it is in range of; a float constant only float dtypes).
* Typed operands must share a dtype; `cast<T>(x)` converts explicitly.
* Tiles broadcast like numpy: shapes align from the right, size-1 dimensions repeat, and a
  scalar operand repeats everywhere.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Callable, Iterator
from typing import TypeVar, cast

from lpir.dtypes import DType, dtype
from lpir.errors import (
    DTypeError,
    LayoutError,
    LpirError,
    SourceLocation,
    TypeCheckError,
    location_in,
    source_lines,
    with_article,
)
from lpir.ir.core import Builder, Operation, Region, Value
from lpir.ir.ops import (
    BinaryOp,
    BlockIndexOp,
    BroadcastOp,
    ConstantOp,
    ConvertLayoutOp,
    ExpandDimsOp,
    IndexOp,
    ItemOp,
    ReshapeOp,
    SplatOp,
    UnaryOp,
)
from lpir.ir.ops.arith import mixed_dtypes_hint
from lpir.ir.types import GlobalType, ScalarType, SharedType, TileType, as_tile
from lpir.language import ast
from lpir.language.folding import (
    BOOL_HINT,
    checked_literal,
    constant_text,
    fold_binary,
    folded_scalar,
)
from lpir.language.habits import (
    MODULES,
    attribute_hint,
    foreign_call,
    foreign_name_hint,
    module_attribute_hint,
)
from lpir.language.values import (
    BlockIndex,
    Const,
    DTypeConst,
    Memory,
    Runtime,
    SemanticValue,
    Slice,
)
from lpir.layout import RegisterLayout

I32 = dtype("i32")
F32 = dtype("f32")
BOOL = dtype("bool")
AnyValue = TypeVar("AnyValue", bound=SemanticValue)  # scalar_of keeps what it is given
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")
NAMED_CONSTANTS = {"inf": math.inf, "nan": math.nan}  # float constants with no literal
# The interpreters hold a whole tile in memory and the backends unroll a thread's share of it;
# past this a kernel is a mistake (a missing loop), not a workload.
MAX_TILE_ELEMENTS = 1 << 20
# Lowering recurses into subexpressions (not along a flat chain such as a + b + c): past this
# depth an expression is refused before Python's recursion limit is reached.
MAX_EXPRESSION_DEPTH = 100


class TileLimitBuilder(Builder):
    """A builder that refuses register and shared tiles of more than `MAX_TILE_ELEMENTS`.

    The error is placed at the builder's location: the expression being lowered.
    """

    def insert(self, op: Operation) -> Operation:
        for result in op.results:
            type_ = result.type
            if isinstance(type_, TileType | SharedType) and type_.size > MAX_TILE_ELEMENTS:
                what = "shared tile" if isinstance(type_, SharedType) else "tile"
                raise TypeCheckError(
                    f"this {what} {type_} has {type_.size} elements, more than the "
                    f"{MAX_TILE_ELEMENTS} (2^20) a tile may hold",
                    self.location,
                    "split it into smaller tiles with a loop, e.g. "
                    "for k0 in range(0, K, BK) { t = load(x[k0 :+ BK]) ... }",
                )
        return super().insert(op)


def broadcast_shapes(left: tuple[int, ...], right: tuple[int, ...]) -> tuple[int, ...] | None:
    """numpy's broadcast of two shapes, or None when they do not broadcast."""
    rank = max(len(left), len(right))
    left = (1,) * (rank - len(left)) + left
    right = (1,) * (rank - len(right)) + right
    shape = []
    for a, b in zip(left, right):
        if a != b and 1 not in (a, b):
            return None
        shape.append(max(a, b))
    return tuple(shape)


class ExpressionLowering:
    """Expression half of the kernel lowering (see `lpir.language.lower.KernelLowering`)."""

    source: str
    file: str
    builder: Builder
    scopes: list[dict[str, SemanticValue]]
    threads: int
    expression_depth = 0  # how many expr() calls are open
    # the call an expression statement makes, whose value is not used: set by
    # `KernelLowering.expression_statement` just before lowering it, compared by identity in
    # memory_builtins' atomics (which then read nothing back); AST nodes are unique, so an
    # earlier statement's call never matches another call
    discarded_call: ast.Call | None = None

    # ---- places and errors ------------------------------------------------------------------
    def location(self, span: ast.Span | None) -> SourceLocation | None:
        if span is None:
            return None
        end = span.end_column if span.end_line == span.line else None
        return location_in(self.source, self.file, span.line, span.column, end)

    def text_of(self, node: ast.Node) -> str:
        """The source text of `node` when it spans one line (else a placeholder)."""
        span = node.span
        if span.end_line != span.line:
            return "..."
        line = source_lines(self.source)[span.line - 1]
        return line[span.column - 1 : span.end_column - 1]

    def error(
        self, message: str, node: ast.Node | ast.Span | None, hint: str | None = None
    ) -> TypeCheckError:
        span = node.span if isinstance(node, ast.Node) else node
        return TypeCheckError(message, self.location(span), hint)

    # ---- names ------------------------------------------------------------------------------
    def lookup(self, name: str, node: ast.Node) -> SemanticValue:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in NAMED_CONSTANTS:  # after the scopes: a kernel may name its own `inf`
            return Const(NAMED_CONSTANTS[name])
        if name == "None":  # a keyword only in subscripts (t[:, None])
            raise self.error(
                "lpir has no None value: every name holds a number, a tile or memory",
                node,
                "start from a value (zeros<f32>[...] for a tile, 0 for a scalar) and keep "
                "what is missing in a bool mask, choosing with where(mask, t, 0.0); None only "
                "adds an axis in a subscript: t[:, None]",
            )
        known = sorted({n for scope in self.scopes for n in scope})
        close = difflib.get_close_matches(name, known, n=1)
        hint = foreign_name_hint(name)  # True: Python's spelling, not a typo
        if hint is None:
            hint = f"did you mean '{close[0]}'?" if close else self.undefined_hint(name)
        if hint is None:
            hint = f"assign {name} = ... before this line, or declare it in the kernel's header"
        raise self.error(f"unknown name '{name}'", node, hint)

    def value_or_dtype(self, node: ast.Node) -> SemanticValue:
        """`node`'s value, where a bare dtype name no scope defines (`u8`, `f16`) is that
        dtype: what a def's argument or a side of `==` may be (`if ST == u8 { ... }`)."""
        if isinstance(node, ast.Name) and not any(node.id in scope for scope in self.scopes):
            try:
                return DTypeConst(dtype(node.id))
            except DTypeError:
                pass
        return self.expr(node)

    def compare_dtypes(
        self, op: str, lhs: SemanticValue, rhs: SemanticValue, node: ast.Node
    ) -> Const:
        """`ST == u8`, `WT != f16`: a compile-time bool."""
        if not (isinstance(lhs, DTypeConst) and isinstance(rhs, DTypeConst)):
            other = rhs if isinstance(lhs, DTypeConst) else lhs
            raise self.error(
                f"cannot compare a dtype with {other.describe()}",
                node,
                "compare dtypes with dtypes (ST == u8); bits(ST), is_float(ST) and is_signed(ST) "
                "give a dtype's facts as values",
            )
        return Const((lhs.dtype == rhs.dtype) == (op == "eq"))

    def undefined_hint(self, name: str) -> str | None:
        return None

    def functions(self) -> dict:
        """The source's `def`s by name (none for expressions outside a program)."""
        return {}

    def block_counts(self) -> list[str]:
        """The kernel's block counts as its blocks(...) writes them (none outside a kernel)."""
        return []

    def inline(self, node: ast.Call) -> SemanticValue | None:
        raise self.error(f"unknown function '{node.func}'", node)

    # ---- the dispatcher ---------------------------------------------------------------------
    @contextlib.contextmanager
    def placed(self, node: ast.Node) -> Iterator[None]:
        """Ops built inside carry `node`'s place, and errors raised inside unplaced get it."""
        saved = self.builder.location
        self.builder.location = self.location(node.span)
        try:
            yield
        except LpirError as error:
            raise error.with_location(self.location(node.span)) from None
        finally:
            self.builder.location = saved

    def expr(self, node: ast.Node) -> SemanticValue:
        """Lower one expression; errors raised inside are placed at `node` if unplaced."""
        with self.placed(node):
            if self.expression_depth > MAX_EXPRESSION_DEPTH:  # operations, not the leaf
                raise self.error(
                    f"this expression nests more than {MAX_EXPRESSION_DEPTH} levels deep",
                    node,
                    "compute its inner parts into names first: u = ...; v = f(u)",
                )
            self.expression_depth += 1
            try:
                return self.expr_(node)
            finally:
                self.expression_depth -= 1

    def expr_(self, node: ast.Node) -> SemanticValue:
        if isinstance(node, ast.IntLiteral | ast.FloatLiteral | ast.BoolLiteral):
            return Const(checked_literal(node.value))
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinaryExpr) and node.op in ("eq", "ne"):
            lhs, rhs = self.value_or_dtype(node.lhs), self.value_or_dtype(node.rhs)
            if isinstance(lhs, DTypeConst) or isinstance(rhs, DTypeConst):
                return self.compare_dtypes(node.op, lhs, rhs, node)
            return self.binary(node.op, lhs, rhs, node)
        if isinstance(node, ast.BinaryExpr):
            return self.binary_chain(node)
        if isinstance(node, ast.UnaryExpr):
            return self.unary_chain(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call):
            result = self.call(node)
            if result is None and node.func in self.functions() and node.type_name is None:
                raise self.error(
                    f"{node.func}() has no value: it ends without 'return value'",
                    node,
                    "call it as a statement, or end the def with return ...",
                )
            if result is None:
                raise self.error(f"{node.func}() has no value", node, "call it as a statement")
            return result
        if isinstance(node, ast.TileConstructor):
            return self.tile_constructor(node)
        if isinstance(node, ast.Annotate):
            return self.annotate(node)
        if isinstance(node, ast.StringLiteral):
            raise self.error(
                "a string is only allowed as the message of static_assert",
                node,
                'lpir has no string values: use a string only in static_assert(cond, "...")',
            )
        raise self.error(f"{type(node).__name__} is not an expression", node)

    def binary_chain(self, node: ast.BinaryExpr) -> SemanticValue:
        """`a + b - c ...`, a chain nested to the left, lowered in a loop (a recursion would
        nest as deep as the chain is long): the leftmost operand, then each operator with its
        right operand, in the order a recursion would build them."""
        chain = []
        operand: ast.Node = node
        while isinstance(operand, ast.BinaryExpr) and operand.op not in ("eq", "ne"):
            chain.append(operand)
            operand = operand.lhs
        value = self.expr(operand)
        for level in reversed(chain):
            with self.placed(level):
                value = self.binary(level.op, value, self.expr(level.rhs), level)
        return value

    def unary_chain(self, node: ast.UnaryExpr) -> SemanticValue:
        """`- - ~x`: the innermost operand, then each operator outward, in a loop."""
        chain = []
        operand: ast.Node = node
        while isinstance(operand, ast.UnaryExpr):
            chain.append(operand)
            operand = operand.operand
        value = self.expr(operand)
        for level in reversed(chain):
            with self.placed(level):
                value = self.unary(level.op, value, level)
        return value

    def call(self, node: ast.Call) -> SemanticValue | None:
        from lpir.language.builtins import BUILTINS, TYPED_BUILTINS

        table = TYPED_BUILTINS if node.type_name is not None else BUILTINS
        entry = table.get(node.func)
        if entry is None and node.type_name is None and node.func in self.functions():
            return self.inline(node)
        if entry is None:
            if node.type_name is None and node.func in TYPED_BUILTINS:
                raise self.error(
                    f"{node.func} needs a type argument", node, f"e.g. {node.func}<f32>(x)"
                )
            args = [self.text_of(a) for a in node.args]
            keywords = {k.name: self.text_of(k.value) for k in node.keywords}
            foreign = foreign_call(node.func, args, keywords, self.block_counts())
            if foreign is not None:  # numpy's or Triton's name, which a typo match misleads
                raise self.error(foreign[0], node, foreign[1])
            known = sorted(set(BUILTINS) | set(TYPED_BUILTINS) | set(self.functions()))
            close = difflib.get_close_matches(node.func, known, n=1)
            hint = (
                f"did you mean '{close[0]}'?" if close else f"known functions: {', '.join(known)}"
            )
            raise self.error(f"unknown function '{node.func}'", node, hint)
        return entry[1](self, node)

    def tile_constructor(self, node: ast.TileConstructor) -> SemanticValue:
        from lpir.language.builtins import tile_constructor

        return tile_constructor(self, node)

    def name(self, node: ast.Name) -> SemanticValue:
        if node.id == "block":
            return BlockIndex()
        return self.lookup(node.id, node)

    def attribute(self, node: ast.Attribute) -> SemanticValue:
        module = node.base.id if isinstance(node.base, ast.Name) else None
        if module in MODULES and not any(module in scope for scope in self.scopes):
            raise self.error(
                f"lpir has no modules: {module}.{node.name}",
                node,
                module_attribute_hint(node.name),
            )
        base = self.expr(node.base)
        if isinstance(base, BlockIndex):
            axes = {"x": 0, "y": 1, "z": 2}
            if node.name not in axes:
                raise self.error(f"block has no attribute '{node.name}'", node, "use x, y or z")
            return Runtime(self.builder.add(BlockIndexOp.create(axes[node.name], f"b{node.name}")))
        hint = None
        type_ = base.value.type if isinstance(base, Runtime | Memory) else None
        if isinstance(type_, TileType | GlobalType | SharedType):
            shape: list[int | str] = list(type_.shape)
            if isinstance(type_, GlobalType) and type_.extent is not None:
                shape[0] = type_.extent  # (shape[0] is only its bound)
            hint = attribute_hint(node.name, self.text_of(node.base), shape, type_.dtype.name)
        raise self.error(f"{base.describe()} has no attribute '{node.name}'", node, hint)

    # ---- typed values -----------------------------------------------------------------------
    def dtype_named(self, name: str, span: ast.Span | None) -> DType:
        """A dtype from a name in the source: a dtype name or a dtype parameter."""
        for scope in reversed(self.scopes):
            if name in scope:
                value = scope[name]
                if isinstance(value, DTypeConst):
                    return value.dtype
                raise self.error(f"'{name}' is {value.describe()}, not a dtype", span)
        try:
            return dtype(name)
        except DTypeError as error:
            raise TypeCheckError(error.message, self.location(span), error.hint) from None

    def constant(self, value: Const, dt: DType, node: ast.Node | None = None) -> Value:
        """Materialize a constant as a scalar of dtype `dt`, checking it fits."""
        v = value.value
        if isinstance(v, bool) != dt.is_bool:
            target = "a bool" if dt.is_bool else f"{with_article(dt.name)} value"
            raise self.error(f"cannot use {value.describe()} as {target}", node, BOOL_HINT)
        if isinstance(v, float) and not dt.is_float:
            raise self.error(
                f"cannot combine the float constant {v!r} with {dt.name} values",
                node,
                "write an integer, or cast the other operand: cast<f32>(...)",
            )
        if not dt.is_float and not dt.is_bool and not dt.min <= v <= dt.max:
            raise self.error(
                f"the constant {v} does not fit in {dt.name}",
                node,
                f"{dt.name} holds {dt.min} to {dt.max}; use a wider dtype for larger values",
            )
        if dt.is_float and not isinstance(v, bool) and math.isfinite(v) and dt.rounds_past_max(v):
            wider = "cast the other operand to a wider float first, e.g. cast<f32>(...)"
            meant = (
                f"{dt.name} rounds it to infinity; {wider}, or write inf if infinity is meant"
                if dt.has_inf  # formats without infinity saturate: inf gives their largest value
                else f"{dt.name} has no infinity and saturates; {wider}, or write "
                f"{constant_text(math.copysign(float(dt.max), v))} (what it saturates to) if "
                "that is meant"
            )
            raise self.error(
                f"the constant {constant_text(v)} does not fit in {dt.name} (max {dt.max:g})",
                node,
                meant,
            )
        return self.builder.add(ConstantOp.create(v, dt))

    def default_dtype(self, value: Const) -> DType:
        if isinstance(value.value, bool):
            return BOOL
        return F32 if isinstance(value.value, float) else I32

    def as_runtime(self, value: SemanticValue, node: ast.Node, dt: DType | None = None) -> Value:
        """The IR value of a scalar or tile (a constant becomes a scalar of `dt` or its own)."""
        if isinstance(value, Const):
            return self.constant(value, dt or self.default_dtype(value), node)
        if isinstance(value, Runtime):
            return value.value
        raise self.error(f"expected a number or a tile, but this is {value.describe()}", node)

    def compile_time(self, value: SemanticValue) -> SemanticValue:
        """`value`, as a constant where it is a scalar computed only from constants (a cast
        of a constant: `cast<i8>(300)` is 44), for the places that need one."""
        if isinstance(value, Runtime) and value.is_scalar:
            folded = folded_scalar(value.value)
            if folded is not None:
                return Const(folded)
        return value

    def compile_time_expr(self, node: ast.Node) -> SemanticValue:
        """The value of `node` where a compile-time value is needed: what it builds goes to a
        scratch region (a constant needs no ops; anything else is refused by the caller)."""
        with self.builder.at(Region()):
            return self.compile_time(self.expr(node))

    def as_const_int(self, node: ast.Node, what: str) -> int:
        value = self.compile_time_expr(node)
        if self.builder.region is None:
            # Outside the body (the launch grid, dimensions, defaults)
            hint = (
                "these are computed before the kernel runs, from literals and parameters "
                "(block.x exists only inside the body; block counts and a tensor's first "
                "dimension may read i32 arguments)"
            )
        else:
            hint = "use literals and integer parameters only"
        if not isinstance(value, Const) or isinstance(value.value, bool | float):
            raise self.error(
                f"{what} must be a compile-time integer, but this is {value.describe()}",
                node,
                hint,
            )
        return value.value

    def register_tile_index(self, item: ast.Node, dim: int, rank: int, tile: str) -> int:
        """A register tile's (`tile`, its source) compile-time index along `dim`; one known
        only at run time is an error whose hint picks that position with `gather` (a
        shared-memory round trip)."""
        value = self.compile_time_expr(item)
        if not isinstance(value, Runtime):
            return self.as_const_int(item, "an index of a register tile")
        axis = "" if rank == 1 else f", axis = {dim}"
        name = self.text_of(item)
        tile_text = tile if len(tile) <= 20 else "t"
        raise self.error(
            f"an index of a register tile must be a compile-time integer, but this is "
            f"{value.describe()}",
            item,
            f"use literals and integer parameters; to pick position {name} known at run time, "
            f"gather({tile_text}, {name}{axis})",
        )

    def as_index(self, value: SemanticValue, node: ast.Node) -> Value:
        """An i32 scalar for tensor indices and loop bounds."""
        shown = self.text_of(node)
        value = self.scalar_of(value)
        if isinstance(value, Const):
            if not isinstance(value.value, int) or isinstance(value.value, bool):
                hint = "write an integer, e.g. 0 or a parameter"
                if isinstance(value.value, float):
                    hint = f"write an integer; cast<i32>({shown}) truncates toward zero"
                raise self.error(
                    f"an index must be an integer, not {constant_text(value.value)}", node, hint
                )
            return self.constant(value, I32, node)
        if isinstance(value, Runtime) and value.is_scalar and value.dtype == I32:
            return value.value
        hint = (
            "indices are built from block.x/y/z, loop variables, parameters, constants, "
            "scalars loaded from memory (let i = load(ids[r])) and elements of i32 tiles (p[2])"
        )
        if isinstance(value, Runtime) and not value.is_scalar:
            hint = (
                "a slice starts at one position per block: a tile of positions reads (writes) "
                "one row, column, ... per element only in place of the whole index (x[ids, :], "
                "not x[ids :+ 4, :]); load one position as a scalar (let i = load(ids[r])) "
                "for the rest"
            )
        elif isinstance(value, Runtime) and value.is_scalar and value.dtype.is_int:
            hint = f"cast it: cast<i32>({shown})"
            if value.dtype.nbits >= 32:  # u32, i64, u64: not every value fits
                hint += (
                    f" ({with_article(value.dtype.name)} value outside i32 keeps its low 32 bits)"
                )
        elif isinstance(value, Runtime) and value.is_scalar and value.dtype.is_float:
            hint = f"index with integers: cast<i32>({shown}) truncates toward zero"
        raise self.error(
            f"an index must be an i32 scalar, but this is {value.describe()}", node, hint
        )

    def scalar_of(self, value: AnyValue) -> AnyValue:
        """`value` where the language requires a scalar (an index, a loop bound, an `if`
        condition, `let`, `full`'s value): one element of a register tile (`p[2]`, a 0-d tile)
        becomes the scalar it holds, anything else stays as it is for the caller to check.

        Every thread holds a 0-d tile's element, so the scalar (ItemOp) is the same in every
        thread, as the block's other scalars are."""
        if isinstance(value, Runtime) and value.is_element:
            return cast(AnyValue, Runtime(self.builder.add(ItemOp.create(value.value))))
        return value

    # ---- operators --------------------------------------------------------------------------
    def binary(
        self, op: str, lhs: SemanticValue, rhs: SemanticValue, node: ast.Node
    ) -> Const | Runtime:
        if isinstance(lhs, Const) and isinstance(rhs, Const):
            return Const(fold_binary(op, lhs.value, rhs.value))
        if op in ("logical_and", "logical_or"):
            op = "and" if op == "logical_and" else "or"
            for side in (lhs, rhs):
                if isinstance(side, Runtime) and not side.dtype.is_bool:
                    raise self.error(
                        f"'{'and' if op == 'and' else 'or'}' needs bool operands, not {side.type}",
                        node,
                        "compare first, e.g. (x > 0) and (y > 0); use & and | for integer bits",
                    )
        left, right = self.typed_pair(lhs, rhs, node)
        left, right = self.broadcast_pair(left, right, node)
        return Runtime(self.builder.add(BinaryOp.create(op, left, right)))

    def typed_pair(
        self, lhs: SemanticValue, rhs: SemanticValue, node: ast.Node
    ) -> tuple[Value, Value]:
        """IR values of two operands, giving a constant the dtype of the other side."""
        for side in (lhs, rhs):
            if not isinstance(side, Const | Runtime):
                raise self.error(
                    f"cannot compute with {side.describe()}",
                    node,
                    "load a tensor slice into registers first: load(w[...])",
                )
        if isinstance(lhs, Const) and isinstance(rhs, Runtime):
            return self.constant(lhs, rhs.dtype, node), rhs.value
        if isinstance(rhs, Const) and isinstance(lhs, Runtime):
            return lhs.value, self.constant(rhs, lhs.dtype, node)
        # Callers fold two constants themselves.
        assert isinstance(lhs, Runtime) and isinstance(rhs, Runtime)
        if lhs.dtype != rhs.dtype:
            raise self.error(
                f"operands have different dtypes: {lhs.dtype.name} and {rhs.dtype.name}",
                node,
                mixed_dtypes_hint(lhs.dtype, rhs.dtype),
            )
        return lhs.value, rhs.value

    def broadcast_pair(self, left: Value, right: Value, node: ast.Node) -> tuple[Value, Value]:
        if isinstance(left.type, ScalarType) and isinstance(right.type, ScalarType):
            return left, right
        shape = broadcast_shapes(_shape(left), _shape(right))
        if shape is None:
            raise self.error(
                f"shapes {list(_shape(left))} and {list(_shape(right))} do not broadcast",
                node,
                "add size-1 axes to line them up, e.g. t[:, None] or t[None, :]",
            )
        left, right = self.broadcast_to(left, shape), self.broadcast_to(right, shape)
        return left, self.in_layout_of(left, right)

    def in_layout_of(self, reference: Value, value: Value) -> Value:
        """`value`, converted to `reference`'s layout where both are tiles of one shape that
        carry differing layouts (annotated differently, `a @ L1 + b @ L2`, or a loop's tile
        rebound to one annotated otherwise): ops that hold tiles alike (elementwise ones, a
        loop's carried values, an access's mask) get them so, since an annotation that
        disagrees with what an op needs costs a conversion, not an error."""
        if not (isinstance(reference.type, TileType) and isinstance(value.type, TileType)):
            return value
        if reference.type.shape != value.type.shape:
            return value
        wanted, held = reference.type.layout, value.type.layout
        if wanted is None or held is None or wanted == held:
            return value
        return self.builder.add(ConvertLayoutOp.create(value, wanted))

    def broadcast_to(self, value: Value, shape: tuple[int, ...]) -> Value:
        """Splat a scalar, or add leading axes to a tile and repeat its size-1 dimensions."""
        if isinstance(value.type, ScalarType):
            return self.builder.add(SplatOp.create(value, shape))
        while as_tile(value.type).rank < len(shape):
            value = self.builder.add(ExpandDimsOp.create(value, 0))
        if as_tile(value.type).shape != shape:
            value = self.builder.add(BroadcastOp.create(value, shape))
        return value

    def unary(self, op: str, operand: SemanticValue, node: ast.Node) -> SemanticValue:
        if isinstance(operand, Const):
            v = operand.value
            if op == "neg":
                if isinstance(v, bool):
                    raise self.error("'-' is not defined on bool", node, BOOL_HINT)
                return Const(-v)
            if op == "logical_not":
                if not isinstance(v, bool):
                    message = f"'not' needs a bool, not {constant_text(v)}"
                    raise self.error(message, node, "use ~ for integer bits")
                return Const(not v)
            if isinstance(v, bool):  # ~ on a bool is its negation, as at run time
                return Const(not v)
            if isinstance(v, int):
                return Const(~v)
            raise self.error(f"'~' needs an integer or a bool, not {constant_text(v)}", node)
        value = self.as_runtime(operand, node)
        if op == "logical_not":
            if not value.type.dtype.is_bool:
                raise self.error(
                    f"'not' needs a bool, not {value.type}", node, "use ~ for integer bits"
                )
            op = "not"
        return Runtime(self.builder.add(UnaryOp.create(op, value)))

    # ---- subscripts -------------------------------------------------------------------------
    def subscript(self, node: ast.Subscript) -> SemanticValue:
        base = self.expr(node.base)
        if isinstance(base, Memory):
            return self.memory_slice(base, node)
        if isinstance(base, Runtime) and base.is_tile:
            return self.tile_subscript(base, node)
        if isinstance(base, Slice):  # its edge is not the tensor's, where loads are masked
            raise self.error(
                f"cannot subscript {base.describe()}: a slice is loaded or stored whole",
                node,
                f"pass the tensor {base.memory.name} and the indices instead, and slice it once "
                f"(in a def: f(x, b) and load(x[b, t0 :+ BT, :]))",
            )
        raise self.error(f"cannot subscript {base.describe()}", node)

    def tile_subscript(self, tile: Runtime, node: ast.Subscript) -> Runtime:
        """`t[:, None]`, `t[:, :, 0]`, `t[:, 0:32]`: whole dimensions (`:`), new axes (None),
        compile-time indices (one position of a dimension, the dimension removed) and aligned
        compile-time ranges (a block of a dimension: a reshape and an index)."""
        value = tile.value
        rank = as_tile(value.type).rank
        kept = [i for i in node.items if not isinstance(i, ast.NewAxis)]
        if len(kept) != rank:
            raise self.error(
                f"a subscript of {value.type} needs {rank} entries (':' or an index), "
                f"got {len(kept)}",
                node,
                "register tiles take ':', compile-time indices and None, e.g. t[:, 0, None]",
            )
        indices = []
        for dim, item in enumerate(kept):
            if isinstance(item, ast.SliceRange) and item.start is None and item.stop is None:
                continue
            if isinstance(item, ast.SliceRange | ast.SliceLength):
                value = self.tile_range(value, dim, item, self.text_of(node.base))
                continue
            position = self.register_tile_index(item, dim, rank, self.text_of(node.base))
            size = as_tile(value.type).shape[dim]
            if not -size <= position < size:
                raise self.error(
                    f"index {position} is out of range for dimension {dim} of {value.type}",
                    item,
                    f"use 0 to {size - 1} (or -{size} to -1, counted from the end)",
                )
            indices.append((dim, position % size, item))
        for dim, position, _ in reversed(indices):  # the last first: earlier dims keep
            value = self.builder.add(IndexOp.create(value, dim, position))
        position = 0
        indexed = {id(item) for _, _, item in indices}
        for item in node.items:
            if isinstance(item, ast.NewAxis):
                value = self.builder.add(ExpandDimsOp.create(value, position))
                position += 1
            elif id(item) not in indexed:
                position += 1
        return Runtime(value)

    def tile_range(
        self, value: Value, dim: int, item: ast.SliceRange | ast.SliceLength, tile: str = "t"
    ) -> Value:
        """`t[:, a:b]` or `t[:, a :+ n]` with compile-time bounds: the block of n = b - a along
        `dim` that starts at a, where n divides the dimension and a is a multiple of n (so the
        block is whole digits of the layout: reshape to [..., size / n, n, ...], index a / n).
        A start known only at run time is an error whose hint gathers the range (`tile`, the
        subscripted tile's source)."""
        self.check_range_start(item, dim, as_tile(value.type).rank, tile)
        size = as_tile(value.type).shape[dim]
        what = "a bound of a register tile's range"
        if isinstance(item, ast.SliceLength):
            start = self.as_const_int(item.start, what)
            stop = start + self.as_const_int(item.length, "the length of a register tile's range")
        else:
            start = 0 if item.start is None else self.as_const_int(item.start, what)
            stop = size if item.stop is None else self.as_const_int(item.stop, what)
            start, stop = (b + size if b < 0 else b for b in (start, stop))
        length = stop - start
        if not 0 <= start < stop <= size or size % length or start % length:
            raise self.error(
                f"the range {start}:{stop} of dimension {dim} of {value.type} is not an aligned "
                "block of it",
                item,
                f"a register tile's range must have a length that divides {size} and start at "
                "a multiple of that length (t[:, 0:32], t[:, 32:64] of 64 columns); slice "
                "the tensor before loading it for any other range",
            )
        shape = as_tile(value.type).shape
        blocks = (*shape[:dim], size // length, length, *shape[dim + 1 :])
        value = self.builder.add(ReshapeOp.create(value, blocks))
        return self.builder.add(IndexOp.create(value, dim, start // length))

    def check_range_start(
        self, item: ast.SliceRange | ast.SliceLength, dim: int, rank: int, tile: str
    ) -> None:
        """The error for a register tile's range that starts at a position known only at run
        time: its hint picks the elements with `gather` (as a run-time index's does)."""
        start = item.start
        value = None if start is None else self.compile_time_expr(start)
        if start is None or not isinstance(value, Runtime):
            return
        begin = self.text_of(start)
        length, known = "L", ", L the range's length, known at compile time"
        if isinstance(item, ast.SliceLength):
            length, known = self.text_of(item.length), ""
        simple = begin.isidentifier() or begin.isdigit()
        positions = f"{begin if simple else f'({begin})'} + arange({length})"
        if rank > 1:
            placed = ", ".join(":" if d == dim else "None" for d in range(rank))
            positions = f"({positions})[{placed}], axis = {dim}"
        tile = tile if len(tile) <= 20 else "t"
        raise self.error(
            "a register tile's range must start at a compile-time integer, but this is "
            f"{value.describe()}",
            start,
            "use literals and integer parameters; to take the elements from position "
            f"{self.text_of(start)} known at run time, gather({tile}, {positions}){known} "
            "(positions past the end read 0)",
        )

    def memory_slice(self, memory: Memory, node: ast.Subscript) -> Slice:
        """`w[i :+ 32, k]`: offsets per dimension, the dimensions the tile spans, its shape."""
        shape_of_memory = memory.type.shape
        if len(node.items) != len(shape_of_memory):
            raise self.error(
                f"{memory.name} has {_dimensions(len(shape_of_memory))} but the subscript has "
                f"{len(node.items)}",
                node,
                "give one index or slice per dimension, e.g. a[i :+ 32, :]",
            )
        offsets, dims, shape = [], [], []
        for dim, (item, extent) in enumerate(zip(node.items, shape_of_memory)):
            if dim == 0:
                self.refuse_whole_runtime_dimension(memory, item)
            offset, length = self.slice_item(item, extent, memory, dim)
            self.refuse_negative_index(memory, dim, offset, item)
            if isinstance(memory.type, SharedType):
                self.check_shared_bounds(offset, length or 1, extent, item)
            offsets.append(offset)
            if length is not None:
                dims.append(dim)
                shape.append(length)
        return Slice(memory, tuple(offsets), tuple(dims), tuple(shape))

    def refuse_whole_runtime_dimension(self, memory: Memory, item: ast.Node) -> None:
        """`x[:, k]` or `x[2:, k]` of a first dimension read at run time: a tile's size is
        compile-time, so it cannot span a size known only at the call."""
        rows = getattr(memory.type, "extent", None)
        if rows is not None and isinstance(item, ast.SliceRange) and item.stop is None:
            raise self.runtime_rows_slice(memory, item, "a slice to its end")

    def runtime_rows_slice(self, memory: Memory, item: ast.Node, what: str) -> TypeCheckError:
        """The error of a slice whose length depends on a first dimension read at run time
        (`what`: a slice to its end, or one ending before it, as numpy's x[0:-1])."""
        rows = getattr(memory.type, "extent", None)
        return self.error(
            f"{memory.name}'s first dimension is {rows}, an argument read at run time, so "
            f"{what} has no compile-time length",
            item,
            f"load a tile of rows at a time, e.g. {memory.name}[r :+ 16, ...] with a loop "
            f"or blocks over {rows} (the rows past {rows} are masked)",
        )

    def refuse_negative_index(
        self, memory: Memory, dim: int, offset: Value, item: ast.Node
    ) -> None:
        """`x[-1]` (or `x[-4:]`): a register tile's -1 is its last element, but a tensor's index
        counts from 0 only, so a constant negative one reads outside it: a mistake to report
        (a `start :+ length` slice may overhang the start, as the edges of a tile do). The
        constant may come through casts and arithmetic the front end keeps as ops
        (`x[cast<i32>(P), :]`)."""
        if isinstance(item, ast.SliceLength):
            return
        start = folded_scalar(offset)
        if not isinstance(start, int) or isinstance(start, bool) or start >= 0:
            return
        what = "the range {} starts" if isinstance(item, ast.SliceRange) else "the index {} is"
        raise self.negative_position(memory, dim, start, item, what.format(self.text_of(item)))

    def negative_position(
        self, memory: Memory, dim: int, position: int, item: ast.Node, what: str
    ) -> TypeCheckError:
        """The error of a constant negative `position` of `memory`'s dimension `dim`, which
        numpy would count from the end: `what` (the index, the range's start or stop) says
        where the source has it."""
        size = self.dimension_text(memory, dim)
        from_end = f"{size} - {-position}" if not size.isdigit() else str(int(size) + position)
        tensor = isinstance(memory.type, GlobalType)
        place = f"{memory.name}'s" if tensor else "the shared tile's"
        return self.error(
            f"{what} before {place} first element: "
            f"{'a tensor' if tensor else 'a shared tile'}'s index counts from 0, not from the "
            "end (only a register tile's t[-1] is its last element)",
            item,
            f"count from the start of the dimension (size {size}): write {from_end} where "
            f"numpy would write {position}",
        )

    def dimension_text(self, memory: Memory, dim: int) -> str:
        """The size of `memory`'s dimension `dim` as a hint may write it (the name of a
        run-time row count)."""
        type_ = memory.type
        if isinstance(type_, GlobalType) and type_.extent is not None and dim == 0:
            return type_.extent
        return str(type_.shape[dim])

    def check_shared_bounds(self, offset: Value, length: int, extent: int, item: ast.Node) -> None:
        """A shared tile's size is the kernel's own choice, so a slice known to leave it is a
        mistake, not an edge to mask (as a tensor's edge is)."""
        start = folded_scalar(offset)
        if isinstance(start, int) and not 0 <= start <= start + length <= extent:
            raise self.error(
                f"the slice {start} :+ {length} leaves the shared tile's {extent} elements",
                item,
                f"keep it within 0 .. {extent}, or make the shared tile larger",
            )

    def slice_item(
        self, item: ast.Node, extent: int, memory: Memory, dim: int
    ) -> tuple[Value, int | None]:
        if isinstance(item, ast.NewAxis):
            raise self.error("None cannot index a tensor in memory", item, "load it first")
        if isinstance(item, ast.SliceLength):
            length = self.as_const_int(item.length, "a slice length after ':+'")
            if length <= 0:
                raise self.error(f"slice length must be positive, not {length}", item.length)
            return self.as_index(self.expr(item.start), item.start), length
        if isinstance(item, ast.SliceRange):
            start = 0 if item.start is None else self.as_const_int(item.start, "a slice start")
            stop = extent if item.stop is None else self.as_const_int(item.stop, "a slice stop")
            if stop < 0 and dim == 0 and getattr(memory.type, "extent", None) is not None:
                what = f"a slice ending {-stop} before its end ({self.text_of(item)}, numpy's)"
                raise self.runtime_rows_slice(memory, item, what)
            if stop < 0:  # numpy's x[0:-1], all but the last
                what = f"the range {self.text_of(item)} ends at {stop},"
                raise self.negative_position(memory, dim, stop, item, what)
            if stop <= start:
                raise self.error(
                    f"empty slice {start}:{stop}: a range start:stop holds the positions from "
                    "start up to stop - 1",
                    item,
                    f"write a stop past the start, e.g. {start}:{start + 1} or {start} :+ 1",
                )
            return self.constant(Const(start), I32, item), stop - start
        value = self.scalar_of(self.expr(item))  # p[2], one element: one position
        if isinstance(value, Runtime) and value.is_tile:  # a gather (or scatter) along it
            return self.positions(value, item), as_tile(value.type).shape[0]
        if isinstance(value, Memory | Slice):
            shown = self.text_of(item)
            place = shown if isinstance(value, Memory) else shown.split("[")[0]
            loaded = f"load({shown})" if isinstance(value, Slice) else f"load({place}[...])"
            if isinstance(value, Memory) and isinstance(value.type, SharedType):
                loaded = f"load({place})"
            raise self.error(
                f"an index must be an i32 scalar or a 1-d i32 tile of positions, but this is "
                f"{value.describe()}",
                item,
                f"{place} is in memory: load the positions into registers first, e.g. "
                f"x[{loaded}, :]",
            )
        return self.as_index(value, item), None

    def positions(self, tile: Runtime, node: ast.Node) -> Value:
        """A tile standing for a tensor dimension's index: the 1-d i32 tile of the positions
        read (written) along it."""
        if tile.dtype != I32 or as_tile(tile.value.type).rank != 1:
            shown = self.text_of(node)
            hint = (
                f"cast it: cast<i32>({shown})"
                if tile.dtype.is_int
                else ("positions are integers: cast<i32>(...) truncates toward zero")
            )
            if tile.dtype.is_bool:  # numpy's boolean indexing: in lpir, a mask
                hint = (
                    "a bool tile chooses no positions: load the slice and keep the elements "
                    "you want with mask = (load(x[r :+ R, :], mask = keep[:, None]))"
                )
            if as_tile(tile.value.type).rank != 1:
                hint = (
                    "a dimension takes one position per element along it: give a 1-d i32 tile "
                    f"(reshape it: reshape({shown}, n)); tiles of positions in two dimensions "
                    "index each its own (t[rows, cols] reads every row with every column)"
                )
            raise self.error(
                f"positions along a tensor's dimension must be a 1-d i32 tile, not "
                f"{tile.describe()}",
                node,
                hint,
            )
        return tile.value

    # ---- layout annotations -----------------------------------------------------------------
    def annotate(self, node: ast.Annotate) -> Runtime:
        value = self.expr(node.value)
        if not (isinstance(value, Runtime) and value.is_tile):
            raise self.error(f"only register tiles have layouts, not {value.describe()}", node)
        layout = self.layout(node.layout)
        tile_type = as_tile(value.type)
        if tuple(layout.shape) != tile_type.shape:
            raise self.error(
                f"layout {layout} has shape {list(layout.shape)} but the tile is "
                f"{list(tile_type.shape)}",
                node.layout,
                "the product of the layout's factors per dimension must equal the tile shape",
            )
        if layout.threads != self.threads:
            raise self.error(
                f"layout {layout} spans {layout.threads} threads but the kernel has "
                f"threads({self.threads})",
                node.layout,
                "make the spatial (and replicate) factors multiply to the thread count",
            )
        return Runtime(self.builder.add(ConvertLayoutOp.create(value.value, layout)))

    def layout(self, node: ast.LayoutExpr) -> RegisterLayout:
        from lpir import layout as layouts

        primitives: dict[str, Callable[..., layouts.RegisterLayout]] = {
            "local": layouts.local,
            "spatial": layouts.spatial,
            "column_local": layouts.column_local,
            "column_spatial": layouts.column_spatial,
            "replicate": layouts.replicate,
        }
        result = None
        for chain in node.chains:
            part = None
            for call in chain:
                if call.name not in primitives:
                    raise self.error(
                        f"unknown layout '{call.name}'",
                        call,
                        f"use one of {', '.join(primitives)}",
                    )
                args = [self.as_const_int(a, "a layout size") for a in call.args]
                if call.name == "replicate" and len(args) != 1:
                    raise self.error(
                        f"replicate takes one factor, got {len(args)}", call, "e.g. replicate(2)"
                    )
                try:
                    piece = primitives[call.name](*args)
                    part = piece if part is None else part * piece
                except LayoutError as error:
                    raise TypeCheckError(
                        error.message,
                        self.location(call.span),
                        error.hint or "give each factor a positive integer, e.g. spatial(8, 4)",
                    ) from None
            assert part is not None  # the grammar gives every chain a call
            result = part if result is None else result * part
        assert result is not None  # the grammar gives every layout expression a chain
        return result


def _shape(value: Value) -> tuple[int, ...]:
    if isinstance(value.type, TileType | GlobalType | SharedType):
        return value.type.shape
    return ()


def _dimensions(count: int) -> str:
    return "1 dimension" if count == 1 else f"{count} dimensions"
