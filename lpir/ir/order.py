"""Orders of evaluation that every executor of thread IR follows, so that float results agree
bit for bit between the thread interpreter and the backends.

`reduce_lanes` combines a group's lanes as a balanced tree of neighbours: (t0 ∘ t1), (t2 ∘ t3),
... then the same on those results, an odd last term carried up unchanged. The tree has depth
log2(group) — short dependency chains for the hardware — and is the order numpy's pairwise
summation would not guarantee, so it is spelled out here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def balanced_tree(terms: list[T], combine: Callable[[T, T], T]) -> T:
    """`combine` over `terms` in the reduce_lanes order (see the module docstring)."""
    if not terms:
        raise ValueError("nothing to combine")
    while len(terms) > 1:
        paired = [combine(terms[i], terms[i + 1]) for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


def tree_levels(count: int) -> list[tuple[list[int], list[int], int | None]]:
    """The balanced tree as levels: for each, the positions combined pairwise (left, right)
    and the carried position, positions counting the terms of that level."""
    levels = []
    while count > 1:
        left = list(range(0, count - 1, 2))
        right = [i + 1 for i in left]
        carried = count - 1 if count % 2 else None
        levels.append((left, right, carried))
        count = len(left) + (carried is not None)
    return levels


__all__ = ["balanced_tree", "tree_levels"]
