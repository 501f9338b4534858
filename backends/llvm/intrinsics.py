"""Declares LLVM intrinsics and libm functions on demand, with overload-mangled names."""

from __future__ import annotations

from llvmlite import ir
from lpir.backends.llvm.types import I32, PTR


def type_suffix(type_: ir.Type) -> str:
    """The mangling of an overloaded intrinsic's type: f32, v64f32, i8, v16i1, p0."""
    if isinstance(type_, ir.VectorType):
        return f"v{type_.count}{type_suffix(type_.element)}"
    if isinstance(type_, ir.FloatType):
        return "f32"
    if isinstance(type_, ir.DoubleType):
        return "f64"
    if isinstance(type_, ir.IntType):
        return f"i{type_.width}"
    if isinstance(type_, ir.PointerType):
        return "p0"
    raise TypeError(f"no intrinsic mangling for {type_}")


# Intrinsics whose result and operands all have the overloaded type.
_SAME_TYPE = {
    "llvm.fabs": 1,
    "llvm.sqrt": 1,
    "llvm.fma": 3,
    "llvm.copysign": 2,
    "llvm.exp": 1,
    "llvm.exp2": 1,
    "llvm.log": 1,
    "llvm.log2": 1,
    "llvm.sin": 1,
    "llvm.cos": 1,
    "llvm.floor": 1,
    "llvm.ceil": 1,
    "llvm.roundeven": 1,
    "llvm.minnum": 2,
    "llvm.maxnum": 2,
    "llvm.smax": 2,
    "llvm.smin": 2,
    "llvm.umax": 2,
    "llvm.umin": 2,
}


class Intrinsics:
    """Finds or declares intrinsic functions in one module."""

    def __init__(self, module: ir.Module):
        self.module = module

    def declare(self, name: str, function_type: ir.FunctionType) -> ir.Function:
        existing = self.module.globals.get(name)
        if existing is not None:
            return existing
        return ir.Function(self.module, function_type, name)

    def get(self, name: str, type_: ir.Type) -> ir.Function:
        """A same-typed intrinsic such as llvm.fabs or llvm.maxnum for `type_`."""
        arity = _SAME_TYPE[name]
        function_type = ir.FunctionType(type_, [type_] * arity)
        return self.declare(f"{name}.{type_suffix(type_)}", function_type)

    def abs_int(self, type_: ir.Type) -> ir.Function:
        """llvm.abs.* (the second operand says whether INT_MIN is poison: we pass false)."""
        function_type = ir.FunctionType(type_, [type_, ir.IntType(1)])
        return self.declare(f"llvm.abs.{type_suffix(type_)}", function_type)

    def fp_to_int_saturating(self, signed: bool, result: ir.Type, source: ir.Type) -> ir.Function:
        """llvm.fptosi.sat / llvm.fptoui.sat: truncate, saturate, NaN -> 0."""
        kind = "fptosi" if signed else "fptoui"
        name = f"llvm.{kind}.sat.{type_suffix(result)}.{type_suffix(source)}"
        return self.declare(name, ir.FunctionType(result, [source]))

    def libm(self, name: str) -> ir.Function:
        """A scalar float libm function such as tanhf."""
        return self.declare(name, ir.FunctionType(ir.FloatType(), [ir.FloatType()]))

    def vector_reduce(self, operation: str, vector: ir.VectorType) -> ir.Function:
        """llvm.vector.reduce.<operation> (and, or, add, ...) of a vector to its element."""
        name = f"llvm.vector.reduce.{operation}.{type_suffix(vector)}"
        return self.declare(name, ir.FunctionType(vector.element, [vector]))

    def memset(self) -> ir.Function:
        """llvm.memset.p0.i64(ptr, i8 value, i64 bytes, i1 volatile)."""
        function_type = ir.FunctionType(
            ir.VoidType(), [ir.PointerType(), ir.IntType(8), ir.IntType(64), ir.IntType(1)]
        )
        return self.declare("llvm.memset.p0.i64", function_type)

    def prefetch(self) -> ir.Function:
        """llvm.prefetch(address, write?, locality 0-3, data?)."""
        function_type = ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32])
        return self.declare("llvm.prefetch.p0", function_type)

    def masked_load(self, vector: ir.VectorType) -> ir.Function:
        mask = ir.VectorType(ir.IntType(1), vector.count)
        function_type = ir.FunctionType(vector, [ir.PointerType(), ir.IntType(32), mask, vector])
        return self.declare(f"llvm.masked.load.{type_suffix(vector)}.p0", function_type)

    def masked_store(self, vector: ir.VectorType) -> ir.Function:
        mask = ir.VectorType(ir.IntType(1), vector.count)
        function_type = ir.FunctionType(
            ir.VoidType(), [vector, ir.PointerType(), ir.IntType(32), mask]
        )
        return self.declare(f"llvm.masked.store.{type_suffix(vector)}.p0", function_type)

    def masked_gather(self, vector: ir.VectorType) -> ir.Function:
        """llvm.masked.gather(<n x ptr>, i32 align, <n x i1> mask, <n x T> passthru)."""
        pointers = ir.VectorType(ir.PointerType(), vector.count)
        mask = ir.VectorType(ir.IntType(1), vector.count)
        function_type = ir.FunctionType(vector, [pointers, ir.IntType(32), mask, vector])
        name = f"llvm.masked.gather.{type_suffix(vector)}.v{vector.count}p0"
        return self.declare(name, function_type)

    def masked_scatter(self, vector: ir.VectorType) -> ir.Function:
        """llvm.masked.scatter(<n x T> values, <n x ptr>, i32 align, <n x i1> mask)."""
        pointers = ir.VectorType(ir.PointerType(), vector.count)
        mask = ir.VectorType(ir.IntType(1), vector.count)
        function_type = ir.FunctionType(ir.VoidType(), [vector, pointers, ir.IntType(32), mask])
        name = f"llvm.masked.scatter.{type_suffix(vector)}.v{vector.count}p0"
        return self.declare(name, function_type)
