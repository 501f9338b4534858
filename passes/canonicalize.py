"""canonicalize: fold constants and simplify arithmetic, shape and control-flow ops.

Requires: any module. Guarantees: the same values are computed (constants fold with the
interpreter's own elementwise semantics), and

* scalar ops whose operands are all constants become constants;
* x + 0, x - 0, x * 1, x / 1 (and 0 + x, 1 * x), integer x * 0, x & 0, x | 0, x << 0 simplify,
  keeping the float cases that are exact (x + 0.0 is left alone: -0.0 + 0.0 is +0.0);
* integer (x + c1) + c2 and (x * c1) * c2 reassociate (exact under wrapping arithmetic);
* a cast to the same dtype, a broadcast or reshape to the same shape, a transpose that keeps
  the elements' order, a transpose of a transpose that cancels, a reshape back to a
  reshape's operand type, a convert_layout to the layout the value already has, and a
  convert of a convert disappear; a reshape of a reshape, and a transpose of a transpose,
  becomes one (before layout-selection, where the two together only split or merge
  dimensions, or permute them);
* the max or min along an axis that a broadcast repeats is the broadcast's operand without
  that axis (a CPU GEMV's accumulator carried as one column, `passes/narrow_dots.py`);
* an `if` on a constant keeps one branch; a `for` that runs zero times yields its inputs;
* a lane mask `C < splat(n)` (any of < <= > >=, either side) of integer constants C, where
  the index analysis proves n a multiple of d, compares each constant rounded to the block of
  d it lies in (`edge_mask`): c < n iff d * (c // d) < n. Lanes of one block then compare
  one constant, and where all do the mask is a splat of one scalar comparison. The edge mask
  of a tile whose edge is a multiple of the lanes' group (`K % 32 == 0` for a u4 row read 16
  bytes at a time) is so uniform per access: one predicated wide access, not a per-lane test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from lpir.passes.base import Pass, register_pass

from lpir.interpreter import elementwise as ew
from lpir.ir.core import Module, Operation, Region, Value
from lpir.ir.lane_classes import compared_with_splat, rounded_constant
from lpir.ir.ops import (
    BinaryOp,
    BroadcastOp,
    CastOp,
    ConstantOp,
    ConvertLayoutOp,
    ForOp,
    IfOp,
    ReduceOp,
    ReshapeOp,
    SelectOp,
    SplatOp,
    TransposeOp,
    UnaryOp,
    VectorConstantOp,
    YieldOp,
)
from lpir.ir.ops.tile import regroups
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import ScalarType, as_tile, as_vector


def constant_value(value: Value) -> int | float | bool | None:
    """The Python constant a scalar holds, or None."""
    owner = value.owner
    if isinstance(owner, ConstantOp):
        return owner.value
    return None


def splat_constant(value: Value) -> int | float | bool | None:
    """The constant every element of a tile or vector holds (a splat of a constant, possibly
    broadcast: `ones<f16>[1, 8]` meeting a [BK, 1] tile), or None."""
    owner = value.owner
    if isinstance(owner, BroadcastOp):
        return splat_constant(owner.operands[0])
    if isinstance(owner, SplatOp):
        return constant_value(owner.operands[0])
    return constant_value(value)


def _python(value: np.generic | np.ndarray) -> int | float | bool:
    return value.item()


_IDENTITIES = {
    # op: (constant on the right that leaves x, also on the left?)
    "add": (0, True),
    "sub": (0, False),
    "mul": (1, True),
    "div": (1, False),
    "or": (0, True),
    "xor": (0, True),
    "shl": (0, False),
    "shr": (0, False),
}


class _Canonicalizer(Rewriter):
    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        operands = self.map_all(op.operands)
        simplified = self.simplify(op, operands)
        if simplified is not None:
            return simplified
        return self.copy(op).results

    def simplify(self, op: Operation, operands: list[Value]) -> list[Value] | None:
        if isinstance(op, BinaryOp | UnaryOp | CastOp | SelectOp):
            folded = self.fold(op, operands)
            if folded is not None:
                return [folded]
        if isinstance(op, BinaryOp):
            return self.edge_mask(op) or self.binary_identity(op, operands)
        if isinstance(op, CastOp) and operands[0].type == op.result.type:
            return [operands[0]]
        if (
            isinstance(op, BroadcastOp)
            and as_tile(operands[0].type).shape == as_tile(op.result.type).shape
        ):
            return [operands[0]]
        if isinstance(op, ConvertLayoutOp):
            return self.convert(op, operands)
        if isinstance(op, TransposeOp):
            return self.transpose(op, operands[0])
        if isinstance(op, ReduceOp):
            return self.reduce_repeated(op, operands[0])
        if isinstance(op, ReshapeOp):
            return self.reshape(op, operands[0])
        if isinstance(op, IfOp):
            return self.static_if(op, operands)
        if isinstance(op, ForOp):
            return self.empty_loop(op, operands)
        return None

    def reduce_repeated(self, op: ReduceOp, operand: Value) -> list[Value] | None:
        """max/min along an axis a broadcast repeats: the broadcast's operand, that axis
        dropped (by a reshape, then broadcast to the rest of the result's shape)."""
        broadcast = operand.owner
        axis = op.attributes["axis"]
        if op.attributes["kind"] not in ("max", "min") or not isinstance(broadcast, BroadcastOp):
            return None
        source = broadcast.operands[0]
        shape = as_tile(source.type).shape
        if shape[axis] != 1 or len(shape) < 2:
            return None
        if any(as_tile(v.type).layout is not None for v in (source, operand, op.result)):
            return None  # chosen layouts (or a user's annotation) stay as they are
        kept = self.builder.add(ReshapeOp.create(source, shape[:axis] + shape[axis + 1 :]))
        wanted = as_tile(op.result.type).shape
        if as_tile(kept.type).shape != wanted:
            kept = self.builder.add(BroadcastOp.create(kept, wanted))
        return [kept]

    def transpose(self, op: TransposeOp, operand: Value) -> list[Value] | None:
        """A transpose that keeps the order (a permutation of size-1 dimensions included: the
        same elements in the same order) is its operand; a transpose of a transpose is one
        transpose, or none where the two cancel."""
        if operand.type == op.result.type and _keeps_order(as_tile(operand.type).shape, op.dims):
            return [operand]
        if not isinstance(operand.owner, TransposeOp):
            return None
        inner = operand.owner.operands[0]
        dims = [operand.owner.dims[d] for d in op.dims]
        if inner.type == op.result.type and dims == sorted(dims):
            return [inner]  # (a layout on either side keeps them)
        if as_tile(op.result.type).layout is None and as_tile(operand.type).layout is None:
            return [self.builder.add(TransposeOp.create(inner, dims, op.result.name_hint))]
        return None

    def reshape(self, op: ReshapeOp, operand: Value) -> list[Value] | None:
        if operand.type == op.result.type:
            return [operand]
        if not isinstance(operand.owner, ReshapeOp):
            return None
        inner = operand.owner.operands[0]
        if inner.type == op.result.type:  # (a layout on either side keeps them)
            return [inner]
        shape = as_tile(op.result.type).shape
        if as_tile(op.result.type).layout is None and regroups(as_tile(inner.type).shape, shape):
            return [self.builder.add(ReshapeOp.create(inner, shape, op.result.name_hint))]
        return None

    def fold(self, op: Operation, operands: list[Value]) -> Value | None:
        if not isinstance(op.result.type, ScalarType):
            return None
        values = [constant_value(v) for v in operands]
        if any(v is None for v in values):
            return None
        source = operands[-1].type.dtype
        target = op.result.type.dtype
        if isinstance(op, BinaryOp):
            result = ew.binary(op.name, values[0], values[1], source)
        elif isinstance(op, UnaryOp):
            result = ew.unary(op.name, values[0], source)
        elif isinstance(op, CastOp):
            if source.numpy_dtype == np.uint8 and source.is_float:
                return None  # small-float codes: keep the cast visible
            if target.numpy_dtype == np.uint8 and target.is_float:
                return None
            result = ew.cast(values[0], source, target)
        else:
            result = ew.select(values[0], values[1], values[2], target)
        return self.builder.add(ConstantOp.create(_python(np.asarray(result)[()]), target))

    def edge_mask(self, op: BinaryOp) -> list[Value] | None:
        """`C < splat(n)` with each constant of C rounded within its block of d, n a known
        multiple of d (and likewise <=, >, >=, and with the splat on the left); a splat of
        one scalar comparison where the rounded constants are all one."""
        compared = compared_with_splat(op, self.analysis)
        if compared is None:
            return None
        constants, splat, name, divisor = compared
        dt = as_vector(constants.result.type).dtype
        values = tuple(rounded_constant(name, c, divisor) for c in constants.values)
        if not all(dt.min <= c <= dt.max for c in values):
            return None
        if len(set(values)) == 1:  # one comparison of scalars, splat
            pair = [self.builder.add(ConstantOp.create(values[0], dt)), self.map(splat.operands[0])]
        elif values != constants.values:
            pair = [self.builder.add(VectorConstantOp.create(values, dt)), self.map(splat.result)]
        else:
            return None
        if op.operands[0].owner is splat:
            pair.reverse()
        result = self.builder.add(BinaryOp.create(op.name, pair[0], pair[1]))
        if len(set(values)) > 1:
            return [result]
        size = as_vector(op.result.type).size
        return [self.builder.add(SplatOp.create_vector(result, size, op.result.name_hint))]

    def binary_identity(self, op: BinaryOp, operands: list[Value]) -> list[Value] | None:
        lhs, rhs = operands
        dt = lhs.type.dtype
        identity = _IDENTITIES.get(op.name)
        right, left = splat_constant(rhs), splat_constant(lhs)
        if identity is not None and not dt.is_bool:
            value, commutes = identity
            exact = not dt.is_float or op.name in ("sub", "mul", "div")
            if dt.is_float and op.name == "sub" and right is not None:
                exact = math.copysign(1.0, right) > 0  # x - -0.0 is x + 0.0: -0.0 - -0.0 = +0.0
            if exact and right is not None and right == value:
                return [lhs]
            if exact and commutes and left is not None and left == value:
                return [rhs]
        if dt.is_bool and op.name == "and":  # (a load's own bounds, proved all true)
            if right is True and lhs.type == op.result.type:
                return [lhs]
            if left is True and rhs.type == op.result.type:
                return [rhs]
        if not dt.is_float and not dt.is_bool and op.name in ("mul", "and"):
            if right == 0 and right is not None and lhs.type == op.result.type:
                return [rhs]
            if left == 0 and left is not None and rhs.type == op.result.type:
                return [lhs]
        return self.reassociate(op, lhs, rhs)

    def reassociate(self, op: BinaryOp, lhs: Value, rhs: Value) -> list[Value] | None:
        """(x op c1) op c2 -> x op (c1 op c2) for integer add and mul on scalars."""
        if op.name not in ("add", "mul") or not isinstance(lhs.type, ScalarType):
            return None
        dt = lhs.type.dtype
        inner = lhs.owner
        c2 = constant_value(rhs)
        if dt.is_float or dt.is_bool or c2 is None or not isinstance(inner, BinaryOp):
            return None
        if inner.name != op.name:
            return None
        c1 = constant_value(inner.operands[1])
        if c1 is None:
            return None
        combined = ew.binary(op.name, c1, c2, dt)
        constant = self.builder.add(ConstantOp.create(_python(np.asarray(combined)[()]), dt))
        return [self.builder.add(BinaryOp.create(op.name, inner.operands[0], constant))]

    def convert(self, op: ConvertLayoutOp, operands: list[Value]) -> list[Value] | None:
        source = operands[0]
        if source.type == op.result.type:
            return [source]
        inner = source.owner
        if isinstance(inner, ConvertLayoutOp):
            origin = inner.operands[0]
            if origin.type == op.result.type:
                return [origin]
            layout = as_tile(op.result.type).selected_layout
            return [self.builder.add(ConvertLayoutOp.create(origin, layout))]
        return None

    def static_if(self, op: IfOp, operands: list[Value]) -> list[Value] | None:
        cond = constant_value(operands[0])
        if cond is None:
            return None
        return self.inline(op.then_region if cond else op.else_region, [])

    def empty_loop(self, op: ForOp, operands: list[Value]) -> list[Value] | None:
        lower, upper, step = (constant_value(v) for v in operands[:3])
        if lower is None or upper is None or step is None or step <= 0:
            return None
        if lower >= upper:
            return operands[3:]
        return None

    def inline(self, region: Region, args: list[Value]) -> list[Value]:
        for old, new in zip(region.args, args):
            self.replace(old, new)
        results: list[Value] = []
        for inner in region.ops:
            if isinstance(inner, YieldOp):
                results = self.map_all(inner.operands)
                break
            values = self.rewrite(inner)
            if values is not None:
                for old, new in zip(inner.results, values):
                    self.replace(old, new)
        return results


@register_pass
class CanonicalizePass(Pass):
    name = "canonicalize"

    def run(self, module: Module) -> Module:
        return _Canonicalizer().run(module)


def _keeps_order(shape: Sequence[int], dims: Sequence[int]) -> bool:
    """Whether transposing a tile of `shape` by `dims` leaves its elements in row-major order:
    the dimensions of more than one element keep their order."""
    moved = [d for d in dims if shape[d] != 1]
    return moved == sorted(moved)
