"""exp, exp2, tanh, erf, log, log2, sin and cos of f32 on the CPU (backends/llvm/vector_math.py:
vector code, no libm call per lane, except sin and cos of vectors with a lane at 8192 or past)
within an ulp or so of the exact value (exp, exp2 and log faithfully rounded; numpy's own f32
exp is within 2.5 here, its log within 3.8), against float64, over millions of inputs: every
range where the result is normal, subnormal, near the overflow threshold, every binade, near
multiples of pi / 2, and random bit patterns; exact at the special values (exp(0) = 1, exp2 of
integers, log2 of powers of two, log(1) = 0, log(0) = -inf, log of a negative number NaN, inf,
-inf, NaN, tanh(-0) = -0, erf(-0) = -0, erf(+-inf) = +-1, sin(-0) = -0)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_llvm_harness import private_cache  # noqa: F401

import lpir

KERNEL = """
kernel math[N](x: global f32[N], e: global f32[N], e2: global f32[N], th: global f32[N],
        ef: global f32[N], lg: global f32[N], lg2: global f32[N], sn: global f32[N],
        cs: global f32[N])
        blocks(cdiv(N, 4096)) threads(128) {
    t = load(x[block.x * 4096 :+ 4096])
    store(e[block.x * 4096 :+ 4096], exp(t))
    store(e2[block.x * 4096 :+ 4096], exp2(t))
    store(th[block.x * 4096 :+ 4096], tanh(t))
    store(ef[block.x * 4096 :+ 4096], erf(t))
    store(lg[block.x * 4096 :+ 4096], log(t))
    store(lg2[block.x * 4096 :+ 4096], log2(t))
    store(sn[block.x * 4096 :+ 4096], sin(t))
    store(cs[block.x * 4096 :+ 4096], cos(t))
}
"""


def inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    ranges = [
        np.linspace(-104.0, 89.0, 1_000_000),  # the whole range of exp
        np.linspace(-151.0, 129.0, 1_000_000),  # and of exp2
        np.linspace(-1.0, 1.0, 200_001),  # near 0: results near 1
        np.linspace(-103.98, -87.3, 100_000),  # exp subnormal
        np.linspace(-150.0, -125.0, 100_000),  # exp2 subnormal
        np.linspace(88.0, 88.8, 100_000),  # exp near overflow
        np.linspace(127.0, 128.1, 100_000),  # exp2 near overflow
        np.linspace(-10.0, 10.0, 1_000_001),  # tanh and erf: where they are not +-1
        np.geomspace(1e-45, 1.0, 100_000),  # tanh near 0, subnormals included
        np.geomspace(1e-45, 3.4e38, 1_000_000),  # log: every binade
        np.linspace(0.5, 2.0, 500_001),  # log near 1
        np.linspace(-8300.0, 8300.0, 1_000_001),  # sin, cos: vector code, then libm past 8192
        np.arange(-5000, 5000) * (np.pi / 2),  # near multiples of pi / 2
    ]
    bits = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    chosen = np.concatenate(ranges).astype(np.float32)
    return np.concatenate([chosen, bits.view(np.float32)])  # any float, NaNs and infs too


def ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units of the f32 spacing at the exact value, with infinities counted
    as 2^128 (one unit past the largest float: whatever exceeds it rounds to inf), and inf
    where exactly one of the two is NaN."""
    beyond = 2.0**128
    capped = np.clip(np.nan_to_num(exact, nan=0.0, posinf=beyond, neginf=-beyond), -beyond, beyond)
    with np.errstate(invalid="ignore"):  # (signalling NaNs)
        mine = np.nan_to_num(got.astype(np.float64), nan=0.0, posinf=beyond, neginf=-beyond)
    with np.errstate(over="ignore"):  # (2^128 is no f32: its spacing is set below)
        spacing = np.spacing(np.abs(capped).astype(np.float32)).astype(np.float64)
    spacing = np.where(np.abs(capped) >= beyond, 2.0**104, np.maximum(spacing, 2.0**-149))
    error = np.abs(mine - capped) / spacing
    return np.where(np.isnan(exact) != np.isnan(got), np.inf, error)


def run(x: np.ndarray) -> dict[str, np.ndarray]:
    names = ("exp", "exp2", "tanh", "erf", "log", "log2", "sin", "cos")
    results = {name: np.zeros_like(x) for name in names}
    lpir.compile(KERNEL, target="cpu")(x, *results.values())
    return results


@pytest.fixture(scope="module")
def results():
    x = inputs()
    return x, run(x)


# exp, exp2 and log within 1 ulp: one of the two floats around the exact value; tanh within
# 1.05 (the most where 1 - 2 / (e^(2|x|) + 1) takes over from the series: numpy's is within
# 1.37); erf within 1 (0.91 where 1 - e^(-x^2) R(x) takes over; numpy has no erf); log2
# within 1.6 (ln(m) log2(e) near m = sqrt(2): numpy's is within 2.0); sin and cos within 1.6
# (numpy's: 1.44)
BOUNDS = [
    ("exp", np.exp, 1.0),
    ("exp2", np.exp2, 1.0),
    ("tanh", np.tanh, 1.05),
    ("erf", lambda x: np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64), 1.0),
    ("log", np.log, 1.0),
    ("log2", np.log2, 1.6),
    ("sin", np.sin, 1.6),
    ("cos", np.cos, 1.6),
]


@pytest.mark.parametrize(("name", "exact", "bound"), BOUNDS)
def test_within_an_ulp_or_so_everywhere(results, name, exact, bound):
    x, computed = results
    got = computed[name]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        wanted = exact(x.astype(np.float64))
    error = ulps(got, wanted)
    worst = int(np.argmax(error))
    assert error[worst] <= bound, f"{name}({x[worst]!r}) = {got[worst]!r}, exact {wanted[worst]!r}"


def test_special_values_are_exact():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1000.0, -1000.0, 1.0], np.float32)
    integers = np.arange(-149, 128, dtype=np.float32)
    x = np.concatenate([x, integers])
    got = run(x)
    np.testing.assert_array_equal(got["exp"][:7], [1.0, 1.0, np.inf, 0.0, np.nan, np.inf, 0.0])
    np.testing.assert_array_equal(got["exp2"][:7], [1.0, 1.0, np.inf, 0.0, np.nan, np.inf, 0.0])
    exact_powers = np.exp2(integers.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got["exp2"][8:], exact_powers)
    np.testing.assert_array_equal(got["tanh"][:7], [0.0, -0.0, 1.0, -1.0, np.nan, 1.0, -1.0])
    assert np.signbit(got["tanh"][1])  # tanh(-0) = -0
    np.testing.assert_array_equal(got["erf"][:7], [0.0, -0.0, 1.0, -1.0, np.nan, 1.0, -1.0])
    assert np.signbit(got["erf"][1])  # erf(-0) = -0
    np.testing.assert_array_equal(got["sin"][:5], [0.0, -0.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(got["cos"][:5], [1.0, 1.0, np.nan, np.nan, np.nan])
    assert np.signbit(got["sin"][1])  # sin(-0) = -0
    special_logs = [-np.inf, -np.inf, np.inf, np.nan, np.nan, np.log(np.float32(1000)), np.nan, 0.0]
    np.testing.assert_allclose(got["log"][:8], special_logs, rtol=1e-7)
    assert got["log"][7] == 0.0  # log(1) exactly
    powers = np.exp2(integers.astype(np.float64)).astype(np.float32)
    x = np.concatenate([powers, [-1.0, -np.inf, 1e-45]]).astype(np.float32)
    np.testing.assert_array_equal(run(x)["log2"], [*integers, np.nan, np.nan, -149.0])


def test_no_libm_call_per_lane():
    """LLVM would lower llvm.exp.v*f32 to one expf call per lane (and tanh has no intrinsic)."""
    assembly = lpir.compile(KERNEL, target="cpu", N=4096).source("asm")
    assert not any(f in assembly for f in ("expf", "exp2f", "tanhf", "erff", "logf", "log2f"))
    assert "vfmadd" in assembly  # the polynomial
