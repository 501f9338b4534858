"""`verify()`: the invariants every IR module must keep between passes.

Checked here, for every kernel:

* every operand is defined before its use, in an enclosing region (structured dominance);
* `yield` ends every `for`/`if` region and appears nowhere else;
* each op's `signature`: operand, result and region counts, required attributes and the kinds
  of their values (`lpir.ir.signature`);
* each op's own `verify_()`, and the result types that `create()` infers from its operands and
  attributes (`Operation.recreate()`), layouts aside;
* tile IR holds no thread-level ops and thread IR holds no register tiles;
* block counts are 0 or more (0: an empty grid, whose tensors may be empty) and within the
  launch limits (`MAX_BLOCKS`); the thread count is 1 to `MAX_THREADS` (1024), as the language
  requires;
* a register tile's layout (once it has one) covers its shape with the kernel's thread count;
  with `require_layouts=True` every register tile must have one (after layout-selection);
* each tile op's layouts are the ones lower-to-threads computes it in (`lpir.ir.layout_checks`:
  an elementwise op's result in its operands' layout, a reduction's in the operand's reduced,
  a broadcast's operand holding in each thread what the result repeats there, ...).
"""

from __future__ import annotations

from lpir.dtypes import dtype
from lpir.errors import LpirError, VerifyError
from lpir.ir.core import Kernel, Module, Operation, Region, Value
from lpir.ir.grid import MAX_BLOCKS, MAX_THREADS, RuntimeCount, count_text, is_empty
from lpir.ir.layout_checks import check_layouts
from lpir.ir.ops import thread as thread_ops
from lpir.ir.ops import thread_memory as thread_memory_ops
from lpir.ir.ops.control import ForOp, IfOp, YieldOp
from lpir.ir.signature import check_signature
from lpir.ir.types import GlobalType, ScalarType, TileType, Type, VectorType

_THREAD_ONLY = tuple(
    cls
    for module in (thread_ops, thread_memory_ops)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, Operation) and cls is not Operation
)


def verify(module: Module, require_layouts: bool = False) -> Module:
    """Check `module`; raise `VerifyError` at the first broken invariant; return the module."""
    for kernel in module.kernels:
        _KernelVerifier(kernel, require_layouts).run()
    return module


class _KernelVerifier:
    def __init__(self, kernel: Kernel, require_layouts: bool):
        self.kernel = kernel
        self.require_layouts = require_layouts
        self.defined: list[set[int]] = []

    def run(self) -> None:
        kernel = self.kernel
        if kernel.stage not in ("tile", "thread"):
            raise VerifyError(f"unknown stage {kernel.stage!r}", kernel.location)
        # A block count of 0 is an empty grid (an empty batch): a call that runs no block.
        known = [count for count in kernel.grid if isinstance(count, int)]
        if kernel.threads < 1 or min(known, default=0) < 0:
            grid = ", ".join(count_text(count) for count in kernel.grid)
            raise VerifyError(
                f"blocks({grid}) threads({kernel.threads}): block counts must not "
                "be negative and the thread count must be positive",
                kernel.location,
            )
        self.check_launch_limits()
        self.check_runtime_sizes()
        self.region(self.kernel.body, terminated=False)

    def check_launch_limits(self) -> None:
        """The language's limits on a launch, for IR text too: a backend would otherwise emit
        `__launch_bounds__(100000)` or a grid no GPU launches."""
        kernel = self.kernel
        if kernel.threads > MAX_THREADS:
            raise VerifyError(
                f"threads({kernel.threads}) is out of range",
                kernel.threads_location or kernel.location,
                f"use 1 to {MAX_THREADS} threads",
            )
        places = kernel.grid_locations or [None] * 3
        for axis, (count, limit) in enumerate(zip(kernel.grid, MAX_BLOCKS)):
            if isinstance(count, int) and count > limit:
                raise VerifyError(
                    f"the block count along {'xyz'[axis]} is {count}; at most {limit} blocks "
                    f"go along {'xyz'[axis]}",
                    places[axis] or kernel.location,
                    "give each block a larger tile, or loop over tiles inside a block",
                )

    def check_runtime_sizes(self) -> None:
        """A run-time first dimension (`global f16[%m, 64]`) and a run-time block count read
        i32 scalar arguments of the kernel."""
        scalars = {
            arg.name_hint: arg.type
            for arg in self.kernel.args
            if isinstance(arg.type, ScalarType) and arg.name_hint is not None
        }
        names = [arg.type.extent for arg in self.kernel.args if isinstance(arg.type, GlobalType)]
        for count in self.kernel.grid:
            if isinstance(count, RuntimeCount):
                names += sorted(count.arguments())
        for name in names:
            if name is not None and scalars.get(name) != ScalarType(dtype("i32")):
                raise VerifyError(
                    f"%{name} gives a size at run time, but it is not an i32 argument of "
                    f"{self.kernel.name}",
                    self.kernel.location,
                )

    def region(self, region: Region, terminated: bool) -> None:
        self.defined.append({id(a) for a in region.args})
        for arg in region.args:
            self.check_type(arg, None)
        for index, op in enumerate(region.ops):
            is_last = index == len(region.ops) - 1
            if isinstance(op, YieldOp) and not (terminated and is_last):
                raise op.error("must be the last op of a for or if region")
            self.op(op)
        if terminated and not isinstance(region.terminator, YieldOp):
            raise VerifyError("region does not end in 'yield'", self.kernel.location)
        self.defined.pop()

    def op(self, op: Operation) -> None:
        for operand in op.operands:
            if not any(id(operand) in scope for scope in self.defined):
                raise op.error(f"operand {operand.name_hint or '?'} is used before it is defined")
        if self.kernel.stage == "tile" and isinstance(op, _THREAD_ONLY):
            raise op.error("thread-level op in a tile-IR kernel")
        check_signature(op)
        try:
            op.verify_()
            _check_inferred_types(op)
        except VerifyError:
            raise
        except LpirError as error:  # create() rejects the operands: a TypeCheckError
            if f"'{op.name}'" in error.message:
                raise VerifyError(error.message, op.location, error.hint) from None
            raise op.error(error.message, error.hint) from None
        except Exception as error:  # a malformed op must not crash the verifier
            raise op.error(f"malformed op: {error}") from None
        for region in op.regions:
            self.region(region, terminated=isinstance(op, ForOp | IfOp))
        for result in op.results:
            self.check_type(result, op)
        if self.kernel.stage == "tile":
            check_layouts(op)
        self.defined[-1].update(id(r) for r in op.results)

    def check_type(self, value: Value, op: Operation | None) -> None:
        type_ = value.type
        location = op.location if op is not None else self.kernel.location
        shape = getattr(type_, "shape", ())
        # a tensor of an empty call (a block count of 0) may be empty; it is never accessed
        least = 0 if isinstance(type_, GlobalType) and is_empty(self.kernel.grid) else 1
        if (isinstance(type_, VectorType) and type_.size < 1) or any(
            size < least for size in shape
        ):
            raise VerifyError(f"{type_} has no elements", location)
        if isinstance(type_, VectorType) and self.kernel.stage == "tile":
            raise VerifyError(f"vector value {type_} in tile IR", location)
        if not isinstance(type_, TileType):
            return
        if self.kernel.stage == "thread":
            raise VerifyError(f"register tile {type_} left in thread IR", location)
        layout = type_.layout
        if layout is None:
            if self.require_layouts:
                raise VerifyError(f"register tile {type_} has no layout", location)
            return
        if tuple(layout.shape) != type_.shape:
            raise VerifyError(f"layout {layout} does not cover the shape of {type_}", location)
        if layout.threads != self.kernel.threads:
            raise VerifyError(
                f"layout {layout} spans {layout.threads} threads, the kernel has "
                f"{self.kernel.threads}",
                location,
            )


def _without_layout(type_: Type) -> Type:
    return type_.with_layout(None) if isinstance(type_, TileType) else type_


def _check_inferred_types(op: Operation) -> None:
    """Compare `op` with what `create()` builds from its operands and attributes."""
    expected = op.recreate()
    if expected is None:
        return
    if expected.name != op.name:
        raise op.error(f"these operands make it a '{expected.name}'")
    got = [_without_layout(r.type) for r in op.results]
    inferred = [_without_layout(r.type) for r in expected.results]
    if got != inferred:
        shown = ", ".join(map(str, got)) or "nothing"
        wanted = ", ".join(map(str, inferred)) or "nothing"
        raise op.error(f"gives {shown}, but its operands and attributes give {wanted}")
