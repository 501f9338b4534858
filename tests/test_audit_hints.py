"""What an audit of docs/language.md found (session 38): a crash, hints that led astray, and
a doc sentence the code contradicted.

- `gather(m, ids, axis = 1)` with 1-d positions for a 2-d tile raised an IndexError: now a
  located error whose hint broadcasts them, numpy's `take` (torch's `index_select`).
- torch's `transpose(u, 0, 1)` written bare was silently the identity of a rank-2 tile, and
  on a rank-3 one got a hint that reversed all dimensions: now the swap in lpir's order.
- The reversed-cumsum hint `sum(t) - cumsum(t) + t` and the exclusive one `cumsum(t) - t`
  cancel in floats; the hints now give gathers, checked here to run and to keep the small
  terms. (The hints' text and places: tests/test_ported_habits.py.)
- `cummax`/`cummin` of fp8 and small floats are exact (scanned in f32, each result one of the
  elements), which docs/language.md's storage-type sentence now says.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import lpir
from lpir.errors import LpirError
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program

TARGETS = ["interp", "cpu"]


def error_of(source: str) -> LpirError:
    with pytest.raises(LpirError) as caught:
        specialize(parse_program(source, "m.lp"), None, {})
    return caught.value


GATHER = """kernel k[N = 16, L = 16](xm: global f32[4, N], ids: global i32[L], y: global f32[4, N])
    blocks(1) threads(32) {
    m = load(xm[:, :])
    i1 = load(ids[:])
    store(y[:, :], EXPR)
}
"""


@pytest.mark.parametrize(("axis", "placed"), [(1, "[None, :]"), (0, "[:, None]")])
def test_one_dimensional_positions_of_a_matrix_get_the_take_hint(axis: int, placed: str) -> None:
    """The IndexError of `given[axis]` past the positions' rank; axis 0 had the generic
    hint. The hint's form is numpy's take (the same positions in every line)."""
    expression = f"gather(m, i1, axis = {axis})"
    error = error_of(GATHER.replace("EXPR", expression))
    place = error.location
    assert place is not None and (place.line, place.column, place.end_column) == (5, 30, 32)
    assert error.message == (
        f"gather's positions of shape [16] do not fit a tile of shape [4, 16] along axis "
        f"{axis}: they need the tile's rank, 2"
    )
    fixed = f"gather(m, i1{placed}, axis = {axis})"
    assert error.hint == (
        "to pick the same positions in every line (numpy's take, torch's index_select), "
        f"write {fixed}: size 1 along the other axes broadcasts"
    )
    length = 16 if axis == 1 else 4  # (the result has 4 rows: 4 positions along axis 0)
    source = GATHER.replace("EXPR", fixed).replace("L = 16", f"L = {length}")
    m = np.arange(64, dtype=np.float32).reshape(4, 16)
    ids = np.random.default_rng(0).integers(0, m.shape[axis], length).astype(np.int32)
    expected = np.take(m, ids, axis=axis)
    for target in TARGETS:
        y = np.zeros_like(m)
        lpir.compile(source, target=target)(m, ids, y)
        np.testing.assert_array_equal(y, expected)


def test_a_gathers_positions_of_another_rank_get_the_general_hint() -> None:
    source = GATHER.replace("EXPR", "gather(m, reshape(i1, 2, 2, 4), axis = 1)")
    error = error_of(source)
    assert "they need the tile's rank, 2" in error.message
    assert error.hint == (
        "give the positions 2 dimensions: the tile's but axis 1 (any length there), or 1 to "
        "broadcast"
    )


TRANSPOSE = """def keep(t, a, b) {
    return transpose(t, a, b)
}
kernel k(xu: global f32[2, 4, 16], xm: global f32[4, 16], y: global f32[16, 4],
    z: global f32[4, 2, 16], w: global f32[4, 16]) blocks(1) threads(32) {
    m = load(xm[:, :])
    u = load(xu[:, :, :])
    store(y[:, :], MATRIX)
    store(z[:, :, :], CUBE)
    store(w[:, :], keep(m, 0, 1))
}
"""


@pytest.mark.parametrize("dims", ["0, 1", "-2, -1"])
def test_torchs_swap_of_a_matrix_is_refused_where_it_would_keep_it(dims: str) -> None:
    """`transpose(m, 0, 1)` was the identity, silently; an identity order given through a
    def's parameters (generic code) still is one."""
    source = TRANSPOSE.replace("CUBE", "transpose(u, 1, 0, 2)")
    error = error_of(source.replace("MATRIX", f"transpose(m, {dims})"))
    place = error.location
    assert place is not None and (place.line, place.column) == (8, 20)
    assert error.message == (
        f"transpose(m, {dims}) leaves a rank-2 tile as it is: lpir's transpose takes the "
        "whole order of the dimensions, as numpy's"
    )
    assert error.hint == (
        f"torch's transpose(u, {dims}) swaps two dimensions: write transpose(m, 1, 0) or "
        "transpose(m); to keep the tile as it is, leave the call out"
    )


@pytest.mark.parametrize(("dims", "order"), [("0, 1", "1, 0, 2"), ("-1, 0", "2, 1, 0")])
def test_torchs_swap_of_a_cube_gets_the_swap_not_the_reversal(dims: str, order: str) -> None:
    source = TRANSPOSE.replace("MATRIX", "transpose(m)")
    error = error_of(source.replace("CUBE", f"transpose(u, {dims})"))
    assert error.message == "transpose of a 3-dimensional tile takes 3 dimensions, got 2"
    assert error.hint == (
        f"torch's transpose(u, {dims}) swaps two dimensions: write transpose(u, {order})"
    )


def test_the_hinted_swaps_are_torchs_transposes() -> None:
    source = TRANSPOSE.replace("MATRIX", "transpose(m, 1, 0)")
    kernel = lpir.compile(source.replace("CUBE", "transpose(u, 1, 0, 2)"), target="interp")
    u = np.arange(128, dtype=np.float32).reshape(2, 4, 16)
    m = np.arange(64, dtype=np.float32).reshape(4, 16)
    y, z, w = np.zeros((16, 4), np.float32), np.zeros((4, 2, 16), np.float32), np.zeros_like(m)
    kernel(u, m, y, z, w)
    np.testing.assert_array_equal(y, np.swapaxes(m, 0, 1))
    np.testing.assert_array_equal(z, np.swapaxes(u, 0, 1))
    np.testing.assert_array_equal(w, m)


# The hints' reversed and exclusive cumsums, 1-d and along axis 1 of a 2-d tile, beside the
# formulas the hints gave before.
SCANS = """kernel k[N = 16, M = 4](x: global f32[N], x2: global f32[M, N], rev: global f32[N],
    exc: global f32[N], rev2: global f32[M, N], exc2: global f32[M, N],
    old_rev: global f32[N], old_exc: global f32[N]) blocks(1) threads(32) {
    t = load(x[:])
    n = N
    r = n - 1 - arange(n)
    store(rev[:], gather(cumsum(gather(t, r)), r))
    store(exc[:], gather(cumsum(t), arange(n) - 1))
    store(old_rev[:], sum(t) - cumsum(t) + t)
    store(old_exc[:], cumsum(t) - t)
    m = load(x2[:, :])
    r2 = (n - 1 - arange(n))[None, :]
    store(rev2[:, :], gather(cumsum(gather(m, r2, axis = 1), axis = 1), r2, axis = 1))
    store(exc2[:, :], gather(cumsum(m, axis = 1), (arange(n) - 1)[None, :], axis = 1))
}
"""


def reversed_cumsum(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x[..., ::-1].astype(np.float64), axis=-1)[..., ::-1]


def exclusive_cumsum(x: np.ndarray) -> np.ndarray:
    inclusive = np.cumsum(x.astype(np.float64), axis=-1)
    return np.concatenate([np.zeros((*x.shape[:-1], 1)), inclusive[..., :-1]], axis=-1)


@pytest.mark.parametrize("target", TARGETS)
def test_the_hinted_reversed_and_exclusive_cumsums_keep_the_small_terms(target: str) -> None:
    """1e8 then fifteen 1s: the reversed cumsum is 1e8 + 15, 15, 14, ...; the old hint's
    sum - cumsum + t gave 9, 9, 9 after the first (f32 keeps 1e8 to a multiple of 8). 1 then
    1e8: the exclusive cumsum's second is 1, cumsum - t gave 0. A float scan adds in the
    target's order, so the large partial sums may round differently (a relative tolerance);
    the small ones are exact."""
    kernel = lpir.compile(SCANS, target=target)
    big_first = np.array([1e8] + [1] * 15, np.float32)
    small_first = np.array([1, 1e8] + [1] * 14, np.float32)
    x2 = np.stack([big_first, small_first, big_first[::-1], np.arange(16, dtype=np.float32)])
    close = {"rtol": 1e-6, "atol": 0}
    for x in (big_first, small_first):
        outputs = [np.zeros(16, np.float32) for _ in range(2)]
        outputs += [np.zeros((4, 16), np.float32) for _ in range(2)]
        outputs += [np.zeros(16, np.float32) for _ in range(2)]
        kernel(x, x2, *outputs)
        rev, exc, rev2, exc2, old_rev, old_exc = outputs
        np.testing.assert_allclose(rev, reversed_cumsum(x), **close)
        np.testing.assert_allclose(exc, exclusive_cumsum(x), **close)
        np.testing.assert_allclose(rev2, reversed_cumsum(x2), **close)
        np.testing.assert_allclose(exc2, exclusive_cumsum(x2), **close)
        if x is big_first:  # the formulas the hints gave before lose the small terms
            assert rev[1] == 15 and old_rev[1] != 15
        else:
            assert exc[1] == 1 and old_exc[1] == 0


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dt", ["f8e4m3", "f8e5m2", "f6e3m2", "f4e2m1"])
def test_cummax_and_cummin_of_storage_floats_are_exact(target: str, dt: str) -> None:
    """docs/language.md (Dtypes): the storage floats' scans run in f32, and a running max or
    min is one of the elements, so it is exact in their own dtype (np.fmax.accumulate)."""
    source = (
        f"kernel k(x: global {dt}[16], c: global {dt}[16], d: global {dt}[16]) blocks(1) "
        "threads(32) {\n    t = load(x[:])\n    store(c[:], cummax(t))\n"
        "    store(d[:], cummin(t))\n}\n"
    )
    values = np.random.default_rng(1).choice([0.0, 0.5, -1.0, 2.0, -3.0, 1.5, -0.5], 16)
    kernel = lpir.compile(source, target=target)
    if dt.startswith("f8"):
        native = ml_dtypes.float8_e4m3fn if dt == "f8e4m3" else ml_dtypes.float8_e5m2
        x = values.astype(np.float32).astype(native)
        c, d = np.zeros(16, native), np.zeros(16, native)
        kernel(x, c, d)
        got_max, got_min = c.astype(np.float64), d.astype(np.float64)
    else:
        c, d = lpir.pack(np.zeros(16), dt), lpir.pack(np.zeros(16), dt)
        kernel(lpir.pack(values, dt), c, d)
        got_max, got_min = (np.asarray(lpir.unpack(p), np.float64) for p in (c, d))
    np.testing.assert_array_equal(got_max, np.fmax.accumulate(values))
    np.testing.assert_array_equal(got_min, np.fmin.accumulate(values))


def test_a_storage_floats_max_reduction_is_refused_with_the_cast() -> None:
    """The doc's other half: reductions but sum take a cast first."""
    source = (
        "kernel k(x: global f8e4m3[16], y: global f32[1]) blocks(1) threads(32) {\n"
        "    t = load(x[:])\n    store(y[0 :+ 1], full<f32>[1](max(t, axis = 0)))\n}\n"
    )
    error = error_of(source)
    assert error.message == "'max' is not defined on f8e4m3, a storage-only type"
    assert error.hint is not None and "cast<f32>(x)" in error.hint


RANGE = """kernel k(x: global f32[16], xm: global f32[4, 16], ids: global i32[4],
    y: global f32[4], ym: global f32[4, 4]) blocks(1) threads(32) {
    t = load(x[:])
    m = load(xm[:, :])
    p = load(ids[0])
    store(y[:], VECTOR)
    store(ym[:, :], MATRIX)
}
"""


@pytest.mark.parametrize(
    ("vector", "matrix", "column", "hint"),
    [
        ("t[p :+ 4]", "m[:, 0 :+ 4]", 19, "gather(t, p + arange(4))"),
        ("t[0 :+ 4]", "m[:, p :+ 4]", 26, "gather(m, (p + arange(4))[None, :], axis = 1)"),
        ("t[p:p + 4]", "m[:, 0 :+ 4]", 19, "gather(t, p + arange(L)), L the range's length, "
         "known at compile time"),
    ],
)  # fmt: skip
def test_a_run_time_range_of_a_register_tile_hints_gather(
    vector: str, matrix: str, column: int, hint: str
) -> None:
    """As a run-time index's hint (`t[p]`: gather(t, p)) did, where the range's said only
    "use literals and integer parameters only"."""
    error = error_of(RANGE.replace("VECTOR", vector).replace("MATRIX", matrix))
    assert error.location is not None and error.location.column == column
    assert error.message == (
        "a register tile's range must start at a compile-time integer, but this is a scalar "
        "of type i32"
    )
    assert error.hint == (
        f"use literals and integer parameters; to take the elements from position p known at "
        f"run time, {hint} (positions past the end read 0)"
    )


@pytest.mark.parametrize("target", TARGETS)
def test_the_hinted_gathers_of_a_run_time_range_are_its_elements(target: str) -> None:
    source = RANGE.replace("VECTOR", "gather(t, p + arange(4))")
    source = source.replace("MATRIX", "gather(m, (p + arange(4))[None, :], axis = 1)")
    x, xm = np.arange(16, dtype=np.float32), np.arange(64, dtype=np.float32).reshape(4, 16)
    y, ym = np.zeros(4, np.float32), np.zeros((4, 4), np.float32)
    lpir.compile(source, target=target)(x, xm, np.array([13, 0, 0, 0], np.int32), y, ym)
    np.testing.assert_array_equal(y, [13, 14, 15, 0])  # (past the end: 0)
    np.testing.assert_array_equal(ym, np.pad(xm[:, 13:], ((0, 0), (0, 1))))
