"""cse: merge pure ops that compute the same value.

Requires: any module. Guarantees: no two pure ops (see `lpir.ir.effects.is_pure`) with the same
name, operands, attributes and result types where one dominates the other; uses of the later
one now use the earlier. Ops that read memory are left alone (a store may come between).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from lpir.passes.base import Pass, register_pass

from lpir.ir.core import Kernel, Module, Operation, Region, Value
from lpir.ir.effects import is_pure
from lpir.ir.rewrite import Rewriter


def _key(op: Operation, operands: list[Value]) -> tuple:
    attributes = tuple(sorted((name, _exact(value)) for name, value in op.attributes.items()))
    types = tuple(r.type for r in op.results)
    return (op.name, tuple(id(v) for v in operands), attributes, types)


def _exact(value: object) -> object:
    """An attribute's value as a key that tells apart what Python's == does not: -0.0 from
    0.0 (equal, yet `store(f[0], -0.0)` and `store(f[1], 0.0)` store different bits), and
    NaNs of other signs or payloads (`nan` and `-nan` cast to f4e2m1 give -0.0 and +0.0);
    a float's key is its f64 bits."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(_exact(item) for item in value))
    return value


class _CommonSubexpressions(Rewriter):
    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[dict[tuple, list[Value]]] = [{}]

    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        if not is_pure(op):
            return self.copy(op).results
        key = _key(op, self.map_all(op.operands))
        for scope in reversed(self.scopes):
            if key in scope:
                return scope[key]
        results = self.copy(op).results
        self.scopes[-1][key] = results
        return results

    def run_kernel(self, kernel: Kernel) -> Kernel:
        self.scopes = [{}]  # a kernel sees none of the ops of the kernels before it
        return super().run_kernel(kernel)

    def copy_region(self, region: Region) -> Region:
        self.scopes.append({})
        try:
            return super().copy_region(region)
        finally:
            self.scopes.pop()


@register_pass
class CommonSubexpressionEliminationPass(Pass):
    name = "cse"

    def run(self, module: Module) -> Module:
        return _CommonSubexpressions().run(module)
