"""Packed storage: the dense LSB-first layout of DESIGN §2.

Element i of the C-order flattening of an n-bit tensor occupies bits [i*n, (i+1)*n) of the
buffer, bit 0 being the least significant bit of byte 0; elements of 3, 5, 6 and 7 bits
straddle bytes, and the buffer is ceil(size * n / 8) bytes. Types of 8 bits or more are stored
as their little-endian codes.

Packing works on groups of 8 elements, which always fill exactly n bytes: the group's codes are
shifted into one 64-bit word whose first n bytes are the packed bytes. Everything is whole-array
numpy arithmetic, no per-element Python.
"""

from __future__ import annotations

import numpy as np

from lpir.dtypes import DType, dtype
from lpir.errors import DTypeError


class PackedArray:
    """A tensor of any dtype in packed storage.

    Attributes:
        data: the storage bytes (1-D uint8; writes into it change the tensor).
        shape: the logical shape.
        dtype: the element type.
    """

    def __init__(self, data: np.ndarray, shape, dt: DType | str):
        self.dtype = dtype(dt)
        self.shape = tuple(int(s) for s in (shape if np.ndim(shape) else (shape,)))
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 1:
            raise DTypeError("PackedArray data must be a 1-D uint8 array")
        expected = storage_bytes(self.size, self.dtype)
        if data.size != expected:
            raise DTypeError(
                f"{self.dtype.name}{list(self.shape)} needs {expected} bytes, got {data.size}"
            )
        self.data = data

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.data.size)

    def codes(self) -> np.ndarray:
        """The codes, shaped (`dtype.code_numpy_dtype`)."""
        return unpack_codes(self.data, self.size, self.dtype).reshape(self.shape)

    def unpack(self) -> np.ndarray:
        """Values: floats decoded to float32 (f64: float64), integers in `dtype.numpy_dtype`."""
        codes = self.codes()
        return self.dtype.decode(codes) if self.dtype.is_float else self.dtype.from_codes(codes)

    def copy(self) -> PackedArray:
        return PackedArray(self.data.copy(), self.shape, self.dtype)

    def __deepcopy__(self, memo) -> PackedArray:
        return self.copy()

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, PackedArray)
            and other.dtype == self.dtype
            and other.shape == self.shape
            and np.array_equal(other.data, self.data)
        )

    def __repr__(self) -> str:
        return f"PackedArray({self.dtype.name}{list(self.shape)}, {self.nbytes} bytes)"


def storage_bytes(size: int, dt: DType) -> int:
    """Bytes that `size` elements of `dt` occupy."""
    return (size * dt.nbits + 7) // 8


def pack_codes(codes, dt: DType | str) -> PackedArray:
    """Pack codes (unsigned bit patterns, any shape) of `dt`."""
    dt = dtype(dt)
    codes = np.asarray(codes)
    if codes.dtype.kind not in "ub":
        raise DTypeError(f"codes must be unsigned integers, not {codes.dtype}")
    flat = codes.reshape(-1)
    if dt.nbits >= 8:
        data = flat.astype(dt.code_numpy_dtype).astype(dt.code_numpy_dtype.newbyteorder("<"))
        return PackedArray(data.view(np.uint8).copy(), codes.shape, dt)
    if flat.size and int(flat.max()) >= 1 << dt.nbits:
        raise DTypeError(f"code {int(flat.max())} does not fit in {dt.nbits} bits ({dt.name})")
    return PackedArray(_pack_bits(flat, dt.nbits), codes.shape, dt)


def _pack_bits(codes: np.ndarray, nbits: int) -> np.ndarray:
    groups = -(-codes.size // 8)
    padded = np.zeros(groups * 8, dtype=np.uint64)
    padded[: codes.size] = codes
    fields = padded.reshape(groups, 8)
    words = np.zeros(groups, dtype=np.uint64)
    for index in range(8):
        words |= fields[:, index] << np.uint64(index * nbits)
    packed = words.astype("<u8").view(np.uint8).reshape(groups, 8)[:, :nbits].reshape(-1)
    return packed[: (codes.size * nbits + 7) // 8].copy()


def unpack_codes(data: np.ndarray, size: int, dt: DType) -> np.ndarray:
    """The `size` codes stored in `data`."""
    if dt.nbits >= 8:
        return (
            data[: size * dt.itemsize]
            .view(dt.code_numpy_dtype.newbyteorder("<"))
            .astype(dt.code_numpy_dtype)
        )
    nbits = dt.nbits
    groups = -(-size // 8)
    padded = np.zeros((groups, 8), dtype=np.uint8)
    window = np.zeros(groups * nbits, dtype=np.uint8)
    used = min(data.size, groups * nbits)
    window[:used] = data[:used]
    padded[:, :nbits] = window.reshape(groups, nbits)
    words = padded.view("<u8").reshape(groups)
    fields = np.empty((groups, 8), dtype=np.uint8)
    mask = np.uint64((1 << nbits) - 1)
    for index in range(8):
        fields[:, index] = (words >> np.uint64(index * nbits)) & mask
    return fields.reshape(-1)[:size]


def pack(values, dt: DType | str) -> PackedArray:
    """Pack values: integers for int dtypes (checked against the range), floats for float
    dtypes (rounded to nearest even, saturating), ml_dtypes arrays of the matching type (their
    bits), or a PackedArray of `dt` (returned as it is)."""
    dt = dtype(dt)
    if isinstance(values, PackedArray):
        if values.dtype != dt:
            raise DTypeError(f"cannot pack a PackedArray of {values.dtype.name} as {dt.name}")
        return values
    array = np.asarray(values)
    if dt.ml_dtype is not None and array.dtype == np.dtype(dt.ml_dtype):
        return pack_codes(_ml_codes(array, dt), dt)
    if array.dtype.name in _ML_DTYPE_NAMES:
        raise DTypeError(f"cannot pack an array of {array.dtype} as {dt.name}")
    if dt.is_float:
        if array.dtype.kind not in "fiub":
            raise DTypeError(f"cannot pack {array.dtype} values as {dt.name}")
        return pack_codes(
            dt.encode(array.astype(np.float64) if array.dtype.kind != "f" else array), dt
        )
    if dt.is_bool:
        return pack_codes((array != 0).astype(np.uint8), dt)
    if array.dtype.kind not in "iub":
        raise DTypeError(
            f"{dt.name} holds integers; got {array.dtype} values",
            hint="round them first, or use a float dtype",
        )
    if array.size:
        low, high = array.min(), array.max()
        if low < dt.min or high > dt.max:
            bad = low if low < dt.min else high
            raise DTypeError(f"{int(bad)} is outside the range of {dt.name} [{dt.min}, {dt.max}]")
    return pack_codes(dt.to_codes(array), dt)


_ML_DTYPE_NAMES = {
    "bfloat16",
    "float4_e2m1fn",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e4m3b11fnuz",
    "float8_e3m4",
    "int2",
    "int4",
    "uint2",
    "uint4",
}


def _ml_codes(array: np.ndarray, dt: DType) -> np.ndarray:
    """The codes of an ml_dtypes array (sub-byte ml_dtypes use one byte per element)."""
    raw = array.view(np.uint8 if array.dtype.itemsize == 1 else np.uint16)
    return (raw & ((1 << dt.nbits) - 1)).astype(dt.code_numpy_dtype)


def unpack(packed: PackedArray) -> np.ndarray:
    """`packed.unpack()`: the values of a packed tensor."""
    return packed.unpack()


__all__ = ["PackedArray", "pack", "pack_codes", "storage_bytes", "unpack", "unpack_codes"]
