"""Math functions of a kernel's scalar argument, on every host target.

A scalar is a 0-d value in the reference interpreter, where `erf` once returned a Python
float and failed (`'float' object has no attribute 'astype'`); the other targets see a
per-thread value. Results are compared with Python's `math` in float64 within 4 ulps of f32
(the compiled code calls libm or LLVM's expansions; see test_llvm_elementwise.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

FUNCTIONS = {
    "exp": math.exp,
    "exp2": lambda x: 2.0**x,
    "log": math.log,
    "log2": math.log2,
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tanh": math.tanh,
    "erf": math.erf,
}
ARGUMENTS = [0.5, 1.75, 3.0]

SOURCE = """
kernel scalar_math[N = 32](y: global f32[N], a: f32) blocks(1) threads(32) {
    store(y[0 :+ N], full<f32>[N](FUNCTION(a)))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_math_function_of_a_scalar_argument(target, name):
    kernel = lpir.compile(SOURCE.replace("FUNCTION", name), target=target)
    for argument in ARGUMENTS:
        y = np.zeros(32, np.float32)
        kernel(y, argument)
        expected = np.float32(FUNCTIONS[name](argument))
        np.testing.assert_array_max_ulp(y, np.full(32, expected), maxulp=4)


FOLDED = ["floor", "ceil", "round", "abs", "rsqrt", *sorted(FUNCTIONS)]
CONSTANTS = {"7.5": 7.5, "-2.5": -2.5, "0.0": 0.0, "-1.0": -1.0, "inf": math.inf, "nan": math.nan}
FOLDING_SOURCE = """
kernel folded[N = 32](y: global f32[N], z: global f32[N], a: f32) blocks(1) threads(32) {
    store(y[0 :+ N], full<f32>[N](FUNCTION(CONSTANT) / 2))
    store(z[0 :+ N], full<f32>[N](FUNCTION(a) / 2))
}
"""


@pytest.mark.parametrize("name", FOLDED)
def test_a_math_function_of_a_constant_folds_to_its_run_time_value(name):
    """`floor(7.5) / 2` is 3.5 as `floor(a) / 2` is (the fold once gave Python's int 7, then
    divided as integers), and constants at the poles fold to IEEE's values (`log(0.0)`,
    `floor(inf)`) instead of failing to compile. The fold computes in float64 and rounds
    once, the run time in f32: within 2 ulps of f32 (the run time's own error)."""
    for text, value in CONSTANTS.items():
        source = FOLDING_SOURCE.replace("FUNCTION", name).replace("CONSTANT", text)
        kernel = lpir.compile(source, target="interp")
        assert kernel.ir("source").count(f" {name}(") == 1  # a's; the constant's folded
        y, z = np.zeros(32, np.float32), np.zeros(32, np.float32)
        kernel(y, z, value)
        np.testing.assert_array_max_ulp(y, z, maxulp=2)


@pytest.mark.parametrize("a, b", [("7.5", "2"), ("7", "2.0"), ("x", "2")])
def test_cdiv_of_floats_is_an_error(a, b):
    """cdiv is the ceiling of an integer quotient; of floats it once folded to 4.0 for
    cdiv(7.5, 2) and computed (a + b - 1) / b = 4.25 at run time."""
    source = f"""
kernel k[](y: global f32[4], x: f32) blocks(1) threads(4) {{
    store(y[0 :+ 4], zeros<f32>[4] + cdiv({a}, {b}))
}}"""
    with pytest.raises(lpir.LpirError, match="cdiv divides integers") as error:
        lpir.compile(source, target="interp")(np.zeros(4, np.float32), 7.5)
    assert "ceil(a / b)" in str(error.value)


FLOAT_OPERANDS = ["7.5", "-2.0", "0.0", "0.5", "inf", "-inf", "nan"]


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "%", "min", "max"])
def test_a_float_operator_of_constants_folds_to_its_run_time_value(op):
    """Each pair of FLOAT_OPERANDS folded at compile time, and the same pair loaded and
    computed at run time: the same f32 (exact: one rounding of an exact or IEEE result).
    Float division by zero folds to inf or NaN as it computes (it once refused to compile),
    `inf % 2.0` to NaN (Python's math.fmod raised)."""
    pairs = [(a, b) for a in FLOAT_OPERANDS for b in FLOAT_OPERANDS]

    def apply(a: str, b: str) -> str:
        return f"{op}({a}, {b})" if op in ("min", "max") else f"({a}) {op} ({b})"

    folded = "\n".join(
        f"    store(y[{i} :+ 1], full<f32>[1]({apply(a, b)}))" for i, (a, b) in enumerate(pairs)
    )
    source = f"""
kernel folded[P = {len(pairs)}](
    y: global f32[P], z: global f32[P], a: global f32[P], b: global f32[P],
) blocks(1) threads(1) {{
{folded}
    store(z[0 :+ P], {apply("load(a[0 :+ P])", "load(b[0 :+ P])")})
}}"""
    a = np.array([float(a) for a, _ in pairs], np.float32)
    b = np.array([float(b) for _, b in pairs], np.float32)
    y, z = np.zeros(len(pairs), np.float32), np.zeros(len(pairs), np.float32)
    lpir.compile(source, target="interp")(y, z, a, b)
    np.testing.assert_array_equal(y, z)


# view of scalars: an argument, a loaded element and a reduction's result (a per-tensor
# max|x| combined across blocks as the i32 bits of a non-negative float, which order alike)
SCALAR_VIEWS = """
kernel scalar_views[N = 1000, BN = 128](
    x: global f32[N], a: f32, bits: global i32[2], amax: global i32[1],
) blocks(cdiv(N, BN)) threads(128) {
    t = load(x[block.x * BN :+ BN])
    store(bits[0], view<i32>(a))
    store(bits[1], view<i32>(load(x[0])))
    atomic_max(amax[0], view<i32>(max(abs(t))))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_view_of_a_scalar(target):
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    bits, amax = np.zeros(2, np.int32), np.zeros(1, np.int32)
    lpir.compile(SCALAR_VIEWS, target=target)(x, np.float32(-2.5), bits, amax)
    np.testing.assert_array_equal(bits, np.array([-2.5, x[0]], np.float32).view(np.int32))
    assert amax.view(np.float32)[0] == np.abs(x).max()


SMALL_FLOAT = """
kernel small_float[T = f8e4m3, N = 32](y: global f32[N], z: global T[N], f: T)
    blocks(1) threads(32) {
    store(y[:], full<f32>[N](cast<f32>(f)))
    store(z[:], full<T>[N](3.0))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("name", ["f8e4m3", "f8e5m2", "f6e2m3", "f4e2m1"])
@pytest.mark.parametrize("value", [0.1, 3.0, -1.5])
def test_a_small_float_scalar_and_constant_hold_their_values(target, name, value):
    """The interpreters once took a small float's value for its code (3.0 as an f8e4m3 was
    code 3, 0.0059): the scalar argument and the constant are the codes of their values."""
    dt = lpir.dtype(name)
    y = np.zeros(32, np.float32)
    z = lpir.PackedArray(np.zeros(lpir.packing.storage_bytes(32, dt), np.uint8), (32,), dt)
    lpir.compile(SMALL_FLOAT, target=target, T=name)(y, z, value)
    assert y[0] == dt.decode(dt.encode([value]))[0]
    assert (dt.decode(z.codes()) == dt.decode(dt.encode([3.0]))[0]).all()


SIGNED_ZEROS = """
kernel signed_zeros(x: global f32[2], f: global f32[6]) blocks(1) threads(1) {
    t = load(x[0 :+ 2])
    store(f[0], -0.0)
    store(f[1], 0.0)
    store(f[2 :+ 2], t - -0.0)
    store(f[4 :+ 2], t + 0.0)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_signed_zeros_stay_apart(target):
    """cse merged the constants 0.0 and -0.0 (equal in Python), so one kernel stored the
    same zero twice; canonicalize took x - -0.0 for x (it is x + 0.0: -0.0 - -0.0 is +0.0)."""
    x, f = np.array([-0.0, 0.0], np.float32), np.full(6, 7.0, np.float32)
    lpir.compile(SIGNED_ZEROS, target=target)(x, f)
    wanted = np.array([-0.0, 0.0, 0.0, 0.0, 0.0, 0.0], np.float32)
    np.testing.assert_array_equal(np.signbit(f), np.signbit(wanted))


WIDE_CASTS = """
kernel wide_casts(o: global i64[2], u: global u64[1], d: global f64[2], b: global i8[1])
    blocks(1) threads(1) {
    store(o[0], cast<i64>(3000000000))
    store(o[1], cast<i64>(1 << 62))
    store(u[0], cast<u64>(max_value(u64)))
    store(d[0], cast<f64>(3000000000))
    store(d[1], cast<f64>(0.1))
    store(b[0], cast<i8>(3000000000))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_cast_of_a_constant_converts_its_exact_value(target):
    """A constant met by a cast was made an i32 (or f32) first: cast<i64>(3000000000) was
    "does not fit in i32", cast<f64>(0.1) would have been 0.1 rounded to f32."""
    o, u, d, b = np.zeros(2, np.int64), np.zeros(1, np.uint64), np.zeros(2), np.zeros(1, np.int8)
    lpir.compile(WIDE_CASTS, target=target)(o, u, d, b)
    np.testing.assert_array_equal(o, [3000000000, 1 << 62])
    assert u[0] == 2**64 - 1 and b[0] == np.int64(3000000000).astype(np.int8)
    np.testing.assert_array_equal(d, [3e9, 0.1])
