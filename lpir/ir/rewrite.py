"""Build new IR from old: cloning and op-by-op rewriting.

Passes return new modules and leave their input untouched. `Rewriter` walks a module and
rebuilds it op by op; a pass subclasses it and overrides `rewrite(op)` to emit something else
for some ops (through `self.builder`), returning the values that replace the op's results.
Values are looked up through `self.map`, which translates old values to new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from lpir.ir.analysis import IndexAnalysis
from lpir.ir.core import Builder, Kernel, Module, Operation, Region, Value
from lpir.ir.ops import ForOp
from lpir.ir.types import TileType, Type


class Rewriter:
    """Rebuilds a module; override `rewrite` to change ops (the default copies them)."""

    def __init__(self) -> None:
        self.builder = Builder()
        self.values: dict[int, Value] = {}
        self._kernel: Kernel | None = None
        self._analysis: IndexAnalysis | None = None

    @property
    def kernel(self) -> Kernel:
        """The kernel being rewritten (set by `run_kernel`)."""
        if self._kernel is None:
            raise RuntimeError("a Rewriter's kernel is known only inside run_kernel")
        return self._kernel

    @property
    def analysis(self) -> IndexAnalysis:
        """What is known of the integer values of the kernel being rewritten (the input's,
        analysed on first use)."""
        if self._analysis is None:
            self._analysis = IndexAnalysis(self.kernel)
        return self._analysis

    # ---- value mapping ------------------------------------------------------------------------
    def map(self, value: Value) -> Value:
        """The new value standing for an old one (values defined outside the walk stay)."""
        return self.values.get(id(value), value)

    def map_all(self, values: Sequence[Value]) -> list[Value]:
        return [self.map(v) for v in values]

    def replace(self, old: Value, new: Value) -> None:
        self.values[id(old)] = new

    # ---- walking ------------------------------------------------------------------------------
    def run(self, module: Module) -> Module:
        return Module([self.run_kernel(k) for k in module.kernels])

    def run_kernel(self, kernel: Kernel) -> Kernel:
        self._kernel, self._analysis = kernel, None
        args = [self.new_argument(a) for a in kernel.args]
        body = Region(args)
        with self.builder.at(body):
            self.rewrite_region_ops(kernel.body)
        new_kernel = Kernel(
            kernel.name,
            kernel.params,
            body,
            kernel.grid,
            kernel.threads,
            self.new_stage(kernel),
            kernel.location,
        )
        new_kernel.grid_locations = kernel.grid_locations
        return new_kernel

    def new_stage(self, kernel: Kernel) -> str:
        return kernel.stage

    def new_argument(self, arg: Value) -> Value:
        new = Value(arg.type, arg.name_hint)
        self.replace(arg, new)
        return new

    def rewrite_region_ops(self, region: Region) -> None:
        for op in region.ops:
            self.rewrite_op(op)

    def rewrite_op(self, op: Operation) -> None:
        """Rewrite one op at its location and map its results to what replaces them."""
        saved = self.builder.location
        self.builder.location = op.location
        results = self.rewrite(op)
        self.builder.location = saved
        if results is None:
            return
        for old, new in zip(op.results, results):
            self.replace(old, new)

    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        """Emit the replacement of `op`; return the values standing for its results."""
        return self.copy(op).results

    def copy(
        self,
        op: Operation,
        operands: Sequence[Value] | None = None,
        result_types: Sequence[Type] | None = None,
    ) -> Operation:
        """Insert a copy of `op`: operands mapped (or `operands`), results of the same types (or
        `result_types`), regions rewritten recursively."""
        regions = [self.copy_region(r) for r in op.regions]
        new = type(op)(
            op.name,
            self.map_all(op.operands) if operands is None else operands,
            [r.type for r in op.results] if result_types is None else result_types,
            dict(op.attributes),
            regions,
            op.location,
            [r.name_hint for r in op.results],
        )
        return self.builder.insert(new)

    def rebuilt_loop(self, loop: ForOp, inits: Sequence[Value]) -> ForOp:
        """Insert a `for` like `loop` (bounds mapped, names, attributes and location kept)
        that starts from `inits`, and map the old loop's induction variable and iteration
        arguments to the new one's; the caller fills its body and maps its results."""
        lower, upper, step = self.map_all(loop.operands[:3])
        new = ForOp.create(
            lower,
            upper,
            step,
            inits,
            loop.induction_variable.name_hint,
            [a.name_hint for a in loop.iter_args],
            [r.name_hint for r in loop.results],
        )
        new.attributes = dict(loop.attributes)
        new.location = loop.location
        self.builder.insert(new)
        self.replace(loop.induction_variable, new.induction_variable)
        for old, arg in zip(loop.iter_args, new.iter_args):
            self.replace(old, arg)
        return new

    def region_arg_type(self, arg: Value) -> Type:
        """The type a copied region's argument gets (a rewriter that retypes values, e.g.
        with layouts or as thread vectors, overrides this)."""
        return arg.type

    def copy_region(self, region: Region) -> Region:
        args = [Value(self.region_arg_type(a), a.name_hint) for a in region.args]
        for old, new in zip(region.args, args):
            self.replace(old, new)
        new_region = Region(args)
        with self.builder.at(new_region):
            self.rewrite_region_ops(region)
        return new_region


class Relayout(Rewriter):
    """Rebuilds a kernel with every register tile's layout replaced by
    `relayout(layout, factor)`, to run with threads / factor threads (drop-replicas,
    fold-threads: tile IR depends on the thread count only through its layouts)."""

    def __init__(self, relayout: Callable, factor: int):
        super().__init__()
        self.relayout = relayout
        self.factor = factor

    def retyped(self, type_: Type) -> Type:
        if isinstance(type_, TileType) and type_.layout is not None:
            return type_.with_layout(self.relayout(type_.layout, self.factor))
        return type_

    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        return self.copy(op, result_types=[self.retyped(r.type) for r in op.results]).results

    def region_arg_type(self, arg: Value) -> Type:
        return self.retyped(arg.type)

    def run_kernel(self, kernel: Kernel) -> Kernel:
        if self.factor == 1:
            return Rewriter().run_kernel(kernel)
        new = super().run_kernel(kernel)
        new.threads = kernel.threads // self.factor
        return new


def tile_types(kernel: Kernel) -> Iterator[TileType]:
    """The type of every register tile with a layout that `kernel` defines (op results and
    region arguments)."""
    for op in kernel.walk():
        values = list(op.results) + [a for region in op.regions for a in region.args]
        for value in values:
            if isinstance(value.type, TileType) and value.type.layout is not None:
                yield value.type


def clone_module(module: Module) -> Module:
    """A deep copy of `module` with fresh values."""
    return Rewriter().run(module)
