"""`arange<T>(n)` is 0, 1, ..., n-1 in T, or a located error where T cannot hold n-1.

It wrapped silently (arange<i8>(256) ended -4..-1), saturated (arange<f4e2m1>(16) ended 6, 6,
6, 6) and made bools of positions (arange<bool>(3) was false, true, true), where full<T> with
the same value is an error. `cast<T>(arange(n))` still gives the cast's values.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from located_errors import assert_located_error

import lpir
from lpir.dtypes import dtype


@pytest.mark.parametrize(
    ("expression", "message", "hint"),
    [
        (
            "arange<i8>(256)",
            "arange<i8>(256) ends at 255, which does not fit in i8",
            "i8 holds -128 to 127 and a cast wraps the rest round; use a wider dtype, or write "
            "cast<i8>(arange(256)) if that is meant",
        ),
        ("arange<u4>(17)", "arange<u4>(17) ends at 16, which does not fit in u4", "0 to 15"),
        (
            "arange<f4e2m1>(16)",
            "arange<f4e2m1>(16) ends at 15, which does not fit in f4e2m1 (max 6)",
            "a cast rounds the values past 6 to 6",
        ),
        (
            "arange<f16>(65536)",
            "arange<f16>(65536) ends at 65535, which does not fit in f16 (max 65504)",
            "to infinity",
        ),
        (
            "arange<bool>(2)",
            "arange<bool>(2) counts, and bool holds no numbers",
            "compare the positions instead, e.g. arange(2) > 0",
        ),
        ("arange<i8>(0)", "arange needs a positive length, not 0", None),
    ],
)
def test_arange_past_its_dtype_is_a_located_error(expression: str, message: str, hint: str):
    column = 20 if expression.endswith("(0)") else 9  # the length, or the whole call
    assert_located_error(expression, column, message, hint)


ARANGE = """kernel k[T, N](o: global T[N]) blocks(1) threads(32) {
    store(o[0 :+ N], arange<T>(N))
}
"""
CAST_OF_ARANGE = ARANGE.replace("arange<T>(N)", "cast<T>(arange(N))")


def _run(source: str, name: str, n: int) -> np.ndarray:
    dt = dtype(name)
    if dt.is_packed:
        out = lpir.pack_codes(np.zeros(n, np.uint8), name)
        lpir.compile(source, target="interp", T=name, N=n)(out)
        return np.asarray(lpir.unpack(out), np.float64)
    numpy_dtype = {"bf16": ml_dtypes.bfloat16, "f8e4m3": ml_dtypes.float8_e4m3fn}.get(name)
    out = np.zeros(n, numpy_dtype or dt.numpy_dtype)
    lpir.compile(source, target="interp", T=name, N=n)(out)
    return out.astype(np.float64)


@pytest.mark.parametrize(
    ("name", "n"), [("i8", 128), ("u4", 16), ("i3", 4), ("f4e2m1", 5), ("f8e4m3", 449)]
)
def test_arange_up_to_the_largest_value(name: str, n: int):
    """(the floats round what they cannot hold: f4e2m1 holds 0..4 and 6 but not 5, f8e4m3
    holds 448, its largest value, but not 447)"""
    values = _run(ARANGE, name, n)
    if dtype(name).is_int:
        np.testing.assert_array_equal(values, np.arange(n))
    assert values[-1] == n - 1


def test_a_float_dtype_rounds_the_larger_positions():
    """bf16 holds the integers up to 256 exactly; arange<bf16>(512) rounds those above, to
    even, as cast<bf16>(arange(512)) does."""
    values = _run(ARANGE, "bf16", 512)
    np.testing.assert_array_equal(values, _run(CAST_OF_ARANGE, "bf16", 512))
    np.testing.assert_array_equal(values[256:260], [256, 256, 258, 260])


@pytest.mark.parametrize(("name", "tail"), [("i8", [-2, -1]), ("f4e2m1", [6, 6])])
def test_a_cast_of_arange_keeps_the_casts_values(name: str, tail: list):
    n = 256 if name == "i8" else 16
    np.testing.assert_array_equal(_run(CAST_OF_ARANGE, name, n)[-2:], tail)
