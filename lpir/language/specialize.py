"""Choose the compile-time parameters of a kernel for one call, and lower it.

A parameter gets its value, in this order of preference, from:

1. the caller (`lpir.compile(..., WT="u3", BN=64)` or `lpir opt -D BN=64`);
2. the arguments: a dimension written as a bare parameter name (`w: global WT[N, K]`) takes the
   argument's size, and a dtype written as a parameter name takes the argument's dtype (a
   scalar's only if it is a numpy scalar, and only where no tensor gave one: `s: S` passed
   np.float16(2.0) makes S f16; a Python number has no width and deduces nothing); a name
   only inside a dimension expression (`cdiv(V, 32)`) deduces nothing (a shape error then
   says which parameters took their defaults there);
3. its default in the kernel header (`G = 128`), evaluated after the parameters before it.

Afterwards every argument's declared shape and dtype must match what was passed; a mismatch
is an `ArgumentError` placed at the argument's declaration.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

from lpir.dtypes import ALL_DTYPE_NAMES, DType, dtype
from lpir.errors import ArgumentError, DTypeError, SourceLocation, TypeCheckError, location_in
from lpir.ir.core import Builder, Module
from lpir.language import ast
from lpir.language.declarations import name_span
from lpir.language.expressions import ExpressionLowering
from lpir.language.lower import lower_kernel
from lpir.language.values import Const, DTypeConst, SemanticValue


class ArgumentInfo(NamedTuple):
    """What a call passes for one kernel argument: a tensor's dtype and shape (shape None: a
    scalar, whose dtype is a numpy scalar's, None for a Python number).
    A tuple: each call of a kernel hashes its arguments' infos to find its specialization."""

    dtype: DType | None
    shape: tuple[int, ...] | None
    # an array's own element type where no unpacked lpir dtype has it (a numpy dtype: >f4,
    # object, ml_dtypes' int4), for the error to name
    foreign: Any = None
    device: bool = False  # a GPU array (torch, cupy): a hint names their calls, not numpy's


class _ParamEvaluator(ExpressionLowering):
    """Evaluates default values and shape expressions over known parameters."""

    def __init__(
        self,
        program: ast.Program,
        params: dict[str, Any],
        default_of: tuple[ast.KernelDef, str] | None = None,
    ):
        """`default_of` (the kernel, the parameter): the evaluator reads that default."""
        self.default_of = default_of
        self.source = program.source
        self.file = program.file
        self.scopes = [
            {k: DTypeConst(v) if isinstance(v, DType) else Const(v) for k, v in params.items()}
        ]
        self.threads = 0
        self.builder = Builder()

    def value(self, node: ast.Node, what: str) -> int | DType:
        if isinstance(node, ast.Name) and not any(node.id in s for s in self.scopes):
            self.check_known_before(node.id, node)
            try:
                return self.dtype_named(node.id, node.span)
            except TypeCheckError:
                self.refuse_misspelt_name(node)
                raise
        found = self.scopes[0].get(node.id) if isinstance(node, ast.Name) else None
        if isinstance(found, DTypeConst):
            return found.dtype
        return self.as_const_int(node, what)

    def refuse_misspelt_name(self, node: ast.Name) -> None:
        """A bare name that is no dtype but close to a name in scope (`BK = NN` for N) is a
        misspelt parameter, as in `BK = NN * 2`: say so rather than list the dtypes."""
        known = sorted({name for scope in self.scopes for name in scope})
        close = difflib.get_close_matches(node.id, known, n=1)
        if close:
            before = f"before {self.default_of[1]}" if self.default_of else "before it"
            raise self.error(
                f"unknown name '{node.id}': neither a parameter declared {before} nor a dtype",
                node,
                f"did you mean '{close[0]}'?",
            )

    def lookup(self, name: str, node: ast.Node) -> SemanticValue:
        if not any(name in scope for scope in self.scopes):
            self.check_known_before(name, node)
        return super().lookup(name, node)

    def check_known_before(self, name: str, node: ast.Node) -> None:
        """A default reads a later parameter or an argument: say which, not "unknown name"."""
        if self.default_of is None:
            return
        kernel, param = self.default_of
        names = [p.name for p in kernel.params]
        if name == param:
            raise self.error(
                f"the default of {param} reads {param} itself",
                node,
                f"give {param} a value: a literal, a dtype name, or an expression of the "
                "parameters before it",
            )
        if name in names and names.index(name) > names.index(param):
            raise self.error(
                f"the default of {param} reads {name}, a parameter declared after it: defaults "
                "are computed in order and read only the parameters before them",
                node,
                f"declare {name} before {param} in kernel {kernel.name}[...]",
            )
        if any(arg.name == name for arg in kernel.args):
            raise self.error(
                f"the default of {param} reads '{name}', an argument of kernel {kernel.name}: "
                "parameters are fixed when the kernel compiles, arguments exist only when it runs",
                node,
                f"make '{name}' a parameter, or deduce {param} from a tensor dimension written "
                f"{param} (w: global f16[{param}, ...])",
            )


def parameter_kind(
    kernel_def: ast.KernelDef, name: str, seen: frozenset[str] = frozenset()
) -> str | None:
    """What the kernel uses parameter `name` as: "dtype", "int" or None (cannot tell)."""
    if name in seen:  # defaults that name each other: an error when they are evaluated
        return None
    if any(decl.dtype_name == name for decl in kernel_def.args):
        return "dtype"
    counts = [*kernel_def.blocks, kernel_def.threads]
    counts += [
        dim for decl in kernel_def.args if isinstance(decl, ast.GlobalArg) for dim in decl.dims
    ]
    if any(name in ast.names_in(node) for node in counts):
        return "int"
    for param in kernel_def.params:
        if param.name != name or param.default is None:
            continue
        default = param.default
        if isinstance(default, ast.Name):
            if default.id in [p.name for p in kernel_def.params]:
                return parameter_kind(kernel_def, default.id, seen | {name})
            try:
                dtype(default.id)
                return "dtype"
            except DTypeError:
                return None
        numeric = ast.IntLiteral | ast.BinaryExpr | ast.UnaryExpr | ast.Call
        return "int" if isinstance(default, numeric) else None
    return None


def _explicit_value(
    program: ast.Program, kernel_def: ast.KernelDef, name: str, value: Any
) -> int | DType:
    """The value the caller gives parameter `name` (an int, a DType or a dtype's name),
    checked against what the kernel uses it as."""
    kind = parameter_kind(kernel_def, name)
    param = next(p for p in kernel_def.params if p.name == name)
    place = _ParamEvaluator(program, {}).location(name_span(param.span, name))
    if isinstance(value, bool) or not isinstance(value, int | str | DType):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
        except ImportError:  # pragma: no cover
            pass
    if isinstance(value, str) and kind == "int":
        raise ArgumentError(
            f"parameter {name} of kernel {kernel_def.name} takes an integer, not {value!r}",
            place,
            f"give it an integer: {name}=64 from Python (an int: a string names a dtype "
            f"there), -D {name}=64 on the command line (decimal, 0x... or 0b...)",
        )
    if isinstance(value, str):
        try:
            value = dtype(value)
        except DTypeError as error:
            if kind == "dtype":
                raise ArgumentError(
                    f"parameter {name}={value!r}: {error.message}", place, error.hint
                ) from None
            raise ArgumentError(
                f"parameter {name} of kernel {kernel_def.name} takes an integer or a dtype "
                f"name, not {value!r}",
                place,
                f"e.g. {name}=64 or {name}=f16",
            ) from None
    if isinstance(value, DType) and kind == "int":
        raise ArgumentError(
            f"parameter {name} of kernel {kernel_def.name} takes an integer, not the dtype "
            f"{value.name}",
            place,
            f"give it an integer, e.g. {name}=64",
        )
    if isinstance(value, int) and not isinstance(value, bool) and kind == "dtype":
        raise ArgumentError(
            f"parameter {name} of kernel {kernel_def.name} takes a dtype, not the integer {value}",
            place,
            f"give it a dtype name, e.g. {name}=u4 or {name}=f16",
        )
    if isinstance(value, bool) or not isinstance(value, int | DType):
        hint = (
            f"give an int ({name}=64), a dtype name ({name}='f16'), or a numpy dtype of a "
            f"type lpir has ({name}=np.float16, np.dtype('int8'), ml_dtypes.bfloat16)"
        )
        if kind == "int":
            hint = f"give it an int, e.g. {name}=64 (a float or a bool is no size)"
        elif kind == "dtype":
            hint = (
                f"give a dtype name ({name}='f16', {name}='u4'), or a numpy dtype of a type "
                f"lpir has ({name}=np.float16, np.dtype('int8'), ml_dtypes.bfloat16); lpir "
                "has no complex, string or object dtypes, and packed ones (u4, f4e2m1) go by "
                "name"
            )
        raise ArgumentError(
            f"parameter {name} of kernel {kernel_def.name} must be an int or a dtype, "
            f"not {value!r}",
            place,
            hint,
        )
    return value


class _Deduction:
    def __init__(self, program: ast.Program, kernel_def: ast.KernelDef):
        self.program = program
        self.kernel_def = kernel_def
        self.values: dict[str, int | DType] = {}
        self.sources: dict[str, str] = {}
        self.param_names = [p.name for p in kernel_def.params]
        # parameter -> the argument whose array gave its value (absent: the caller gave it)
        self.givers: dict[str, tuple[ast.GlobalArg, ArgumentInfo]] = {}

    def location(self, node: ast.Node) -> SourceLocation | None:
        return _ParamEvaluator(self.program, {}).location(node.span)

    def set(
        self,
        name: str,
        value: int | DType,
        source: str,
        node: ast.Node,
        giver: tuple[ast.GlobalArg, ArgumentInfo] | None = None,
    ) -> None:
        """Give parameter `name` its `value`, which `source` says where it comes from (`giver`:
        the argument and its array, where one gave it); a second, different value is an error."""
        if name in self.values and self.values[name] != value:
            known = self.values[name]
            hint = self._raw_bytes_hint(name, known, value, giver)
            if hint is None and isinstance(known, DType) and known.is_packed:
                hint = (
                    f"an argument of packed {known.name} must be lpir.pack(values, '{known.name}')"
                )
            raise ArgumentError(
                f"{name} is {_show(known)} from {self.sources[name]} but "
                f"{_show(value)} from {source}",
                self.location(node),
                hint or "pass arguments whose shapes and dtypes agree",
            )
        self.values[name] = value
        self.sources[name] = source
        if giver is not None:
            self.givers[name] = giver

    def _raw_bytes_hint(
        self,
        name: str,
        known: int | DType,
        value: int | DType,
        giver: tuple[ast.GlobalArg, ArgumentInfo] | None,
    ) -> str | None:
        """How to pass raw bytes (an array of u8 or i8, as a checkpoint read without ml_dtypes
        comes) where the conflict over `name` comes from one: as the dtype the other side gives
        (a dtype parameter), or the dtype they pack (a size deduced from the bytes)."""
        sides = [(self.givers.get(name), value), (giver, known)]
        for bytes_side, other in sides:
            if bytes_side is None:
                continue
            decl, info = bytes_side
            if isinstance(other, DType):
                return bytes_passed_for(info, other, decl.name, self._shape_text(decl))
            if self.givers.get(decl.dtype_name, (None,))[0] is decl and _is_byte(info.dtype):
                return self._bytes_counted_hint(decl, info)
            declared = None if decl.dtype_name in self.param_names else _dtype_named(decl)
            if declared is not None and declared != info.dtype:
                return bytes_passed_for(info, declared, decl.name, self._shape_text(decl))
        return None

    def _bytes_counted_hint(self, decl: ast.GlobalArg, info: ArgumentInfo) -> str:
        """The hint for a size deduced from an array of bytes that also made its declaration's
        dtype parameter u8 (or i8): packed bytes hold several elements each."""
        param = next(p for p in self.kernel_def.params if p.name == decl.dtype_name)
        default = _dtype_default(param)
        packed = default if default is not None and default.is_packed else dtype("u4")
        assert info.dtype is not None  # (the caller found it a byte dtype)
        found = info.dtype.name
        return (
            f"{decl.name} is an array of {found}, so {decl.dtype_name} is {found} and its "
            f"sizes count bytes; packed bytes hold 8 / bits elements each (2 of a 4-bit type): "
            f"wrap them with the logical shape and dtype, no copy, e.g. "
            f"{_wrapped(info, decl.name, self._shape_text(decl), packed)}"
        )

    def _shape_text(self, decl: ast.GlobalArg) -> str:
        return _dims_text(_ParamEvaluator(self.program, {}), decl)

    def from_arguments(self, arguments: list[ArgumentInfo]) -> None:
        decls = self.kernel_def.args
        if len(arguments) != len(decls):
            names = ", ".join(d.name for d in decls)
            raise ArgumentError(
                f"kernel {self.kernel_def.name} takes {len(decls)} "
                f"{'argument' if len(decls) == 1 else 'arguments'} ({names}), "
                f"got {len(arguments)}",
                self.location(self.kernel_def),
            )
        for decl, info in zip(decls, arguments):
            if isinstance(decl, ast.ScalarArg) or info.shape is None:
                continue
            # An array of a numpy dtype lpir lacks deduces nothing; check_arguments names it.
            if decl.dtype_name in self.param_names and info.dtype is not None:
                self.set(decl.dtype_name, info.dtype, f"argument {decl.name}", decl, (decl, info))
            if len(decl.dims) != len(info.shape):
                raise ArgumentError(
                    f"argument {decl.name} must have {_dimensions(len(decl.dims))}, got an "
                    f"array of shape {info.shape}",
                    self.location(decl),
                )
            for dim, size in zip(decl.dims, info.shape):
                if isinstance(dim, ast.Name) and dim.id in self.param_names:
                    giver = (decl, info)
                    self.set(dim.id, int(size), f"the shape of argument {decl.name}", decl, giver)
        self._from_scalars(arguments)

    def _from_scalars(self, arguments: list[ArgumentInfo]) -> None:
        """A numpy scalar (np.float16(2.0)) deduces its declaration's dtype parameter where
        neither the caller nor a tensor gave one; elsewhere it is converted, as a Python
        number always is."""
        given = set(self.values)
        for decl, info in zip(self.kernel_def.args, arguments):
            deducing = isinstance(decl, ast.ScalarArg) and decl.dtype_name in self.param_names
            if deducing and info.dtype is not None and decl.dtype_name not in given:
                self.set(decl.dtype_name, info.dtype, f"argument {decl.name}", decl)

    def defaults(self, need_all: bool) -> None:
        ordered: dict[str, int | DType] = {}
        for param in self.kernel_def.params:
            if param.name in self.values:
                ordered[param.name] = self.values[param.name]
                continue
            if param.default is None:
                if not need_all:
                    continue
                raise ArgumentError(
                    f"parameter {param.name} of kernel {self.kernel_def.name} has no value",
                    self.location(param),
                    f"pass {param.name}=... or give it a default: {param.name} = ...",
                )
            evaluator = _ParamEvaluator(self.program, ordered, (self.kernel_def, param.name))
            ordered[param.name] = evaluator.value(param.default, f"the default of {param.name}")
        self.values = ordered


def _dtype_default(param: ast.Param) -> DType | None:
    """The dtype a parameter's default names, None where it names none."""
    if not isinstance(param.default, ast.Name):
        return None
    try:
        return dtype(param.default.id)
    except DTypeError:
        return None


def _dtype_named(decl: ast.GlobalArg) -> DType | None:
    try:
        return dtype(decl.dtype_name)
    except DTypeError:  # an unknown name: check_arguments says so
        return None


def _dims_text(evaluator: _ParamEvaluator, decl: ast.GlobalArg) -> str:
    """A tensor declaration's dimensions as written, as a Python shape: "(N, K)", "(K,)"."""
    texts = [evaluator.text_of(dim) for dim in decl.dims]
    return f"({texts[0]},)" if len(texts) == 1 else f"({', '.join(texts)})"


def _is_byte(found: DType | None) -> bool:
    return found is not None and found.name in ("u8", "i8")


def bytes_passed_for(info: ArgumentInfo, wanted: DType, name: str, shape: str) -> str | None:
    """The hint for an integer array (u8 or i8, or u16/i16 for a 16-bit float: the raw bytes a
    checkpoint loader without ml_dtypes hands over) passed as argument `name` where `wanted`
    is meant; `shape`: the declaration's dimensions as written, "(N, K)". None where the array
    cannot be `wanted`'s bytes."""
    found = info.dtype
    if found is None or found.kind not in ("int", "uint") or found.nbits > 16:
        return None
    if wanted.is_packed or (wanted.is_small_float and wanted.ml_dtype is None):
        if found.nbits != 8:
            return None
        if wanted.is_packed and 8 % wanted.nbits == 0:
            each = f"{8 // wanted.nbits} to a byte"
        else:
            each = "one a byte" if wanted.nbits == 8 else f"8 in {wanted.nbits} bytes"
        return (
            f"if {name} holds {wanted.name} values already packed ({each}, low bits first: a "
            f"checkpoint's bytes), wrap them with the logical shape, no copy: "
            f"{_wrapped(info, name, shape, wanted)}; to pack values, "
            f"lpir.pack(values, '{wanted.name}')"
        )
    if wanted.is_float and found.nbits <= wanted.nbits <= 16:
        as_wanted = _array_dtype_name(wanted, info.device)
        halves = " (which halves its last dimension)" if wanted.nbits > found.nbits else ""
        return (
            f"if {name} holds the bytes of {wanted.name} values (a checkpoint read as "
            f"{found.name}), view them as {wanted.name}, no copy: {name}.view({as_wanted})"
            f"{halves}; to convert numbers, {name}.{_convert(info.device)}({as_wanted})"
        )
    if wanted.kind in ("int", "uint") and wanted.nbits == found.nbits:
        as_wanted = _array_dtype_name(wanted, info.device)
        return (
            f"to read {name}'s bytes as {wanted.name}: {name}.view({as_wanted}); to convert "
            f"its values: {name}.{_convert(info.device)}({as_wanted})"
        )
    return None


def _wrapped(info: ArgumentInfo, name: str, shape: str, wanted: DType) -> str:
    """The call that wraps argument `name`'s bytes (`info`) as packed `wanted` of `shape`."""
    if info.device:  # DevicePacked takes int8 storage as it is
        return f"lpir.DevicePacked({name}, '{wanted.name}', {shape})"
    data = name if info.dtype is not None and info.dtype.name == "u8" else f"{name}.view(np.uint8)"
    return f"lpir.PackedArray({data}, {shape}, '{wanted.name}')"


def _array_dtype_name(dt: DType, device: bool) -> str:
    """How an array library names `dt`'s element type: ml_dtypes.float8_e4m3fn, np.float16,
    or torch's for a GPU array (torch.float8_e4m3fn)."""
    import numpy as np

    if dt.ml_dtype is not None and not dt.is_packed:
        numpy_name = dt.ml_dtype.__name__
        return f"torch.{numpy_name}" if device else f"ml_dtypes.{numpy_name}"
    numpy_name = np.dtype(dt.numpy_dtype).name
    return f"torch.{numpy_name}" if device else f"np.{numpy_name}"


def _convert(device: bool) -> str:
    return "to" if device else "astype"


def _show(value: int | DType) -> str:
    return value.name if isinstance(value, DType) else str(value)


def _unknown_parameter_hint(kernel_def: ast.KernelDef, name: str, params: list[str]) -> str:
    """What to write for a parameter the kernel does not declare: the closest name, or how to
    pass an argument, or how to declare one."""
    arguments = [arg.name for arg in kernel_def.args]
    if name in arguments:
        return f"{name} is an argument of {kernel_def.name}: pass it when calling the kernel"
    close = difflib.get_close_matches(name, params, n=1) or [
        p for p in params if p.lower() == name.lower()
    ]
    if close:
        return f"did you mean {close[0]}?"
    if not params:
        return f"declare it in the header: kernel {kernel_def.name}[{name} = ...](...)"
    return f"set one of those, or declare it: kernel {kernel_def.name}[..., {name} = ...](...)"


def choose_params(
    program: ast.Program,
    kernel_def: ast.KernelDef,
    explicit: dict[str, Any] | None = None,
    arguments: list[ArgumentInfo] | None = None,
) -> dict[str, int | DType]:
    """Every parameter's value for one specialization (see the module docstring)."""
    deduction = _Deduction(program, kernel_def)
    for name, value in (explicit or {}).items():
        if name not in deduction.param_names:
            known = ", ".join(deduction.param_names) or "none"
            raise ArgumentError(
                f"kernel {kernel_def.name} has no parameter {name!r} (its parameters: {known})",
                deduction.location(kernel_def),
                _unknown_parameter_hint(kernel_def, name, deduction.param_names),
            )
        value = _explicit_value(program, kernel_def, name, value)
        deduction.set(name, value, "the caller", kernel_def)
    if arguments is not None:
        deduction.from_arguments(arguments)
    given = set(deduction.values)
    deduction.defaults(need_all=True)
    if arguments is not None:
        defaulted = {name for name in deduction.values if name not in given}
        check_arguments(program, kernel_def, deduction.values, arguments, defaulted)
    return deduction.values


def _dimensions(count: int) -> str:
    return "1 dimension" if count == 1 else f"{count} dimensions"


def check_arguments(
    program: ast.Program,
    kernel_def: ast.KernelDef,
    params: dict[str, int | DType],
    arguments: list[ArgumentInfo],
    defaulted: set[str] | None = None,
) -> None:
    """Every tensor argument's dtype and shape must match its declaration under `params`
    (`defaulted`: the parameters that took their defaults, which a mismatch names)."""
    evaluator = _ParamEvaluator(program, params)
    for decl, info in zip(kernel_def.args, arguments):
        if isinstance(decl, ast.ScalarArg):
            continue
        location = evaluator.location(decl.span)
        expected_dtype = evaluator.dtype_named(decl.dtype_name, decl.dtype_span)
        if info.dtype != expected_dtype or info.shape is None:
            if info.shape is None:
                got = "a scalar"
            elif info.dtype is not None:
                got = info.dtype.name
            else:  # object, complex, float128, bool (lpir's bool tensors are packed), ...
                got = "an array of a numpy dtype that no unpacked lpir dtype has"
                if info.foreign is not None:
                    got += f": {info.foreign}"
            raise ArgumentError(
                f"argument {decl.name} must hold {expected_dtype.name}, got {got}",
                location,
                _foreign_dtype_hint(info, expected_dtype)
                or bytes_passed_for(info, expected_dtype, decl.name, _dims_text(evaluator, decl))
                or _float_codes_hint(info, expected_dtype)
                or _dtype_hint(expected_dtype),
            )
        rows = runtime_rows_name(kernel_def, decl)  # checked against its argument at the call
        dims = decl.dims[1:] if rows is not None else decl.dims
        expected = tuple(evaluator.as_const_int(d, "a dimension") for d in dims)
        if rows is not None and len(info.shape) == len(decl.dims):
            expected = (info.shape[0], *expected)
        if tuple(info.shape) != expected:
            if rows is not None:
                expected_text = f"({', '.join([rows, *map(str, expected[1:])])})"
            else:
                expected_text = str(expected)
            shown = ", ".join(f"{k} = {_show(v)}" for k, v in params.items())
            message = f"argument {decl.name} must have shape {expected_text}, got {info.shape}"
            undeduced = _undeduced(
                evaluator, params, decl, info, dims, expected, defaulted or set()
            )
            if undeduced is not None:
                message, hint = message + undeduced[0], undeduced[1]
            else:
                hint = f"with {shown}"
            raise ArgumentError(message, location, hint)


def _undeduced(
    evaluator: _ParamEvaluator,
    params: dict[str, int | DType],
    decl: ast.GlobalArg,
    info: ArgumentInfo,
    dims: list[ast.Node],
    expected: tuple[int, ...],
    defaulted: set[str],
) -> tuple[str, str] | None:
    """(what the message adds, the hint) where a mismatched dimension is an expression of
    parameters that took their defaults (`cdiv(V, 32)`): only a dimension written as a bare
    name deduces its parameter from an argument's size. None where no such parameter is in a
    mismatched dimension."""
    if info.shape is None or len(info.shape) != len(decl.dims):
        return None
    # a run-time row count (the first dimension) is not among dims
    shape, expected = info.shape[-len(dims) :], expected[-len(dims) :]
    names: list[str] = []
    texts: list[str] = []
    for dim, size, wanted in zip(dims, shape, expected):
        found = [n for n in ast.names_in(dim) if n in defaulted and n not in names]
        if size != wanted and found and not isinstance(dim, ast.Name):
            names += found
            texts.append(evaluator.text_of(dim))
    if not names:
        return None
    defaults = ", ".join(f"{name} = {_show(params[name])}" for name in names)
    passed = ", ".join(f"{name}=..." for name in names)
    return (
        f": {' and '.join(names)} took {'its default' if len(names) == 1 else 'their defaults'}"
        f" ({defaults}), not deduced from "
        f"{decl.name}'s {' and '.join(texts)} (only a dimension written as a bare parameter "
        "name deduces it from an argument)",
        f"pass {passed} to lpir.compile (-D {names[0]}=... to lpir run), or give an argument "
        f"a dimension of {names[0]} alone",
    )


def runtime_rows_name(kernel_def: ast.KernelDef, decl: ast.GlobalArg) -> str | None:
    """The scalar argument a tensor's first dimension is (read at each call), or None."""
    first = decl.dims[0] if decl.dims else None
    if isinstance(first, ast.Name) and any(
        isinstance(arg, ast.ScalarArg) and arg.name == first.id for arg in kernel_def.args
    ):
        return first.id
    return None


def _foreign_dtype_hint(info: ArgumentInfo, expected: DType) -> str | None:
    """What to pass instead of an array of a numpy dtype no unpacked lpir dtype has, where
    `expected` is declared (None: nothing better than converting it to `expected`)."""
    import numpy as np

    if info.foreign is None:
        return None
    try:
        np_dtype = np.dtype(info.foreign)
    except TypeError:  # a GPU array's type numpy has no name for
        return None
    if _ml_dtypes_type(np_dtype) is not None:
        return _ml_array_hint(np_dtype, expected, info.device)
    dtypes = [dtype(name) for name in ALL_DTYPE_NAMES]
    native = np_dtype.newbyteorder("=")
    if not np_dtype.isnative and any(
        not dt.is_packed and dt.numpy_dtype == native for dt in dtypes
    ):
        return f"convert it to the native byte order: array.astype('{native.str}')"
    if np_dtype == np.bool_:
        return (
            "lpir's bool tensors are packed: lpir.pack(array, 'bool'); for numbers, "
            "array.astype(np.uint8) (or the dtype expected)"
        )
    if np_dtype == np.object_:
        return "the array holds Python objects: convert them to numbers, array.astype(...)"
    return None


# ml_dtypes' float types no lpir dtype is -> the lpir dtype nearest (None: none), for the
# hints to name
_NEAREST_LPIR_FLOAT = {
    "float8_e4m3fnuz": "f8e4m3",  # bias 8, one NaN (0x80), no -0
    "float8_e4m3b11fnuz": "f8e4m3",  # bias 11
    "float8_e5m2fnuz": "f8e5m2",  # bias 16
    "float8_e4m3": "f8e4m3",  # IEEE-like: inf and NaN at the top exponent, lpir's has none
    "float8_e3m4": "f8e3m4",  # IEEE-like; lpir's f8e3m4 is all-finite
    "float8_e5m3fnu": None,  # unsigned
    "float8_e8m0fnu": None,  # exponent only: MX scales, which lpir takes as u8 codes
}


def _ml_dtypes_type(np_dtype: Any) -> Any:
    """The ml_dtypes type `np_dtype` is (float8_e8m0fnu, int4, ...), or None."""
    import sys

    import numpy as np

    ml_dtypes = sys.modules.get("ml_dtypes")  # no array has an ml_dtypes type before it loads
    found = getattr(ml_dtypes, np_dtype.name, None) if ml_dtypes is not None else None
    try:
        return found if found is not None and np.dtype(found) == np_dtype else None
    except TypeError:  # an ml_dtypes name that is not a type (finfo, ...)
        return None


def _ml_lpir_dtype(np_dtype: Any) -> DType | None:
    """The (packed) lpir dtype whose ml_dtypes type `np_dtype` is: f4e2m1, i4, ..."""
    for name in ALL_DTYPE_NAMES:
        dt = dtype(name)
        if dt.ml_dtype is not None and dt.ml_dtype.__name__ == np_dtype.name:
            return dt
    return None


def _ml_array_hint(np_dtype: Any, expected: DType, device: bool) -> str | None:
    """The hint for an array of an ml_dtypes type (`np_dtype`) that no unpacked lpir dtype
    is, where `expected` is declared: an integer of its width takes a float's codes by a
    view (a conversion would change them: 2^-3 -> 0); a type lpir packs is packed; numbers
    convert (None: converting to `expected` is the hint)."""
    own = _ml_lpir_dtype(np_dtype)
    if own is not None and own == expected:
        return f"lpir stores {own.name} packed: lpir.pack(array, '{own.name}')"
    declare = None
    if own is not None:
        declare = f"declare it {own.name} and pass lpir.pack(array, '{own.name}') (packed)"
    is_float = np_dtype.name.startswith("float")
    if expected.is_packed or (expected.is_small_float and expected.ml_dtype is None):
        return _pack_through_numbers(np_dtype, expected, declare)
    as_expected = _array_dtype_name(expected, device)
    convert = f"convert the values: array.{_convert(device)}({as_expected})"
    if expected.is_float:
        return None if declare is None else f"{declare}, or {convert}"
    if is_float and expected.nbits == 8 * np_dtype.itemsize:
        return _float_codes_for_integer(np_dtype, expected, device, declare)
    if is_float or (np_dtype.name.startswith("int") and expected.kind == "uint"):
        return declare  # (a conversion would drop fractions or wrap negative values)
    return None if declare is None else f"{declare}, or {convert}"


def _float_codes_for_integer(
    np_dtype: Any, expected: DType, device: bool, declare: str | None
) -> str:
    """The hint for an ml_dtypes float array where an integer of its width is declared: its
    codes are what that declaration means, taken by a view."""
    view = f"array.view({_array_dtype_name(expected, device)})"
    if declare is not None:  # float4_e2m1fn, float6_*: one code a byte
        return f"pass its codes, one a byte, no copy: {view}; or {declare}"
    if np_dtype.name == "float8_e8m0fnu":
        scales = "lpir has no e8m0 dtype: MX scales are u8 exponent codes, 2^(code - 127)"
        if expected.name != "u8":
            as_u8 = _array_dtype_name(dtype("u8"), device)
            return f"{scales}: declare it u8 and pass array.view({as_u8})"
        return f"pass its codes, no copy: {view}; {scales} (astype would turn 2^-3 into 0)"
    codes = f"pass its codes, no copy: {view}; lpir has no {np_dtype.name} dtype"
    nearest = _NEAREST_LPIR_FLOAT.get(np_dtype.name)
    if nearest is None:
        return codes
    near = dtype(nearest)
    if near.ml_dtype is None:  # f8e3m4: all-finite, unlike ml_dtypes' IEEE-like float8_e3m4
        return (
            f"{codes}; for lpir's {nearest} (all-finite), pack the values: "
            f"lpir.pack(array.astype(np.float32), '{nearest}')"
        )
    as_near = f"ml_dtypes.{near.ml_dtype.__name__}"
    return f"{codes}; for lpir's {nearest}, convert the values: array.astype({as_near})"


def _pack_through_numbers(np_dtype: Any, expected: DType, declare: str | None) -> str:
    """The hint for an ml_dtypes array where a packed dtype, or a small float numpy has not,
    is declared: lpir.pack refuses another ml_dtypes type, so the values go through numpy's."""
    plain = "np.float32" if np_dtype.name.startswith("float") else "np.int32"
    packs = f"pack the values: lpir.pack(array.astype({plain}), '{expected.name}')"
    if np_dtype.name == "float8_e3m4" and expected.name == "f8e3m4":
        return f"lpir's f8e3m4 is all-finite, unlike ml_dtypes.float8_e3m4 (inf, NaN): {packs}"
    return packs if declare is None else f"{packs}; or {declare}"


def _float_codes_hint(info: ArgumentInfo, expected: DType) -> str | None:
    """The hint for a float array (fp8, bf16, f16, ...) where an integer of its width is
    declared: its codes (a view), or its values (a conversion, which changes the codes)."""
    found = info.dtype
    if found is None or not found.is_float or found.is_packed or info.shape is None:
        return None
    if expected.kind not in ("int", "uint") or expected.is_packed:
        return None
    if expected.nbits != found.nbits:
        return None
    as_expected = _array_dtype_name(expected, info.device)
    view = f"array.view({as_expected})"
    convert = f"array.{_convert(info.device)}({as_expected})"
    if found.nbits == 8:  # fp8 in bytes: the codes are what a u8 declaration means
        return f"to pass its codes, no copy: {view}; to convert its values: {convert}"
    return f"to convert its values: {convert}; to pass its bits as they are: {view}"


def _dtype_hint(expected: DType) -> str:
    if expected.is_packed:
        return f"pack it: lpir.pack(values, '{expected.name}')"
    if expected.is_small_float and expected.ml_dtype is None:  # f8e3m4, f8e7m0, ...
        return (
            f"numpy has no {expected.name} dtype: pass lpir.pack(values, '{expected.name}') "
            f"(or lpir.pack_codes(uint8_codes, '{expected.name}'))"
        )
    import numpy as np

    if expected.ml_dtype is not None:  # bf16, fp8: numpy's dtype for them is ml_dtypes'
        return f"convert it: array.astype(ml_dtypes.{np.dtype(expected.ml_dtype).name})"
    return f"convert it: array.astype(np.{np.dtype(expected.numpy_dtype).name})"


def specialize(
    program: ast.Program,
    kernel_name: str | None = None,
    explicit: dict[str, Any] | None = None,
    arguments: list[ArgumentInfo] | None = None,
) -> tuple[dict[str, int | DType], Module]:
    """Choose parameters and lower the kernel to tile IR."""
    if not program.kernels:
        raise TypeCheckError(
            "the source defines no kernel",
            location_in(program.source, program.file, 1, 1),
            "write kernel name(...) {...}",
        )
    try:
        kernel_def = program.kernel(kernel_name)
    except KeyError:
        names = ", ".join(k.name for k in program.kernels)
        raise ArgumentError(
            f"no kernel named {kernel_name!r}; the source has {names}",
            hint=f"choose one of them: kernel={program.kernels[0].name!r} from Python, "
            f"--kernel {program.kernels[0].name} on the command line",
        ) from None
    params = choose_params(program, kernel_def, explicit, arguments)
    return params, lower_kernel(program, kernel_def, params)
