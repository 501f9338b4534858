"""vectorize: mark each thread's memory accesses with the widest legal vector width.

Requires: thread IR after bit-packing (every access is to whole bytes or wider).
Guarantees: each `ld`/`st` carries `vector = W` when its lanes split into groups of W
consecutive lanes whose offsets are consecutive, and every group's first address
(base + offset) is a multiple of W — so a backend may issue one W-wide access per group. W is a
power of two, at most the target's widest access (64 bytes on the CPU, 16 on a GPU) and, in
swizzled shared memory, at most the swizzle's unit of 2**base elements. The facts
come from the index analysis (the divisibility of the base) and the constant lane offsets.
An access whose lanes would form wider groups in the order of their offsets (a thread holding
two interleaved runs, as `stack` leaves them) takes that order: a store shuffles its value
(and mask) first, a load shuffles what it read back. Nothing is computed differently.
"""

from __future__ import annotations

import math

from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Module, Operation, Value
from lpir.ir.ops import LoadThreadOp, ShuffleOp, StoreThreadOp
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import VectorType
from lpir.targets import get_target


def widest_vector(offsets: tuple[int, ...], base_divisor: int, limit: int) -> int:
    """The largest power-of-two W <= limit such that lanes form aligned groups of W."""
    width = 1
    candidate = 2
    while candidate <= limit and len(offsets) % candidate == 0:
        if base_divisor % candidate:
            break
        if not _groups_contiguous(offsets, candidate):
            break
        width = candidate
        candidate *= 2
    return width


def _groups_contiguous(offsets: tuple[int, ...], width: int) -> bool:
    for start in range(0, len(offsets), width):
        first = offsets[start]
        if first % width:
            return False
        if any(offsets[start + i] != first + i for i in range(width)):
            return False
    return True


class _Vectorizer(Rewriter):
    def __init__(self, vector_bytes: int):
        super().__init__()
        self.vector_bytes = vector_bytes

    def rewrite(self, op: Operation) -> list[Value]:
        if not isinstance(op, LoadThreadOp | StoreThreadOp):  # (st_bits is neither)
            return self.copy(op).results
        if isinstance(op.base.type, VectorType):  # a base per lane: a gather or scatter
            return self.copy(op).results
        width, order = self.widths(op)
        if order is None:
            new = self.copy(op)
        else:  # the lanes after memory and base (a store's value, a mask) take the new order
            operands = self.map_all(op.operands)
            operands[2:] = [self.shuffle(v, order) for v in operands[2:]]
            new = self.copy(op, operands)
            new.attributes["offsets"] = tuple(op.offsets[i] for i in order)
        if width > 1:
            new.attributes["vector"] = width
        else:
            new.attributes.pop("vector", None)
        if new.results and order is not None:  # a load's lanes, or a fetching atomic's olds
            back = [order.index(lane) for lane in range(len(order))]  # lane i was read at
            return [self.shuffle(new.results[0], back)]
        return new.results

    def widths(self, op: LoadThreadOp | StoreThreadOp) -> tuple[int, list[int] | None]:
        """The vector width of `op` as its lanes stand, or, where their offsets' order gives
        wider groups, that width and the order (lane indices by offset)."""
        facts = self.analysis.facts(op.base)
        divisor = facts.divisor if facts.divisor > 0 else 1 << 30
        itemsize = max(1, op.access_dtype.nbits // 8)
        limit = max(1, self.vector_bytes // itemsize)
        swizzle = op.memory_type.swizzle
        if swizzle is not None:  # a run must stay inside the unit the swizzle moves whole
            limit = min(limit, 1 << swizzle.base)
        width = widest_vector(op.offsets, divisor, limit)
        order = sorted(range(len(op.offsets)), key=lambda lane: op.offsets[lane])
        if order == list(range(len(order))) or len(set(op.offsets)) != len(order):
            return width, None
        sorted_width = widest_vector(tuple(op.offsets[i] for i in order), divisor, limit)
        return (sorted_width, order) if sorted_width > width else (width, None)

    def shuffle(self, vector: Value, indices: list[int]) -> Value:
        return self.builder.add(ShuffleOp.create([vector], indices))


@register_pass
class VectorizePass(Pass):
    name = "vectorize"
    stage = "thread"

    def run(self, module: Module) -> Module:
        return _Vectorizer(get_target(self.target).vector_bytes).run(module)


__all__ = ["VectorizePass", "math"]
