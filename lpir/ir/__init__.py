"""The IR: types, ops, kernels, the text form (print and parse) and the verifier.

`lpir.ir.print(module)` and `lpir.ir.parse(text)` are inverses; `lpir.ir.verify(module)`
checks the invariants that every pass keeps.
"""

from lpir.ir import ops
from lpir.ir.core import Builder, Kernel, Module, Operation, Region, Value
from lpir.ir.parser import parse
from lpir.ir.printer import print_kernel, print_module, print_op
from lpir.ir.types import GlobalType, ScalarType, SharedType, TileType, Type, VectorType
from lpir.ir.verifier import verify

print = print_module

__all__ = [
    "Builder",
    "GlobalType",
    "Kernel",
    "Module",
    "Operation",
    "Region",
    "ScalarType",
    "SharedType",
    "TileType",
    "Type",
    "Value",
    "VectorType",
    "ops",
    "parse",
    "print",
    "print_kernel",
    "print_module",
    "print_op",
    "verify",
]
