"""Register layouts: which thread of a block holds which tensor element, and in which slot.

A `RegisterLayout` splits every dimension of a tile into *modes* — mixed-radix digits of the
coordinate, the first mode of a dimension the most significant — and deals the modes out to two
index spaces:

* the **thread index**, formed row-major from the `spatial_modes` entries (the last entry varies
  fastest). An entry is a mode id, or a **replication** written as the negative number ``-r``: a
  thread digit of size r that does not move the coordinate, so r threads hold the same element;
* the **slot index** in each thread's private array, formed row-major from the `local_modes`.

Mode ids number the modes of `modes` flattened dimension-major: with ``modes == ((2, 8), (4, 2))``
ids 0 and 1 are the modes of dimension 0 (sizes 2 and 8) and ids 2 and 3 those of dimension 1.

Every layout is canonical, so structurally equal layouts compare and hash equal: size-1 modes and
replications are dropped, neighbouring replications are multiplied together, and two modes that
are adjacent in their dimension (the first more significant) and adjacent, in the same order, in
`spatial_modes` or `local_modes` are merged into one. The constructor canonicalizes whatever it
is given.

The operators (product, reduce, divide, ...) live in `lpir.layout.algebra`; the text form in
`lpir.layout.text`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import product as cartesian
from typing import TypeVar

import numpy as np

from lpir.errors import LayoutError

# An index: one int, or an integer numpy array of them (the same arithmetic applies).
Index = TypeVar("Index", int, np.ndarray)


@dataclass(frozen=True)
class Term:
    """One digit's share of a coordinate: ``((index // divisor) % modulus) * multiplier``.

    `source` names the index the digit is read from: ``"thread"`` (the thread index within the
    block) or ``"slot"`` (the position in the thread's private array).
    """

    source: str
    divisor: int
    modulus: int
    multiplier: int

    def evaluate(self, index: Index) -> Index:
        """The term's value for an index (an int or an integer numpy array)."""
        return (index // self.divisor) % self.modulus * self.multiplier


@dataclass(frozen=True)
class Digit:
    """One entry of the thread or slot index, read as a mixed-radix digit.

    Attributes:
        size: how many values the digit takes.
        stride: its weight in the thread (or slot) index.
        dim: the tensor dimension it moves; None for a replication digit.
        multiplier: its weight in coordinate[dim] (0 for a replication digit).
    """

    size: int
    stride: int
    dim: int | None
    multiplier: int


@dataclass(frozen=True)
class RegisterLayout:
    """A canonical register layout (see the module docstring for the representation).

    Attributes:
        shape: the tile shape.
        modes: per dimension, the sizes of its modes, most significant first.
        spatial_modes: the thread-index entries, most significant first: a mode id, or -r for a
            replication of factor r.
        local_modes: the slot-index entries (mode ids), most significant first.
    """

    shape: tuple[int, ...]
    modes: tuple[tuple[int, ...], ...]
    spatial_modes: tuple[int, ...]
    local_modes: tuple[int, ...]

    def __post_init__(self) -> None:
        shape = tuple(_positive_int(size, "a shape size") for size in self.shape)
        modes = tuple(tuple(_positive_int(m, "a mode size") for m in dim) for dim in self.modes)
        spatial = tuple(int(entry) for entry in self.spatial_modes)
        local = tuple(int(entry) for entry in self.local_modes)
        _validate(shape, modes, spatial, local)
        modes, spatial, local = _canonicalize(modes, spatial, local)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "modes", modes)
        object.__setattr__(self, "spatial_modes", spatial)
        object.__setattr__(self, "local_modes", local)

    # ----------------------------------------------------------------- sizes

    @property
    def rank(self) -> int:
        """Number of tensor dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of tensor elements."""
        return math.prod(self.shape)

    @cached_property
    def threads(self) -> int:
        """Number of threads, replication included."""
        return math.prod(self._entry_size(entry) for entry in self.spatial_modes)

    @cached_property
    def slots(self) -> int:
        """Number of slots in each thread's private array."""
        return math.prod(self.mode_sizes[mode] for mode in self.local_modes)

    @property
    def replication(self) -> int:
        """How many threads hold each element (1 when the layout is not replicated)."""
        return math.prod(-entry for entry in self.spatial_modes if entry < 0)

    @property
    def is_replicated(self) -> bool:
        """Whether some element is held by more than one thread."""
        return any(entry < 0 for entry in self.spatial_modes)

    # ----------------------------------------------------- mode bookkeeping

    @cached_property
    def mode_sizes(self) -> tuple[int, ...]:
        """The size of every mode, by mode id."""
        return tuple(size for dim in self.modes for size in dim)

    @cached_property
    def mode_dims(self) -> tuple[int, ...]:
        """The dimension of every mode, by mode id."""
        return tuple(d for d, dim in enumerate(self.modes) for _ in dim)

    @cached_property
    def mode_multipliers(self) -> tuple[int, ...]:
        """The weight of every mode in its coordinate (product of the less significant modes)."""
        weights: list[int] = []
        for dim in self.modes:
            weights.extend(math.prod(dim[i + 1 :]) for i in range(len(dim)))
        return tuple(weights)

    def _entry_size(self, entry: int) -> int:
        return -entry if entry < 0 else self.mode_sizes[entry]

    def _digits(self, entries: tuple[int, ...]) -> tuple[Digit, ...]:
        sizes = [self._entry_size(entry) for entry in entries]
        digits = []
        for i, entry in enumerate(entries):
            stride = math.prod(sizes[i + 1 :])
            if entry < 0:
                digits.append(Digit(sizes[i], stride, None, 0))
            else:
                multiplier = self.mode_multipliers[entry]
                digits.append(Digit(sizes[i], stride, self.mode_dims[entry], multiplier))
        return tuple(digits)

    def thread_digits(self) -> tuple[Digit, ...]:
        """The digits of the thread index, most significant first."""
        return self._digits(self.spatial_modes)

    def slot_digits(self) -> tuple[Digit, ...]:
        """The digits of the slot index, most significant first."""
        return self._digits(self.local_modes)

    # ------------------------------------------------------- code generation

    def coordinate_terms(self) -> tuple[tuple[Term, ...], ...]:
        """How each coordinate is computed from the thread and slot indices.

        Returns one tuple of terms per dimension; coordinate[d] is the sum over its terms of
        ``((index // divisor) % modulus) * multiplier``, where index is the thread index when
        ``term.source == "thread"`` and the slot index when it is ``"slot"``. Every spatial or
        local mode gives exactly one term (ordered most significant first within a dimension);
        replication gives none (see `replica_terms`). A dimension of size 1 has no terms.
        For the most significant digit of an index, ``divisor * modulus`` equals `threads` (or
        `slots`), so the modulus can be dropped when the index is known to be in range.
        """
        return self._terms

    @cached_property
    def _terms(self) -> tuple[tuple[Term, ...], ...]:
        terms: list[list[tuple[int, Term]]] = [[] for _ in self.shape]
        for source, entries in (("thread", self.spatial_modes), ("slot", self.local_modes)):
            for entry, digit in zip(entries, self._digits(entries), strict=True):
                if entry >= 0:
                    assert digit.dim is not None  # only replication digits have none
                    term = Term(source, digit.stride, digit.size, digit.multiplier)
                    terms[digit.dim].append((entry, term))
        return tuple(tuple(term for _, term in sorted(dim)) for dim in terms)

    def replica_terms(self) -> tuple[Term, ...]:
        """The replication digits of the thread index, as terms with multiplier 1.

        A thread is the *primary* holder of its elements when all of these are zero; code that
        must act once per element (a store, say) guards with that.
        """
        digits = self.thread_digits()
        return tuple(
            Term("thread", d.stride, d.size, 1) for d in digits if d.dim is None and d.size > 1
        )

    # ---------------------------------------------------------------- queries

    def map(self, thread: int, slot: int) -> tuple[int, ...]:
        """The coordinate that `thread` holds in `slot`."""
        if not (0 <= thread < self.threads and 0 <= slot < self.slots):
            raise LayoutError(
                f"(thread {thread}, slot {slot}) is outside the layout "
                f"({self.threads} threads, {self.slots} slots): {self}"
            )
        return tuple(
            sum(term.evaluate(thread if term.source == "thread" else slot) for term in dim)
            for dim in self.coordinate_terms()
        )

    def owners(self, coordinate: Sequence[int]) -> frozenset[tuple[int, int]]:
        """Every (thread, slot) that holds the element at `coordinate`."""
        coordinate = tuple(int(c) for c in coordinate)
        if len(coordinate) != self.rank or not all(
            0 <= c < n for c, n in zip(coordinate, self.shape, strict=True)
        ):
            raise LayoutError(f"coordinate {coordinate} is outside the shape {list(self.shape)}")
        values = self._mode_values(coordinate)
        slot = sum(
            values[entry] * digit.stride
            for entry, digit in zip(self.local_modes, self.slot_digits(), strict=True)
        )
        choices = []
        for entry, digit in zip(self.spatial_modes, self.thread_digits(), strict=True):
            if entry < 0:
                choices.append([v * digit.stride for v in range(digit.size)])
            else:
                choices.append([values[entry] * digit.stride])
        return frozenset((sum(parts), slot) for parts in cartesian(*choices))

    def _mode_values(self, coordinate: tuple[int, ...]) -> list[int]:
        values = []
        for c, dim in zip(coordinate, self.modes, strict=True):
            for i, size in enumerate(dim):
                values.append(c // math.prod(dim[i + 1 :]) % size)
        return values

    def map_array(self, threads: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Vectorized `map`: broadcast `threads` and `slots`, return coordinates [..., rank]."""
        threads, slots = np.broadcast_arrays(np.asarray(threads), np.asarray(slots))
        threads = threads.astype(np.int64)
        slots = slots.astype(np.int64)
        out = np.zeros((*threads.shape, self.rank), dtype=np.int64)
        for d, dim in enumerate(self.coordinate_terms()):
            for term in dim:
                out[..., d] += term.evaluate(threads if term.source == "thread" else slots)
        return out

    def coordinates(self) -> np.ndarray:
        """The full table: ``coordinates()[thread, slot]`` is `map(thread, slot)`."""
        threads = np.arange(self.threads)[:, None]
        slots = np.arange(self.slots)[None, :]
        return self.map_array(threads, slots)

    # ------------------------------------------------ algebra, as methods

    def __mul__(self, other: RegisterLayout) -> RegisterLayout:
        from lpir.layout.algebra import product

        if not isinstance(other, RegisterLayout):
            return NotImplemented
        return product(self, other)

    def local(self, *sizes: int) -> RegisterLayout:
        """``self * local(*sizes)``."""
        return self * _primitive("local", sizes)

    def spatial(self, *sizes: int) -> RegisterLayout:
        """``self * spatial(*sizes)``."""
        return self * _primitive("spatial", sizes)

    def column_local(self, *sizes: int) -> RegisterLayout:
        """``self * column_local(*sizes)``."""
        return self * _primitive("column_local", sizes)

    def column_spatial(self, *sizes: int) -> RegisterLayout:
        """``self * column_spatial(*sizes)``."""
        return self * _primitive("column_spatial", sizes)

    def replicate(self, factor: int) -> RegisterLayout:
        """``self * replicate(factor)``: every element gains `factor` times as many holders."""
        return self * _primitive("replicate", (factor,))

    def __str__(self) -> str:
        from lpir.layout.text import format_layout

        return format_layout(self)

    def __repr__(self) -> str:
        return f"RegisterLayout({str(self)!r})"


def _primitive(kind: str, sizes: Sequence[int]) -> RegisterLayout:
    from lpir.layout.algebra import PRIMITIVES

    return PRIMITIVES[kind](*sizes)


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise LayoutError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _validate(
    shape: Sequence[int],
    modes: Sequence[Sequence[int]],
    spatial: Sequence[int],
    local: Sequence[int],
) -> None:
    if len(modes) != len(shape):
        raise LayoutError(f"{len(modes)} mode lists given for a rank-{len(shape)} shape")
    for d, (size, dim) in enumerate(zip(shape, modes, strict=True)):
        if math.prod(dim) != size:
            raise LayoutError(
                f"the modes {list(dim)} of dimension {d} multiply to {math.prod(dim)}, "
                f"not to its size {size}"
            )
    count = sum(len(dim) for dim in modes)
    used = [e for e in spatial if e >= 0] + list(local)
    for entry in used:
        if not 0 <= entry < count:
            raise LayoutError(f"mode id {entry} does not exist (the layout has {count} modes)")
    if sorted(used) != list(range(count)):
        missing = sorted(set(range(count)) - set(used))
        twice = sorted({e for e in used if used.count(e) > 1})
        raise LayoutError(
            "every mode must appear exactly once in spatial or local"
            + (f"; missing: {missing}" if missing else "")
            + (f"; repeated: {twice}" if twice else "")
        )


def _canonicalize(
    modes: Sequence[Sequence[int]], spatial: Sequence[int], local: Sequence[int]
) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...], tuple[int, ...]]:
    """Drop size-1 modes, merge neighbouring modes and replications, renumber the modes."""
    sizes = [size for dim in modes for size in dim]
    dim_of = [d for d, dim in enumerate(modes) for _ in dim]
    dims: list[list[int]] = []
    start = 0
    for dim in modes:
        dims.append([i for i in range(start, start + len(dim)) if sizes[i] > 1])
        start += len(dim)
    lists = [
        [e for e in entries if e < -1 or (e >= 0 and sizes[e] > 1)] for entries in (spatial, local)
    ]
    for entries in lists:
        i = 0
        while i + 1 < len(entries):
            a, b = entries[i], entries[i + 1]
            if a < 0 and b < 0:
                entries[i] = a * b * -1
            elif a >= 0 and b >= 0 and dim_of[a] == dim_of[b] and _follows(dims[dim_of[a]], a, b):
                sizes[a] *= sizes[b]
                dims[dim_of[a]].remove(b)
            else:
                i += 1
                continue
            del entries[i + 1]
    renumber = {old: new for new, old in enumerate(i for dim in dims for i in dim)}
    new_modes = tuple(tuple(sizes[i] for i in dim) for dim in dims)
    new_spatial = tuple(renumber[e] if e >= 0 else e for e in lists[0])
    new_local = tuple(renumber[e] for e in lists[1])
    return new_modes, new_spatial, new_local


def _follows(dim: list[int], a: int, b: int) -> bool:
    position = dim.index(a)
    return position + 1 < len(dim) and dim[position + 1] == b
