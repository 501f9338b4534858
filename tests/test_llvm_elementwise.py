"""Elementwise ops of every compute dtype, compiled, against the thread-IR interpreter
(lpir/interpreter/elementwise.py) on random inputs with edge values.

Exact (bit for bit): integer and bool arithmetic, bitwise ops, shifts (amounts past the width
included), division and remainder (by zero and INT_MIN / -1 included), comparisons, `where`,
float + - * / %, min, max, neg, abs, sqrt, rsqrt, floor, ceil, round — f16 and bf16 included,
whose arithmetic runs in f32 and rounds once, as the interpreter's does. Each op reads loaded
values, so no multiply feeds an add here (the backend lets LLVM fuse those into an FMA; see
arith.py). A NaN result may carry any payload.

Within a tolerance: exp, exp2, log, log2, sin, cos, tanh, erf. The compiled code calls libm (or
LLVM's expansions) and the interpreter numpy's own SIMD routines; both are within a few ulps
of the true value, so results may differ by a few ulps of the dtype (stated per dtype below).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from test_llvm_harness import LaneKernel, empty_for, private_cache, run_both  # noqa: F401

from lpir.dtypes import DType, dtype
from lpir.ir.ops import ARITHMETIC, BITWISE, COMPARISONS

COMPUTE = ["bool", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64"]
COMPUTE += ["f16", "bf16", "f32", "f64"]
EXACT_FLOAT_UNARY = ["neg", "abs", "sqrt", "rsqrt", "floor", "ceil", "round"]
MATH = ["exp", "exp2", "log", "log2", "sin", "cos", "tanh", "erf"]
# Tolerance of the math functions in ulps of the dtype (see the module docstring).
MATH_ULPS = {"f16": 1, "bf16": 1, "f32": 4, "f64": 4}
LANES, BLOCKS = 8, 2


def float_inputs(dt: DType, rng) -> tuple[np.ndarray, np.ndarray]:
    if dt.nbits == 16:  # every code as a, random codes as b
        a = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        return a, rng.permutation(a)
    specials = [0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, np.inf, -np.inf, np.nan, 3e38, 1e-40]
    values = np.concatenate(
        [
            specials,
            rng.standard_normal(4000) * 10.0 ** rng.integers(-6, 6, 4000),
            rng.integers(-100, 100, 1000) / 4,  # many equal pairs and ties of round()
        ]
    )
    a = values.astype(dt.numpy_dtype)
    width = np.uint32 if dt.nbits == 32 else np.uint64
    raw = rng.integers(0, np.iinfo(width).max, 3000, dtype=np.uint64).astype(width)
    a = np.concatenate([a, raw.view(dt.numpy_dtype)])
    a = np.resize(a, 8192)
    b = np.roll(a, 17)
    b[::7] = a[::7]  # equal operands
    return a.view(dt.code_numpy_dtype), b.view(dt.code_numpy_dtype)


def int_inputs(dt: DType, rng) -> tuple[np.ndarray, np.ndarray]:
    if dt.is_bool:
        a = rng.integers(0, 2, 256).astype(np.uint8)
        return a, rng.permutation(a)
    info = np.iinfo(dt.numpy_dtype)
    kind = np.int64 if dt.is_signed else np.uint64
    edges = np.array([info.min, info.max, 0, 1, 2, info.max - 1, info.min + 1], kind)
    a = np.concatenate([edges, rng.integers(info.min, info.max, 4089, dtype=kind)])
    b = np.roll(a, 5)
    small = rng.integers(-2 * dt.nbits, 2 * dt.nbits, 2048)  # shift amounts, small divisors
    b[1::2] = small.astype(kind) if dt.is_signed else small.astype(np.int64).astype(kind)
    b[:8] = np.array([0, 0, -1, 1, 0, -1, dt.nbits, dt.nbits + 1]).astype(kind)
    return a.astype(dt.numpy_dtype).view(dt.code_numpy_dtype), b.astype(dt.numpy_dtype).view(
        dt.code_numpy_dtype
    )


def operations(dt: DType) -> tuple[list[tuple[str, str, DType]], list[str]]:
    """(name, IR expression, result dtype) of every op to check exactly; math functions."""
    binary = [n for n in ARITHMETIC if not dt.is_bool or n in ("max", "min")]
    if not dt.is_float:
        binary += list(BITWISE)
    exact = [(n, f"{n}(%A, %B)", dt) for n in binary]
    exact += [(n, f"{n}(%A, %B)", dtype("bool")) for n in COMPARISONS]
    exact += [("where", "where(%LT, %A, %B)", dt)]
    if dt.is_float:
        exact += [(n, f"{n}(%A)", dt) for n in EXACT_FLOAT_UNARY]
        return exact, MATH
    unary = ["not"] if dt.is_bool else ["neg", "abs", "not"]
    exact += [(n, f"{n}(%A)", dt) for n in unary]
    return exact, []


def build(dt: DType, n: int):
    exact, math = operations(dt)
    kernel = LaneKernel(n, LANES, n // LANES // BLOCKS)
    a, b = kernel.load(dt), kernel.load(dt)
    less = kernel.op(f"lt({a}, {b})", "bool")
    for _, expression, result in exact:
        text = expression.replace("%A", a).replace("%B", b).replace("%LT", less)
        kernel.store(kernel.op(text, result), result)
    for name in math:
        kernel.store(kernel.op(f"{name}({a})", dt), dt)
    return kernel.text(f"elementwise_{dt.name}"), exact, math


def as_values(codes: np.ndarray, dt: DType) -> np.ndarray:
    if dt.name == "bf16":
        return codes.view(ml_dtypes.bfloat16).astype(np.float64)
    return codes.view(dt.numpy_dtype).astype(np.float64)


def ulp_distance(x: np.ndarray, y: np.ndarray, dt: DType) -> np.ndarray:
    """How many representable values lie between x and y (as codes of a sign-magnitude
    format); 0 where both are NaN."""
    bits = dt.nbits
    signed = np.int64

    def ordered(codes):
        codes = codes.astype(np.uint64).astype(signed)
        sign = codes >> (bits - 1)
        magnitude = codes & ((1 << (bits - 1)) - 1)
        return np.where(sign == 1, -magnitude, magnitude)

    both_nan = np.isnan(as_values(x, dt)) & np.isnan(as_values(y, dt))
    return np.where(both_nan, 0, np.abs(ordered(x) - ordered(y)))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", COMPUTE)
def test_elementwise_ops_match_the_interpreter(name):
    dt = dtype(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    a, b = float_inputs(dt, rng) if dt.is_float else int_inputs(dt, rng)
    text, exact, math = build(dt, a.size)
    outputs = [empty_for(result, a.size) for _, _, result in exact]
    outputs += [empty_for(dt, a.size) for _ in math]
    reference, compiled = run_both(text, [a, b, *outputs])
    failures = []
    for index, (op, _, result) in enumerate(exact):
        ours, theirs = compiled[index + 2], reference[index + 2]
        if result.is_float:
            wrong = ulp_distance(ours, theirs, result) != 0
        else:
            wrong = ours != theirs
        if wrong.any():
            where = np.flatnonzero(wrong)[:4]
            failures.append(
                f"{op}: a={a[where]} b={b[where]} gave {ours[where]}, not {theirs[where]}"
            )
    for index, op in enumerate(math, start=len(exact) + 2):
        distance = ulp_distance(compiled[index], reference[index], dt)
        if distance.max() > MATH_ULPS[name]:
            where = np.flatnonzero(distance > MATH_ULPS[name])[:4]
            failures.append(f"{op}: {distance.max()} ulps at a={a[where]}")
    assert not failures, f"{name}:\n" + "\n".join(failures)


BF16_CLAMPS = """
kernel clamps[M = 4, N = 108](x: global i32[M, N], y: global i8[N], out: global f32[M])
    blocks(M) threads(64) {
    r = block.x
    a = cast<bf16>(load(x[r :+ 1, 0 :+ 128]))
    b = cast<bf16>(load(y[0 :+ 128]))[None, :]
    lo = clamp(a, -1.5, b)
    e = where(lo > lo, lo, lo) + zeros<bf16>[1, 128]
    store(out[r :+ 1], cast<f32>(min(e, axis = 1)))
}
"""


def test_bf16_clamps_and_selects_compile_and_match():
    """bf16 rounds on the bits (`floats.encode_bf16`); one form of that rounding sent LLVM 22's
    code generator into an endless loop on this kernel (found by a random kernel)."""
    import lpir

    rng = np.random.default_rng(0)
    x = rng.integers(-5, 5, (4, 108)).astype(np.int32)
    y = rng.integers(-5, 5, 108).astype(np.int8)
    results = []
    for target in ("interp", "cpu"):
        out = np.zeros(4, np.float32)
        lpir.compile(BF16_CLAMPS, target=target)(x, y, out)
        results.append(out)
    np.testing.assert_array_equal(*results)
