"""Lower one kernel of a parsed program, specialized for given parameters, to tile IR.

Statements map onto structured IR: an assignment binds a name; `for` becomes a `for` op whose
iteration values are the names the body reassigns; `if` on a runtime bool becomes an `if` op
yielding the names either branch reassigns and those both branches assign first (as in Python),
and `if` on a compile-time condition keeps only the branch taken (so parameters can select code).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from lpir.dtypes import DType
from lpir.errors import LpirError, with_article
from lpir.ir.core import Kernel, Module, Region, Value
from lpir.ir.grid import MAX_BLOCKS, MAX_THREADS, is_empty
from lpir.ir.ops import ForOp, IfOp, YieldOp
from lpir.ir.ops.arith import SYMBOLS
from lpir.ir.ops.memory import COMBINES
from lpir.ir.types import GlobalType, ScalarType, SharedType, agree
from lpir.language import ast
from lpir.language.declarations import RESERVED, name_span
from lpir.language.expressions import BOOL, I32, ExpressionLowering, TileLimitBuilder
from lpir.language.folding import constant_text
from lpir.language.header_names import is_builtin_name, unknown_header_name
from lpir.language.runtime_sizes import block_count, first_dimension
from lpir.language.values import Const, DTypeConst, Memory, Runtime, SemanticValue

# Blocks (the bodies of for, if and else, and of inlined defs) nested deeper than this, and defs
# inlined into each other deeper than this, are refused: lowering and the passes recurse into
# nested regions, and no kernel needs so many.
MAX_BLOCK_DEPTH = 100
MAX_CALL_DEPTH = 100
# The most `stages` a loop may ask for: each stage is a tile in registers or shared memory and a
# copy of the loads' code where the trip count is not known (stages = 4096 took minutes).
MAX_STAGES = 32


def assigned_names(statements: list[ast.Node]) -> list[str]:
    """Names assigned anywhere in `statements` (nested blocks included), in first-seen order."""
    names: dict[str, None] = {}
    pending: list[ast.Node] = list(reversed(statements))  # a stack: the next statement last
    while pending:
        statement = pending.pop()
        if isinstance(statement, ast.Assign | ast.AugAssign | ast.Let):
            names[statement.target] = None
        elif isinstance(statement, ast.For):
            pending.extend(reversed(statement.body))
        elif isinstance(statement, ast.If):
            pending.extend(reversed([*statement.then_body, *(statement.else_body or [])]))
    return list(names)


def first_assignment(name: str, statements: list[ast.Node]) -> ast.Node | None:
    """The first statement in `statements` (nested blocks included) that assigns `name`."""
    pending: list[ast.Node] = list(reversed(statements))
    while pending:
        statement = pending.pop()
        if isinstance(statement, ast.Assign | ast.AugAssign | ast.Let):
            if statement.target == name:
                return statement
        elif isinstance(statement, ast.For):
            pending.extend(reversed(statement.body))
        elif isinstance(statement, ast.If):
            pending.extend(reversed([*statement.then_body, *(statement.else_body or [])]))
    return None


class KernelLowering(ExpressionLowering):
    """Builds the tile-IR kernel of `kernel_def` for the parameter values `params`."""

    def __init__(self, program: ast.Program, kernel_def: ast.KernelDef, params: dict[str, Any]):
        self.program = program
        self.source = program.source
        self.file = program.file
        self.kernel_def = kernel_def
        self.params = params
        self.builder = TileLimitBuilder()
        self.scopes = [{}]
        self.loop_locals: dict[str, int] = {}
        self.assigned_at: dict[str, ast.Span] = {}
        self.branch_conflicts: dict[str, str] = {}
        # names that hold a different shared tile (or tensor) in each branch of an if: a use
        # after the if is refused at the assignment (memory is not chosen at run time)
        # (each with the scopes it was made in: a def's body does not see the caller's names)
        self.memory_choices: dict[str, tuple[list, ast.Span, ast.If, Memory, Memory]] = {}
        self.inlining: list[ast.Call] = []  # the calls of the defs being inlined, outermost first
        self.block_depth = 0  # how many statements() calls are open
        self.callers: list[list[dict]] = []  # and the scopes of their callers
        for name, value in params.items():
            self.scopes[0][name] = DTypeConst(value) if isinstance(value, DType) else Const(value)
        self.threads = 0
        self.in_header = True  # lowering the launch grid and the arguments' dimensions

    def undefined_hint(self, name: str) -> str | None:
        if self.callers and any(name in scope for scope in self.callers[-1]):
            call = self.inlining[-1]
            return f"a def sees only its parameters: pass '{name}' to {call.func} as an argument"
        if name in self.branch_conflicts:
            return self.branch_conflicts[name]
        line = self.loop_locals.get(name)
        if line is not None:
            return f"'{name}' is assigned only inside the block at line {line}; assign it before"
        return None

    def lookup(self, name: str, node: ast.Node) -> SemanticValue:
        if self.find(name) is None:
            choice = self.memory_choices.get(name)
            if choice is not None and choice[0] is self.scopes:
                raise self.memory_chosen_at_run_time(name, node, *choice[1:])
            if self.in_header and not self.inlining:
                self.check_not_an_argument(name, node)
                refusal = None if is_builtin_name(name) else unknown_header_name(self, name)
                if refusal is not None:
                    raise refusal
        return super().lookup(name, node)

    def check_not_an_argument(self, name: str, node: ast.Node) -> None:
        """The header (the thread count, a tensor argument's name in a size) reads an argument
        where only compile-time values go: refuse it as a value known only when the kernel
        runs, not as an unknown name. (Block counts and a tensor's first dimension may read
        i32 arguments: `runtime_sizes`.)"""
        kernel = self.kernel_def
        declared = next((arg for arg in kernel.args if arg.name == name), None)
        if isinstance(declared, ast.GlobalArg):
            raise self.error(
                f"'{name}' is a tensor argument of kernel {kernel.name}: the header is worked "
                "out before the kernel runs, so it cannot read memory",
                node,
                "pass the size as an i32 argument instead (n: i32, then blocks(cdiv(n, BM))), "
                "or launch an upper bound of blocks and let those past the size skip their "
                f"work in the body (if block.x * BM < load({name}[0]) {{ ... }})",
            )
        if declared is not None:
            raise self.error(
                f"'{name}' is an argument of kernel {kernel.name}: this part of the header is "
                "fixed when the kernel compiles, from literals and parameters only (block "
                "counts and a tensor's first dimension may read i32 arguments)",
                node,
                f"the arguments exist only inside the body; make '{name}' a parameter instead "
                f"(kernel {kernel.name}[{name} = ...](...)), given by lpir.compile(..., "
                f"{name}=...) or -D {name}=..., or deduced from a tensor dimension written {name}",
            )

    # ---- the kernel -------------------------------------------------------------------------
    def lower(self) -> Module:
        kdef = self.kernel_def
        grid = [block_count(self, b) for b in kdef.blocks]
        if not 1 <= len(grid) <= 3:
            raise self.error("blocks(...) takes 1 to 3 counts", kdef, "e.g. blocks(N / 64, 2)")
        for axis, (node, count) in enumerate(zip(kdef.blocks, grid)):
            if not isinstance(count, int):  # computed at each call (`lpir.ir.grid`)
                continue
            if count < 0:  # 0 is an empty launch (an empty batch): no block runs
                raise self.error(
                    f"the block count is {count}; it must not be negative",
                    node,
                    f"{self.parameters_shown(node)}give the parameters values that make each "
                    "count at least 0",
                )
            if count > MAX_BLOCKS[axis]:  # block.x is an i32; a GPU launches no more
                raise self.error(
                    f"the block count along {'xyz'[axis]} is {count}; at most "
                    f"{MAX_BLOCKS[axis]} blocks go along {'xyz'[axis]}",
                    node,
                    f"{self.parameters_shown(node)}give each block a larger tile, or loop "
                    "over tiles inside a block",
                )
        self.threads = self.as_const_int(kdef.threads, "the thread count")
        if not 1 <= self.threads <= MAX_THREADS:
            raise self.error(
                f"threads({self.threads}) is out of range",
                kdef.threads,
                f"use 1 to {MAX_THREADS} threads",
            )
        self.empty_grid = is_empty(grid)
        args = [self.argument(a) for a in kdef.args]
        body = Region(args)
        self.builder.region = body
        self.in_header = False
        self.statements(kdef.body)
        x, y, z = grid + [1] * (3 - len(grid))
        kernel = Kernel(
            kdef.name,
            dict(self.params),
            body,
            (x, y, z),
            self.threads,
            location=self.location(kdef.span),
        )
        kernel.grid_locations = [self.location(node.span) for node in kdef.blocks]
        return Module([kernel])

    def argument(self, decl: ast.GlobalArg | ast.ScalarArg) -> Value:
        dt = self.dtype_named(decl.dtype_name, decl.dtype_span)
        if isinstance(decl, ast.ScalarArg):
            value = Value(ScalarType(dt), decl.name)
            self.scopes[0][decl.name] = Runtime(value)
            return value
        rows = first_dimension(self, decl)
        dims = decl.dims[1:] if rows is not None else decl.dims
        shape = tuple(self.as_const_int(d, "a tensor dimension") for d in dims)
        for node, size in zip(dims, shape):
            if size < 0:
                raise self.error(
                    f"dimension is {size}; it must not be negative",
                    node,
                    f"{self.parameters_shown(node)}give the parameters values that make each "
                    "dimension at least 0",
                )
            if size == 0 and not self.empty_grid:
                # an empty grid (an empty batch) is a call that runs no block; blocks that
                # run over an empty tensor are not supported by the IR or the backends
                raise self.error(
                    f"dimension is 0 while the grid has blocks: {decl.name} may be empty only "
                    "in a call whose grid is empty too (a block count of 0: no block runs); "
                    "blocks over an empty tensor are not supported (a limitation)",
                    node,
                    f"{self.parameters_shown(node)}skip the call where {decl.name} is empty, "
                    "or make a block count 0 with this dimension (blocks(cdiv(SIZE, TILE)))",
                )
        if math.prod(shape) > I32.max:
            raise self.error(
                f"{decl.name} has {math.prod(shape)} elements, more than i32 indices reach",
                decl,
                "lpir indexes tensors with i32: keep each tensor under 2^31 elements; split "
                f"{decl.name} into two arguments of fewer rows each (pass "
                f"{decl.name}[:half] and {decl.name}[half:], views that copy nothing) and "
                "choose between them in the kernel",
            )
        type_ = GlobalType(dt, shape) if rows is None else GlobalType.runtime_rows(dt, shape, rows)
        value = Value(type_, decl.name)
        self.scopes[0][decl.name] = Memory(value, decl.name)
        return value

    def dimension_text(self, memory: Memory, dim: int) -> str:
        """A kernel tensor's dimension as its declaration writes it (`N`), outside the defs
        (whose bodies see only their parameters)."""
        name = memory.value.name_hint
        declared = next((a for a in self.kernel_def.args if a.name == name), None)
        tensor = isinstance(memory.type, GlobalType) and isinstance(declared, ast.GlobalArg)
        if self.inlining or not tensor:
            return super().dimension_text(memory, dim)
        return self.text_of(declared.dims[dim])  # type: ignore[union-attr]

    def parameters_shown(self, node: ast.Node) -> str:
        """The parameters an expression of the header reads, as "with N = 0, BN = 64: "."""
        used = [n for n in ast.names_in(node) if n in self.params]
        if not used:
            return ""
        shown = ", ".join(f"{n} = {_shown(self.params[n])}" for n in used)
        return f"with {shown}: "

    # ---- statements -------------------------------------------------------------------------
    def statements(self, statements: list[ast.Node]) -> None:
        self.block_depth += 1
        try:
            for statement in statements:
                saved = self.builder.location
                self.builder.location = self.location(statement.span)
                try:
                    self.statement(statement)
                except LpirError as error:
                    raise error.with_location(self.location(statement.span)) from None
                except RecursionError:
                    # The limits below keep each kind of nesting shallow; several at once
                    # (deep blocks in deep defs of deep expressions) may still reach Python's.
                    raise self.error(
                        "this statement nests blocks, calls and expressions too deeply to lower",
                        statement,
                        "flatten it: compute parts into names, or write nested defs as one",
                    ) from None
                finally:
                    self.builder.location = saved
        finally:
            self.block_depth -= 1

    def check_block_depth(self, node: ast.Node) -> None:
        """A for or an if opens a block: refuse one nested past MAX_BLOCK_DEPTH."""
        if self.block_depth > MAX_BLOCK_DEPTH:  # the kernel's body is depth 1
            raise self.error(
                f"blocks nest more than {MAX_BLOCK_DEPTH} deep here (for, if, else and the "
                "bodies of defs called inside them)",
                name_span(node.span, "for" if isinstance(node, ast.For) else "if"),
                "flatten the nesting: combine conditions with and, or move inner parts to "
                "separate loops",
            )

    def statement(self, node: ast.Node) -> None:
        if isinstance(node, ast.Assign):
            self.bind(node.target, self.filled(node, self.expr(node.value)), node)
        elif isinstance(node, ast.AugAssign):
            self.augmented_assignment(node)
        elif isinstance(node, ast.Let):
            value = self.scalar_of(self.expr(node.value))
            if not (isinstance(value, Const) or (isinstance(value, Runtime) and value.is_scalar)):
                raise self.error(
                    f"let binds a scalar, but this is {value.describe()}",
                    node.value,
                    "use a plain assignment for tiles: t = ...",
                )
            self.bind(node.target, value, node)
        elif isinstance(node, ast.For):
            self.check_block_depth(node)
            self.for_statement(node)
        elif isinstance(node, ast.If):
            self.check_block_depth(node)
            self.if_statement(node)
        elif isinstance(node, ast.ExprStmt):
            self.expression_statement(node)
        elif isinstance(node, ast.Return):
            where = f"'{self.inlining[-1].func}'" if self.inlining else "a def"
            raise self.error(
                f"return may only end {where}: it is the last statement of a def's body",
                node,
                "compute the value into a name and return it at the end"
                if self.inlining
                else "kernels store their results; return belongs in a def",
            )
        else:
            raise self.error(f"unexpected statement {type(node).__name__}", node)

    def filled(self, node: ast.Assign, value: SemanticValue) -> SemanticValue:
        """`acc = 0.0` where acc holds a tile: the tile filled with the constant, at the
        kernel's top level as inside a block (where the loop or if carries acc's type), so
        that `acc` stays a tile of its dtype and shape and a constant it cannot hold is
        refused here rather than at a later use."""
        current = self.find(node.target)
        if not (isinstance(value, Const) and isinstance(current, Runtime) and current.is_tile):
            return value
        try:
            return Runtime(self.constant_like(value, current.type, node.value))
        except LpirError as error:
            raise self.error(
                f"'{node.target}' is a tile of {_type_text(current.type)}, which a constant "
                f"assigned to it fills: {error.message}",
                node.value,
                f"assign a constant that {current.dtype.name} holds, or give a value of "
                f"another type a name of its own ({node.target}_2 = ...)",
            ) from None

    def augmented_assignment(self, node: ast.AugAssign) -> None:
        """`u += v`: u's new value keeps its dtype and shape (v may broadcast to u's shape, not
        u to v's)."""
        current = self.lookup(node.target, ast.Name(node.target_span or node.span, node.target))
        result = self.binary(node.op, current, self.expr(node.value), node)
        if isinstance(current, Runtime) and isinstance(result, Runtime):
            before, after = current.type, result.type
            shape_before = getattr(before, "shape", ())
            shape_after = getattr(after, "shape", ())
            if shape_before != shape_after or before.dtype != after.dtype:
                raise self.error(
                    f"'{node.target}' is {_type_text(before)}, but this would make it "
                    f"{_type_text(after)}",
                    node,
                    f"an augmented assignment keeps the target's dtype and shape: reduce or "
                    f"index the right side, or write {node.target} = {node.target} "
                    f"{SYMBOLS.get(node.op, node.op)} ... to make a new value",
                )
        self.bind(node.target, result, node)

    def bind(self, name: str, value: SemanticValue, node: ast.Node) -> None:
        # A name may be a builtin function's (`bits = ...`, `max = ...`): functions are only
        # called, never values, so `max(a, b)` still reaches the builtin. `block` is a value.
        if name == "block" or name in self.params:
            what = "a parameter" if name in self.params else "the block's index (block.x)"
            raise self.error(
                f"cannot assign to '{name}': it names {what}", node, "choose another name"
            )
        tensor = self.tensor_handle(name)
        if tensor is not None:
            raise self.cannot_assign_tensor(name, tensor, node)
        current = self.find(name)
        if (
            isinstance(value, Const)
            and isinstance(current, Memory)
            and isinstance(current.type, SharedType)
        ):
            raise self.constant_over_shared_tile(name, current, node)
        if isinstance(value, Memory) and isinstance(value.value.type, GlobalType):
            value = dataclasses.replace(value, alias=True)  # `a = x`: a may point elsewhere
        if name in RESERVED:  # `let for = 1`: the grammar takes a keyword as a name there
            raise self.error(
                f"'{name}' is a reserved word and cannot name a value",
                node,
                f"choose another name, e.g. '{name}_'",
            )
        if not isinstance(value, Const | Runtime | Memory):
            raise self.error(
                f"cannot assign {value.describe()} to a name",
                node,
                "load a slice into registers with load(...) first",
            )
        self.scopes[-1][name] = value
        self.assigned_at[name] = node.span

    def constant_over_shared_tile(self, name: str, tile: Memory, node: ast.Node) -> LpirError:
        """`s = 0.0` where s is a shared tile: unlike a register tile's name, which a constant
        fills, it would rebind the name and leave the tile for a later load to miss."""
        value = getattr(node, "value", node)
        shape = ", ".join(map(str, tile.type.shape))
        fill = f"full<{tile.type.dtype.name}>[{shape}]({self.text_of(value)})"
        return self.error(
            f"'{name}' is {tile.describe()}: assigning a constant to it would make '{name}' "
            "name the constant, not fill the tile (a constant fills only a register tile)",
            value,
            f"fill it with store({name}, {fill}), or give the constant a name of its own "
            f"({name}_value = ...)",
        )

    def cannot_assign_tensor(self, name: str, tensor: SemanticValue, node: ast.Node) -> LpirError:
        # Rebinding would hide the tensor for the rest of the body: every later x[...] then
        # fails far from the cause (or, for `x = 2.0` used as `t + x`, means another thing).
        return self.error(
            f"cannot assign to '{name}': it names {tensor.describe()}",
            node,
            f"give the value a name of its own, e.g. {name}_tile = ...; the tensor stays "
            f"{name}[...]",
        )

    def tensor_handle(self, name: str) -> Memory | None:
        """The tensor `name` is the only handle of (a kernel's tensor argument, a def's
        parameter given a tensor), or None: rebinding such a name would hide the tensor."""
        found = self.find(name)
        if isinstance(found, Memory) and isinstance(found.value.type, GlobalType):
            return None if found.alias else found
        return None

    def expression_statement(self, node: ast.ExprStmt) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("break", "continue"):
            raise self.no_break_or_continue(value)
        atomics = tuple(f"atomic_{combine}" for combine in COMBINES)
        statements = ("store", *atomics, "sync", "static_assert")
        statements += tuple(self.functions())
        if not (isinstance(value, ast.Call) and value.func in statements):
            self.expr(value)  # its own mistakes (an unknown name) first
            raise self.error(
                "this expression's value is not used",
                node,
                "assign it to a name (t = ...) or store it: store(y[...], t)",
            )
        self.discarded_call = value  # (its value unused: an atomic reads nothing back)
        self.call(value)

    def no_break_or_continue(self, node: ast.Name) -> LpirError:
        """`break` or `continue` as a statement: the language has neither."""
        if node.id == "continue":
            return self.error(
                "lpir has no continue: each iteration runs the whole loop body",
                node,
                "guard the rest of the body with an if: if not skip { ... } (or choose tile "
                "elements with where(skip, old, new))",
            )
        return self.error(
            "lpir has no break: a for loop runs its whole range",
            node,
            "loop to the end you need (for i in range(0, n), n may be computed at run time), "
            "or carry a flag (done = false before the loop; done = done or ... inside) and "
            "guard the rest of the body with if not done { ... } (or where(done, old, new))",
        )

    # ---- def ----------------------------------------------------------------------------------
    def functions(self) -> dict:
        return self.program.functions

    def block_counts(self) -> list[str]:
        return [self.text_of(count) for count in self.kernel_def.blocks]

    def inline(self, node: ast.Call) -> SemanticValue | None:
        """The value of a call of a `def`: its body lowered in place, in a scope of its own
        that holds only its parameters (bound to the call's arguments, evaluated here)."""
        function = self.program.functions[node.func]
        if any(call.func == node.func for call in self.inlining):
            chain = " -> ".join([*(c.func for c in self.inlining), node.func])
            raise self.error(
                f"'{node.func}' calls itself ({chain}): defs are inlined, so they cannot recurse",
                node,
                "write the repetition as a for loop",
            )
        if len(self.inlining) >= MAX_CALL_DEPTH:
            raise self.error(
                f"defs call each other more than {MAX_CALL_DEPTH} deep here",
                node,
                "defs are inlined: write fewer levels of calls, or a loop",
            )
        scope = self.call_arguments(node, function)
        saved = (self.scopes, self.params, self.expression_depth)
        self.callers.append(self.scopes)
        self.scopes, self.params = [scope], {}
        self.expression_depth = 0  # the body's expressions nest anew; MAX_CALL_DEPTH bounds it
        self.inlining.append(node)
        try:
            body = function.body
            returned = body[-1] if body and isinstance(body[-1], ast.Return) else None
            self.statements(body[:-1] if returned is not None else body)
            if returned is None or returned.value is None:
                return None
            return self.expr(returned.value)
        except LpirError as error:
            raise self.called_from(error, node) from None
        finally:
            self.inlining.pop()
            self.callers.pop()
            self.scopes, self.params, self.expression_depth = saved

    def call_arguments(self, node: ast.Call, function: ast.FunctionDef) -> dict[str, SemanticValue]:
        """The def's parameters bound to the call's arguments (positional, then by name)."""
        params = function.params
        signature = f"{function.name}({', '.join(params)})"
        if len(node.args) > len(params):
            raise self.error(
                f"{function.name} takes {len(params)} argument{'s' * (len(params) != 1)}, "
                f"got {len(node.args)}",
                node,
                f"call it as {signature}",
            )
        bound = {p: self.as_handle(self.value_or_dtype(a)) for p, a in zip(params, node.args)}
        for keyword in node.keywords:
            if keyword.name not in params:
                raise self.error(
                    f"{function.name} has no parameter '{keyword.name}'",
                    keyword,
                    f"call it as {signature}",
                )
            if keyword.name in bound:
                raise self.error(
                    f"'{keyword.name}' is given twice", keyword, f"call it as {signature}"
                )
            bound[keyword.name] = self.as_handle(self.value_or_dtype(keyword.value))
        missing = [p for p in params if p not in bound]
        if missing:
            raise self.error(
                f"{function.name} needs {', '.join(repr(p) for p in missing)}",
                node,
                f"call it as {signature}",
            )
        return bound

    @staticmethod
    def as_handle(value: Any) -> Any:
        """A def's parameter given a tensor is its handle there, as an argument is the
        kernel's (an alias `a` passed in included)."""
        return dataclasses.replace(value, alias=False) if isinstance(value, Memory) else value

    def called_from(self, error: LpirError, call: ast.Call) -> LpirError:
        """`error`, raised inside a def, with the call it came from added to its message."""
        if error.location is None or error.call_shown:
            return error
        place = f"{call.span.line}:{call.span.column}"
        shown = type(error)(
            f"{error.message} (in {call.func}, called at {place})", error.location, error.hint
        )
        shown.call_shown = True  # the innermost call is the one to show
        return shown

    # ---- for ----------------------------------------------------------------------------------
    def range_bounds(self, node: ast.For) -> list[Value]:
        bounds = node.bounds
        if not 1 <= len(bounds) <= 3:
            raise self.error("range takes 1 to 3 arguments", node, "range(start, stop, step)")
        values = [self.scalar_of(self.expr(b)) for b in bounds[:2]]
        if len(bounds) == 3:
            values.append(self.compile_time_expr(bounds[2]))
        if len(values) == 1:
            values = [Const(0), values[0]]
        if len(values) == 2:
            values.append(Const(1))
        step = values[2]
        step_node = bounds[2] if len(bounds) == 3 else node
        if not isinstance(step, Const):
            raise self.error(
                f"the range step must be a compile-time integer, but this is {step.describe()}",
                step_node,
                "make the stride a parameter (range(0, n, BK)); a step computed at run time "
                "could be 0 or negative, and the loop would never end",
            )
        self.check_step(step.value, step_node)
        nodes = [
            bounds[0] if len(bounds) > 1 else node,
            bounds[-1] if len(bounds) < 3 else bounds[1],
        ]
        nodes.append(bounds[2] if len(bounds) == 3 else node)
        for value, bound in zip(values[2 - min(len(bounds), 2) : 2], bounds[:2]):
            self.check_bound(value, bound)
        return [self.as_index(v, n) for v, n in zip(values, nodes)]

    def check_bound(self, value: SemanticValue, node: ast.Node) -> None:
        """A loop's start or stop is an integer constant or an i32 scalar: say so (not "an
        index") where it is another integer scalar (a u32 or i64 argument) or a float."""
        shown = self.text_of(node)
        if isinstance(value, Runtime) and not value.is_scalar:
            raise self.error(
                f"a loop bound must be an i32 scalar, but this is {value.describe()}",
                node,
                f"every thread of the block runs the loop alike: reduce the tile (max({shown})) "
                "or load one element as a scalar (let n = load(counts[block.x]))",
            )
        if isinstance(value, Runtime) and value.is_scalar and value.dtype != I32:
            hint = f"convert it: cast<i32>({shown})"
            if value.dtype.is_float:
                hint = f"loop over integers: cast<i32>({shown}) truncates toward zero"
            raise self.error(
                f"a loop bound must be an i32 scalar, but this is "
                f"{with_article(value.dtype.name)} scalar",
                node,
                hint,
            )
        if isinstance(value, Const) and not (
            isinstance(value.value, int) and not isinstance(value.value, bool)
        ):
            raise self.error(
                f"a loop bound must be an integer, not {constant_text(value.value)}",
                node,
                "write an integer bound, e.g. range(0, N)",
            )

    def loop_stages(self, node: ast.For) -> int | None:
        """The `stages = S` of `range(...)`: a compile-time integer >= 1, or None if not given."""
        stages = None
        for keyword in node.keywords:
            if keyword.name != "stages":
                raise self.error(
                    f"range has no argument '{keyword.name}'",
                    keyword,
                    "range(start, stop, step, stages = S) takes only 'stages' by name",
                )
            value = self.compile_time_expr(keyword.value)
            number = value.value if isinstance(value, Const) else None
            if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                shown = (
                    constant_text(value.value) if isinstance(value, Const) else "a runtime value"
                )
                raise self.error(
                    f"stages must be a compile-time integer of at least 1, not {shown}",
                    keyword.value,
                    "stages = 1 loads each tile in its own iteration; stages = S issues the "
                    "global loads of S - 1 iterations ahead (S tiles in registers)",
                )
            if number > MAX_STAGES:
                raise self.error(
                    f"stages = {number} is more than the {MAX_STAGES} stages supported "
                    f"(stages is 1 to {MAX_STAGES})",
                    keyword.value,
                    "a few stages (2 to 4) hide a GPU's memory latency; each more costs "
                    "registers or shared memory and code",
                )
            stages = number
        return stages

    def check_step(self, step: int | float | bool, node: ast.Node) -> None:
        """A compile-time range step must be a positive integer; say what to write instead."""
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            return
        if step == 0 and not isinstance(step, bool):
            hint = "a step of 0 never reaches the end; range(start, stop) steps by 1"
        elif isinstance(step, int | float) and not isinstance(step, bool) and step < 0:
            hint = "ranges count up: loop with for i in range(0, n) and use n - 1 - i to go down"
        else:
            hint = "write an integer step, e.g. range(0, K, BK)"
        raise self.error(
            f"the range step must be a positive integer, not {constant_text(step)}", node, hint
        )

    def carried(self, body: list[ast.Node], node: ast.For | ast.If) -> dict[str, Value]:
        """The names `body` (a block of `node`) reassigns that exist before it, with their
        current IR values."""
        carried: dict[str, Value] = {}
        for name in assigned_names(body):
            value = self.find(name)
            if value is None:
                continue
            if isinstance(value, Const):
                carried[name] = self.as_runtime(value, node)
            elif isinstance(value, Runtime):  # an element (p[2]) is carried as its scalar
                carried[name] = self.as_runtime(self.scalar_of(value), node)
            else:
                raise self.reassigned_in_block(name, value, body, node)
        return carried

    def reassigned_in_block(
        self, name: str, value: SemanticValue, body: list[ast.Node], node: ast.For | ast.If
    ) -> LpirError:
        """The error for a shared tile or tensor that a block of `node` binds anew: memory is
        fixed where a name is bound, never carried through a loop or an if."""
        block = "a for loop" if isinstance(node, ast.For) else "an if"
        assignment = first_assignment(name, body) or node
        if self.tensor_handle(name) is not None:  # not only inside a block: anywhere
            return self.cannot_assign_tensor(name, value, assignment)
        message = f"'{name}' is {value.describe()} and cannot be reassigned inside {block}"
        memory = value.value.type if isinstance(value, Memory) else None
        if not isinstance(memory, SharedType):
            hint = f"give the other value a name of its own instead of reassigning '{name}'"
            return self.error(message, assignment, hint)
        new = assignment.value if isinstance(assignment, ast.Assign | ast.Let) else None
        constant = new is not None and isinstance(self.constant_outside(new), Const)
        if constant and isinstance(value, Memory):
            return self.constant_over_shared_tile(name, value, assignment)
        if isinstance(new, ast.TileConstructor) and new.func == "shared":
            hint = (
                f"a shared tile lasts the whole kernel: allocate '{name}' once before the "
                f"{'loop' if isinstance(node, ast.For) else 'if'} and store(...) into it here"
            )
            return self.error(message, assignment, hint)
        rest = ", ".join([":"] * len(memory.shape))
        shape = ", ".join(map(str, memory.shape))
        tile = f"s = shared<{memory.dtype.name}>[2, {shape}]"
        if isinstance(node, ast.For):
            hint = (
                f"to alternate between two buffers, allocate one shared tile with a slot for "
                f"each, {tile}, and index it: s[{node.var} % 2, {rest}] and "
                f"s[({node.var} + 1) % 2, {rest}]"
            )
        else:
            hint = (
                f"to choose a tile at run time, allocate one shared tile with a slot for each, "
                f"{tile}, and index it: s[which, {rest}] with which = 0 or 1 set by the if"
            )
        return self.error(message, assignment, hint)

    def constant_outside(self, node: ast.Node) -> SemanticValue | None:
        """The value of an expression of literals and names (`0.0`, `-P`), as the names hold
        before the block that `node` is in, or None for any other expression or a mistake
        (which the block then reports where it is)."""
        pending = [node]
        while pending:
            part = pending.pop()
            if isinstance(part, ast.BinaryExpr):
                pending += [part.lhs, part.rhs]
            elif isinstance(part, ast.UnaryExpr):
                pending.append(part.operand)
            elif not isinstance(
                part, ast.IntLiteral | ast.FloatLiteral | ast.BoolLiteral | ast.Name
            ):
                return None
        try:
            return self.compile_time_expr(node)
        except LpirError:
            return None

    def find(self, name: str) -> SemanticValue | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def yielded(self, carried: dict[str, Value], node: ast.Node) -> list[Value]:
        """The current values of the carried names, converted to their entry types."""
        values = []
        for name, before in carried.items():
            current = self.find(name)
            assert current is not None  # a carried name is defined before the block
            if isinstance(current, Const):
                values.append(self.constant_like(current, before.type, node))
                continue
            if isinstance(current, Runtime):  # an annotation that disagrees converts
                current = Runtime(self.in_layout_of(before, current.value))
                current = self.scalar_of(current)  # as carried() carries an element
            if not isinstance(current, Runtime) or not agree(current.type, before.type):
                now = current.type if isinstance(current, Runtime) else current.describe()
                raise self.error(
                    f"'{name}' changes from {before.type} to {now} inside this block",
                    self.assigned_at.get(name, node.span),
                    "keep the dtype and shape of a variable the same across iterations/branches",
                )
            values.append(current.value)
        return values

    def constant_like(self, value: Const, like: Any, node: ast.Node) -> Value:
        """`value` as a value of type `like`: a scalar of its dtype, or a tile filled with it."""
        scalar = self.constant(value, like.dtype, node)
        return scalar if isinstance(like, ScalarType) else self.broadcast_to(scalar, like.shape)

    def for_statement(self, node: ast.For) -> None:
        tensor = self.tensor_handle(node.var)
        if node.var == "block" or node.var in self.params or node.var in RESERVED or tensor:
            what = "a parameter" if node.var in self.params else "a reserved word"
            what = "the block's index (block.x)" if node.var == "block" else what
            what = tensor.describe() if tensor is not None else what
            raise self.error(
                f"the loop variable cannot be '{node.var}': it names {what}",
                name_span(node.span, "for " + node.var),
                f"choose another name, e.g. for {node.var.lower()}_ in range(...)",
            )
        lower, upper, step = self.range_bounds(node)
        carried = self.carried(node.body, node)
        names = list(carried)
        op = ForOp.create(
            lower, upper, step, list(carried.values()), node.var, names, result_names=names
        )
        stages = self.loop_stages(node)
        if stages is not None:
            op.attributes["stages"] = stages
        op.location = self.location(node.span)
        self.builder.insert(op)
        scope: dict[str, SemanticValue] = {node.var: Runtime(op.induction_variable)}
        scope.update({n: Runtime(a) for n, a in zip(names, op.iter_args)})
        self.nested(op.body, scope, node.body, carried, node)
        for name, result in zip(names, op.results):
            self.scopes[-1][name] = Runtime(result)

    def nested(
        self,
        region: Region,
        scope: dict[str, SemanticValue],
        body: list[ast.Node],
        carried: dict[str, Value],
        node: ast.Node,
    ) -> None:
        """Lower `body` into `region` with `scope`, ending in a yield of the carried names."""
        self.scopes.append(scope)
        with self.builder.at(region):
            self.statements(body)
            region.append(YieldOp.create(self.yielded(carried, node)))
        self.remember_locals(self.scopes.pop(), node)

    def remember_locals(self, scope: dict[str, SemanticValue], node: ast.Node) -> None:
        """Names first assigned inside a block (its `scope`) that do not outlive it: a use
        after the block gets a hint with the block's line."""
        for name in scope:
            if self.find(name) is None:
                self.loop_locals.setdefault(name, node.span.line)

    # ---- if -----------------------------------------------------------------------------------
    def if_statement(self, node: ast.If) -> None:
        cond = self.scalar_of(self.expr(node.cond))
        if isinstance(cond, Const):
            taken = node.then_body if cond.value else (node.else_body or [])
            self.statements(taken)
            return
        if not (isinstance(cond, Runtime) and cond.is_scalar and cond.dtype == BOOL):
            hint = "for an elementwise choice between tiles use where(cond, a, b)"
            if isinstance(cond, Runtime) and cond.is_scalar:  # a number: no truthiness
                zero = "0.0" if cond.dtype.is_float else "0"
                hint = f"compare it: if {self.text_of(node.cond)} != {zero} {{ ... }}"
            raise self.error(
                f"an if condition must be a bool scalar, but this is {cond.describe()}",
                node.cond,
                hint,
            )
        carried = self.carried([*node.then_body, *(node.else_body or [])], node)
        then_branch = self.branch(node.then_body, carried, node)
        then_spans = {name: self.assigned_at[name] for name in then_branch[1]}
        else_branch = self.branch(node.else_body or [], carried, node)
        joined = self.joined(then_branch, else_branch, carried, node)
        self.note_memory_choices(then_branch[1], else_branch[1], then_spans, node)
        for region, _, values in (then_branch, else_branch):
            region.append(YieldOp.create(values))
        result_names = [*carried, *joined]
        op = IfOp.create(
            cond.value,
            [v.type for v in then_branch[2]],
            result_names,
            regions=(then_branch[0], else_branch[0]),
        )
        op.location = self.location(node.span)
        self.builder.insert(op)
        for name, result in zip(result_names, op.results):
            self.scopes[-1][name] = Runtime(result)
        self.remember_locals({**then_branch[1], **else_branch[1]}, node)

    def branch(
        self, body: list[ast.Node], carried: dict[str, Value], node: ast.Node
    ) -> tuple[Region, dict[str, SemanticValue], list[Value]]:
        """Lower one branch of an `if` into a new region.

        Returns the region, the names the branch assigned (its scope) and the values the
        carried names have at its end.
        """
        region = Region()
        self.scopes.append({})
        with self.builder.at(region):
            self.statements(body)
            values = self.yielded(carried, node)
        return region, self.scopes.pop(), values

    def joined(
        self, then_branch: tuple, else_branch: tuple, carried: dict, node: ast.Node
    ) -> list[str]:
        """Names first assigned in both branches flow out of the `if` (as Python's do).

        Each such name's values are appended to both branches' yielded values; the result is
        the names, in the order of the then branch. A name assigned in one branch only, or
        with a different type or shape in each, stays local to its branch: using it after the
        `if` is an error whose hint says why.
        """
        (then_region, then_scope, then_values) = then_branch
        (else_region, else_scope, else_values) = else_branch
        joined: list[str] = []
        for name in then_scope:
            if name in carried or name not in else_scope or self.find(name) is not None:
                continue
            first, second = then_scope[name], else_scope[name]
            if isinstance(first, Memory) and first == second:  # the same tile either way
                self.scopes[-1][name] = first
                continue
            if isinstance(first, Memory) and isinstance(second, Memory):
                continue  # note_memory_choices refuses a use after the if
            # the same constant either way (repr: 1 is not 1.0 nor true, -0.0 is not 0.0)
            both = isinstance(first, Const) and isinstance(second, Const)
            if both and repr(first.value) == repr(second.value):
                self.scopes[-1][name] = first
                continue
            runtime = next((v for v in (first, second) if isinstance(v, Runtime)), None)
            like = None if runtime is None else runtime.type
            if runtime is not None and runtime.is_element:  # joined as branch_value joins it
                like = ScalarType(runtime.dtype)
            with self.builder.at(then_region):
                a = self.branch_value(first, like, node)
            with self.builder.at(else_region):
                b = self.branch_value(second, like, node)
                if a is not None and b is not None:  # an annotation that disagrees converts
                    b = self.in_layout_of(a, b)
            if a is None or b is None or not agree(a.type, b.type):
                self.branch_conflicts[name] = (
                    f"'{name}' is {first.describe()} in one branch of the if at line "
                    f"{node.span.line} and {second.describe()} in the other; give it one "
                    "dtype and shape in both to use it after the if"
                )
                continue
            then_values.append(a)
            else_values.append(b)
            joined.append(name)
        return joined

    def note_memory_choices(
        self, then_scope: dict, else_scope: dict, then_spans: dict, node: ast.If
    ) -> None:
        """Remember the names that hold a different shared tile or tensor in each branch."""
        for name, first in then_scope.items():
            second = else_scope.get(name)
            if not (isinstance(first, Memory) and isinstance(second, Memory)):
                continue
            if first != second and self.find(name) is None:
                self.memory_choices[name] = (self.scopes, then_spans[name], node, first, second)

    def memory_chosen_at_run_time(
        self, name: str, use: ast.Node, at: ast.Span, node: ast.If, first: Memory, second: Memory
    ) -> LpirError:
        """The error for a use of a name that each branch of `node` gave other memory."""
        memory = first.value.type
        used = f"and is used after it at line {use.span.line}"
        if isinstance(memory, SharedType):
            shape = ", ".join(map(str, memory.shape))
            rest = ", ".join([":"] * len(memory.shape))
            return self.error(
                f"a shared tile cannot be chosen at run time: '{name}' is a different shared "
                f"tile in each branch of the if at line {node.span.line} {used}",
                at,
                f"index one shared tile instead: allocate {name} = shared<{memory.dtype.name}>"
                f"[2, {shape}], store each choice in {name}[0, {rest}] and {name}[1, {rest}], "
                f"and read {name}[which, {rest}] with which = 0 or 1 set by the if",
            )
        return self.error(
            f"a tensor cannot be chosen at run time: '{name}' is the tensor {first.name} in one "
            f"branch of the if at line {node.span.line} and {second.name} in the other, {used}",
            at,
            f"load in each branch ({name} = load({first.name}[...]) and {name} = "
            f"load({second.name}[...])) and use the loaded tile after the if, or store in "
            "each branch",
        )

    def branch_value(self, value: SemanticValue, like: Any, node: ast.Node) -> Value | None:
        """A branch's value of a joined name as an IR value (constants take the other's type;
        an element of a register tile, `p[2]`, joins as the scalar it holds, as a loop carries
        it)."""
        if isinstance(value, Runtime):
            return self.as_runtime(self.scalar_of(value), node)
        if isinstance(value, Const):
            if like is None:
                return self.as_runtime(value, node)
            try:
                return self.constant_like(value, like, node)
            except LpirError:
                return None
        return None


def _type_text(type_: Any) -> str:
    """A scalar's or a tile's type as the source would read it: "f32", "f32[64, 64]"."""
    shape = getattr(type_, "shape", None)
    dims = f"[{', '.join(map(str, shape))}]" if shape is not None else ""
    return f"{type_.dtype.name}{dims}" if dims else f"{with_article(type_.dtype.name)} scalar"


def _shown(value: object) -> str:
    return value.name if isinstance(value, DType) else str(value)


def lower_kernel(program: ast.Program, kernel_def: ast.KernelDef, params: dict) -> Module:
    """The tile-IR module of `kernel_def` specialized for `params` (every parameter given)."""
    return KernelLowering(program, kernel_def, params).lower()


__all__ = ["I32", "KernelLowering", "assigned_names", "lower_kernel"]
