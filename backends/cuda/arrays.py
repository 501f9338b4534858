"""Kernel arguments on the GPU: host arrays copied through device buffers, device arrays
(DLPack / `__cuda_array_interface__`: torch, cupy, ...) passed by pointer after checks, and
scalars as typed numpy scalars.

A device array must hold the kernel's dtype with the kernel's shape, be C-contiguous, start on
a 16-byte boundary (the kernels use 16-byte vector accesses) and live on the current device.
A packed dtype (fewer than 8 bits) is passed as the uint8 storage of a `PackedArray`: a device
array of ceil(size * nbits / 8) bytes. Small floats and fp8 may also come as uint8 codes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from lpir.dtypes import DType
from lpir.errors import ArgumentError
from lpir.ir.types import GlobalType

ALIGNMENT = 16


class DevicePacked:
    """Packed storage on the device: a uint8 device array (torch, cupy, ...) of
    ceil(size * nbits / 8) bytes holding a tensor of a sub-byte dtype, with its logical shape.

    The device counterpart of `lpir.PackedArray`:
    `DevicePacked(torch.from_numpy(packed.data).cuda(), packed.dtype, packed.shape)`.
    """

    def __init__(self, data: Any, dt: DType | str, shape: tuple[int, ...]):
        from lpir.dtypes import dtype

        self.data = data
        self.dtype = dtype(dt)
        self.shape = tuple(int(s) for s in shape)

    @property
    def nbytes(self) -> int:
        return -(-_size(self.shape) * self.dtype.nbits // 8)


@dataclass
class DeviceView:
    """What lpir needs to know about a device array."""

    pointer: int
    shape: tuple[int, ...]
    dtype: Any  # a numpy dtype, or a name such as "bfloat16"
    itemsize: int
    contiguous: bool
    device: int | None
    packed: DevicePacked | None = None  # set when the array is a DevicePacked's storage
    # the argument type a kernel call already checked it against (all but its device, which
    # the launch checks): `CompiledKernel.run` does not check such a view again
    checked_as: GlobalType | None = None


def _cai_view(interface: dict) -> DeviceView:
    shape = tuple(int(s) for s in interface["shape"])
    dtype = np.dtype(interface["typestr"])
    strides = interface.get("strides")
    contiguous = strides is None or tuple(strides) == _c_strides(shape, dtype.itemsize)
    return DeviceView(int(interface["data"][0]), shape, dtype, dtype.itemsize, contiguous, None)


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _dlpack_view(value: Any) -> DeviceView:
    try:
        from cuda.core.utils import StridedMemoryView
    except ImportError:
        from cuda.core.experimental.utils import (
            StridedMemoryView,
        )
    if hasattr(StridedMemoryView, "from_dlpack"):
        view = StridedMemoryView.from_dlpack(value, stream_ptr=-1)
    else:
        view = StridedMemoryView(value, stream_ptr=-1)
    shape = tuple(int(s) for s in view.shape)
    dtype = view.dtype
    itemsize = getattr(dtype, "itemsize", 0)
    strides = view.strides
    contiguous = strides is None or tuple(strides) == _c_strides(shape, 1)
    return DeviceView(int(view.ptr), shape, dtype, itemsize, contiguous, int(view.device_id))


@functools.cache
def _is_torch_tensor(cls: type) -> bool:
    return any(c.__name__ == "Tensor" and c.__module__ == "torch" for c in cls.__mro__)


def _torch_view(value: Any) -> DeviceView | None:
    """A torch CUDA tensor read through its attributes (a few calls into C) rather than
    `__cuda_array_interface__`, which torch assembles in Python on every access: lpir reads
    each argument on every launch, and a batch-1 GEMV runs for 30 us."""
    if not value.is_cuda:
        return None  # a host tensor: not a device array (the host path refuses it)
    return DeviceView(
        value.data_ptr(),
        tuple(value.shape),
        _torch_dtype_name(value.dtype),
        value.element_size(),
        value.is_contiguous(),
        value.get_device(),
    )


@functools.cache
def _torch_dtype_name(dtype: Any) -> str:
    """`torch.float32` -> "float32" (numpy's and ml_dtypes' names: bfloat16, float8_e4m3fn)."""
    return str(dtype).removeprefix("torch.")


def device_view(value: Any) -> DeviceView | None:
    """A view of a device array (or of a `DevicePacked`'s bytes), or None if it is not one."""
    if isinstance(value, DevicePacked):
        view = device_view(value.data)
        if view is not None:
            view.packed = value
        return view
    if isinstance(value, np.ndarray):
        return None
    cls: type = type(value)
    if _is_torch_tensor(cls):
        return _torch_view(value)
    try:
        interface = value.__cuda_array_interface__
    except (AttributeError, TypeError):
        interface = None  # torch raises TypeError for bf16/fp8: DLPack knows them
    if interface is not None:
        view = _cai_view(interface)
        device = getattr(getattr(value, "device", None), "index", None)
        view.device = device if isinstance(device, int) else None
        return view
    if hasattr(value, "__dlpack_device__"):
        device_type, _ = value.__dlpack_device__()
        if int(device_type) in (2, 13):  # kDLCUDA, kDLCUDAManaged
            return _dlpack_view(value)
    return None


@functools.cache
def expected_numpy_dtype(dt: DType) -> np.dtype:
    if dt.ml_dtype is not None and dt.is_float and dt.nbits in (8, 16):
        return np.dtype(dt.ml_dtype)
    return np.dtype(dt.numpy_dtype)


def dtype_name(dtype: Any) -> str:
    if isinstance(dtype, np.dtype):
        return _numpy_name(dtype)
    return getattr(dtype, "name", str(dtype))


@functools.cache
def _numpy_name(dtype: np.dtype) -> str:
    """numpy's dtype.name, remembered: it costs microseconds, and every launch asks for each
    argument's (a batch-1 GEMV on an H200 takes 30 us)."""
    return dtype.name


def check_device_array(
    view: DeviceView, arg_type: GlobalType, name: str, device: int | None
) -> None:
    """Raise ArgumentError unless `view` can stand for a kernel argument of `arg_type`."""
    dt = arg_type.dtype
    if view.packed is not None:
        _check_packed(view, view.packed, arg_type, name)
    elif dt.is_packed or (dt.is_small_float and view.itemsize == 1 and _is_bytes(view.dtype)):
        _check_storage(view, arg_type, name)
    else:
        expected = expected_numpy_dtype(dt)
        if dtype_name(view.dtype) != _numpy_name(expected) and view.dtype != expected:
            raise ArgumentError(
                f"argument {name} must hold {dt.name}, got a device array of "
                f"{dtype_name(view.dtype)}"
            )
        if not arg_type.fits(view.shape):
            raise ArgumentError(
                f"argument {name} must have shape {shape_text(arg_type)}, got {view.shape}"
            )
    if not view.contiguous:
        raise ArgumentError(f"argument {name} is not C-contiguous", hint="pass tensor.contiguous()")
    if view.pointer % ALIGNMENT:
        raise ArgumentError(
            f"argument {name} does not start on a {ALIGNMENT}-byte boundary",
            hint="pass a copy (tensor.clone()): the kernels use 16-byte vector accesses",
        )
    check_device(view, name, device)


def shape_text(arg_type: GlobalType) -> str:
    """An argument's shape as a Python tuple, a run-time first dimension by its name."""
    dims = [str(size) for size in arg_type.shape]
    if arg_type.extent is not None:
        dims[0] = arg_type.extent
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def logical_shape(view: DeviceView) -> tuple[int, ...]:
    """The shape of the tensor a view stands for (a `DevicePacked`'s, not its bytes')."""
    return view.packed.shape if view.packed is not None else view.shape


def check_device(view: DeviceView, name: str, device: int | None) -> None:
    """Raise ArgumentError if the array lives on another GPU than `device`."""
    if view.device is not None and device is not None and view.device != device:
        raise ArgumentError(
            f"argument {name} lives on device {view.device}, the kernel runs on device {device}"
        )


def _check_packed(view: DeviceView, packed: DevicePacked, arg_type: GlobalType, name: str) -> None:
    """A DevicePacked stands for an argument of its own dtype and shape, of any width (its
    bytes are the codes, also for 8-bit types such as u8 or f8e4m3)."""
    if packed.dtype != arg_type.dtype:
        raise ArgumentError(
            f"argument {name} holds {packed.dtype.name} values, the kernel takes "
            f"{arg_type.dtype.name}"
        )
    if not arg_type.fits(packed.shape):
        raise ArgumentError(
            f"argument {name} must have shape {shape_text(arg_type)}, got a DevicePacked of "
            f"shape {packed.shape}"
        )
    _check_storage(view, arg_type, name)


def _check_storage(view: DeviceView, arg_type: GlobalType, name: str) -> None:
    """Packed storage is a uint8 device array of exactly the argument's bytes."""
    dt = arg_type.dtype
    if arg_type.extent is not None and view.packed is not None:
        arg_type = arg_type.rows(view.packed.shape[0])
    if arg_type.extent is not None and not (dt.is_small_float and dt.nbits == 8):
        raise ArgumentError(
            f"argument {name} holds packed {dt.name} values whose rows ({arg_type.extent}) are "
            "counted at each call, so its bytes alone do not give its shape",
            hint=(
                "wrap the packed bytes with their shape: lpir.DevicePacked(storage, "
                f"'{dt.name}', shape)"
            ),
        )
    if arg_type.extent is not None:  # fp8 codes, a byte each: as many bytes as elements
        arg_type = arg_type.rows(view.shape[0] if view.shape else 0)
    if not _is_bytes(view.dtype) or _size(view.shape) != arg_type.nbytes:
        raise ArgumentError(
            f"argument {name} holds packed {dt.name} values: pass its {arg_type.nbytes} "
            f"bytes of storage as a uint8 device array, got {dtype_name(view.dtype)} "
            f"with shape {view.shape}",
            hint=(
                "wrap the packed bytes on the device: lpir.DevicePacked(torch.from_numpy("
                f"lpir.pack(values, '{dt.name}').data).cuda(), '{dt.name}', shape)"
            ),
        )


def _is_bytes(dtype: Any) -> bool:
    return dtype_name(dtype) in ("uint8", "int8")


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for s in shape:
        size *= s
    return size


def scalar_argument(value: Any, dt: DType) -> np.generic:
    """A kernel's scalar argument as the numpy scalar of its C parameter type."""
    if dt.is_bool:
        return np.bool_(bool(value))
    if dt.is_small_float:
        return np.uint8(dt.encode(np.asarray([value], dtype=np.float64))[0])
    if dt.name == "bf16":
        return _element(np.asarray(value, dtype=np.float32).astype(dt.numpy_dtype).view(np.uint16))
    if dt.is_float:
        return _element(np.asarray(value, dtype=dt.numpy_dtype))
    width = 8 if dt.nbits <= 8 else dt.nbits
    letter = "i" if dt.kind == "int" else "u"
    return _element(np.asarray(int(value)).astype(f"{letter}{width // 8}"))


def _element(array: np.ndarray) -> np.generic:
    """The numpy scalar a 0-d array holds."""
    return array[()]  # type: ignore[return-value]  # numpy's stubs type it as an array
