"""Packed storage: the dense LSB-first layout of DESIGN §2, and `lpir.pack`/`lpir.unpack`.

Element i of the C-order flattening of an n-bit tensor occupies bits [i*n, (i+1)*n) of the
buffer, bit 0 being the least significant bit of byte 0; elements of 3, 5, 6 and 7 bits
straddle bytes, and the buffer is ceil(size * n / 8) bytes. Types of 8 bits or more are stored
as the little-endian bytes of their codes.

Why groups of 8: 8 elements of n bits fill exactly n bytes, so packing shifts each group's codes
into one 64-bit little-endian word and keeps its first n bytes, and unpacking reads each group's
n bytes as a word and shifts the 8 codes back out. That is 8 whole-array shifts per direction
whatever the width, with no element straddling a word.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from lpir import dtype_conversions as conversions
from lpir.dtypes import DType, dtype
from lpir.errors import DTypeError


class PackedArray:
    """A tensor in packed storage: its bytes, logical shape and dtype.

    `PackedArray(data, shape, dtype)` wraps storage already packed (a checkpoint's bytes):
    a C-contiguous uint8 array of any rank, shared (no copy: `data` is its 1-D view), or
    bytes, copied. Element i of the C-order flattening of `shape` is bits [i*n, (i+1)*n),
    low bits first within a byte (the module docstring), so `u8[N, K / 2]` bytes holding two
    4-bit weights each, the earlier in the low nibble, wrap as `PackedArray(w, (N, K),
    "f4e2m1")`. It checks that `data` has exactly `storage_bytes(size, dtype)` bytes.
    Strided storage (`buffer[::2]`, `buffer[64:0:-1]`) is refused: kernels address the bytes
    from the first one on, so they would read and write past the view.

    Attributes:
        data: the storage bytes (1-D uint8; writing into it changes the tensor).
        shape: the logical shape.
        dtype: the element type.
    """

    def __init__(
        self, data: ArrayLike | bytes, shape: int | tuple[int, ...], dt: DType | str
    ) -> None:
        self.dtype = dtype(dt)
        self.shape = _as_shape(shape)
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = np.frombuffer(data, dtype=np.uint8).copy()
        data = np.asarray(data)
        if data.dtype != np.uint8:
            raise DTypeError(
                f"PackedArray data must be a uint8 array or bytes, not {data.dtype}"
                f"{list(data.shape)}",
                hint="pass the bytes as uint8: data.view(np.uint8) (no copy)",
            )
        if not data.flags.c_contiguous:
            raise DTypeError(
                f"PackedArray data must be contiguous bytes; this array has strides {data.strides}",
                hint="pass np.ascontiguousarray(data) (a copy: writes will not reach the "
                "original), or lpir.pack(values, dtype) to pack anew",
            )
        if data.ndim != 1:
            data = data.reshape(-1)  # a view: the bytes stay shared
        expected = storage_bytes(self.size, self.dtype)
        if data.size != expected:
            raise DTypeError(
                f"{self.dtype.name}{list(self.shape)} needs {expected} bytes, got {data.size}",
                hint=f"{self.size} elements of {self.dtype.nbits} bits take ceil(size * nbits "
                "/ 8) bytes",
            )
        self.data = data

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.data.size)

    def codes(self) -> np.ndarray:
        """The codes (`dtype.code_numpy_dtype`), shaped."""
        return unpack_codes(self.data, self.size, self.dtype).reshape(self.shape)

    def unpack(self) -> np.ndarray:
        """The values, shaped: floats decoded to float32 (f64: float64), integers and bool as
        register values (`dtype.numpy_dtype`)."""
        codes = self.codes()
        return self.dtype.decode(codes) if self.dtype.is_float else self.dtype.from_codes(codes)

    def reshape(self, *shape: Any) -> PackedArray:
        """The same storage (shared) seen with another shape of the same size; -1 is allowed."""
        if len(shape) == 1 and np.ndim(shape[0]):
            shape = shape[0]
        new_shape = _reshaped(self.shape, tuple(int(s) for s in shape))
        return PackedArray(self.data, new_shape, self.dtype)

    def __getitem__(self, rows: slice) -> PackedArray:
        """`packed[a:b]`: rows a .. b - 1 of the first dimension, sharing the storage (a
        preallocated buffer's first m rows for a kernel whose rows are read at run time). The
        rows must start on a byte: a * bits of a row a multiple of 8 (always for a = 0)."""
        if not isinstance(rows, slice) or not self.shape:
            raise DTypeError(
                f"a PackedArray is sliced by rows only (packed[a:b]), not indexed by {rows!r}",
                hint="unpack() it for numpy indexing, or slice rows: packed[:m]",
            )
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise DTypeError(
                f"rows {start}:{stop}:{step} of a PackedArray are not contiguous storage",
                hint="slice whole runs of rows (step 1), or copy: lpir.pack(packed.unpack()[...])",
            )
        row_bits = math.prod(self.shape[1:]) * self.dtype.nbits
        count = max(0, stop - start)
        start = start if count else 0  # (no rows: from the first byte, none of it)
        if start * row_bits % 8:
            raise DTypeError(
                f"row {start} of {self.dtype.name}{list(self.shape)} starts inside a byte "
                f"({row_bits} bits a row)",
                hint="slice from a row whose first bit starts a byte, or copy the rows: "
                "lpir.pack(packed.unpack()[a:b], dtype)",
            )
        first = start * row_bits // 8
        data = self.data[
            first : first + storage_bytes(count * row_bits // self.dtype.nbits, self.dtype)
        ]
        return PackedArray(data, (count, *self.shape[1:]), self.dtype)

    def copy(self) -> PackedArray:
        return PackedArray(self.data.copy(), self.shape, self.dtype)

    def tobytes(self) -> bytes:
        return self.data.tobytes()

    def __deepcopy__(self, memo: dict) -> PackedArray:
        return self.copy()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PackedArray)
            and other.dtype == self.dtype
            and other.shape == self.shape
            and np.array_equal(other.data, self.data)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable storage: unhashable

    def __repr__(self) -> str:
        return f"PackedArray({self.dtype.name}{list(self.shape)}, {self.nbytes} bytes)"


_LARGEST_SIZE = 2**63 - 1  # element counts and byte offsets are int64 in numpy and the kernels


def _as_shape(shape: Any) -> tuple[int, ...]:
    """`shape` as a tuple of sizes: an integer or a sequence of integers, none negative, whose
    product fits in int64."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if isinstance(shape, np.ndarray) and shape.ndim == 1:
        shape = tuple(shape.tolist())
    if not isinstance(shape, (tuple, list)):
        raise DTypeError(
            f"a PackedArray shape is an integer or a tuple of integers, not {shape!r}",
            hint="pass the logical shape, e.g. (4, 8) or values.shape",
        )
    sizes = []
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise DTypeError(
                f"a PackedArray shape holds integer sizes; {size!r} in {shape!r} is not one",
                hint="pass the logical shape, e.g. (4, 8) or values.shape",
            )
        sizes.append(int(size))
    result = tuple(sizes)
    if any(s < 0 for s in result):
        raise DTypeError(f"a shape has no negative sizes: {list(result)}")
    if math.prod(result) > _LARGEST_SIZE:
        raise DTypeError(
            f"shape {list(result)} has {math.prod(result)} elements, more than int64 can count "
            f"({_LARGEST_SIZE})"
        )
    return result


def _reshaped(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...]:
    """`new` with a -1 resolved, checked to hold as many elements as `old`."""
    try:
        return np.empty(old, dtype=np.bool_).reshape(new).shape
    except ValueError as error:
        raise DTypeError(f"cannot reshape a packed {list(old)} tensor to {list(new)}") from error


def storage_bytes(size: int, dt: DType | str) -> int:
    """Bytes that `size` elements of `dt` occupy: ceil(size * nbits / 8)."""
    return (size * dtype(dt).nbits + 7) // 8


#: Elements converted a step where a whole tensor is packed, unpacked or drawn piece by piece: a
#: multiple of 8, so that every piece starts on a byte whatever the width, and small enough
#: that a piece's temporaries (64-bit words, decoded values) stay a few MiB. A 268 MB u4
#: argument of the reference interpreter took 3 GB of such temporaries unpacked whole.
PIECE = 1 << 20


def pieces(size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive ranges of at most `PIECE` elements covering range(size)."""
    return ((start, min(size, start + PIECE)) for start in range(0, size, PIECE))


# ---- codes <-> bytes -----------------------------------------------------------------------
def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _exact_codes(codes: np.ndarray, dt: DType) -> np.ndarray:
    """An object array of Python integers (numpy keeps ints past 2**64 so) as uint64 codes,
    or a DTypeError naming the first that is negative or too wide for `dt`."""
    for value in codes.reshape(-1):
        if int(value) < 0:
            raise DTypeError(
                f"codes are unsigned bit patterns, but {int(value)} is negative",
                hint=f"to pack values (negative ones too) use lpir.pack(values, '{dt.name}')",
            )
        if int(value) >> dt.nbits:
            raise DTypeError(f"code {int(value)} does not fit in {dt.nbits} bits ({dt.name})")
    return codes.astype(np.uint64)


def pack_codes(codes: ArrayLike, dt: DType | str) -> PackedArray:
    """Pack codes (unsigned bit patterns of `dt`, any shape) into a new `PackedArray`.

    Raises:
        DTypeError: the codes are not integers, one is negative, or one needs more than
            `dt.nbits` bits.
    """
    dt = dtype(dt)
    codes = np.asarray(codes)
    if codes.size == 0:  # (np.asarray([]) is float64: no codes, whatever their dtype)
        codes = codes.astype(np.uint8)
    elif codes.dtype == object and all(_is_int(v) for v in codes.reshape(-1)):
        codes = _exact_codes(codes, dt)  # Python ints past 2**64
    if codes.dtype.kind not in "uib":
        raise DTypeError(
            f"codes must be integers, not {codes.dtype}",
            hint=f"to pack values use lpir.pack(values, '{dt.name}')",
        )
    flat = codes.reshape(-1)
    if codes.dtype.kind == "i" and flat.size and int(flat.min()) < 0:  # np.arange, lists
        raise DTypeError(
            f"codes are unsigned bit patterns, but {int(flat.min())} is negative",
            hint=f"to pack values (negative ones too) use lpir.pack(values, '{dt.name}')",
        )
    if flat.size and codes.dtype.itemsize * 8 > dt.nbits:
        largest = int(flat.max())
        if largest >> dt.nbits:
            raise DTypeError(f"code {largest} does not fit in {dt.nbits} bits ({dt.name})")
    if dt.nbits >= 8:
        little = flat.astype(dt.code_numpy_dtype.newbyteorder("<"))
        return PackedArray(little.view(np.uint8), codes.shape, dt)
    return PackedArray(_pack_bits(flat, dt.nbits), codes.shape, dt)


def _pack_bits(codes: np.ndarray, nbits: int) -> np.ndarray:
    """Codes of fewer than 8 bits (already checked to fit), packed LSB-first, a piece of
    `PIECE` codes at a time (a piece's temporaries are a few MiB, whatever the tensor's size)."""
    packed = np.empty((codes.size * nbits + 7) // 8, dtype=np.uint8)
    for start, stop in pieces(codes.size):
        first = start * nbits // 8
        _pack_piece(codes[start:stop], nbits, packed[first:][: ((stop - start) * nbits + 7) // 8])
    return packed


def _pack_piece(codes: np.ndarray, nbits: int, piece: np.ndarray) -> None:
    """Pack `codes` into `piece`, the bytes they fill."""
    if 8 % nbits == 0:  # 1, 2 or 4 bits: no code straddles a byte, which ORs its own
        fields = _rows_of(codes, 8 // nbits)
        np.copyto(piece, fields[:, 0])
        for index in range(1, fields.shape[1]):
            piece |= fields[:, index] << np.uint8(index * nbits)
        return
    fields = _rows_of(codes, 8)
    words = fields[:, 0].astype(np.uint64)
    field = np.empty(words.size, dtype=np.uint64)
    for index in range(1, 8):
        # One column widened at a time: the temporaries are 1/8 of the words.
        field[:] = fields[:, index]
        field <<= np.uint64(index * nbits)
        words |= field
    # Little-endian words: the first nbits bytes of each hold the group's 8 * nbits bits.
    grouped = words.astype("<u8", copy=False).view(np.uint8).reshape(-1, 8)[:, :nbits]
    piece[:] = grouped.reshape(-1)[: piece.size]


def _rows_of(codes: np.ndarray, width: int) -> np.ndarray:
    """Codes as uint8 rows of `width`, a last row cut short padded with zero codes."""
    rows = -(-codes.size // width)
    if codes.size % width:
        padded = np.zeros(rows * width, dtype=np.uint8)
        padded[: codes.size] = codes
        return padded.reshape(rows, width)
    return codes.astype(np.uint8, copy=False).reshape(rows, width)


def unpack_codes(data: np.ndarray, size: int, dt: DType | str) -> np.ndarray:
    """The first `size` codes stored in `data` (1-D, `dt.code_numpy_dtype`); sub-byte codes
    are cut out a piece of `PIECE` at a time, so the temporaries beside the result are a few
    MiB whatever the tensor's size."""
    dt = dtype(dt)
    if dt.nbits >= 8:
        little = data[: size * dt.itemsize].view(dt.code_numpy_dtype.newbyteorder("<"))
        return little.astype(dt.code_numpy_dtype)
    codes = np.empty(-(-size // 8) * 8, dtype=np.uint8)  # whole groups of 8
    for start, stop in pieces(codes.size):
        first = start * dt.nbits // 8
        _unpack_piece(data[first:][: (stop - start) * dt.nbits // 8], dt.nbits, codes[start:stop])
    return codes[:size]


def _unpack_piece(source: np.ndarray, nbits: int, codes: np.ndarray) -> None:
    """Cut the codes of whole groups of 8 (`codes`, uint8, filled) out of their bytes `source`,
    of which the last group's may be missing at the end of the buffer (read as zero bits)."""
    groups = codes.size // 8
    if source.size < groups * nbits:  # the buffer ends inside the last group
        source = np.concatenate([source, np.zeros(groups * nbits - source.size, np.uint8)])
    mask = (1 << nbits) - 1
    if 8 % nbits == 0:  # 1, 2 or 4 bits: no code straddles a byte, cut from its own
        fields = codes.reshape(source.size, 8 // nbits)
        for index in range(fields.shape[1]):
            np.right_shift(source, np.uint8(index * nbits), out=fields[:, index])
            fields[:, index] &= np.uint8(mask)
        return
    # Each group's nbits bytes go to the low bytes of one 64-bit word.
    window = np.zeros((groups, 8), dtype=np.uint8)
    window[:, :nbits] = source.reshape(groups, nbits)
    words = window.view("<u8").reshape(groups)
    fields = codes.reshape(groups, 8)
    field = np.empty(groups, dtype=np.uint64)
    for index in range(8):
        np.right_shift(words, np.uint64(index * nbits), out=field)
        field &= np.uint64(mask)
        fields[:, index] = field


# ---- values <-> packed ----------------------------------------------------------------------
def pack(values: ArrayLike | PackedArray, dt: DType | str) -> PackedArray:
    """Pack `values` as a tensor of `dt`.

    Accepted values:

    * for float dtypes, numbers (floats, integers, bool; numpy, bfloat16 or Python), encoded
      with `dt.encode` (round to nearest even; saturating for small floats);
    * for integer and bool dtypes, integers or bool, or floats that hold whole numbers; every
      value must lie in [dt.min, dt.max] (bool: 0/1 or False/True);
    * an ml_dtypes array of `dt.ml_dtype` (float4_e2m1fn, int4, ...): its bits are taken;
    * a `PackedArray` of `dt`, returned as it is.

    Raw codes go through `pack_codes`.

    Raises:
        DTypeError: a value outside the range (named in the message), a fraction for an integer
            dtype, an ml_dtypes array of another type, or a PackedArray of another dtype.
    """
    dt = dtype(dt)
    if isinstance(values, PackedArray):
        if values.dtype != dt:
            raise DTypeError(f"cannot pack a PackedArray of {values.dtype.name} as {dt.name}")
        return values
    array = np.asarray(values)
    if dt.ml_dtype is not None and array.dtype == np.dtype(dt.ml_dtype):
        return pack_codes(_ml_codes(array, dt), dt)
    if _is_foreign_ml_array(array, dt):
        raise DTypeError(
            f"cannot pack an array of {array.dtype} as {dt.name}",
            hint="convert it to numbers first, e.g. values.astype(np.float32)",
        )
    if dt.is_float:
        return pack_codes(dt.encode(array), dt)
    if not isinstance(values, np.ndarray) and _may_have_lost_integers(array):
        array = _exact_integers(values, array, dt)
    return pack_codes(dt.to_codes(_checked_integers(array, dt)), dt)


def _may_have_lost_integers(array: np.ndarray) -> bool:
    """Whether np.asarray may have turned Python integers into something inexact: a list
    mixing integers below 2**63 with ones at or past it becomes float64 (2**63 + 1 -> 2**63),
    and one with integers past 64 bits an object array."""
    if array.dtype.kind == "O":
        return True
    return array.dtype.kind == "f" and bool(array.size) and float(np.abs(array).max()) >= 2.0**53


def _exact_integers(values: ArrayLike, array: np.ndarray, dt: DType) -> np.ndarray:
    """`values` (a list or nested lists) as exact integers in a numpy integer type that holds
    `dt`, each element checked on its own (int, bool, numpy integer, or a whole float)."""
    elements = np.array(values, dtype=object)
    if elements.shape != array.shape:
        raise DTypeError(f"{dt.name} holds integers; got {array.dtype} values")
    numbers = [_exact_integer(element, dt) for element in elements.reshape(-1)]
    if numbers and (min(numbers) < dt.min or max(numbers) > dt.max):
        _refuse_out_of_range(min(numbers), max(numbers), dt)
    result = np.array(numbers, dtype=np.int64 if dt.min < 0 else np.uint64)
    return result.reshape(array.shape)


def _exact_integer(element: Any, dt: DType) -> int:
    if isinstance(element, (int, np.integer, np.bool_)):
        return int(element)
    if isinstance(element, (float, np.floating)):
        if not np.isfinite(element) or not float(element).is_integer():
            raise DTypeError(
                f"{dt.name} holds integers; got {float(element)!r}",
                hint="round the values first (np.round, or np.clip(np.round(x), lo, hi)), "
                "or use a float dtype",
            )
        return int(element)
    raise DTypeError(f"{dt.name} holds integers; got {type(element).__name__} {element!r}")


def _is_foreign_ml_array(array: np.ndarray, dt: DType) -> bool:
    """An ml_dtypes array that is not `dt`'s own type. bfloat16 counts as plain numbers for
    float dtypes (it is the register type of bf16), like float16."""
    if array.dtype.name == "bfloat16" and dt.is_float:
        return False
    return conversions.is_ml_float(array.dtype) or conversions.is_ml_int(array.dtype)


def _checked_integers(array: np.ndarray, dt: DType) -> np.ndarray:
    """Integer values of `array`, checked against `dt`'s range."""
    if array.dtype.kind not in "biuf":
        raise DTypeError(f"{dt.name} holds integers; got {array.dtype} values")
    if array.dtype.kind == "f":
        fractional = ~np.isfinite(array) | (np.trunc(array) != array)
        if fractional.any():
            bad = array.reshape(-1)[np.argmax(fractional.reshape(-1))]
            raise DTypeError(
                f"{dt.name} holds integers; got {float(bad)!r}",
                hint="round the values first (np.round, or np.clip(np.round(x), lo, hi)), "
                "or use a float dtype",
            )
    if array.size and array.dtype.kind != "b":
        # Compared as Python integers: in the array's float type dt.max may round up (f32 holds
        # no 2**31 - 1, it becomes 2**31), which would let the first value past the range wrap.
        low, high = int(array.min()), int(array.max())
        if low < dt.min or high > dt.max:
            _refuse_out_of_range(low, high, dt)
    if array.dtype.kind == "f":
        return array.astype(np.int64 if dt.min < 0 or dt.nbits < 64 else np.uint64)
    return array


def _refuse_out_of_range(low: int, high: int, dt: DType) -> None:
    bad = low if low < dt.min else high
    if low >= -(2**63) and high < 2**63:
        what = (
            f"lpir.convert(values, 'i64', '{dt.name}') wraps them, "
            f"np.clip(values, {dt.min}, {dt.max}) clamps them"
        )
    else:
        wrap = f"v % 2**{dt.nbits}"
        if dt.min < 0:
            wrap = f"(v + 2**{dt.nbits - 1}) % 2**{dt.nbits} - 2**{dt.nbits - 1}"
        what = f"{wrap} wraps a Python integer v, min(max(v, {dt.min}), {dt.max}) clamps it"
    raise DTypeError(
        f"{_number(bad)} is outside the range of {dt.name} [{dt.min}, {dt.max}]",
        hint=f"wrap or clamp the values first if that is what you mean: {what}",
    )


def _number(value: Any) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _ml_codes(array: np.ndarray, dt: DType) -> np.ndarray:
    """The codes of an ml_dtypes array (sub-byte ml_dtypes use one byte per element)."""
    raw = array.view(np.uint8 if array.dtype.itemsize == 1 else np.uint16)
    if dt.nbits < 8:
        raw = raw & np.uint8((1 << dt.nbits) - 1)
    return raw.astype(dt.code_numpy_dtype, copy=False)


def unpack(packed: PackedArray) -> np.ndarray:
    """The values of a packed tensor: `packed.unpack()`."""
    if not isinstance(packed, PackedArray):
        raise DTypeError(f"lpir.unpack takes a PackedArray, not {type(packed).__name__}")
    return packed.unpack()


__all__ = ["PackedArray", "pack", "pack_codes", "storage_bytes", "unpack", "unpack_codes"]
