"""Layouts: which thread holds which element of a tile (registers), and where (shared memory).

A `RegisterLayout` maps (thread, slot) to a tensor coordinate. Build one from primitives and the
product (``local(2, 1) * spatial(8, 4) * local(1, 2)``, or the chain
``local(2,1).spatial(8,4).local(1,2)`` through `parse`), transform it with `reduce`, `permute`,
`reshape`, `expand_dims`, `concat`, and ask `divide` whether an instruction's atom fits it.
`coordinate_terms` gives code generators the coordinate of every slot as index arithmetic.

A `SharedLayout` maps a coordinate to an element offset (strides plus an optional XOR swizzle).

Modules: `register` (the value and its queries), `algebra` (primitives and operators), `draft`
(a mutable working form for the operators), `text` (print and parse), `shared`, `picture`.
"""

from __future__ import annotations

from lpir.layout.algebra import (
    column_local,
    column_spatial,
    concat,
    divide,
    expand_dims,
    local,
    permute,
    product,
    reduce,
    replicate,
    reshape,
    spatial,
)
from lpir.layout.picture import render_grid, save_png
from lpir.layout.register import Digit, RegisterLayout, Term
from lpir.layout.shared import (
    SharedLayout,
    Swizzle,
    parse_shared,
    shared_row_major,
    shared_swizzled,
)
from lpir.layout.text import format_layout, parse

__all__ = [
    "Digit",
    "RegisterLayout",
    "SharedLayout",
    "Swizzle",
    "Term",
    "column_local",
    "column_spatial",
    "concat",
    "divide",
    "expand_dims",
    "format_layout",
    "local",
    "parse",
    "parse_shared",
    "permute",
    "product",
    "reduce",
    "render_grid",
    "replicate",
    "reshape",
    "save_png",
    "shared_row_major",
    "shared_swizzled",
    "spatial",
]
