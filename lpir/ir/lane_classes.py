"""Which lanes of a thread-IR vector provably hold equal values.

A masked access is cheap where its mask is one value across each group of lanes it moves
together (a 16-byte group, the lanes that share a byte of a packed tensor): the CUDA emitter
then makes one predicated wide access, and bit-packing needs no per-lane zeroing. Lanes are
equal by construction (a splat, repeated constants, shuffles and elementwise ops of such) or by
arithmetic: an edge mask `C < splat(n)` compares lane constants C with the room left in the
tensor, and where the index analysis proves n a multiple of d (K and the tile's step multiples
of 32), constants within one block of d compare alike whatever n is (`rounded_constant`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from lpir.ir.analysis import IndexAnalysis
from lpir.ir.core import Operation, Value
from lpir.ir.ops import (
    BinaryOp,
    CastOp,
    SelectOp,
    ShuffleOp,
    SplatOp,
    UnaryOp,
    VectorConstantOp,
)
from lpir.ir.types import VectorType, as_vector

#: the comparison with its operands swapped: `n < c` is `c > n`
MIRRORED = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}


def rounded_constant(comparison: str, c: int, d: int) -> int:
    """The constant c' with `c' OP n` equal to `c OP n` for every multiple n of d, and c' the
    same for all c of a block of d. With n = d * q: c < n iff c // d < q iff d * (c // d) < n,
    and c <= n iff c - 1 < n. (`>=` and `>` are the negations of `<` and `<=`.)"""
    if comparison in ("lt", "ge"):
        return d * (c // d)
    assert comparison in ("le", "gt")
    return d * ((c - 1) // d) + 1


def compared_with_splat(
    op: BinaryOp, analysis: IndexAnalysis
) -> tuple[VectorConstantOp, SplatOp, str, int] | None:
    """(constants, splat, comparison as `constants OP splat`, d) where `op` compares integer
    lane constants with a splat (either side) of a value the analysis proves a multiple of d
    (1 where it knows none); else None."""
    if op.name not in MIRRORED or not isinstance(op.result.type, VectorType):
        return None
    left, right = (v.owner for v in op.operands)
    name = op.name
    if isinstance(left, SplatOp):
        left, right, name = right, left, MIRRORED[name]
    if not (isinstance(left, VectorConstantOp) and isinstance(right, SplatOp)):
        return None
    if not as_vector(left.result.type).dtype.is_int:
        return None
    divisor = analysis.facts(right.operands[0]).divisor
    return left, right, name, max(divisor, 1)  # (0: n is 0, a multiple of anything)


def lane_classes(
    value: Value,
    analysis: IndexAnalysis | None = None,
    memo: dict[int, tuple[int, ...]] | None = None,
) -> tuple[int, ...]:
    """A class per lane of a vector such that lanes of one class provably hold equal values
    (comparisons with multiples need the kernel's `analysis`)."""
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    size = as_vector(value.type).size
    op = value.owner
    classes: tuple[int, ...] = tuple(range(size))
    if isinstance(op, SplatOp):
        classes = (0,) * size
    elif isinstance(op, VectorConstantOp):
        classes = _renumber(op.values)
    elif isinstance(op, BinaryOp | SelectOp | UnaryOp | CastOp):
        classes = _compared_classes(op, analysis) or _operand_classes(op, analysis, memo)
    elif isinstance(op, ShuffleOp):
        joined: list[tuple[int, int]] = []
        for number, source in enumerate(op.operands):
            joined += [(number, c) for c in lane_classes(source, analysis, memo)]
        classes = _renumber([joined[i] for i in op.indices])
    memo[id(value)] = classes
    return classes


def _compared_classes(op: Operation, analysis: IndexAnalysis | None) -> tuple[int, ...] | None:
    if analysis is None or not isinstance(op, BinaryOp):
        return None
    compared = compared_with_splat(op, analysis)
    if compared is None:
        return None
    constants, _, name, divisor = compared
    return _renumber(rounded_constant(name, c, divisor) for c in constants.values)


def _operand_classes(
    op: Operation, analysis: IndexAnalysis | None, memo: dict[int, tuple[int, ...]]
) -> tuple[int, ...]:
    """Lanes equal in every vector operand of an elementwise op are equal in its result."""
    size = as_vector(op.results[0].type).size
    vectors = [v for v in op.operands if isinstance(v.type, VectorType)]
    per_operand = [lane_classes(v, analysis, memo) for v in vectors]
    return _renumber(list(zip(*per_operand))) if per_operand else (0,) * size


def _renumber(keys: Iterable[Hashable]) -> tuple[int, ...]:
    ids: dict[Hashable, int] = {}
    return tuple(ids.setdefault(key, len(ids)) for key in keys)


__all__ = ["MIRRORED", "compared_with_splat", "lane_classes", "rounded_constant"]
