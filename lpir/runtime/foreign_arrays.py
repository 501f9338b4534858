"""Host arrays of other libraries (a torch CPU tensor, a jax CPU array) as numpy arrays.

A kernel on a host target reads and writes numpy arrays. Another library's array on the CPU
is taken as the numpy array over its own memory, found through DLPack (`np.from_dlpack`:
no copy by the protocol's terms) or else `__array__`: `np.asarray` of it, where two
conversions give the same memory (each call of the kernel converts it again, so a
conversion that copies would copy at every call, and a kernel's stores into an output would
go to the copy and be lost). One that copies is refused with how to convert it once. The
numpy array is then checked as any other (dtype, shape, contiguity, a read-only array the
kernel stores into).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lpir.errors import ArgumentError, SourceLocation, with_article
from lpir.packing import PackedArray

DLPACK_CPU = 1  # DLPack's kDLCPU

CONVERT_ONCE = (
    "convert it once and pass the numpy array: {name} = np.asarray({name}) (a torch CPU "
    "tensor: {name}.numpy(); of bf16: {name}.view(torch.int16).numpy()"
    ".view(ml_dtypes.bfloat16))"
)


def is_foreign_array(value: Any) -> bool:
    """Whether `value` is another library's array (neither numpy's nor a `PackedArray`)."""
    if isinstance(value, np.ndarray | PackedArray):
        return False
    return hasattr(value, "__dlpack__") or hasattr(value, "__array__")


def host_view(value: Any, name: str, where: SourceLocation | None) -> Any:
    """A foreign host array (`is_foreign_array`, not a GPU array, which the caller leaves as
    it is) as the numpy array over its memory."""
    through_dlpack = _from_dlpack(value)
    if through_dlpack is not None:
        return through_dlpack
    if not hasattr(value, "__array__"):
        return value  # a GPU array, or a foreign array numpy cannot read: the checks say so
    try:
        first, second = np.asarray(value), np.asarray(value)
    except Exception as error:  # a foreign array type numpy cannot read (bf16 in torch)
        raise ArgumentError(
            f"argument {name} ({type(value).__name__}) cannot be read as a numpy array: {error}",
            where,
            CONVERT_ONCE.format(name=name),
        ) from None
    if first.size and not np.may_share_memory(first, second):
        kind = with_article(type(value).__name__)
        raise ArgumentError(
            f"argument {name} is {kind} that numpy reads only by copying it: each call would "
            "copy it, and a kernel's stores into it would go to the copy",
            where,
            CONVERT_ONCE.format(name=name),
        )
    return first


def _from_dlpack(value: Any) -> np.ndarray | None:
    """The numpy array over a CPU DLPack tensor's memory; None for anything else (a GPU
    tensor, a dtype numpy has no DLPack form of, such as bf16)."""
    if not hasattr(value, "__dlpack__") or not hasattr(value, "__dlpack_device__"):
        return None
    try:
        device_type, _ = value.__dlpack_device__()
        if int(device_type) != DLPACK_CPU:
            return None
        return np.from_dlpack(value)
    except (BufferError, TypeError, ValueError, RuntimeError):
        return None
