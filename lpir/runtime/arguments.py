"""Check and convert the arguments of a kernel call before anything runs.

Every mismatch is an `ArgumentError` that names the argument and points at its declaration:
a wrong dtype, rank or shape, a non-contiguous or misaligned array (or packed storage), an
unpacked array for a packed dtype, a read-only array the kernel writes, a scalar out of range
(a float too: one its dtype would saturate or make inf). Nothing reaches a
compiled kernel unchecked, so a wrong argument cannot crash the process.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import keyword
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lpir.dtypes import DType
from lpir.errors import ArgumentError, LpirError, SourceLocation, with_article
from lpir.language import ast
from lpir.language.specialize import ArgumentInfo
from lpir.packing import PackedArray, pack_codes, pieces, storage_bytes, unpack_codes

if TYPE_CHECKING:
    from lpir.backends.cuda.arrays import DeviceView
    from lpir.ir.types import GlobalType


class Declared(Protocol):
    """What the checks read of an argument's declaration: the name an error calls it by."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class NamedArgument:
    """An argument known only by its name (an IR file's kernel, which has no declarations)."""

    name: str


@dataclass
class Argument:
    """One checked argument: what the caller passed and how the kernel sees it."""

    declaration: ast.GlobalArg | ast.ScalarArg
    value: Any

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.declaration, ast.GlobalArg)


def _numpy_dtype_of(dt: DType) -> np.dtype | None:
    """The numpy dtype of an unpacked array holding dt (None for packed dtypes)."""
    if dt.is_packed:
        return None
    if dt.ml_dtype is not None and dt.is_float and dt.nbits == 8:
        return np.dtype(dt.ml_dtype)
    return np.dtype(dt.numpy_dtype)


def describe(value: Any) -> str:
    """A value as an error message names it: arrays by dtype and shape, containers by type and
    length (a list of 100,000 numbers is "a list of 100000 items", not its repr), other values
    by type and a repr cut short."""
    if isinstance(value, PackedArray):
        return f"a PackedArray of {value.dtype.name} with shape {value.shape}"
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype} with shape {value.shape}"
    kind = type(value).__name__
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{with_article(kind)} object of {memoryview(value).nbytes} bytes"
    if isinstance(value, list | tuple | dict | set | frozenset):
        return f"{with_article(kind)} of {len(value)} items"
    return f"{kind} {show_number(value) if isinstance(value, int) else _short_repr(value)}"


def _short_repr(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:  # a foreign object whose repr fails: its type is named already
        return "(no repr)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show_number(value: int | float) -> str:
    """A number for a message; an integer too long to print in full by its bit length (Python
    refuses to print ints of more than 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}(an integer of {value.bit_length()} bits)"
    return repr(value)


def call_signature(names: Sequence[str]) -> inspect.Signature:
    """The signature a call of a kernel declaring arguments `names` has, for
    `inspect.signature`, `help()` and notebooks: each by position or by name, as
    `bound_by_name` binds them. A name Python reserves (`lambda`) shows with trailing `_`s (as
    many as make it a name no argument has) and, since Python cannot name it in a call, with
    those before it as positional only."""
    last_reserved = max((i for i, name in enumerate(names) if keyword.iskeyword(name)), default=-1)
    shown: list[str] = []
    for name in names:
        if keyword.iskeyword(name):  # lambda -> lambda_, or lambda__ where lambda_ is declared
            name += "_"
            while name in names or name in shown:
                name += "_"
        shown.append(name)
    return inspect.Signature(
        [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_ONLY
                if i <= last_reserved
                else inspect.Parameter.POSITIONAL_OR_KEYWORD,
            )
            for i, name in enumerate(shown)
        ]
    )


def kernel_repr(kind: str, name: str, names: Sequence[str], target: str, params: dict) -> str:
    """`<lpir.Kernel gemv_wq(x, w, s, y) target='cpu' WT='u3' ZERO=4>`: what a kernel object
    shows in a REPL or a log, its compile-time parameters as `lpir.compile` takes them."""
    shown = {
        param: value.name if isinstance(value, DType) else value for param, value in params.items()
    }
    given = "".join(f" {param}={value!r}" for param, value in shown.items())
    return f"<lpir.{kind} {name}({', '.join(names)}) target={target!r}{given}>"


def bound_by_name(
    kernel: str,
    names: list[str],
    parameters: list[str],
    positional: tuple,
    by_name: dict[str, Any],
    header: SourceLocation | None = None,
    declared_at: Sequence[SourceLocation | None] = (),
) -> tuple:
    """A call's arguments in declaration order (`names`), from those given by position and
    those given by name, as Python binds them; `parameters`: the kernel's compile-time ones,
    which a hint points to when a call names one. Errors are placed at the kernel's `header`,
    or at the declaration (`declared_at`, in the order of `names`) of the argument concerned."""
    signature = f"{kernel}({', '.join(names)})"
    places = dict(zip(names, declared_at))
    if len(positional) > len(names):
        raise ArgumentError(
            f"{signature} takes {len(names)} arguments, got {len(positional)} by position",
            header,
            hint=f"pass {', '.join(names)}, in this order",
        )
    bound = dict(zip(names, positional))
    for name, value in by_name.items():
        if name in bound:
            raise ArgumentError(
                f"{signature} got argument {name} twice: by position and by name",
                places.get(name, header),
                hint=f"pass {name} once",
            )
        if name not in names:
            if name in parameters:
                hint = f"{name} is a compile-time parameter: lpir.compile(..., {name}=...)"
            else:
                close = difflib.get_close_matches(name, names, n=1)
                hint = (
                    f"did you mean {close[0]}?" if close else f"its arguments: {', '.join(names)}"
                )
            raise ArgumentError(f"{signature} has no argument {name!r}", header, hint=hint)
        bound[name] = value
    missing = [name for name in names if name not in bound]
    if missing:
        raise ArgumentError(
            f"{signature} is missing {'argument' if len(missing) == 1 else 'arguments'} "
            f"{', '.join(missing)}",
            places.get(missing[0], header),
            hint=f"pass {', '.join(missing)} by position or by name",
        )
    return tuple(bound[name] for name in names)


def device_view_of(value: Any) -> DeviceView | None:
    """The device view of a GPU array (torch, cupy, `DevicePacked`), None for anything else."""
    if isinstance(value, np.ndarray | PackedArray):
        return None
    from lpir.backends.cuda.arrays import device_view

    return device_view(value)


def is_device_array(value: Any) -> bool:
    """Whether `value` lives in GPU memory (torch or cupy on the GPU, `DevicePacked`)."""
    return device_view_of(value) is not None


def tensor_info(
    value: Any,
    decl: Declared,
    where: SourceLocation | None,
    target: str,
    view: DeviceView | None,
) -> ArgumentInfo:
    """(dtype or None, shape) of a tensor argument, for parameter deduction (`view`: its
    `device_view_of`, None for a host array)."""
    if isinstance(value, PackedArray):
        return ArgumentInfo(value.dtype, tuple(value.shape))
    if isinstance(value, np.ndarray):
        return _array_info(value.dtype, value.shape)
    if view is not None:
        if target != "cuda":
            raise ArgumentError(
                f"argument {decl.name} is a GPU array, but target {target!r} runs on the host",
                where,
                "pass a numpy array (tensor.cpu().numpy()), or compile with target='cuda'",
            )
        packed_dtype = getattr(value, "dtype", None)
        if isinstance(packed_dtype, DType):  # a DevicePacked: its logical dtype and shape
            return ArgumentInfo(packed_dtype, tuple(value.shape))
        found = _dtype_of_name(view.dtype)
        return ArgumentInfo(found, tuple(view.shape), None if found else view.dtype, device=True)
    if hasattr(value, "__array__"):
        try:
            array = np.asarray(value)
        except Exception as error:  # a foreign array type numpy cannot read
            raise ArgumentError(
                f"argument {decl.name} cannot be read as an array: {error}",
                where,
                "pass a numpy array (or lpir.pack(...) for packed dtypes)",
            ) from None
        return _array_info(array.dtype, array.shape)
    raise ArgumentError(
        f"argument {decl.name} must be an array, got {describe(value)}",
        where,
        "pass a numpy array (or lpir.pack(...) for packed dtypes)",
    )


def scalar_info(value: Any) -> ArgumentInfo:
    """A scalar argument's dtype for parameter deduction: a numpy scalar's (np.float16(2.0)),
    None for a Python number (which has no width) or anything else (checked later)."""
    if isinstance(value, np.generic):
        return ArgumentInfo(_dtype_of_numpy(value.dtype), None)
    return ArgumentInfo(None, None)


def parameter_dtype(name: str, value: Any) -> Any:
    """A dtype parameter's value as lpir takes it: a numpy dtype or scalar type
    (`np.dtype("float16")`, `np.float16`, `ml_dtypes.bfloat16`, `np.bool_`) becomes the lpir
    dtype whose arrays have it; anything else is returned as it is (a dtype name, an int, a
    numpy dtype lpir has no type for), for the parameter's checks to accept or refuse. A
    byte-swapped numpy dtype (`np.dtype(">f4")` on a little-endian host) is refused here,
    with the native one to give (the error has no place: the caller places it)."""
    is_type = isinstance(value, type) and issubclass(value, np.generic)
    if not (isinstance(value, np.dtype) or is_type):
        return value
    np_dtype = np.dtype(value)
    hint = byte_order_hint(np_dtype, f"{name}=np.dtype('{{native}}')")
    if hint is not None:
        raise ArgumentError(
            f"parameter {name} is the byte-swapped dtype {np_dtype.str!r}; lpir's dtypes are "
            "in the host's byte order",
            hint=hint,
        )
    if np_dtype == np.bool_:  # bool arrays are packed, but bool is a dtype all the same
        from lpir.dtypes import dtype

        return dtype("bool")
    return _dtype_of_numpy(np_dtype) or value


def byte_order_hint(np_dtype: np.dtype, write: str = "array.astype('{native}')") -> str | None:
    """How to give a byte-swapped numpy dtype whose native form lpir has in the host's byte
    order (`write` with the native dtype's string); None for any other dtype."""
    native = np_dtype.newbyteorder("=")
    if np_dtype.isnative or _dtype_of_numpy(native) is None:
        return None
    return "convert it to the host's byte order: " + write.format(native=native.str)


def _array_info(np_dtype: np.dtype, shape: tuple[int, ...]) -> ArgumentInfo:
    found = _dtype_of_numpy(np_dtype)
    return ArgumentInfo(found, tuple(shape), None if found else np_dtype)


@functools.cache
def _dtype_of_name(device_dtype: Any) -> DType | None:
    """The lpir dtype of a device array's element type (a `DeviceView`'s: a numpy dtype or a
    name such as "bfloat16"), None when no unpacked lpir dtype has it (remembered: each call of
    a kernel asks for every argument's)."""
    from lpir.backends.cuda.arrays import dtype_name  # device arrays come from that backend

    name = dtype_name(device_dtype)
    try:
        return _dtype_of_numpy(np.dtype(name))
    except TypeError:
        import ml_dtypes

        known = getattr(ml_dtypes, name, None)
        return _dtype_of_numpy(np.dtype(known)) if known is not None else None


@functools.cache
def _dtype_of_numpy(np_dtype: np.dtype) -> DType | None:
    """The unpacked lpir dtype whose arrays have this numpy dtype (remembered: each call of a
    kernel asks for every argument's)."""
    from lpir.dtypes import ALL_DTYPE_NAMES, dtype

    ml_loaded = "ml_dtypes" in sys.modules  # else no array has an ml_dtypes type yet
    for name in ALL_DTYPE_NAMES:
        dt = dtype(name)
        if dt.is_packed or dt.is_bool:
            continue
        if not ml_loaded and (dt.name == "bf16" or (dt.is_float and dt.nbits == 8)):
            continue  # (loading ml_dtypes to compare takes ~0.5 s of CPU)
        if _numpy_dtype_of(dt) == np_dtype:
            if dt.is_float and dt.nbits == 8 and dt.ml_dtype is None:
                continue
            return dt
    if np_dtype == np.bool_:
        return None
    return None


def check_device_tensor(
    view: DeviceView, arg_type: GlobalType, decl: Declared, where: SourceLocation | None
) -> None:
    """Raise unless a GPU array (or `DevicePacked`), seen through its `device_view_of`, can
    stand for an argument of `arg_type` (a `GlobalType`): dtype, shape, contiguity, 16-byte
    alignment. The launch checks the device it lives on."""
    from lpir.backends.cuda.arrays import check_device_array

    try:
        check_device_array(view, arg_type, decl.name, view.device)
    except ArgumentError as error:
        raise ArgumentError(error.message, where, error.hint) from None
    view.checked_as = arg_type


def logical_shape(value: Any, view: DeviceView | None) -> tuple[int, ...] | None:
    """The shape of the tensor a call's argument stands for: a device array's (a
    `DevicePacked`'s own, not its bytes'), a host array's or a `PackedArray`'s."""
    if view is not None:
        from lpir.backends.cuda.arrays import logical_shape as device_shape

        return device_shape(view)
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(shape)


def check_runtime_rows(
    kernel_args: list, prepared: list, shapes: list, wheres: list[SourceLocation | None]
) -> None:
    """Raise unless every tensor whose first dimension is an i32 argument (`GlobalType.extent`)
    has as many rows as that argument says at this call. `kernel_args`: the kernel IR's
    arguments; `prepared`: the call's checked arguments; `shapes`: each tensor's logical
    shape (None for scalars); `wheres`: each argument's declaration."""
    values = {arg.name_hint: value for arg, value in zip(kernel_args, prepared)}
    for arg, shape, where in zip(kernel_args, shapes, wheres):
        rows_name = getattr(arg.type, "extent", None)
        if rows_name is None or shape is None:
            continue
        rows = int(values[rows_name])
        name = arg.name_hint or "?"
        if shape[0] != rows:
            raise ArgumentError(
                f"argument {name} has {shape[0]} rows (its first dimension is {rows_name}), but "
                f"{rows_name} = {rows} at this call",
                where,
                f"pass {rows_name} = {name}.shape[0], or an array of {rows_name} rows",
            )
        if rows > arg.type.shape[0]:  # (an array this large has more elements than i32 reach)
            raise ArgumentError(
                f"argument {name} has {rows} rows, more than i32 indices reach (at most "
                f"{arg.type.shape[0]} rows of {math.prod(arg.type.shape[1:])} elements)",
                where,
                "lpir indexes tensors with i32: split the call in two, one on rows "
                f"[:{rows // 2}] of the tensors of {rows_name} rows ({name}[:{rows // 2}], a "
                "view), the other on the rest",
            )


def check_tensor(
    value: Any, expected: DType, decl: Declared, where: SourceLocation | None, writes: bool
) -> None:
    """Raise unless `value` is a C-contiguous, aligned host array holding `expected`."""
    if expected.is_packed and not isinstance(value, PackedArray):
        raise ArgumentError(
            f"argument {decl.name} holds packed {expected.name} values; got {describe(value)}",
            where,
            f"pack it first: lpir.pack(values, '{expected.name}')",
        )
    if isinstance(value, PackedArray):
        if value.dtype != expected:
            raise ArgumentError(
                f"argument {decl.name} must hold {expected.name}, got {describe(value)}", where
            )
        _check_packed_storage(value, decl, where, writes)
        return
    if not isinstance(value, np.ndarray):
        raise ArgumentError(
            f"argument {decl.name} must be a numpy array, got {describe(value)}",
            where,
            "pass a numpy array (a torch CPU tensor as t.numpy(), or the tensor itself: "
            "lpir reads it through DLPack or __array__ where numpy does so without a copy)",
        )
    flags = value.flags  # a new object at each reading
    if not flags.c_contiguous:
        raise ArgumentError(
            f"argument {decl.name} is not C-contiguous",
            where,
            "pass np.ascontiguousarray(array)",
        )
    if not flags.aligned:  # numpy's own test of the address (ctypes.data costs 1 us)
        raise ArgumentError(
            f"argument {decl.name} is not aligned to its element size",
            where,
            "copy it: array.copy()",
        )
    if writes and not flags.writeable:
        raise ArgumentError(
            f"argument {decl.name} is read-only but the kernel stores into it",
            where,
            "pass a writeable array",
        )


def _check_packed_storage(
    value: PackedArray, decl: Declared, where: SourceLocation | None, writes: bool
) -> None:
    """Raise unless a `PackedArray`'s bytes are what its constructor accepted (`data` may have
    been replaced, or its flags changed, since): contiguous 1-D uint8 of the right size, and
    writeable where the kernel stores into it. Kernels address the bytes from the first one
    on, so strided storage would be read and written past the view, and read-only storage (a
    memmap opened with mode="r") written through or crash the process."""
    data = value.data
    needed = storage_bytes(math.prod(value.shape), value.dtype)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
        raise ArgumentError(
            f"argument {decl.name} is a PackedArray whose data is {describe(data)}, not a "
            "1-D uint8 array",
            where,
            f"pack the values: lpir.pack(values, '{value.dtype.name}')",
        )
    if data.size != needed:
        raise ArgumentError(
            f"argument {decl.name} is a PackedArray of {value.dtype.name}{list(value.shape)}, "
            f"which takes {needed} bytes, but its data has {data.size}",
            where,
            f"pack the values: lpir.pack(values, '{value.dtype.name}')",
        )
    flags = data.flags
    if not flags.c_contiguous:
        raise ArgumentError(
            f"argument {decl.name} is a PackedArray whose data is not contiguous "
            f"(stride {data.strides[0]})",
            where,
            "wrap contiguous bytes: lpir.PackedArray(np.ascontiguousarray(packed.data), "
            "packed.shape, packed.dtype), or pack the values anew with lpir.pack",
        )
    if writes and not flags.writeable:
        raise ArgumentError(
            f"argument {decl.name} is read-only (its PackedArray's data) but the kernel "
            "stores into it",
            where,
            "pass a PackedArray over writeable bytes: packed.copy(), or a memmap opened "
            "with mode='r+'",
        )


def check_scalar(value: Any, expected: DType, decl: Declared, where: SourceLocation | None) -> Any:
    """The Python number for a scalar argument, checked against its dtype."""
    given = value
    if isinstance(value, np.generic):
        value = value.item()
    if expected.is_bool:
        if not isinstance(value, bool):
            raise _not_a_scalar_of(given, "a bool", expected, decl, where)
        return value
    if expected.is_float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _not_a_scalar_of(given, "a number", expected, decl, where)
        return _checked_float(value, expected, decl, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _not_a_scalar_of(given, "an integer", expected, decl, where)
    if not expected.min <= value <= expected.max:
        wider = "" if expected.nbits >= 64 else ", or declare the argument i64"
        raise ArgumentError(
            f"argument {decl.name} = {show_number(value)} does not fit in {expected.name}",
            where,
            f"pass an integer from {expected.min} to {expected.max}{wider}",
        )
    return value


def _not_a_scalar_of(
    value: Any, kind: str, expected: DType, decl: Declared, where: SourceLocation | None
) -> ArgumentError:
    """The error for a scalar argument of the wrong kind, with what to pass instead."""
    if expected.is_bool:
        instead = "pass True or False (bool(value) to convert)"
    elif expected.is_float:
        instead = "pass a Python float or int, or a numpy float: float(value), np.float32(value)"
    elif isinstance(value, float | np.floating) and float(value).is_integer():
        instead = f"pass a Python int: int({float(value)!r})"
    else:
        instead = "pass a Python int, or a numpy integer scalar such as np.int32(value)"
    numeric = isinstance(value, np.generic) and value.dtype.kind in "iufc"
    if numeric and _dtype_of_numpy(value.dtype) is None:
        return ArgumentError(
            f"argument {decl.name} ({expected.name}) is a numpy {type(value).__name__} "
            "scalar, a dtype lpir does not support",
            where,
            instead,
        )
    declared = "" if expected.is_bool else f" ({expected.name})"
    return ArgumentError(
        f"argument {decl.name} must be {kind}{declared}, got {describe(value)}",
        where,
        instead,
    )


def _checked_float(
    value: int | float, expected: DType, decl: Declared, where: SourceLocation | None
) -> float:
    """`value` as a float, refused where `expected` cannot hold it: a finite value that rounds
    past its largest finite value (f8e4m3 would saturate 1000.0 to 448, f32 make 1e300 inf),
    an infinity or NaN it has none of. In-range values round as a cast does."""
    try:
        number = float(value)
    except OverflowError:  # an integer beyond every float
        number = math.inf if value > 0 else -math.inf
    else:
        if math.isnan(number):
            if expected.has_nan:
                return number
            raise ArgumentError(
                f"argument {decl.name} is NaN, which {expected.name} has none of", where
            )
    largest = expected.max
    if not expected.rounds_past_max(number):
        return number
    if math.isinf(number) and not isinstance(value, int):
        if expected.has_inf:
            return number
        raise ArgumentError(
            f"argument {decl.name} is {number}, but {expected.name} has no infinity",
            where,
            f"pass a finite value in [{-largest!r}, {largest!r}]",
        )
    raise ArgumentError(
        f"argument {decl.name} = {show_number(value)} is outside the range of "
        f"{expected.name}, [{-largest!r}, {largest!r}]",
        where,
        "pass a value in that range; clamp it first if that is what you mean"
        + (" (inf itself is allowed)" if expected.has_inf else ""),
    )


#: (argument name, first address, address past the end, whether the kernel stores into it)
Span = tuple[str, int, int, bool]


def refuse_overlap(spans: list[Span]) -> None:
    """Two tensor arguments may share memory only if the kernel stores into neither (the
    compiled code assumes that outputs alias nothing: `noalias` on the CPU); every target
    refuses the same calls. (Each pair tested: a call has a few.)"""
    for index, (name_a, start_a, end_a, stored_a) in enumerate(spans):
        for name_b, start_b, end_b, stored_b in spans[index + 1 :]:
            if (stored_a or stored_b) and start_a < end_b and start_b < end_a:
                pair = sorted([(start_a, name_a, stored_a), (start_b, name_b, stored_b)])
                (_, first, stored_first), (_, second, _) = pair  # named in address order
                error = ArgumentError(
                    f"arguments {first} and {second} overlap in memory and the kernel "
                    f"stores into {first if stored_first else second}",
                    hint="pass distinct arrays (copy one of them)",
                )
                error.argument = name_b  # the later declared: the call places the error there
                raise error


def placed_at_argument(
    error: ArgumentError, names: list[str], wheres: list[SourceLocation | None]
) -> LpirError:
    """`error` placed at the declaration of the argument it names (`error.argument`, set
    where the launch itself refuses a call: `refuse_overlap`), if it has no place yet."""
    name = error.argument
    if name is None or name not in names:
        return error
    return error.with_location(wheres[names.index(name)])


def memory_spans(names: list[str], stored: set[str], tensors: list[Any]) -> list[Span]:
    """The spans `refuse_overlap` compares, of tensor arguments `tensors` called `names`: host
    arrays (numpy, `PackedArray`) by their host addresses, GPU arrays by their device ones;
    empty tensors have none."""
    spans = []
    for name, value in zip(names, tensors):
        buffer = value.data if isinstance(value, PackedArray) else value
        if isinstance(buffer, np.ndarray):
            start, nbytes = buffer.__array_interface__["data"][0], buffer.nbytes
        else:
            view = buffer if hasattr(buffer, "pointer") else device_view_of(buffer)
            if view is None:
                continue  # not a tensor at all: the argument checks say so
            start, nbytes = view.pointer, math.prod(view.shape) * view.itemsize
        if nbytes:  # an empty tensor holds no byte to share (numpy gives empty views the base)
            spans.append((name, start, start + nbytes, name in stored))
    return spans


def byte_buffer(value: Any) -> np.ndarray:
    """The argument's storage as a flat uint8 view (writes go to the caller's array)."""
    if isinstance(value, PackedArray):
        return value.data
    return value.reshape(-1).view(np.uint8)


def value_array(value: Any, dt: DType) -> np.ndarray:
    """The argument as the interpreter's value array: a view where possible; a packed
    argument's values decoded a piece at a time (`lpir.packing.pieces`), so that nothing but
    the result is as large as the tensor (a 268 MB u4 argument took 3 GB decoded whole)."""
    if isinstance(value, PackedArray):
        values = np.empty(value.size, dt.numpy_dtype)
        for start, stop in pieces(value.size):
            first = start * dt.nbits // 8  # (pieces start on a byte)
            codes = unpack_codes(value.data[first:], stop - start, dt)
            values[start:stop] = dt.from_codes(codes)
        return values.reshape(value.shape)
    if dt.is_float and dt.nbits == 8:
        return value.view(np.uint8)
    return value


def store_back(value: Any, array: np.ndarray, dt: DType) -> None:
    """Write interpreter results held in `array` back into a packed argument the kernel
    stores into, a piece at a time, where they changed it. The bits of the last byte past the
    tensor's elements are kept: in a view of rows (`packed[a:b]`) they are the next row's."""
    if not isinstance(value, PackedArray):
        return
    flat = array.reshape(-1)
    for start, stop in pieces(value.size):
        packed = pack_codes(dt.to_codes(flat[start:stop]), dt).data
        first = start * dt.nbits // 8
        stored = value.data[first : first + packed.size]
        used = (stop - start) * dt.nbits % 8  # bits of the last byte that are elements
        if used:  # (only the last piece ends inside a byte)
            keep = np.uint8((0xFF << used) & 0xFF)
            packed[-1] = (packed[-1] & ~keep) | (stored[-1] & keep)
        if not np.array_equal(stored, packed):
            stored[:] = packed
