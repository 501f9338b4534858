"""defer-lane-sums: a loop accumulator that adds sums of lanes keeps the lanes instead (CPU).

Requires: thread IR. Guarantees: the same values up to the order of the additions (exact for
integers), the one freedom a dot's sums have on every target:

    %acc = for ... iter_args(%a = %init) {          %w = for ... iter_args(%v = splat(0)) {
      %r = reduce_lanes(%x) {group = g}               ...
      %t = mul(%r, %s)                     ->         %t = mul(%x, shuffle(%s) {lane / g})
      yield(add(%a, %t))                              yield(add(%v, %t))
    }                                               }
                                                    %acc = add(%init, reduce_lanes(%w) {g})

On the CPU, lower-to-threads computes a dot whose thread holds at most a register's lanes of
accumulator slots as wide products summed by `reduce_lanes` (`simt_dot`): a horizontal sum
(shuffles and adds across the lanes of a register) for every slot in every iteration. Where
the loop only adds those sums (each maybe scaled: a group's scale, `acc += dot(w, x) * s`),
the accumulator keeps one register lane per product lane (g times the slots), each iteration
is whole-register FMAs, and the horizontal sums run once, after the loop. The chain from the
`reduce_lanes` to the accumulator's add may hold multiplications by any per-slot factor (each
lane is multiplied by its slot's) and additions of zero (a dot's zero accumulator); every
value in it has that one use. An accumulator is widened only while it stays within
`REGISTER_BUDGET` registers, whose lanes the loop then holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lpir.passes.base import Pass, register_pass
from lpir.passes.canonicalize import splat_constant

from lpir.ir.core import Module, Operation, Value, use_counts
from lpir.ir.loops import Accumulation, accumulations
from lpir.ir.ops import (
    BinaryOp,
    ConstantOp,
    ForOp,
    ReduceLanesOp,
    ShuffleOp,
    SplatOp,
)
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import VectorType, as_vector
from lpir.targets import get_target

# At most this many vector registers of lanes per widened accumulator (AVX-512 has 32): a
# thread's 16 slots of 16 lanes (skinny_wq at BN = 128) leave half for the operands.
REGISTER_BUDGET = 16


@dataclass
class _Chain:
    """How one accumulator's add reaches a `reduce_lanes`: `reduce`, then each op of `ops`
    (multiplications by a per-slot factor, additions of zero) and last `add` into the
    accumulator."""

    reduce: ReduceLanesOp
    ops: list[BinaryOp]
    add: BinaryOp

    @property
    def group(self) -> int:
        return self.reduce.group


def _is_zero(value: Value) -> bool:
    constant = splat_constant(value)
    return constant is not None and constant == 0


def _other(op: Operation, value: Value) -> Value:
    a, b = op.operands
    return b if a is value else a


def _lane_sum_chain(term: Value, uses: dict[int, int]) -> tuple[ReduceLanesOp, list] | None:
    """The `reduce_lanes` (kind sum) that `term` scales or adds zero to, and the ops between
    (innermost first); None if `term` is not such a chain of single-use values."""
    if uses.get(id(term), 0) != 1:
        return None
    op = term.owner
    if isinstance(op, ReduceLanesOp):
        if op.attributes["kind"] != "sum" or op.group < 2:
            return None
        return op, []
    if not isinstance(op, BinaryOp) or op.name not in ("mul", "add"):
        return None
    a, b = op.operands
    if op.name == "add":
        candidates = [b] if _is_zero(a) else [a] if _is_zero(b) else []
    else:
        candidates = [a, b]  # either side may be the lane sum, the other its slot's factor
    for candidate in candidates:
        found = _lane_sum_chain(candidate, uses)
        if found is not None:
            return found[0], [*found[1], op]
    return None


def accumulator_chain(
    carried: Value, accumulation: Accumulation, uses: dict[int, int]
) -> _Chain | None:
    """The chain by which a loop's iteration value `carried` adds lane sums, or None."""
    if not isinstance(carried.type, VectorType):
        return None
    found = _lane_sum_chain(accumulation.term, uses)
    if found is None:
        return None
    reduce, ops = found
    return _Chain(reduce, ops, accumulation.add)


def _fits(chain: _Chain, accumulator: VectorType, register_bits: int) -> bool:
    lanes = accumulator.size * chain.group
    return lanes * accumulator.dtype.nbits <= REGISTER_BUDGET * register_bits


class _DeferLaneSums(Rewriter):
    def __init__(self, register_bits: int):
        super().__init__()
        self.register_bits = register_bits

    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        if isinstance(op, ForOp):
            return self.loop(op)
        return self.copy(op).results

    def chains(self, loop: ForOp) -> dict[int, _Chain]:
        uses = use_counts(loop.body)
        chains = {}
        for index, accumulation in accumulations(loop).items():
            carried = loop.iter_args[index]
            chain = accumulator_chain(carried, accumulation, uses)
            if chain is not None and _fits(chain, as_vector(carried.type), self.register_bits):
                chains[index] = chain
        return chains

    def loop(self, loop: ForOp) -> Sequence[Value]:
        chains = self.chains(loop)
        if not chains:
            return self.copy(loop).results
        inits = self.map_all(loop.inits)
        for index, chain in chains.items():
            inits[index] = self.zeros(as_vector(loop.iter_args[index].type), chain.group)
        new = self.rebuilt_loop(loop, inits)
        self.fill_body(loop, new, chains)
        results = list(new.results)
        for index, chain in chains.items():
            sums = self.builder.add(ReduceLanesOp.create(new.results[index], "sum", chain.group))
            results[index] = self.builder.add(
                BinaryOp.create("add", self.map(loop.inits[index]), sums)
            )
        return results

    def zeros(self, accumulator: VectorType, group: int) -> Value:
        dt = accumulator.dtype
        zero = self.builder.add(ConstantOp.create(0.0 if dt.is_float else 0, dt))
        return self.builder.add(SplatOp.create_vector(zero, accumulator.size * group))

    def fill_body(self, loop: ForOp, new: ForOp, chains: dict[int, _Chain]) -> None:
        roles: dict[int, tuple[str, _Chain]] = {}
        for chain in chains.values():
            roles[id(chain.reduce)] = ("reduce", chain)
            roles.update({id(op): ("step", chain) for op in chain.ops})
            roles[id(chain.add)] = ("add", chain)
        wide: dict[int, Value] = {}  # an old value of a chain -> its lanes, not yet summed
        with self.builder.at(new.body):
            for op in loop.body.ops:
                role = roles.get(id(op))
                if role is None:
                    self.rewrite_op(op)
                    continue
                kind, chain = role
                if kind == "reduce":
                    wide[id(op.result)] = self.map(op.operands[0])
                elif kind == "step":
                    wide[id(op.result)] = self.widened_step(op, wide, chain.group)
                else:
                    term = next(v for v in op.operands if id(v) in wide)
                    carried = self.map(_other(op, term))
                    summed = BinaryOp.create("add", carried, wide[id(term)])
                    self.replace(op.result, self.builder.add(summed))

    def widened_step(self, op: Operation, wide: dict[int, Value], group: int) -> Value:
        """A chain's multiplication or zero addition applied to the lanes: each lane times its
        slot's factor; a zero added to the lanes changes nothing (its sum is added once)."""
        term = next(v for v in op.operands if id(v) in wide)
        if op.name == "add":
            return wide[id(term)]
        factor = self.map(_other(op, term))
        indices = [i // group for i in range(as_vector(factor.type).size * group)]
        source = factor.owner
        if isinstance(source, ShuffleOp) and len(source.operands) == 1:  # one shuffle, not two
            factor, indices = source.operands[0], [source.indices[i] for i in indices]
        spread = self.builder.add(ShuffleOp.create([factor], indices))
        lhs, rhs = (wide[id(term)], spread) if op.operands[0] is term else (spread, wide[id(term)])
        return self.builder.add(BinaryOp.create("mul", lhs, rhs))


@register_pass
class DeferLaneSumsPass(Pass):
    name = "defer-lane-sums"
    stage = "thread"

    def run(self, module: Module) -> Module:
        return _DeferLaneSums(8 * get_target(self.target).vector_bytes).run(module)
