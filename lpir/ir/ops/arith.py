"""Elementwise arithmetic, shared by both IR levels.

These ops work on scalars, register tiles (tile IR) and per-thread vectors (thread IR) alike:
operands have equal types (no implicit broadcasting; the front end inserts `broadcast`), and
the result has the operands' shape and layout.

Semantics (the interpreter implements exactly these, backends must agree):

* integer `div` and `rem` truncate toward zero (C semantics); `shr` is arithmetic on signed
  and logical on unsigned types; shift amounts are taken modulo the bit width;
* `round` rounds half to even; `min`/`max` of floats return the other operand when one is NaN;
* `cast` follows the dtype conversion rules of `lpir.dtypes.convert`; `view` reinterprets bits.
"""

from __future__ import annotations

from typing import Any

from lpir.dtypes import DType, dtype
from lpir.errors import TypeCheckError, with_article
from lpir.ir.core import Operation, Value
from lpir.ir.signature import NUMBER, Signature, exactly
from lpir.ir.types import ScalarType, TileType, Type, VectorType, same_kind_with_dtype

ARITHMETIC = ("add", "sub", "mul", "div", "rem", "max", "min")
BITWISE = ("and", "or", "xor", "shl", "shr")
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")
FLOAT_UNARY = (
    "exp",
    "exp2",
    "log",
    "log2",
    "sqrt",
    "rsqrt",
    "floor",
    "ceil",
    "round",
    "sin",
    "cos",
    "tanh",
    "erf",
)
UNARY = ("neg", "abs", "not", *FLOAT_UNARY)

BOOL = dtype("bool")
BOOL_ARITHMETIC_HINT = (
    "combine bools with and/or/xor, count them with cast<i32>(...), "
    "choose between numbers with where(...)"
)


def is_compute_dtype(dt: DType) -> bool:
    """Whether arithmetic is defined on `dt` (low-bit and 8-bit float formats only store)."""
    if dt.is_bool:
        return True
    if dt.is_float:
        return dt.nbits >= 16
    return dt.nbits in (8, 16, 32, 64)


SYMBOLS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "rem": "%",
    "and": "&",
    "or": "|",
    "xor": "^",
    "shl": "<<",
    "shr": ">>",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "eq": "==",
    "ne": "!=",
    "neg": "-",
    "not": "~",
}


def check_compute_dtype(dt: DType, op_name: str) -> None:
    if not is_compute_dtype(dt):
        raise TypeCheckError(
            f"'{SYMBOLS.get(op_name, op_name)}' is not defined on {dt.name}, a storage-only type",
            hint=f"cast it to a compute type first, e.g. {compute_casts(dt)}",
        )


def compute_casts(dt: DType) -> str:
    """Casts of a storage-only `dt` to compute types that hold each of its values: floats
    for small floats, integers for sub-byte integers (u8 or i8 by signedness, and i32),
    which keep integer division and the bit operations that floats lack."""
    if dt.is_float:
        return "cast<f32>(x) or cast<f16>(x)"
    if dt.kind == "int":
        return "cast<i8>(x) or cast<i32>(x)"
    return "cast<u8>(x) or cast<i32>(x)"


def mixed_dtypes_hint(left: DType, right: DType) -> str:
    """The hint for an elementwise op on operands of two dtypes: the cast to a dtype both
    compute in. A storage-only operand (fp8, f4e2m1, u4) is cast up to the compute dtype:
    casting the other side down to it would fail again (it takes no arithmetic)."""
    common = common_compute_dtype(left, right)
    cast = f"cast<{common.name}>(...)"
    storage = [dt for dt in (left, right) if not is_compute_dtype(dt)]
    if not storage:
        if common in (left, right):
            return f"cast one of them, e.g. {cast}"
        return f"cast both to {common.name}, which holds the values of each: {cast}"
    if len(storage) == 2:
        what = f"{left.name} and {right.name} are storage-only types (no arithmetic)"
    else:
        what = f"{storage[0].name} is a storage-only type (no arithmetic)"
    which = f"the {storage[0].name} operand" if common in (left, right) else "both operands"
    return f"{what}: cast {which} to {common.name}, {cast}"


def common_compute_dtype(left: DType, right: DType) -> DType:
    """A compute dtype to take two operands' values to for arithmetic: the wider one, f32
    for two 16-bit floats or a float and a wide integer, a signed integer wider than an
    unsigned one (u32 and i32 -> i64); storage-only dtypes count as the compute type that
    holds them (fp8 -> the other float or f32, u4 -> u8, i4 -> i8)."""
    a, b = _lifted(left, right), _lifted(right, left)
    if a == b or b.is_bool:
        return a
    if a.is_bool:
        return b
    if a.is_float and b.is_float:
        return a if a.nbits > b.nbits else b if b.nbits > a.nbits else F32
    if a.is_float or b.is_float:
        real, whole = (a, b) if a.is_float else (b, a)
        return real if real.nbits >= 32 or whole.nbits <= 8 else F32
    if a.kind == b.kind:
        return a if a.nbits >= b.nbits else b
    signed, unsigned = (a, b) if a.kind == "int" else (b, a)
    if signed.nbits > unsigned.nbits or unsigned.nbits == 64:
        return signed
    return dtype(f"i{2 * unsigned.nbits}")


F32 = dtype("f32")


def _lifted(dt: DType, other: DType) -> DType:
    """`dt`, or the compute dtype that holds a storage-only `dt`'s values."""
    if is_compute_dtype(dt):
        return dt
    if dt.is_float:  # f16 and bf16 hold every fp8, fp6 and fp4 value
        return other if other.is_float and is_compute_dtype(other) else F32
    return dtype("i8" if dt.kind == "int" else "u8")


def check_register_values(op_name: str, types: list[Type]) -> None:
    """Elementwise ops take scalars, register tiles and vectors, not tensors in memory."""
    for type_ in types:
        if not isinstance(type_, ScalarType | TileType | VectorType):
            raise TypeCheckError(
                f"'{op_name}' works on scalars, tiles and vectors, not {type_}",
                hint="load a tile of the tensor first",
            )


def _shape_of(type_: Type) -> object:
    if isinstance(type_, TileType):
        return type_.shape
    if isinstance(type_, VectorType):
        return type_.size
    return ()


def check_same_shape(op_name: str, types: list[Type]) -> None:
    """All operand types must be the same kind with the same shape and dtype-independent layout."""
    first = types[0]
    for other in types[1:]:
        if type(other) is not type(first) or _shape_of(other) != _shape_of(first):
            raise TypeCheckError(
                f"operands of '{op_name}' have different shapes: {first} and {other}",
                hint="broadcast explicitly, e.g. t[:, None] or t[None, :]",
            )
        if (
            isinstance(first, TileType)
            and isinstance(other, TileType)
            and first.layout
            and other.layout
            and first.layout != other.layout
        ):
            raise TypeCheckError(
                f"operands of '{op_name}' have different layouts: {first.layout} and "
                f"{other.layout}",
                hint="convert one of them with convert_layout",
            )


def _layout_of(types: list[Type]) -> Any:
    for type_ in types:
        if isinstance(type_, TileType) and type_.layout is not None:
            return type_.layout
    return None


def _result_like(type_: Type, dt: DType, layout: Any) -> Type:
    result = same_kind_with_dtype(type_, dt)
    if isinstance(result, TileType):
        result = result.with_layout(layout)
    return result


class ConstantOp(Operation):
    """`%c = constant {value = 3} : i32`: a compile-time scalar."""

    names = ("constant",)
    signature = Signature(results=exactly(1), attributes={"value": NUMBER})

    @classmethod
    def create(
        cls, value: int | float | bool, dt: DType | str, name: str | None = None
    ) -> ConstantOp:
        dt = dtype(dt)
        if dt.is_float:
            value = float(value)
        elif dt.is_bool:
            value = bool(value)
        else:
            value = int(value)
        return cls("constant", (), [ScalarType(dt)], {"value": value}, result_names=[name])

    @property
    def value(self) -> int | float | bool:
        return self.attributes["value"]

    def verify_(self) -> None:
        type_ = self.results[0].type
        if not isinstance(type_, ScalarType):
            raise self.error(f"a constant is a scalar, not {type_}", hint="splat it into a tile")
        dt, value = type_.dtype, self.value
        if dt.is_bool:
            if not isinstance(value, bool):
                raise self.error(f"a bool constant is true or false, not {value!r}")
        elif isinstance(value, bool):
            raise self.error(f"{with_article(dt.name)} constant cannot be {str(value).lower()}")
        elif dt.is_int:
            if not isinstance(value, int):
                raise self.error(f"{with_article(dt.name)} constant needs an integer, not {value}")
            if not dt.min <= value <= dt.max:
                raise self.error(f"{value} is out of range for {dt.name} ({dt.min} to {dt.max})")


class BinaryOp(Operation):
    """`%r = add %a, %b : f32[32, 256]`: elementwise arithmetic, bitwise ops and comparisons."""

    names = ARITHMETIC + BITWISE + COMPARISONS
    signature = Signature(operands=exactly(2), results=exactly(1))

    @classmethod
    def create(cls, name: str, lhs: Value, rhs: Value, result_name: str | None = None) -> BinaryOp:
        check_register_values(name, [lhs.type, rhs.type])
        check_same_shape(name, [lhs.type, rhs.type])
        left, right = lhs.type.dtype, rhs.type.dtype
        if left != right:
            raise TypeCheckError(
                f"operands of '{name}' have different dtypes: {left.name} and {right.name}",
                hint=mixed_dtypes_hint(left, right),
            )
        check_compute_dtype(left, name)
        if name in BITWISE and left.is_float:
            raise TypeCheckError(f"'{name}' needs integer operands, not {left.name}")
        on_bool = name in ("shl", "shr") or (name in ARITHMETIC and name not in ("max", "min"))
        if on_bool and left.is_bool:
            raise TypeCheckError(
                f"'{SYMBOLS[name]}' is not defined on bool", hint=BOOL_ARITHMETIC_HINT
            )
        result_dtype = BOOL if name in COMPARISONS else left
        layout = _layout_of([lhs.type, rhs.type])
        result = _result_like(lhs.type, result_dtype, layout)
        return cls(name, [lhs, rhs], [result], result_names=[result_name])

    def verify_(self) -> None:
        lhs, rhs = self.operands
        try:
            check_same_shape(self.name, [lhs.type, rhs.type])
        except TypeCheckError:
            raise self.error(f"operand types differ: {lhs.type} and {rhs.type}") from None
        if lhs.type.dtype != rhs.type.dtype:
            raise self.error(f"operand types differ: {lhs.type} and {rhs.type}")

    def recreate(self) -> Operation:
        lhs, rhs = self.operands
        return BinaryOp.create(self.name, lhs, rhs)


class UnaryOp(Operation):
    """`%r = exp %a : f32[16]`: elementwise functions of one operand."""

    names = UNARY
    signature = Signature(operands=exactly(1), results=exactly(1))

    @classmethod
    def create(cls, name: str, operand: Value, result_name: str | None = None) -> UnaryOp:
        check_register_values(name, [operand.type])
        dt = operand.type.dtype
        check_compute_dtype(dt, name)
        if name in FLOAT_UNARY and not dt.is_float:
            raise TypeCheckError(
                f"'{name}' needs a float operand, not {dt.name}",
                hint=f"cast first: {name}(cast<f32>(x))",
            )
        if name == "not" and dt.is_float:
            raise TypeCheckError(f"'not' needs an integer or bool operand, not {dt.name}")
        if name in ("neg", "abs") and dt.is_bool:
            raise TypeCheckError(
                f"'{SYMBOLS.get(name, name)}' is not defined on bool", hint=BOOL_ARITHMETIC_HINT
            )
        return cls(name, [operand], [operand.type], result_names=[result_name])

    def recreate(self) -> Operation:
        return UnaryOp.create(self.name, self.operands[0])


class SelectOp(Operation):
    """`%r = where %cond, %a, %b`: elementwise choice; `cond` is bool of the same shape."""

    names = ("where",)
    signature = Signature(operands=exactly(3), results=exactly(1))

    @classmethod
    def create(
        cls, cond: Value, lhs: Value, rhs: Value, result_name: str | None = None
    ) -> SelectOp:
        check_register_values("where", [cond.type, lhs.type, rhs.type])
        check_same_shape("where", [cond.type, lhs.type, rhs.type])
        if not cond.type.dtype.is_bool:
            raise TypeCheckError(
                f"the condition of 'where' must be bool, not {cond.type}",
                hint="compare to get a bool, e.g. where(x > 0, x, 0)",
            )
        left, right = lhs.type.dtype, rhs.type.dtype
        if left != right:
            raise TypeCheckError(
                f"the two values of 'where' have different dtypes: {left.name} and {right.name}"
            )
        layout = _layout_of([cond.type, lhs.type, rhs.type])
        result = _result_like(lhs.type, left, layout)
        return cls("where", [cond, lhs, rhs], [result], result_names=[result_name])

    def recreate(self) -> Operation:
        cond, lhs, rhs = self.operands
        return SelectOp.create(cond, lhs, rhs)


class CastOp(Operation):
    """`%r = cast %a : f16[8]`: value conversion to another dtype (same shape and layout)."""

    names = ("cast",)
    signature = Signature(operands=exactly(1), results=exactly(1))

    @classmethod
    def create(cls, operand: Value, dt: DType | str, result_name: str | None = None) -> CastOp:
        check_register_values("cast", [operand.type])
        result = same_kind_with_dtype(operand.type, dtype(dt))
        return cls("cast", [operand], [result], result_names=[result_name])

    def verify_(self) -> None:
        source, result = self.operands[0].type, self.results[0].type
        if _shape_of(source) != _shape_of(result) or type(source) is not type(result):
            raise self.error(f"cast changes the shape: {source} to {result}")

    def recreate(self) -> Operation:
        return CastOp.create(self.operands[0], _dtype_of(self.results[0].type))


def view_shape(shape: tuple[int, ...], source: DType, target: DType) -> tuple[int, ...]:
    """The shape of a `view` from `source` to `target` bits: the last dimension rescales."""
    total_bits = shape[-1] * source.nbits
    if total_bits % target.nbits:
        raise TypeCheckError(
            f"cannot view {shape[-1]} x {source.name} ({total_bits} bits) as {target.name}: "
            f"{total_bits} is not a multiple of {target.nbits}",
            hint="the last dimension's bits must divide evenly into the new dtype",
        )
    return (*shape[:-1], total_bits // target.nbits)


class ViewOp(Operation):
    """`%r = view %a : u4[32, 64]`: reinterpret the bits of the last dimension as another dtype.

    Element i of a row of the result is bits [i*nb, (i+1)*nb) of that row's bit string, in the
    dense LSB-first order of packed storage. Scalars keep their bit width.
    """

    names = ("view",)
    signature = Signature(operands=exactly(1), results=exactly(1))

    @classmethod
    def create(cls, operand: Value, dt: DType | str, result_name: str | None = None) -> ViewOp:
        target = dtype(dt)
        source_type = operand.type
        source = source_type.dtype
        if isinstance(source_type, ScalarType):
            if source.nbits != target.nbits:
                raise TypeCheckError(
                    f"cannot view {with_article(source.name)} scalar as {target.name}: "
                    "bit widths differ"
                )
            result: Type = ScalarType(target)
        elif isinstance(source_type, TileType):
            if source_type.rank == 0:
                raise TypeCheckError("cannot view a rank-0 tile")
            result = TileType(target, view_shape(source_type.shape, source, target))
        elif isinstance(source_type, VectorType):
            (size,) = view_shape((source_type.size,), source, target)
            result = VectorType(target, size)
        else:
            raise TypeCheckError(f"cannot view {source_type}")
        return cls("view", [operand], [result], result_names=[result_name])

    def recreate(self) -> Operation:
        return ViewOp.create(self.operands[0], _dtype_of(self.results[0].type))


def _dtype_of(type_: Type) -> DType:
    dt = getattr(type_, "dtype", None)
    if not isinstance(dt, DType):
        raise TypeCheckError(f"{type_} has no dtype")
    return dt
