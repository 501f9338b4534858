"""Integer facts about scalar index values: a range [lo, hi] and a divisor.

Masks and vector widths are decided from these facts: a tile load needs no edge mask when the
largest coordinate it can touch is inside the tensor, and a thread's accesses merge into one
wide access when the address is known to be a multiple of the width.

Facts come from constants, `block_index` (0 .. grid-1), `thread_index` (0 .. threads-1), loop
induction variables (lower .. upper-1, stepping by `step`) and arithmetic on them. Integer
arithmetic wraps: a bound past the result's dtype is dropped, and a divisor other than a power
of two is kept only where the range proves the value inside its dtype, since a wrapped product
of 6 is no multiple of 6 (`_wrapped`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lpir.dtypes import DType
from lpir.ir.core import Kernel, Operation, Region, Value
from lpir.ir.effects import is_pure
from lpir.ir.grid import grid_bounds
from lpir.ir.ops import (
    BinaryOp,
    BlockIndexOp,
    CastOp,
    ConstantOp,
    ForOp,
    LoadThreadOp,
    StoreThreadOp,
    ThreadIndexOp,
)
from lpir.ir.types import ScalarType, SharedType


@dataclass(frozen=True)
class Facts:
    """lo <= value <= hi (None: unbounded), and value % divisor == 0 (divisor 0: value is 0)."""

    lo: int | None
    hi: int | None
    divisor: int

    @property
    def constant(self) -> int | None:
        return self.lo if self.lo is not None and self.lo == self.hi else None

    def nonnegative(self) -> bool:
        return self.lo is not None and self.lo >= 0


UNKNOWN = Facts(None, None, 1)


def constant_facts(value: int) -> Facts:
    return Facts(value, value, abs(value))


def _add(a: Facts, b: Facts) -> Facts:
    lo = a.lo + b.lo if a.lo is not None and b.lo is not None else None
    hi = a.hi + b.hi if a.hi is not None and b.hi is not None else None
    return Facts(lo, hi, math.gcd(a.divisor, b.divisor))


def _negate(a: Facts) -> Facts:
    return Facts(
        -a.hi if a.hi is not None else None, -a.lo if a.lo is not None else None, a.divisor
    )


def _mul(a: Facts, b: Facts) -> Facts:
    divisor = a.divisor * b.divisor
    if a.lo is None or a.hi is None or b.lo is None or b.hi is None:
        return Facts(None, None, divisor)
    corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return Facts(min(corners), max(corners), divisor)


def _div(a: Facts, b: Facts) -> Facts:
    c = b.constant
    if c is None or c <= 0 or a.lo is None or a.lo < 0:  # a divisor > 0 of a value >= 0
        return UNKNOWN
    divisor = a.divisor // c if a.divisor % c == 0 else 1
    return Facts(a.lo // c, a.hi // c if a.hi is not None else None, divisor)


def _rem(a: Facts, b: Facts) -> Facts:
    c = b.constant
    if c is None or c <= 0 or not a.nonnegative():
        return UNKNOWN
    if a.hi is not None and a.hi < c:
        return a
    return Facts(0, c - 1, math.gcd(a.divisor, c))


def _min_max(a: Facts, b: Facts, pick: Callable[[int, int], int]) -> Facts:
    lo = pick(a.lo, b.lo) if a.lo is not None and b.lo is not None else None
    hi = pick(a.hi, b.hi) if a.hi is not None and b.hi is not None else None
    return Facts(lo, hi, math.gcd(a.divisor, b.divisor))


def _shift(a: Facts, b: Facts, left: bool) -> Facts:
    c = b.constant
    if c is None or not 0 <= c < 31:
        return UNKNOWN
    return _mul(a, constant_facts(1 << c)) if left else _div(a, constant_facts(1 << c))


def _wrapped(facts: Facts, dt: DType) -> Facts:
    """The facts of an integer op's result as the target computes it: arithmetic wraps
    modulo 2**bits, which keeps a multiple of a power of two one but not a multiple of 6
    (`a * 6` for a = 715827883 is 2 in i32). Where the range does not prove the exact value
    inside the dtype, only the divisor's power-of-two part is kept. A bound past the dtype is
    dropped: the value may have wrapped anywhere (`block.x * 2147483616` is -64 in block 2, so
    a range [0, 4294967232] would drop x[s :+ 64]'s lower edge mask and read before x)."""
    if facts.lo is not None and facts.hi is not None and dt.min <= facts.lo <= facts.hi <= dt.max:
        return facts
    past = (facts.lo is not None and facts.lo < dt.min) or (
        facts.hi is not None and facts.hi > dt.max
    )
    lo, hi = (None, None) if past else (facts.lo, facts.hi)
    return Facts(lo, hi, facts.divisor & -facts.divisor)


class IndexAnalysis:
    """Facts for the integer scalars of one kernel, computed on demand and cached."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.cache: dict[int, Facts] = {}
        self.loops: dict[int, ForOp] = {}
        for op in kernel.walk():
            if isinstance(op, ForOp):
                self.loops[id(op.induction_variable)] = op

    def facts(self, value: Value) -> Facts:
        key = id(value)
        if key not in self.cache:
            self.cache[key] = UNKNOWN  # guards against cycles through loop-carried values
            self.cache[key] = self.compute(value)
        return self.cache[key]

    def compute(self, value: Value) -> Facts:
        if not getattr(value.type, "dtype", None) or not value.type.dtype.is_int:
            return UNKNOWN
        loop = self.loops.get(id(value))
        if loop is not None:
            return self.induction_facts(loop)
        op = value.owner
        if isinstance(op, ConstantOp):
            return constant_facts(int(op.value))
        if isinstance(op, BlockIndexOp):
            return Facts(0, grid_bounds(self.kernel.grid)[op.axis] - 1, 1)
        if isinstance(op, ThreadIndexOp):
            return Facts(0, self.kernel.threads - 1, 1)
        if isinstance(op, BinaryOp):
            return self.binary(op)
        if isinstance(op, CastOp) and op.operands[0].type.dtype.is_bool:
            return Facts(0, 1, 1)  # (a bool as 0 or 1: cdiv's rounding step)
        return UNKNOWN

    def induction_facts(self, loop: ForOp) -> Facts:
        lower, upper, step = (self.facts(v) for v in (loop.lower, loop.upper, loop.step))
        step_divisor = step.constant if step.constant is not None else step.divisor
        divisor = math.gcd(lower.divisor, abs(step_divisor))
        hi = upper.hi - 1 if upper.hi is not None else None
        if hi is not None and step.constant and lower.constant is not None:
            # The last value actually reached, not just below the upper bound.
            hi = lower.constant + (hi - lower.constant) // step.constant * step.constant
        return Facts(lower.lo, hi, divisor)

    def binary(self, op: BinaryOp) -> Facts:
        a, b = (self.facts(v) for v in op.operands)
        rules = {
            "add": lambda: _add(a, b),
            "sub": lambda: _add(a, _negate(b)),
            "mul": lambda: _mul(a, b),
            "div": lambda: _div(a, b),
            "rem": lambda: _rem(a, b),
            "min": lambda: _min_max(a, b, min),
            "max": lambda: _min_max(a, b, max),
            "shl": lambda: _shift(a, b, True),
            "shr": lambda: _shift(a, b, False),
        }
        rule = rules.get(op.name)
        facts = rule() if rule is not None else UNKNOWN
        step = self.rounded_down_by(op)
        if step:  # a - a % c is c * (a / c): a multiple of c, whatever a's sign
            facts = Facts(facts.lo, facts.hi, math.lcm(facts.divisor, step))
        return _wrapped(facts, op.result.type.dtype)

    def rounded_down_by(self, op: BinaryOp) -> int | None:
        """c where `op` is `sub(a, rem(a, c))` for a positive constant c (a rounded toward
        zero to a multiple of c: a reduction's first partner, `tid - tid % G`), else None."""
        if op.name != "sub":
            return None
        a, remainder = op.operands
        owner = remainder.owner
        if not (isinstance(owner, BinaryOp) and owner.name == "rem" and owner.operands[0] is a):
            return None
        c = self.facts(owner.operands[1]).constant
        return c if c is not None and c > 0 else None


@dataclass
class LoopSlice:
    """The ops of a loop body that compute some values (`loop_slice`), in program order, and
    whether they read the loop's induction variable."""

    ops: list[Operation]
    reads_induction: bool


def loop_slice(values: list[Value], loop: ForOp) -> LoopSlice | None:
    """The pure ops of the loop's body that the values depend on; None when a loop-carried
    value or an impure op (a load, ...) of the body feeds them."""
    in_body = {id(op) for op in loop.body.ops}
    carried = {id(arg) for arg in loop.iter_args}
    needed: set[int] = set()
    pending = list(values)
    reads_induction = False
    while pending:
        value = pending.pop()
        if value is loop.induction_variable:
            reads_induction = True
            continue
        if id(value) in carried:
            return None
        owner = value.owner
        if not isinstance(owner, Operation) or id(owner) not in in_body or id(owner) in needed:
            continue
        if not is_pure(owner):
            return None
        needed.add(id(owner))
        pending.extend(owner.operands)
    return LoopSlice([op for op in loop.body.ops if id(op) in needed], reads_induction)


def stores_whole_into_shared(op: Operation, value: Value) -> bool:
    """Whether `op` is a plain store of all of `value` into shared memory: an `st` of it,
    unmasked, not combining (what a copy straight into shared memory can replace)."""
    return (
        isinstance(op, StoreThreadOp)
        and len(op.operands) == 3
        and op.operands[2] is value
        and not op.attributes.get("combine")
        and isinstance(op.memory.type, SharedType)
    )


def depends_on_block_index(values: list[Value]) -> bool:
    """Whether any of the values is computed (through any chain of ops) from the block index:
    a load whose address does not is the same in every block. A loop's induction variable
    depends on what the loop's bounds depend on (a loop over `range(block.x * R, N, G)` makes its
    loads differ per block), a carried value on its initial and its yielded values."""
    return bool(block_axes_used(values))


def block_axes_used(values: list[Value]) -> set[int]:
    """The axes of the block index (0: x, 1: y, 2: z) the values are computed from (see
    `depends_on_block_index`)."""
    pending, seen, axes = list(values), set(), set()
    while pending:
        value = pending.pop()
        owner = value.owner
        if isinstance(owner, Region) and isinstance(owner.parent, ForOp):
            if id(value) not in seen:
                seen.add(id(value))
                pending.extend(_loop_argument_sources(owner.parent, value))
            continue
        if not isinstance(owner, Operation) or id(owner) in seen:
            continue
        seen.add(id(owner))
        if isinstance(owner, BlockIndexOp):
            axes.add(owner.attributes["axis"])
            continue
        pending.extend(owner.operands)
    return axes


#: blocks that must read a broadcast operand alike for `served_from_cache` to count on the cache
#: (all but one of them hit it)
CACHE_SHARERS = 8


def blocks_sharing(values: list[Value], grid: tuple[int, ...]) -> int:
    """How many blocks of the grid compute the same values: the blocks along the grid's axes
    that do not enter them."""
    used = block_axes_used(values)
    return math.prod(extent for axis, extent in enumerate(grid) if axis not in used)


def served_from_cache(load: LoadThreadOp, kernel: Kernel) -> bool:
    """Whether a global load reads data other blocks read too, so that caches serve it: its
    address is the same in every block (gemv's x), or it is a small broadcast operand — an
    element several threads of the block load alike — that at least `CACHE_SHARERS` blocks
    read alike (a split-K GEMV's share of x, the same for every tile of rows). A weight tile,
    each thread its own elements, is not: it streams from memory, whoever else reads it."""
    address = load.operands[1:]
    grid = grid_bounds(kernel.grid)  # (a run-time count: many blocks)
    if math.prod(grid) > 1 and not depends_on_block_index(address):
        return True
    sharers = blocks_sharing(address, grid)
    return sharers >= CACHE_SHARERS and thread_replicated(load, kernel.threads)


def thread_replicated(load: LoadThreadOp, threads: int) -> bool:
    """Whether some element of a thread-IR load is read by several threads of a block: the
    per-thread addresses, evaluated for every thread index with block indices and loop
    variables at 0, repeat. False when the address is not plain integer arithmetic (or is a
    base per lane)."""
    if not isinstance(load.base.type, ScalarType):
        return False
    base = _per_thread(load.base, threads, {})
    if base is None:
        return False
    addresses = base[:, None] + np.asarray(load.offsets, dtype=np.int64)[None, :]
    return len(np.unique(addresses)) < addresses.size


_INDEX_OPS = frozenset(
    {"add", "sub", "mul", "div", "rem", "min", "max", "and", "or", "xor", "shl", "shr"}
)


def _per_thread(value: Value, threads: int, memo: dict) -> np.ndarray | None:
    """The integer value in each thread ([threads] int64), block indices and loop variables
    taken as 0; None for anything but index arithmetic."""
    if id(value) in memo:
        return memo[id(value)]
    from lpir.interpreter import elementwise as ew  # the interpreter's integer semantics

    owner = value.owner
    result = None
    if not isinstance(owner, Operation) or isinstance(owner, BlockIndexOp):
        result = np.zeros(threads, np.int64)  # a loop variable, an argument, a block index
    elif isinstance(owner, ThreadIndexOp):
        result = np.arange(threads, dtype=np.int64)
    elif isinstance(owner, ConstantOp) and isinstance(owner.value, int):
        result = np.full(threads, owner.value, np.int64)
    elif isinstance(owner, BinaryOp) and owner.name in _INDEX_OPS:
        a, b = (_per_thread(v, threads, memo) for v in owner.operands)
        if a is not None and b is not None:
            dt = owner.result.type.dtype
            result = ew.binary(owner.name, a, b, dt).astype(np.int64)
    memo[id(value)] = result
    return result


def _loop_argument_sources(loop: ForOp, arg: Value) -> list[Value]:
    """What a loop's region argument is made of: the bounds for the induction variable; the
    initial and the yielded value for a carried one."""
    if arg is loop.induction_variable:
        return list(loop.operands[:3])
    index = next(i for i, carried in enumerate(loop.iter_args) if carried is arg)
    yielded = [loop.body.yielded[index]] if loop.body.ops else []
    return [loop.inits[index], *yielded]
