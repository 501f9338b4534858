"""Helpers for lower-to-threads: a thread's share of a tile as index arithmetic and slot maps.

A layout's coordinate of (thread t, slot s) along dimension d is a sum of terms of t and terms
of s (`RegisterLayout.coordinate_terms`). The thread part becomes scalar IR computed from
`thread_index`; the slot part is a compile-time list, one entry per slot. Slot maps between two
layouts (which slot of one layout holds the element that another layout puts in slot s) are
computed by enumeration and must not depend on the thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lpir.dtypes import dtype
from lpir.errors import VerifyError
from lpir.ir.core import Builder, Value
from lpir.ir.layout_checks import slot_map, step_slot_maps
from lpir.ir.ops import BinaryOp, ConstantOp
from lpir.layout import RegisterLayout, Term

I32 = dtype("i32")


class IndexBuilder:
    """Emits i32 scalar index arithmetic, folding constants as it goes."""

    def __init__(self, builder: Builder):
        self.builder = builder
        self.constants: dict[int, Value] = {}

    def constant(self, value: int) -> Value:
        return self.builder.add(ConstantOp.create(value, I32))

    def is_constant(self, value: Value, expected: int) -> bool:
        owner = value.owner
        return isinstance(owner, ConstantOp) and owner.value == expected

    def add(self, a: Value | int, b: Value | int) -> Value | int:
        if isinstance(a, int) and isinstance(b, int):
            return a + b
        if isinstance(b, int) and b == 0:
            return a
        if isinstance(a, int) and a == 0:
            return b
        return self.op("add", a, b)

    def sub(self, a: Value | int, b: Value | int) -> Value | int:
        if isinstance(a, int) and isinstance(b, int):
            return a - b
        if isinstance(b, int) and b == 0:
            return a
        return self.op("sub", a, b)

    def mul(self, a: Value | int, b: int) -> Value | int:
        if isinstance(a, int):
            return a * b
        if b == 1:
            return a
        if b == 0:
            return 0
        return self.op("mul", a, b)

    def div(self, a: Value | int, b: int) -> Value | int:
        if isinstance(a, int):
            return a // b
        return a if b == 1 else self.op("div", a, b)

    def rem(self, a: Value | int, b: int) -> Value | int:
        if isinstance(a, int):
            return a % b
        return self.op("rem", a, b)

    def op(self, name: str, a: Value | int, b: Value | int) -> Value:
        return self.builder.add(BinaryOp.create(name, self.value(a), self.value(b)))

    def value(self, a: Value | int) -> Value:
        return self.constant(a) if isinstance(a, int) else a


def thread_digits(
    index: IndexBuilder, terms: Sequence[Term], tid: Value, threads: int
) -> Value | int:
    """sum of (tid / divisor) % modulus * multiplier over `terms` (`lpir.layout.Term`s of the
    thread index) as i32 IR, an int when there are none; the `%` is left out for a digit that
    no thread index below `threads` exceeds."""
    total: Value | int = 0
    for term in terms:
        digit: Value | int = index.div(tid, term.divisor)
        if term.divisor * term.modulus < threads:
            digit = index.rem(digit, term.modulus)
        total = index.add(total, index.mul(digit, term.multiplier))
    return total


def thread_part(index: IndexBuilder, layout: RegisterLayout, dim: int, tid: Value) -> Value | int:
    """The part of coordinate `dim` that depends on the thread: an int or an i32 value."""
    terms = [term for term in layout.coordinate_terms()[dim] if term.source == "thread"]
    return thread_digits(index, terms, tid, layout.threads)


def slot_part(layout: RegisterLayout, dim: int) -> list[int]:
    """The part of coordinate `dim` that depends on the slot, for every slot."""
    slots = np.arange(layout.slots)
    total = np.zeros(layout.slots, dtype=np.int64)
    for term in layout.coordinate_terms()[dim]:
        if term.source == "slot":
            total += term.evaluate(slots)
    return [int(v) for v in total]


def primary_replica(index: IndexBuilder, layout: RegisterLayout, tid: Value) -> Value | None:
    """An i32 that is 0 exactly in the threads that are the first holder of their elements
    (None when the layout is not replicated)."""
    terms = layout.replica_terms()
    if not terms:
        return None
    total: Value | int = 0
    for term in terms:
        digit = index.rem(index.div(tid, term.divisor), term.modulus)
        total = index.add(total, index.mul(digit, term.multiplier))
    return index.value(total)


def required_slot_map(
    target: RegisterLayout,
    source: RegisterLayout,
    project: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[int]:
    result = slot_map(target, source, project)
    if result is None:
        raise _not_held(target, source)
    return result


def required_step_slot_maps(
    target: RegisterLayout, source: RegisterLayout, dim: int, steps: int
) -> list[list[int]]:
    """`required_slot_map` of `target` into `source` with coordinate `dim` replaced by each step
    in range(`steps`) (a dot's k): entry s is the slot map of step s.

    (`lpir.ir.layout_checks.step_slot_maps`, which the verifier checks for dots that have no
    tensor-core form)."""
    maps = step_slot_maps(target, source, dim, steps)
    if maps is None:
        raise _not_held(target, source)
    return maps


def _not_held(target: RegisterLayout, source: RegisterLayout) -> VerifyError:
    """The layouts' mistake, placed at the op being lowered by `ThreadLowering.rewrite`."""
    return VerifyError(
        f"layout {source} does not hold, in each thread, the elements that {target} needs "
        "there (in the same slots in every thread)",
        hint="convert the operand with convert_layout to a layout that holds them: the one "
        "layout-selection gives it, as `lpir opt FILE -p layout-selection` prints",
    )
