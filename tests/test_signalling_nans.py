"""Signalling NaNs (a quiet NaN's top fraction bit clear: f32 0x7f800001, bits a kernel may read
from memory) are NaNs like the others: float `min`/`max` (and `clamp`, built of them) return
the other operand, and the `max`/`min`/`argmax`/`argmin` reductions pass over them, on every
target, for f16, bf16, f32 and f64, scalars and tiles of every length. numpy is no reference
here: np.fmax quiets a signalling NaN and returns it on its scalar (non-vectorised) path, so
np.fmax.reduce of [7, sNaN, 2] is 2."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.dtypes import dtype
from lpir.interpreter import elementwise

TARGETS = [*HOST_TARGETS, "threads-cuda"]
FLOATS = ["f16", "bf16", "f32", "f64"]
NUMPY = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32, "f64": np.float64}
# a signalling NaN of each format (exponent all ones, fraction 1) and a negative one
SIGNALLING = {"f16": 0x7C01, "bf16": 0x7F81, "f32": 0x7F800001, "f64": 0x7FF0000000000001}
NEGATIVE_SIGNALLING = {"f16": 0xFC05, "bf16": 0xFF85, "f32": 0xFF800005, "f64": 0xFFF0000000000005}


def _values(codes: list[int], name: str) -> np.ndarray:
    dt = dtype(name)
    return np.array(codes, dtype=dt.code_numpy_dtype).view(NUMPY[name])


def _codes(values: np.ndarray, name: str) -> np.ndarray:
    return np.asarray(values).view(dtype(name).code_numpy_dtype)


def _wide(values: np.ndarray) -> np.ndarray:
    """As f64 (numpy warns of a signalling NaN's cast, which gives a quiet NaN)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(values).astype(np.float64)


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("shape", [(), (1,), (3,), (4,), (33,)])
def test_elementwise_min_max_return_the_number(name, shape):
    """The oracle itself, on the shapes where np.fmax took its scalar path."""
    dt = dtype(name)
    for nan in (SIGNALLING[name], NEGATIVE_SIGNALLING[name]):
        signalling = np.full(shape, _values([nan], name)[0])
        number = np.full(shape, NUMPY[name](-2.5))
        for op in ("max", "min"):
            for a, b in ((signalling, number), (number, signalling)):
                got = elementwise.binary(op, a, b, dt)
                np.testing.assert_array_equal(_codes(got, name), _codes(number, name))
        both = elementwise.binary("max", signalling, signalling, dt)
        quiet = nan | 1 << (dt.mantissa_bits - 1)
        assert (_codes(both, name) == quiet).all()  # of two NaNs the first, made quiet


ELEMENTWISE = """
kernel k[T = f32, N = 32](a: global T[N], b: global T[N], hi: global T[N], lo: global T[N],
                          clamped: global T[N]) blocks(1) threads(32) {
    x = load(a[0 :+ N])
    y = load(b[0 :+ N])
    store(hi[0 :+ N], max(x, y))
    store(lo[0 :+ N], min(y, x))
    store(clamped[0 :+ N], clamp(y, -1.5, 2.5))
}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("length", [1, 4, 32])
def test_min_max_and_clamp_of_a_signalling_nan(target, name, length):
    """max(x, sNaN) and min(sNaN, x) are x, bit for bit; clamp(sNaN, lo, hi) is lo."""
    kernel = lpir.compile(ELEMENTWISE, target=target, T=name, N=length)
    x = np.resize(np.array([1.0, -0.5, 3.0, -7.0], NUMPY[name]), length)
    y = _values([SIGNALLING[name], NEGATIVE_SIGNALLING[name]] * length, name)[:length]
    outputs = [np.zeros(length, NUMPY[name]) for _ in range(3)]
    kernel(x, y, *outputs)
    hi, lo, clamped = outputs
    np.testing.assert_array_equal(_codes(hi, name), _codes(x, name))
    np.testing.assert_array_equal(_codes(lo, name), _codes(x, name))
    np.testing.assert_array_equal(_wide(clamped), -1.5)


SCALARS = """
kernel k[T = f64](x: T, y: T, o: global T[4]) blocks(1) threads(32) {
    store(o[0], min(x, y))
    store(o[1], max(y, x))
    store(o[2], clamp(y, x, 2.5))
    store(o[3], clamp(x, y, 2.5))
}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ["f32", "f64"])
def test_scalar_min_max_of_a_signalling_nan(target, name):
    kernel = lpir.compile(SCALARS, target=target, T=name)
    out = np.zeros(4, NUMPY[name])
    kernel(NUMPY[name](1.0), _values([SIGNALLING[name]], name)[0], out)
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0, 1.0])


REDUCTIONS = """
kernel k[T = f32, N = 8](a: global T[4, N], extremes: global T[2, 4], positions: global i32[2, 4])
        blocks(1) threads(32) {
    x = load(a[:, :])
    store(extremes[0, :], max(x, axis = 1))
    store(extremes[1, :], min(x, axis = 1))
    store(positions[0, :], argmax(x, axis = 1))
    store(positions[1, :], argmin(x, axis = 1))
}
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", FLOATS)
def test_reductions_pass_over_signalling_nans(target, name):
    """Rows with a signalling NaN early, late, among quiet ones, and a row of NaNs only (whose
    max and min are NaN and whose argmax and argmin are 0)."""
    row = [7.0, -5.0, 0.0, 1.0, 2.0, 0.5, 0.25, 1.5]
    rows = np.array([row, row[::-1], row, row], np.float64).astype(NUMPY[name])
    codes = _codes(rows, name)
    codes[0, 2] = SIGNALLING[name]  # the explorer's row: max was 2 on the interpreter
    codes[1, 7] = NEGATIVE_SIGNALLING[name]
    codes[2, [0, 3]] = SIGNALLING[name]
    codes[2, 5] = _codes(np.array([np.nan], NUMPY[name]), name)[0]
    codes[3, :] = [SIGNALLING[name], NEGATIVE_SIGNALLING[name]] * 4
    kernel = lpir.compile(REDUCTIONS, target=target, T=name)
    extremes = np.zeros((2, 4), NUMPY[name])
    positions = np.zeros((2, 4), np.int32)
    kernel(rows, extremes, positions)
    numbers = np.where(np.isnan(_wide(rows)), np.nan, _wide(rows))  # quiet NaNs: for np.nanmax
    np.testing.assert_array_equal(_wide(extremes[0, :3]), np.nanmax(numbers[:3], 1))
    np.testing.assert_array_equal(_wide(extremes[1, :3]), np.nanmin(numbers[:3], 1))
    assert np.isnan(_wide(extremes[:, 3])).all()
    masked = np.where(np.isnan(numbers), -np.inf, numbers)
    np.testing.assert_array_equal(positions[0, :3], np.argmax(masked[:3], 1))
    masked = np.where(np.isnan(numbers), np.inf, numbers)
    np.testing.assert_array_equal(positions[1, :3], np.argmin(masked[:3], 1))
    np.testing.assert_array_equal(positions[:, 3], 0)


DOCUMENTED = """
kernel k(x: global f32[2], o: global f32[4], h: global f16[2]) blocks(1) threads(32) {
    t = load(x[0 :+ 2])
    store(o[0 :+ 2], clamp(t, -1.5, 2.5))
    store(o[2], exp(1.0))
    store(o[3], exp(cast<f32>(1.0)))
    store(h[0], 0.1 + 0.2)
    store(h[1], cast<f16>(0.1) + cast<f16>(0.2))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_the_float_semantics_docs_state(target):
    """docs/language.md, Float semantics: clamp(NaN, lo, hi) is lo, quiet or signalling;
    untyped constants fold in f64 (exp(1.0) correctly rounded, 0.1 + 0.2 rounded once to f16),
    a typed constant's exp folds with numpy's f32 exp, an ulp above."""
    x = _values([0x7FC00000, SIGNALLING["f32"]], "f32")
    o, h = np.zeros(4, np.float32), np.zeros(2, np.float16)
    lpir.compile(DOCUMENTED, target=target)(x, o, h)
    np.testing.assert_array_equal(o[:2], [-1.5, -1.5])
    assert [hex(v) for v in _codes(o[2:], "f32")] == ["0x402df854", "0x402df855"]
    assert [hex(v) for v in _codes(h, "f16")] == ["0x34cd", "0x34cc"]
