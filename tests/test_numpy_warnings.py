"""The interpreters and `lpir.dtypes.convert` compute IEEE's answers without numpy warnings.

inf x 0 in a dot, a dot's sum past f32's range and the re-biasing of a small float's exponent
(which wraps round for the zeros and subnormals it then drops) once leaked numpy
RuntimeWarnings, which `-W error` (or pytest's `filterwarnings = error`) turns into exceptions
that are no `LpirError`. Each case runs with every warning an error and must give the values
it gave before.
"""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest

import lpir
from lpir.dtypes import ALL_DTYPE_NAMES, convert, dtype

# the targets whose evaluation is numpy's: tile IR, thread IR, thread IR of the GPU's pipeline
# (whose dots are `mma`s)
INTERPRETED = ["interp", "threads", "threads-cuda"]

CAST = """
kernel k(s: f64, o: global f8e4m3[1]) blocks(1) threads(32) {
    store(o[0], cast<f8e4m3>(s))
}
"""

DOT = """
kernel d[T = f32](a: global T[16, 16], b: global T[16, 16], c: global f32[16, 16])
        blocks(1) threads(32) {
    store(c[0 :+ 16, 0 :+ 16], dot(load(a[0 :+ 16, 0 :+ 16]), load(b[0 :+ 16, 0 :+ 16])))
}
"""


def _run_with_warnings_as_errors(source: str, target: str, *arguments: object) -> None:
    kernel = lpir.compile(source, target=target)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kernel(*arguments)


@pytest.mark.parametrize("target", INTERPRETED)
@pytest.mark.parametrize("value", [1e-40, 0.0, -0.0, 5e-324])
def test_cast_of_a_tiny_f64_scalar_to_f8e4m3(target: str, value: float):
    out = np.full(1, np.nan, ml_dtypes.float8_e4m3fn)
    _run_with_warnings_as_errors(CAST, target, np.float64(value), out)
    assert out.view(np.uint8)[0] == (0x80 if np.signbit(value) else 0)


def _dot_operands(numpy_dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """a and b whose dot holds a NaN (inf x 0), infinities (inf x 2, and each of the dtype's
    largest values times 1 and 2 summed past f32's range) and small integers, each of which
    every summation order gives exactly."""
    largest = float(ml_dtypes.finfo(numpy_dtype).max)
    a = np.ones((16, 16))
    a[0, 0] = np.inf
    a[1, :] = largest
    b = np.ones((16, 16))
    b[:, 0] = 0.0
    b[0, 1] = 2.0
    return a.astype(numpy_dtype), b.astype(numpy_dtype)


@pytest.mark.parametrize("target", INTERPRETED)
@pytest.mark.parametrize("numpy_dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_dot_of_infinities_and_overflowing_sums(target: str, numpy_dtype: type):
    a, b = _dot_operands(numpy_dtype)
    c = np.zeros((16, 16), np.float32)
    _run_with_warnings_as_errors(DOT, target, a, b, c)
    with np.errstate(all="ignore"):
        expected = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)
    assert np.isnan(c[0, 0]) and c[0, 1] == np.inf
    # a row of f16's largest (65504) sums to 65504 * 17 at most, exact in f32
    assert (c[1, 1] == np.inf) == (numpy_dtype is not np.float16)
    np.testing.assert_array_equal(c, expected)


def _scalars_of(name: str) -> list[np.generic]:
    """0-d numpy values of `name`'s register form: its extremes, zeros and tiny numbers (every
    code of a small float)."""
    dt = dtype(name)
    if dt.is_small_float:
        return [np.uint8(code) for code in range(1 << dt.nbits)]
    if dt.is_bool:
        return [np.bool_(False), np.bool_(True)]
    if dt.is_int:
        return [dt.numpy_dtype.type(v) for v in (dt.min, 0, 1, dt.max)]
    numbers = [0.0, -0.0, 1e-40, 5e-324, 1.0, np.inf, -np.inf, np.nan, dt.max, -dt.max]
    with np.errstate(all="ignore"):  # tiny numbers flush to zero in the narrow dtypes
        return [np.asarray(v).astype(dt.numpy_dtype)[()] for v in numbers]


@pytest.mark.parametrize("source", ALL_DTYPE_NAMES)
def test_convert_of_numpy_scalars(source: str):
    """Each 0-d conversion (numpy warns of integer wrap-around only for those) equals the
    conversion of the same value in a one-element array."""
    for value in _scalars_of(source):
        for target in ALL_DTYPE_NAMES:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                result = convert(value, source, target)
                expected = convert(np.array([value]), source, target)[0]
            assert dtype(target).to_codes(result) == dtype(target).to_codes(expected), (
                f"{source} {value!r} -> {target}"
            )
