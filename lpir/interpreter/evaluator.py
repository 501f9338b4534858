"""What both interpreters share: an environment of values and op dispatch by name.

A subclass handles an op `name` with a method `op_<name>(op) -> list of results`; arithmetic
ops without their own method evaluate through `lpir.interpreter.elementwise`, whose semantics
both interpreters (and the backends) follow.
"""

from __future__ import annotations

from typing import Any

from lpir.errors import LpirError
from lpir.interpreter import elementwise as ew
from lpir.ir.core import Operation, Region, Value
from lpir.ir.ops import BinaryOp, UnaryOp, YieldOp


class Evaluator:
    """Runs regions op by op over `self.env` (value id -> numpy data)."""

    description = "the interpreter"

    def __init__(self, env: dict):
        self.env = env

    # Any: a numpy array, or in the tile interpreter also a numpy scalar (a scalar value), types
    # that numpy's stubs give no common indexable base
    def get(self, value: Value) -> Any:
        return self.env[id(value)]

    def region(self, region: Region) -> list:
        """Run a region; return the values its `yield` passes on (none at the kernel level)."""
        for op in region.ops:
            if isinstance(op, YieldOp):
                return [self.get(v) for v in op.operands]
            results = self.op(op)
            for value, result in zip(op.results, results):
                self.env[id(value)] = result
        return []

    def op(self, op: Operation) -> list:
        method = getattr(self, f"op_{op.name}", None)
        if method is not None:
            return method(op)
        operands = [self.get(v) for v in op.operands]
        if isinstance(op, BinaryOp):
            lhs, rhs = operands
            return [ew.binary(op.name, lhs, rhs, op.operands[0].type.dtype)]
        if isinstance(op, UnaryOp):
            return [ew.unary(op.name, operands[0], op.operands[0].type.dtype)]
        raise LpirError(f"{self.description} cannot run '{op.name}'", op.location)
