"""Elementwise arithmetic in LLVM IR with the semantics of lpir/interpreter/elementwise.py.

Integers wrap; division and remainder truncate, division by zero gives 0 and INT_MIN / -1
wraps (both guarded so x86 never traps); shift amounts are taken modulo the bit width. Floats
compute in their own precision; f16 and bf16 (held as bits) compute in f32 and round once.
Float min/max ignore a NaN operand (`llvm.minnum/maxnum`); comparisons are ordered except `!=`.
Float multiplies and adds carry LLVM's `contract` flag, so a multiply feeding an add may become
one fused multiply-add (as nvcc does by default): one rounding where the interpreter has two.
"""

from __future__ import annotations

from llvmlite import ir
from lpir.backends.llvm.casts import Caster
from lpir.backends.llvm.intrinsics import Intrinsics
from lpir.backends.llvm.types import F32, constant, element, like
from lpir.backends.llvm.vector_math import VectorMath

from lpir.dtypes import DType

_FLOAT_BINARY = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv", "rem": "frem"}
_INT_BINARY = {"add": "add", "sub": "sub", "mul": "mul", "and": "and_", "or": "or_", "xor": "xor"}
_COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
# f32 functions emitted as vector code by VectorMath (LLVM would call libm for each lane)
VECTOR_MATH = ("exp", "exp2", "tanh", "erf", "log", "log2", "sin", "cos")
_FLOAT_INTRINSIC_UNARY = {
    "exp": "llvm.exp",
    "exp2": "llvm.exp2",
    "log": "llvm.log",
    "log2": "llvm.log2",
    "sqrt": "llvm.sqrt",
    "floor": "llvm.floor",
    "ceil": "llvm.ceil",
    "round": "llvm.roundeven",
    "sin": "llvm.sin",
    "cos": "llvm.cos",
}


class Arithmetic:
    """Emits binary, unary and select ops; `caster` does f16/bf16 <-> f32."""

    def __init__(self, builder: ir.IRBuilder, intrinsics: Intrinsics, caster: Caster):
        self.b = builder
        self.intrinsics = intrinsics
        self.caster = caster

    # ---- helpers --------------------------------------------------------------------------
    def widened(self, dt: DType) -> bool:
        """f16/bf16: computed in f32."""
        return dt.is_float and dt.nbits == 16

    def to_compute(self, value: ir.Value, dt: DType) -> ir.Value:
        return self.caster.to_f32(value, dt) if self.widened(dt) else value

    def from_compute(self, value: ir.Value, dt: DType) -> ir.Value:
        return self.caster.from_f32(value, dt) if self.widened(dt) else value

    # ---- binary ---------------------------------------------------------------------------
    def binary(self, name: str, lhs: ir.Value, rhs: ir.Value, dt: DType) -> ir.Value:
        if name in _COMPARE:
            return self.compare(name, lhs, rhs, dt)
        if dt.is_float:
            a, c = self.to_compute(lhs, dt), self.to_compute(rhs, dt)
            return self.from_compute(self.float_binary(name, a, c), dt)
        return self.int_binary(name, lhs, rhs, dt)

    def float_binary(self, name: str, a: ir.Value, c: ir.Value) -> ir.Value:
        b = self.b
        if name in ("add", "sub", "mul"):
            # Like nvcc's default, a multiply feeding an add may fuse into one FMA (one
            # rounding instead of two): within the float tolerance every check states.
            return getattr(b, _FLOAT_BINARY[name])(a, c, flags=("contract",))
        if name in _FLOAT_BINARY:
            return getattr(b, _FLOAT_BINARY[name])(a, c)
        intrinsic = self.intrinsics.get("llvm.maxnum" if name == "max" else "llvm.minnum", a.type)
        return b.call(intrinsic, [a, c])

    def compare(self, name: str, lhs: ir.Value, rhs: ir.Value, dt: DType) -> ir.Value:
        b = self.b
        if dt.is_float:
            a, c = self.to_compute(lhs, dt), self.to_compute(rhs, dt)
            if name == "ne":
                return b.fcmp_unordered("!=", a, c)
            return b.fcmp_ordered(_COMPARE[name], a, c)
        if dt.is_bool or dt.kind == "uint":
            return b.icmp_unsigned(_COMPARE[name], lhs, rhs)
        return b.icmp_signed(_COMPARE[name], lhs, rhs)

    def int_binary(self, name: str, lhs: ir.Value, rhs: ir.Value, dt: DType) -> ir.Value:
        b = self.b
        if name in _INT_BINARY:
            return getattr(b, _INT_BINARY[name])(lhs, rhs)
        if name in ("max", "min"):
            if dt.is_bool:
                return b.or_(lhs, rhs) if name == "max" else b.and_(lhs, rhs)
            kind = ("s" if dt.kind == "int" else "u") + name
            return b.call(self.intrinsics.get(f"llvm.{kind}", lhs.type), [lhs, rhs])
        if name in ("shl", "shr"):
            width = element(lhs.type).width
            amount = b.and_(rhs, constant(rhs, element(rhs.type), width - 1))
            if name == "shl":
                return b.shl(lhs, amount)
            return b.ashr(lhs, amount) if dt.kind == "int" else b.lshr(lhs, amount)
        if name in ("div", "rem"):
            return self.division(name, lhs, rhs, dt)
        raise NotImplementedError(f"integer {name}")

    def division(self, name: str, lhs: ir.Value, rhs: ir.Value, dt: DType) -> ir.Value:
        b = self.b
        zero_type = element(rhs.type)
        is_zero = b.icmp_unsigned("==", rhs, constant(rhs, zero_type, 0))
        if dt.kind == "int":
            minus_one = b.icmp_signed("==", rhs, constant(rhs, zero_type, -1))
            safe = b.select(b.or_(is_zero, minus_one), constant(rhs, zero_type, 1), rhs)
            quotient = b.sdiv(lhs, safe)
            quotient = b.select(minus_one, b.sub(constant(lhs, zero_type, 0), lhs), quotient)
        else:
            safe = b.select(is_zero, constant(rhs, zero_type, 1), rhs)
            quotient = b.udiv(lhs, safe)
        result = quotient if name == "div" else b.sub(lhs, b.mul(quotient, rhs))
        return b.select(is_zero, constant(rhs, zero_type, 0), result)

    # ---- unary ----------------------------------------------------------------------------
    def unary(self, name: str, value: ir.Value, dt: DType) -> ir.Value:
        b = self.b
        if not dt.is_float:
            if name == "neg":
                return b.sub(constant(value, element(value.type), 0), value)
            if name == "abs":
                if dt.kind == "uint" or dt.is_bool:
                    return value
                return b.call(
                    self.intrinsics.abs_int(value.type), [value, ir.Constant(ir.IntType(1), 0)]
                )
            if name == "not":
                return b.xor(
                    value, constant(value, element(value.type), -1 if not dt.is_bool else 1)
                )
            raise NotImplementedError(f"integer {name}")
        wide = self.to_compute(value, dt)
        return self.from_compute(self.float_unary(name, wide), dt)

    def float_unary(self, name: str, value: ir.Value) -> ir.Value:
        b = self.b
        float_type = element(value.type)
        if name == "neg":
            return b.fneg(value)
        if name == "abs":
            return b.call(self.intrinsics.get("llvm.fabs", value.type), [value])
        if name == "rsqrt":
            root = b.call(self.intrinsics.get("llvm.sqrt", value.type), [value])
            return b.fdiv(constant(value, float_type, 1.0), root)
        if name in VECTOR_MATH and float_type == F32:  # (not a libm call per lane)
            return getattr(VectorMath(b, self.intrinsics), name)(value)
        if name in _FLOAT_INTRINSIC_UNARY:
            return b.call(self.intrinsics.get(_FLOAT_INTRINSIC_UNARY[name], value.type), [value])
        if name in ("tanh", "erf"):  # (f64: f32 is VECTOR_MATH's)
            return self.per_lane_libm(name, value)
        raise NotImplementedError(f"float {name}")

    def per_lane_libm(self, function: str, value: ir.Value) -> ir.Value:
        """A libm call per lane (for functions LLVM has no intrinsic for)."""
        return VectorMath(self.b, self.intrinsics).per_lane(function, value)

    def select(self, cond: ir.Value, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
        return self.b.select(cond, lhs, rhs)


__all__ = ["Arithmetic", "like"]
