"""Check and convert the arguments of a kernel call before anything runs.

Every mismatch is an `ArgumentError` that names the argument and points at its declaration:
a wrong dtype, rank or shape, a non-contiguous or misaligned array, an unpacked array for a
packed dtype, a read-only array the kernel writes, a scalar out of range. Nothing reaches a
compiled kernel unchecked, so a wrong argument cannot crash the process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lpir.dtypes import DType
from lpir.errors import ArgumentError, SourceLocation
from lpir.language import ast
from lpir.language.specialize import ArgumentInfo
from lpir.packing import PackedArray

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
    if isinstance(value, PackedArray):
        return f"a PackedArray of {value.dtype.name} with shape {value.shape}"
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype} with shape {value.shape}"
    return f"{type(value).__name__} {value!r}"


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
        return ArgumentInfo(_dtype_of_numpy(value.dtype), tuple(value.shape))
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
        return ArgumentInfo(_dtype_of_name(view.dtype), tuple(view.shape))
    if hasattr(value, "__array__"):
        try:
            array = np.asarray(value)
        except Exception as error:  # a foreign array type numpy cannot read
            raise ArgumentError(
                f"argument {decl.name} cannot be read as an array: {error}",
                where,
                "pass a numpy array (or lpir.pack(...) for packed dtypes)",
            ) from None
        return ArgumentInfo(_dtype_of_numpy(array.dtype), tuple(array.shape))
    raise ArgumentError(
        f"argument {decl.name} must be an array, got {describe(value)}",
        where,
        "pass a numpy array (or lpir.pack(...) for packed dtypes)",
    )


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

    for name in ALL_DTYPE_NAMES:
        dt = dtype(name)
        if dt.is_packed or dt.is_bool:
            continue
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
        return
    if not isinstance(value, np.ndarray):
        raise ArgumentError(
            f"argument {decl.name} must be a numpy array, got {describe(value)}", where
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


def check_scalar(value: Any, expected: DType, decl: Declared, where: SourceLocation | None) -> Any:
    """The Python number for a scalar argument, checked against its dtype."""
    if isinstance(value, np.generic):
        value = value.item()
    if expected.is_bool:
        if not isinstance(value, bool):
            raise ArgumentError(
                f"argument {decl.name} must be a bool, got {describe(value)}", where
            )
        return value
    if expected.is_float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgumentError(
                f"argument {decl.name} must be a number, got {describe(value)}", where
            )
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(
            f"argument {decl.name} must be an integer, got {describe(value)}", where
        )
    if not expected.min <= value <= expected.max:
        raise ArgumentError(
            f"argument {decl.name} = {value} does not fit in {expected.name}", where
        )
    return value


def byte_buffer(value: Any) -> np.ndarray:
    """The argument's storage as a flat uint8 view (writes go to the caller's array)."""
    if isinstance(value, PackedArray):
        return value.data
    return value.reshape(-1).view(np.uint8)


def value_array(value: Any, dt: DType) -> np.ndarray:
    """The argument as the interpreter's value array (a view where possible)."""
    if isinstance(value, PackedArray):
        codes = value.codes()
        return dt.from_codes(codes).reshape(value.shape)
    if dt.is_float and dt.nbits == 8:
        return value.view(np.uint8)
    return value


def store_back(value: Any, array: np.ndarray, dt: DType) -> None:
    """Write interpreter results held in `array` back into a packed argument."""
    if isinstance(value, PackedArray):
        from lpir.packing import pack_codes

        packed = pack_codes(dt.to_codes(array).reshape(-1), dt)
        value.data[:] = packed.data
