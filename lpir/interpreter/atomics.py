"""Atomic combinations as the interpreters run them: one element after another in the order
given (a tile's row-major order, a block's threads in turn), each element's old value kept.

Both interpreters combine this way: the tile interpreter's scattered `store_* {combine}` and
the thread interpreter's `st {combine}` whose old values are used (`%old = st ...`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: the ufunc of each way an atomic combines with memory
COMBINE_UFUNCS: dict[str, np.ufunc] = {
    "add": np.add,
    "max": np.maximum,
    "min": np.minimum,
    "and": np.bitwise_and,
    "or": np.bitwise_or,
    "xor": np.bitwise_xor,
}


def combine_in_order(
    places: np.ndarray,
    values: np.ndarray,
    read: Callable[[np.ndarray], np.ndarray],
    write: Callable[[np.ndarray, np.ndarray], None],
    combine: str,
) -> np.ndarray:
    """Combine `values[i]` into memory's element `places[i]` (integer keys) for i in order;
    return what each element found there. `read(places)` gives memory's elements, `write(places,
    new)` sets them (each distinct place once).

    Elements sharing a place are combined in turn: by rounds over the r-th element of every
    place where places repeat little, by one accumulation per place where few places take many
    elements (a counter every element adds to), so neither shape takes a round per element."""
    ufunc = COMBINE_UFUNCS[combine]
    values = values.ravel()
    order = np.argsort(places.ravel(), kind="stable")  # (each place's elements in turn)
    keys, ordered = places.ravel()[order], values[order]
    old = np.empty_like(ordered)
    if not len(keys):
        return old
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, len(keys)])
    with np.errstate(all="ignore"):  # integers wrap, as atomics do
        if counts.max() <= len(starts):
            current = read(keys[starts])
            for r in range(int(counts.max())):
                live = counts > r
                at = starts[live] + r
                old[at] = current[live]
                current[live] = ufunc(current[live], ordered[at])
            write(keys[starts], current)
        else:
            for start, count in zip(starts, counts):
                place = keys[start : start + 1]
                running = ufunc.accumulate(np.concatenate([read(place), ordered[start:][:count]]))
                old[start : start + count] = running[:-1]
                write(place, running[-1:])
    found = np.empty_like(old)
    found[order] = old
    return found
