"""Shared-memory layouts: a coordinate's element offset, with strides and an XOR swizzle.

``offset(coord) = swizzle(sum(coord[d] * strides[d]))``, in elements. The swizzle is CUTLASS's
``Swizzle<B, M, S>`` acting on that linear offset: it takes the B bits starting at bit M + S and
XORs them into the B bits starting at bit M::

    offset ^ (((offset >> (M + S)) & (2**B - 1)) << M)

With M = log2(elements per 16 bytes) the low bits it changes are the 16-byte unit index, so a
16-byte vector stays whole. `shared_swizzled` picks the classic parameters: for rows of 128 bytes
or more, B = 3 and M + S = the first bit of the row index, i.e. *the unit index within a row is
XORed with row % 8*; for narrower rows (2 or 4 units), B = log2(units per row) and S = 3, so
the units are XORed with the index of the 128-byte line (every 8 units), which again spreads
8 consecutive rows over all 32 banks. It is a bijection within each aligned block of
2**(M + S + B) elements.

The strides must give every element of the tile its own offset (checked when a layout is made:
strides [1, 1] or [16, 1] on rows of 32 would put two elements in one place and leave the span
too small for the tile); the swizzle, a bijection, keeps them apart.

Text form: ``shared(shape=[64,64], strides=[64,1], swizzle=swizzle(3,3,3))`` (the swizzle part
omitted when there is none), parsed by `parse_shared`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lpir.errors import LayoutError
from lpir.layout.register import Index
from lpir.layout.text import VALID_FORMS, LayoutParser, located_error


@dataclass(frozen=True)
class Swizzle:
    """CUTLASS ``Swizzle<bits, base, shift>`` on element offsets (see the module docstring),
    optionally followed by a second XOR term `then` (``swizzle(3,3,4)*swizzle(1,4,2)``: the
    row into the 16-byte unit's bank bits, then bit 3 of the unit into one of them), whose base
    is at least this one's, so `base` stays the unit every term moves whole."""

    bits: int
    base: int
    shift: int
    then: Swizzle | None = None

    def __post_init__(self) -> None:
        if min(self.bits, self.base, self.shift) < 0 or self.shift < self.bits:
            raise LayoutError(
                f"invalid swizzle({self.bits},{self.base},{self.shift}): bits, base and shift "
                "must be non-negative and shift >= bits",
                hint="the XOR must never read the bits it writes, as in CUTLASS Swizzle<B,M,S>",
            )
        if self.then is not None and self.then.base < self.base:
            raise LayoutError(
                f"invalid {self}: a later term moves smaller units than the first",
                hint="order the terms by base, the smallest first",
            )

    @property
    def terms(self) -> list[Swizzle]:
        """The XOR terms in the order they apply, each without `then`."""
        first = Swizzle(self.bits, self.base, self.shift)
        return [first] + (self.then.terms if self.then is not None else [])

    @property
    def period(self) -> int:
        """Offsets this many elements apart are swizzled alike: swizzle(x + period * q) =
        swizzle(x) + period * q (every term reads and writes only the bits below)."""
        return max(1 << (t.base + t.shift + t.bits) for t in self.terms)

    @property
    def chunk(self) -> int:
        """The swizzle permutes offsets within aligned chunks of this many elements."""
        return max(1 << (t.base + t.bits) for t in self.terms)

    def apply(self, offset: Index) -> Index:
        """Swizzle an offset (an int or an integer numpy array)."""
        mask = (1 << self.bits) - 1
        offset = offset ^ (((offset >> (self.base + self.shift)) & mask) << self.base)
        return offset if self.then is None else self.then.apply(offset)

    def __str__(self) -> str:
        text = f"swizzle({self.bits},{self.base},{self.shift})"
        return text if self.then is None else f"{text}*{self.then}"


@dataclass(frozen=True)
class SharedLayout:
    """Element offsets of a tile in shared memory.

    Attributes:
        shape: the tile shape.
        strides: the element stride of each dimension (0 for a size-1 dimension, canonically).
        swizzle: an optional XOR swizzle applied to the strided offset.
    """

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    swizzle: Swizzle | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(size) for size in self.shape)
        strides = tuple(int(stride) for stride in self.strides)
        if len(shape) != len(strides):
            raise LayoutError(f"{len(strides)} strides given for the shape {list(shape)}")
        if any(size < 1 for size in shape) or any(stride < 0 for stride in strides):
            raise LayoutError("shared layout sizes must be positive and strides non-negative")
        # The stride of a size-1 dimension never matters; fixing it keeps equality structural.
        strides = tuple(
            0 if size == 1 else stride for size, stride in zip(shape, strides, strict=True)
        )
        if self.swizzle is not None and self.swizzle.bits == 0:  # a term that moves nothing
            object.__setattr__(self, "swizzle", self.swizzle.then)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "strides", strides)
        _check_one_to_one(shape, strides)

    @property
    def rank(self) -> int:
        """Number of tensor dimensions."""
        return len(self.shape)

    @property
    def span(self) -> int:
        """Elements of storage the tile needs: the largest offset plus one."""
        linear = sum((n - 1) * s for n, s in zip(self.shape, self.strides, strict=True)) + 1
        if self.swizzle is None:
            return linear
        chunk = self.swizzle.chunk  # the swizzle permutes offsets within aligned chunks
        return -(-linear // chunk) * chunk

    def offset(self, coordinate: Sequence[int]) -> int:
        """The element offset of `coordinate`."""
        coordinate = tuple(int(c) for c in coordinate)
        if len(coordinate) != self.rank or not all(
            0 <= c < n for c, n in zip(coordinate, self.shape, strict=True)
        ):
            raise LayoutError(f"coordinate {coordinate} is outside the shape {list(self.shape)}")
        linear = sum(c * s for c, s in zip(coordinate, self.strides, strict=True))
        return linear if self.swizzle is None else int(self.swizzle.apply(linear))

    def offsets(self, coordinates: np.ndarray) -> np.ndarray:
        """Vectorized `offset`: coordinates [..., rank] -> offsets [...] (int64)."""
        coordinates = np.asarray(coordinates, dtype=np.int64)
        linear = coordinates @ np.asarray(self.strides, dtype=np.int64)
        return linear if self.swizzle is None else self.swizzle.apply(linear)

    def __str__(self) -> str:
        text = f"shared(shape={_ints(self.shape)}, strides={_ints(self.strides)}"
        return text + (f", swizzle={self.swizzle})" if self.swizzle else ")")


# Tiles up to this many elements whose strides interleave their dimensions are enumerated to
# find two elements at one offset (far beyond any tile shared memory holds).
_ENUMERATED_ELEMENTS = 1 << 24


def _check_one_to_one(shape: tuple[int, ...], strides: tuple[int, ...]) -> None:
    """Raise unless the strides give every element of the tile its own offset (the swizzle,
    a bijection of offsets, keeps them apart): strides that alias ([1, 1]) or overlap ([16, 1]
    on rows of 32) would make two elements share storage, and the span too small to hold
    the tile."""
    reach = 0  # the largest offset of the dimensions of smaller strides
    apart = True
    for stride, size in sorted((s, n) for n, s in zip(shape, strides) if n > 1):
        apart = apart and stride > reach
        reach += (size - 1) * stride
    if apart:  # each stride passes the others': the usual case, interleaved pairs included
        return
    size = math.prod(shape)
    if size > _ENUMERATED_ELEMENTS:
        raise LayoutError(
            f"cannot check that strides {list(strides)} give each of the {size} elements of a "
            f"{list(shape)} tile its own offset: tiles over {_ENUMERATED_ELEMENTS} elements "
            "must have strides that each pass the offsets of the dimensions of smaller strides",
            hint=f"use row-major strides {_ints(_row_major_strides(shape))}",
        )
    coordinates = np.indices(shape).reshape(len(shape), -1).T
    offsets = coordinates @ np.asarray(strides, dtype=np.int64)
    order = np.argsort(offsets, kind="stable")
    same = np.flatnonzero(offsets[order][1:] == offsets[order][:-1])
    if same.size == 0:
        return
    first, second = (tuple(int(c) for c in coordinates[order[same[0] + i]]) for i in (0, 1))
    raise LayoutError(
        f"strides {_ints(strides)} put the elements {list(first)} and {list(second)} of a "
        f"{list(shape)} tile at one offset, {int(offsets[order[same[0]]])}: a shared layout "
        "must give every element its own",
        hint="give each dimension a stride past the offsets of the dimensions of smaller "
        f"strides, as the row-major {_ints(_row_major_strides(shape))} does",
    )


def _row_major_strides(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(math.prod(shape[d + 1 :]) for d in range(len(shape)))


def _ints(values: Sequence[int]) -> str:
    return "[" + ",".join(map(str, values)) + "]"


def shared_row_major(shape: Sequence[int]) -> SharedLayout:
    """A dense row-major tile: offsets equal ``np.ravel_multi_index(coord, shape)``."""
    shape = tuple(int(size) for size in shape)
    return SharedLayout(shape, _row_major_strides(shape))


def shared_swizzled(shape: Sequence[int], dtype_bits: int) -> SharedLayout:
    """A row-major tile with the classic bank-conflict-avoiding swizzle (module docstring).

    Rows narrower than two 16-byte units get no swizzle. Raises LayoutError when the element
    width does not divide 16 bytes into a power of two, or a row is not a power-of-two number
    of 16-byte units.
    """
    layout = shared_row_major(shape)
    row_bits = layout.shape[-1] * dtype_bits if layout.shape else dtype_bits
    if dtype_bits < 1 or 128 % dtype_bits or not _is_power_of_two(128 // dtype_bits):
        raise LayoutError(
            f"cannot swizzle {dtype_bits}-bit elements: 16 bytes must hold a power of two of them",
            hint="swizzle the packed bytes or words of the tile instead",
        )
    units = row_bits // 128
    if units < 2:
        return layout
    if row_bits % 128 or not _is_power_of_two(units):
        raise LayoutError(
            f"cannot swizzle rows of {row_bits // 8} bytes: a row must be a power-of-two "
            "number of 16-byte units",
            hint="pad the tile's last dimension or use a row-major shared layout",
        )
    base = (128 // dtype_bits).bit_length() - 1
    bits = min(units, 8).bit_length() - 1
    shift = max(3, units.bit_length() - 1)
    return SharedLayout(layout.shape, layout.strides, Swizzle(bits, base, shift))


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


class _SharedParser(LayoutParser):
    def parse_shared(self) -> SharedLayout:
        head = self.token
        if head.text != "shared":
            raise self.fail(f"expected 'shared' but found {self.describe(head)}")
        self.index += 1
        self.expect("(")
        sizes: dict[str, tuple[int, ...]] = {}
        swizzle: Swizzle | None = None
        while True:
            key = self.token
            seen = key.text in sizes or (key.text == "swizzle" and swizzle is not None)
            if key.text not in ("shape", "strides", "swizzle") or seen:
                raise self.fail(f"unexpected field {self.describe(key)} in shared(...)")
            self.index += 1
            self.expect("=")
            if key.text == "swizzle":
                swizzle = self.swizzle()
            else:
                sizes[key.text] = self.ints()
            if self.accept(")"):
                break
            self.expect(",")
        if self.token.kind != "end":
            raise self.fail(f"unexpected {self.describe(self.token)} after shared(...)")
        if "shape" not in sizes or "strides" not in sizes:
            raise self.fail("shared(...) needs shape=[...] and strides=[...]", head)
        try:
            return SharedLayout(sizes["shape"], sizes["strides"], swizzle)
        except LayoutError as error:
            hint = error.hint or _SHARED_FORM
            raise located_error(self.text, head.column, error.message, hint) from None

    def ints(self) -> tuple[int, ...]:
        return tuple(self.sequence("[", "]", self.count))

    def count(self) -> int:
        token = self.token
        if token.kind != "int":
            raise self.fail(f"expected an integer but found {self.describe(token)}")
        self.index += 1
        return int(token.text)

    def swizzle(self) -> Swizzle:
        start = self.token
        self.expect("swizzle")
        values = self.sequence("(", ")", self.count)
        if len(values) != 3:
            raise self.fail("swizzle takes three numbers: bits, base, shift", start)
        bits, base, shift = values
        then = self.swizzle() if self.accept("*") else None
        try:
            return Swizzle(bits, base, shift, then)
        except LayoutError as error:
            raise located_error(self.text, start.column, error.message, error.hint) from None


_SHARED_FORM = (
    "shared(shape=[a,b,...], strides=[s,t,...]) or with , swizzle=swizzle(B,M,S) "
    "(or swizzle(B,M,S)*swizzle(B2,M2,S2): two XOR terms)"
)


def parse_shared(text: str) -> SharedLayout:
    """Parse the text form of a shared layout (``str(layout)`` parses back to `layout`)."""
    try:
        return _SharedParser(text).parse_shared()
    except LayoutError as error:
        # The register-layout parser's hint lists register forms; point at the shared form.
        hint = error.hint if error.hint != VALID_FORMS else _SHARED_FORM
        raise LayoutError(error.message, error.location, hint) from None
