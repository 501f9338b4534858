"""The IR's skeleton: values, operations, regions, kernels and modules.

* A `Value` is identified by its object identity; it has a `type` and a `name_hint` that the
  printer turns into a deterministic name.
* An `Operation` has operands, results, attributes (plain Python values: ints, floats, strings,
  dtypes, tuples, layouts) and regions. Concrete ops subclass it, list the textual names they
  answer to in `names`, build themselves through a `create()` classmethod that infers result
  types, and check themselves in `verify_()`.
* A `Region` is one block of ops with arguments (loop induction variables, iteration values).
  Control flow is structured: `for` and `if` own regions; there is no CFG.
* A `Kernel` is one function: compile-time parameters, arguments (global tensors, scalars), a
  launch grid, a thread count and a body region. A `Module` holds kernels.

Both IR levels (tile IR and thread IR) use these classes; `Kernel.stage` says which one a kernel
is at.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from lpir.errors import SourceLocation, VerifyError
from lpir.ir.grid import Count
from lpir.ir.signature import Signature
from lpir.ir.types import Type


class Value:
    """An SSA value: the result of an operation or an argument of a region."""

    __slots__ = ("name_hint", "owner", "type")

    def __init__(self, type_: Type, name_hint: str | None = None):
        self.type = type_
        self.name_hint = name_hint
        self.owner: Operation | Region | None = None

    def __repr__(self) -> str:
        return f"<Value {self.name_hint or '?'}: {self.type}>"


OPERATION_CLASSES: dict[str, type[Operation]] = {}


class Operation:
    """Base class of every IR operation.

    Subclasses set `names` (the op names they implement; an instance's `name` is one of them)
    and `signature` (operand, result and region counts, attribute kinds: see
    `lpir.ir.signature`), give a `create()` classmethod that infers result types, may override
    `verify_()` and, when `create()` can rebuild the op from its operands and attributes,
    `recreate()` so that the verifier checks the result types against it.
    """

    names: ClassVar[tuple[str, ...]] = ()
    signature: ClassVar[Signature] = Signature()

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for name in cls.__dict__.get("names", ()):
            if name in OPERATION_CLASSES:
                raise RuntimeError(f"op name {name!r} registered twice")
            OPERATION_CLASSES[name] = cls

    def __init__(
        self,
        name: str,
        operands: Sequence[Value] = (),
        result_types: Sequence[Type] = (),
        attributes: dict[str, Any] | None = None,
        regions: Sequence[Region] = (),
        location: SourceLocation | None = None,
        result_names: Sequence[str | None] | None = None,
    ):
        if name not in type(self).names:
            raise ValueError(f"{type(self).__name__} does not implement op {name!r}")
        self.name = name
        self.operands = list(operands)
        names = list(result_names) if result_names is not None else [None] * len(result_types)
        self.results = [Value(t, n) for t, n in zip(result_types, names)]
        for result in self.results:
            result.owner = self
        self.attributes = dict(attributes or {})
        self.regions = list(regions)
        for region in self.regions:
            region.parent = self
        self.location = location
        self.parent: Region | None = None

    @property
    def result(self) -> Value:
        """The single result of a one-result op."""
        if len(self.results) != 1:
            raise ValueError(f"{self.name} has {len(self.results)} results, not one")
        return self.results[0]

    def verify_(self) -> None:
        """Check op-specific invariants; raise `VerifyError`. The default checks nothing.

        The verifier calls it after `lpir.ir.signature.check_signature`, so it may take the
        counts and attribute kinds of `signature` for granted.
        """

    def recreate(self) -> Operation | None:
        """The op that `create()` builds from this op's operands and attributes, or None.

        `create()` raises `TypeCheckError` on operands it does not accept and infers the result
        types; the verifier compares them (layouts aside) with this op's.
        """
        return None

    def error(self, message: str, hint: str | None = None) -> VerifyError:
        """A `VerifyError` placed at this op."""
        return VerifyError(f"'{self.name}': {message}", self.location, hint)

    def walk(self) -> Iterator[Operation]:
        """This op, then every op nested in its regions, in program order."""
        yield self
        for region in self.regions:
            yield from region.walk()

    def __repr__(self) -> str:
        return f"<{self.name} -> {', '.join(str(r.type) for r in self.results)}>"


class Region:
    """A single block of operations with block arguments."""

    def __init__(self, args: Sequence[Value] = (), ops: Sequence[Operation] = ()):
        self.args = list(args)
        for arg in self.args:
            arg.owner = self
        self.ops: list[Operation] = []
        self.parent: Operation | Kernel | None = None
        for op in ops:
            self.append(op)

    def append(self, op: Operation) -> Operation:
        op.parent = self
        self.ops.append(op)
        return op

    def walk(self) -> Iterator[Operation]:
        for op in self.ops:
            yield from op.walk()

    @property
    def terminator(self) -> Operation | None:
        return self.ops[-1] if self.ops else None

    @property
    def yielded(self) -> list[Value]:
        """The operands of the region's closing op, its `yield` (none in an empty region)."""
        return list(self.ops[-1].operands) if self.ops else []


class Kernel:
    """One kernel: parameters, arguments, launch shape and body.

    Attributes:
        name: the kernel's name.
        params: compile-time parameters it was specialized with, in declaration order
            (ints and dtypes).
        body: the region whose arguments are the kernel's runtime arguments.
        grid: the number of blocks along x, y, z: ints, or `RuntimeCount`s computed from
            the i32 arguments at each call (`lpir.ir.grid`).
        threads: threads per block.
        stage: "tile" (block-level ops on tiles) or "thread" (what one thread does).
    """

    def __init__(
        self,
        name: str,
        params: dict[str, Any],
        body: Region,
        grid: tuple[Count, Count, Count],
        threads: int,
        stage: str = "tile",
        location: SourceLocation | None = None,
    ):
        self.name = name
        self.params = dict(params)
        self.body = body
        body.parent = self
        self.grid = grid
        self.threads = threads
        self.stage = stage
        self.location = location
        # where each argument is declared, for errors about what a call passes (IR text)
        self.argument_locations: list[SourceLocation] | None = None
        # where each block count is written, for errors about a count computed at a call
        self.grid_locations: list[SourceLocation | None] | None = None
        # where the thread count is written, for errors about it (IR text)
        self.threads_location: SourceLocation | None = None

    @property
    def args(self) -> list[Value]:
        return self.body.args

    def walk(self) -> Iterator[Operation]:
        return self.body.walk()


class Module:
    """A list of kernels, printed and parsed as one text."""

    def __init__(self, kernels: Sequence[Kernel] = ()):
        self.kernels = list(kernels)

    def kernel(self, name: str | None = None) -> Kernel:
        """The kernel called `name`, or the only kernel when `name` is None."""
        if name is None:
            if len(self.kernels) != 1:
                raise ValueError(f"module has {len(self.kernels)} kernels; name one")
            return self.kernels[0]
        for kernel in self.kernels:
            if kernel.name == name:
                return kernel
        raise KeyError(name)

    def walk(self) -> Iterator[Operation]:
        for kernel in self.kernels:
            yield from kernel.walk()

    def __str__(self) -> str:
        from lpir.ir.printer import print_module

        return print_module(self)


class Builder:
    """Appends ops to a region; `with builder.at(region)` moves the insertion point."""

    def __init__(self, region: Region | None = None, location: SourceLocation | None = None):
        self.region = region
        self.location = location

    def insert(self, op: Operation) -> Operation:
        if self.region is None:
            raise ValueError("builder has no insertion region")
        if op.location is None:
            op.location = self.location
        return self.region.append(op)

    def add(self, op: Operation) -> Value:
        """Insert a one-result op and return its result."""
        return self.insert(op).result

    def at(self, region: Region) -> _InsertionPoint:
        return _InsertionPoint(self, region)


class _InsertionPoint:
    def __init__(self, builder: Builder, region: Region):
        self.builder = builder
        self.region = region
        self.saved: Region | None = None

    def __enter__(self) -> Builder:
        self.saved = self.builder.region
        self.builder.region = self.region
        return self.builder

    def __exit__(self, *exc: object) -> None:
        self.builder.region = self.saved


def users_of(scope: Region | Kernel) -> dict[int, list[Operation]]:
    """The ops inside `scope` (nested regions included) that use each value, by the value's
    id, in program order."""
    users: dict[int, list[Operation]] = {}
    for op in scope.walk():
        for operand in op.operands:
            users.setdefault(id(operand), []).append(op)
    return users


def use_counts(scope: Region | Kernel) -> dict[int, int]:
    """How many uses each value has inside `scope`, by the value's id."""
    return {value: len(ops) for value, ops in users_of(scope).items()}
