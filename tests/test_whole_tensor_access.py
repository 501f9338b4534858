"""A tensor argument written whole where a slice is wanted (`load(vals)`, `store(out, t)`,
`atomic_add(out, t)`): the hint gives the slice of every dimension (`vals[:, :]`, one `:` a
dimension), or rows at a time where the first dimension is read at run time (a slice to its
end is an error there); the same call with the hint's slice compiles.
"""

from __future__ import annotations

import pytest

import lpir
from lpir.errors import LpirError

HEADER = "kernel k(vals: global f32[4, 8], out: global f32[4, 8], v: global f32[8]) "


def _error(body: str, header: str = HEADER) -> str:
    with pytest.raises(LpirError) as error:
        lpir.compile(f"{header}blocks(1) threads(32) {{\n    {body}\n}}\n", target="interp")
    return str(error.value)


@pytest.mark.parametrize(
    ("body", "message", "hint", "fixed"),
    [
        (
            "store(out[:, :], load(vals))",
            "load needs a tensor slice, but this is the tensor vals",
            "one `:` for each of its 2 dimensions: load(vals[:, :])",
            "store(out[:, :], load(vals[:, :]))",
        ),
        (
            "store(out, load(vals[:, :]) * 2.0)",
            "store needs a tensor slice or a shared tile, but this is the tensor out",
            "store(out[:, :], load(vals[:, :]) * 2.0)",
            "store(out[:, :], load(vals[:, :]) * 2.0)",
        ),
        (
            "atomic_add(v, load(vals[0, :]))",
            "atomic_add needs a slice of a tensor or a shared tile",
            "hint: slice the whole tensor: atomic_add(v[:], load(vals[0, :]))",
            "atomic_add(v[:], load(vals[0, :]))",
        ),
    ],
)
def test_a_whole_tensor_gets_its_slice_in_the_hint(body, message, hint, fixed):
    text = _error(body)
    assert message in text and hint in text
    lpir.compile(f"{HEADER}blocks(1) threads(32) {{\n    {fixed}\n}}\n", target="interp")


def test_rows_read_at_run_time_are_sliced_a_block_at_a_time():
    header = "kernel k(vals: global f32[m, 8], out: global f32[m, 8], m: i32) "
    text = _error("store(out[0 :+ 4, :], load(vals))", header)
    assert "vals's first dimension is m, read at run time" in text
    assert "load(vals[r :+ BM, :])" in text
