"""Launch grids, whose block counts may be computed from scalar arguments at each call.

A kernel's grid is three counts (x, y, z). A count is an int, or a `RuntimeCount`: integer
arithmetic of the kernel's i32 scalar arguments and constants, as the source wrote it
(`blocks(cdiv(m, 64), 8)` of an argument `m: i32`), printed in the IR as `cdiv(%m, 64)`.
Such a grid is computed by every launcher at every call (`launch_grid`); the compiler knows
only that a run-time count is at most the launch limit of its axis (`grid_bounds`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lpir.errors import ArgumentError

if TYPE_CHECKING:
    from lpir.ir.core import Kernel

# the most blocks along x, y, z: CUDA's launch limits (and block.x is an i32)
MAX_BLOCKS = (2**31 - 1, 65535, 65535)
# the most threads in a block: CUDA's limit, which the CPU backend keeps too
MAX_THREADS = 1024

# operators of a run-time count: the language's integer operators and builtins on i32
BINARY_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
CALLS = ("cdiv", "min", "max")


@dataclass(frozen=True)
class RuntimeCount:
    """A block count computed at each call: `op` "arg" reads the i32 argument `name`;
    the others ("add", "sub", "mul", "div": C's truncating division, "cdiv", "min", "max")
    combine two operands."""

    op: str
    operands: tuple[RuntimeCount | int, ...] = ()
    name: str | None = None

    @staticmethod
    def argument(name: str) -> RuntimeCount:
        return RuntimeCount("arg", name=name)

    def evaluate(self, scalars: Mapping[str, int]) -> int:
        """The count for these argument values (by name); ZeroDivisionError for a divisor 0."""
        if self.op == "arg":
            assert self.name is not None
            return int(scalars[self.name])
        a, b = (_value(operand, scalars) for operand in self.operands)
        return _wrapped(_COMBINE[self.op](a, b))

    def arguments(self) -> set[str]:
        """The names of the arguments it reads."""
        if self.op == "arg":
            assert self.name is not None
            return {self.name}
        return set().union(*(o.arguments() for o in self.operands if isinstance(o, RuntimeCount)))

    def __str__(self) -> str:
        if self.op == "arg":
            return f"%{self.name}"
        a, b = self.operands
        if self.op in CALLS:
            return f"{self.op}({count_text(a)}, {count_text(b)})"
        return f"({a} {BINARY_SYMBOLS[self.op]} {b})"


Count = int | RuntimeCount


def _value(operand: Count, scalars: Mapping[str, int]) -> int:
    return operand if isinstance(operand, int) else operand.evaluate(scalars)


def _c_division(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def count_text(count: Count) -> str:
    """A count as the IR prints it (a run-time count without its outer parentheses)."""
    text = str(count)
    return text[1:-1] if isinstance(count, RuntimeCount) and text.startswith("(") else text


def grid_text(grid: Sequence[Count]) -> str:
    """The counts as `blocks(...)` shows them: "4, 1, 1", "cdiv(%m, 16), 8, 1"."""
    return ", ".join(count_text(count) for count in grid)


def is_static(grid: Sequence[Count]) -> bool:
    """Whether every block count is known at compile time."""
    return all(isinstance(count, int) for count in grid)


def static_grid(grid: Sequence[Count]) -> tuple[int, ...] | None:
    """The counts where all are known at compile time, else None."""
    counts = [count for count in grid if isinstance(count, int)]
    return tuple(counts) if len(counts) == len(grid) else None


def is_empty(grid: Sequence[Count]) -> bool:
    """Whether a count known at compile time is 0: no call runs a block."""
    return any(count == 0 for count in grid if isinstance(count, int))


def grid_bounds(grid: Sequence[Count]) -> tuple[int, ...]:
    """The most blocks each axis may have: a known count, or for a run-time count the least
    of the axis's launch limit and what its arithmetic gives of any i32 arguments
    (`cdiv(%m, 16)`: 2^27 blocks, so block.x * 16 stays inside i32 and the index analysis
    keeps its bounds)."""
    bounds = []
    for axis, count in enumerate(grid):
        if isinstance(count, int):
            bounds.append(count)
            continue
        reach = _interval(count)
        top = MAX_BLOCKS[axis] if reach is None else min(MAX_BLOCKS[axis], max(reach[1], 0))
        bounds.append(top)
    return tuple(bounds)


_I32 = (-(2**31), 2**31 - 1)


def _interval(count: Count) -> tuple[int, int] | None:
    """The least and greatest values of a count over all i32 argument values (None where a
    divisor may be 0): the corners of each operation, monotonic in each operand."""
    if isinstance(count, int):
        return count, count
    if count.op == "arg":
        return _I32
    a, b = (_interval(operand) for operand in count.operands)
    if a is None or b is None or (count.op in ("div", "cdiv") and b[0] <= 0 <= b[1]):
        return None
    combine = _COMBINE[count.op]
    corners = [combine(x, y) for x in a for y in b]
    if min(corners) < _I32[0] or max(corners) > _I32[1]:
        return None  # (it may wrap: anything)
    return min(corners), max(corners)


def scalar_values(kernel_args: Sequence, arguments: Sequence) -> dict[str, int]:
    """{name: value} of the i32 scalar arguments of a call (`kernel_args`: the kernel's
    argument values; `arguments`: what the call passes, in the same order)."""
    values = {}
    for arg, value in zip(kernel_args, arguments):
        scalar = arg.name_hint is not None and not hasattr(arg.type, "shape")
        if scalar and arg.type.dtype.is_int and not arg.type.dtype.is_bool:
            values[arg.name_hint] = int(value)
    return values


def launch_grid(kernel: Kernel, arguments: Sequence) -> tuple:
    """The blocks along x, y, z of a call of `kernel` with `arguments` (in its arguments'
    order); an ArgumentError, placed at the count in the source, where a count divides by
    zero, is negative or is past the launch limit of its axis."""
    static = static_grid(kernel.grid)
    if static is not None:
        return static
    scalars = scalar_values(kernel.args, arguments)
    counts = []
    for axis, count in enumerate(kernel.grid):
        try:
            value = count if isinstance(count, int) else count.evaluate(scalars)
        except ZeroDivisionError:
            raise _count_error(kernel, axis, scalars, "divides by zero") from None
        if not 0 <= value <= MAX_BLOCKS[axis]:
            limit = "must not be negative" if value < 0 else f"is at most {MAX_BLOCKS[axis]}"
            raise _count_error(kernel, axis, scalars, f"is {value}", f"a block count {limit}")
        counts.append(value)
    return tuple(counts)


def _count_error(
    kernel: Kernel, axis: int, scalars: Mapping, what: str, why: str = ""
) -> ArgumentError:
    count = kernel.grid[axis]
    assert isinstance(count, RuntimeCount)
    shown = ", ".join(f"{name} = {scalars[name]}" for name in sorted(count.arguments()))
    places = kernel.grid_locations
    return ArgumentError(
        f"kernel {kernel.name}'s block count along {'xyz'[axis]}, {count_text(count)}, "
        f"{what} with {shown}{'; ' + why if why else ''}",
        (places[axis] if places and axis < len(places) else None) or kernel.location,
        "pass sizes that make each block count 0 or more and within the launch limits "
        "(2^31 - 1 blocks along x, 65535 along y and z), with non-zero divisors",
    )


def grid_function(kernel: Kernel) -> Callable[[Sequence], tuple[int, ...]]:
    """`launch_grid` of a kernel as a function of a call's arguments, its counts compiled
    once into closures over the arguments' positions: what a launcher calls at every call (a
    walk of the counts in Python cost a small kernel's launch a third again)."""
    static = static_grid(kernel.grid)
    if static is not None:
        return lambda arguments: static
    positions = {arg.name_hint: index for index, arg in enumerate(kernel.args)}
    x, y, z = (_compiled(count, positions) for count in kernel.grid)
    gx, gy, gz = MAX_BLOCKS

    def grid(arguments: Sequence) -> tuple[int, ...]:
        try:
            counts = x(arguments), y(arguments), z(arguments)
        except ZeroDivisionError:
            return launch_grid(kernel, arguments)  # (raises the located error)
        if 0 <= counts[0] <= gx and 0 <= counts[1] <= gy and 0 <= counts[2] <= gz:
            return counts
        return launch_grid(kernel, arguments)

    return grid


def _compiled(count: Count, positions: Mapping[str | None, int]) -> Callable[[Sequence], int]:
    """A count as a closure over a call's arguments (ZeroDivisionError for a divisor 0)."""
    if isinstance(count, int):
        return lambda arguments: count
    if count.op == "arg":
        position = positions[count.name]
        return lambda arguments: int(arguments[position])
    a, b = (_compiled(operand, positions) for operand in count.operands)
    combine = _COMBINE[count.op]
    return lambda arguments: _wrapped(combine(a(arguments), b(arguments)))


def _wrapped(value: int) -> int:
    """An i32 result as the body computes it: wrapped (a count is i32 arithmetic)."""
    return (value + 2**31) % 2**32 - 2**31


_COMBINE: dict[str, Callable[[int, int], int]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "min": min,
    "max": max,
    "div": lambda a, b: _c_division(a, b),
    "cdiv": lambda a, b: -(-a // b),  # the exact ceiling, as the language computes it
}
