"""`cumsum`, `cumprod`, `cummax`, `cummin`: inclusive prefix results along one axis of a tile
(numpy's `cumsum`, `cumprod`, `maximum.accumulate`, `minimum.accumulate`).

A scan runs within each thread (`passes/thread_scans.py`): where the layout splits the axis
over threads, layout-selection converts the operand to one where each thread holds whole
lines. Checked on every target against numpy on tiles whose edges do not divide the tensor,
plus the rounding of narrow floats, NaNs, wrapping integers, the errors and the IR text."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.cuda.compiler import find_nvcc

import lpir
from lpir.errors import LpirError, VerifyError
from lpir.ir.parser import parse
from lpir.ir.printer import print_module
from lpir.ir.verifier import verify

TARGETS = ["interp", "threads", "threads-cuda", "cpu"]
NUMPY = {
    "sum": np.cumsum,
    "prod": np.cumprod,
    "max": np.maximum.accumulate,
    "min": np.minimum.accumulate,
}

ROWS = """
kernel scan_rows[T = f32, M = 37, N = 100, BM = 16, BN = 128](x: global T[M, N], y: global T[M, N])
    blocks(cdiv(M, BM)) threads(64) {
    r = block.x * BM
    t = load(x[r :+ BM, 0 :+ BN])
    store(y[r :+ BM, 0 :+ BN], SCAN(t, axis = AXIS))
}
"""


def _tiles_scanned(x: np.ndarray, kind: str, axis: int, rows: int) -> np.ndarray:
    """numpy's scan of each tile of `rows` rows (the kernel's blocks), in float64 for floats."""
    wide = x.astype(np.float64) if x.dtype.kind == "f" else x
    tiles = [NUMPY[kind](wide[i : i + rows], axis=axis) for i in range(0, len(x), rows)]
    return np.concatenate(tiles)


def _inputs(dtype: str, kind: str, rng: np.random.Generator) -> np.ndarray:
    if dtype == "i32":
        return rng.integers(-3, 4, size=(37, 100)).astype(np.int32)
    values = rng.standard_normal((37, 100))
    if kind == "prod":  # factors near 1: the products stay in range along 100 columns
        values = 1 + 0.05 * values
    return values.astype({"f32": np.float32, "f16": np.float16}[dtype])


# (the thread interpreter runs the cpu's thread IR: f32 and i32 cover it there)
@pytest.mark.parametrize(
    "target, dtype",
    [
        (target, dtype)
        for dtype in ("f32", "f16", "i32")
        for target in TARGETS
        if target != "threads" or dtype != "f16"
    ],
)
@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min"])
@pytest.mark.parametrize("axis", [1, 0])
def test_scans_along_either_axis_with_edges(target, kind, axis, dtype):
    x = _inputs(dtype, kind, np.random.default_rng(7))
    y = np.zeros_like(x)
    source = ROWS.replace("SCAN", f"cum{kind}").replace("AXIS", str(axis))
    lpir.compile(source, target=target, T=dtype)(x, y)
    want = _tiles_scanned(x, kind, axis, 16)
    if dtype == "i32" or kind in ("max", "min"):
        np.testing.assert_array_equal(y, want.astype(x.dtype))  # exact in any order
    elif dtype == "f32":
        # f32 partial results in another order than numpy's float64: 100 terms of |x| < 5
        # differ by a few ulps of the largest partial sum
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)
    else:
        # f16 is scanned in f32 and each result rounded once: within half an f16 ulp, plus
        # the f32 order's few ulps
        np.testing.assert_allclose(y.astype(np.float64), want, rtol=2**-10, atol=2e-3)


@pytest.mark.parametrize("target", ["interp", "threads-cuda", "cpu"])
@pytest.mark.parametrize("size", [1, 300, 1024])
def test_a_vector_scans_without_an_axis(target, size):
    source = f"""
kernel running[N = {size}, B = 256](x: global i32[N], y: global i32[N])
    blocks(cdiv(N, B)) threads(128) {{
    store(y[block.x * B :+ B], cumsum(load(x[block.x * B :+ B])))
}}
"""
    x = np.random.default_rng(1).integers(-1000, 1000, size=size).astype(np.int32)
    y = np.zeros_like(x)
    lpir.compile(source, target=target)(x, y)
    want = np.concatenate([np.cumsum(x[i : i + 256]) for i in range(0, size, 256)])
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("target", ["interp", "threads-cuda", "cpu"])
def test_integer_scans_wrap(target):
    source = """
kernel wrap[](x: global u8[64], y: global u8[64], z: global i32[64]) blocks(1) threads(32) {
    store(y[0 :+ 64], cumsum(load(x[0 :+ 64])))
    store(z[0 :+ 64], cumprod(cast<i32>(load(x[0 :+ 64])) + 1))
}
"""
    x = np.random.default_rng(2).integers(0, 256, size=64).astype(np.uint8)
    y, z = np.zeros_like(x), np.zeros(64, np.int32)
    lpir.compile(source, target=target)(x, y, z)
    np.testing.assert_array_equal(y, np.cumsum(x, dtype=np.uint8))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(z, np.cumprod(x.astype(np.int32) + 1, dtype=np.int32))


@pytest.mark.parametrize("target", ["threads-cuda", "cpu"])
def test_nans_and_signed_zeros_scan_as_the_interpreter_scans_them(target):
    """max and min pass NaNs over as `max(a, b)` does, but a leading NaN is the first
    result; a sum starting at -0.0 keeps its sign."""
    source = """
kernel edges[](x: global f32[4, 8], m: global f32[4, 8], s: global f32[4, 8])
    blocks(1) threads(32) {
    t = load(x[0 :+ 4, 0 :+ 8])
    store(m[0 :+ 4, 0 :+ 8], cummax(t, axis = 1))
    store(s[0 :+ 4, 0 :+ 8], cumsum(t, axis = 1))
}
"""
    nan, inf = np.nan, np.inf
    x = np.array(
        [
            [nan, 1, nan, 3, 2, nan, -inf, 5],
            [-0.0, -0.0, 1, -1, nan, 2, 2, 2],
            [nan, nan, nan, nan, nan, nan, nan, nan],
            [-inf, 3, inf, -inf, 0, 1, 2, 3],
        ],
        np.float32,
    )
    results = {}
    for name in ("interp", target):
        m, s = np.zeros_like(x), np.zeros_like(x)
        lpir.compile(source, target=name)(x, m, s)
        results[name] = (m, s)
    for got, want in zip(results[target], results["interp"]):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(results["interp"][0][0], [nan, 1, 1, 3, 3, 3, 3, 5])
    assert np.signbit(results["interp"][1][1, 1])  # -0.0 + -0.0


def test_threads_splitting_the_axis_scan_their_runs_and_combine_the_totals():
    """The coalesced GPU layout splits each row over 32 threads, 4 elements a thread: no
    conversion, each thread scans its runs, the totals go through shared memory."""
    kernel = lpir.compile(ROWS.replace("SCAN", "cumsum").replace("AXIS", "1"), target="cuda")
    tiles = kernel.ir("after:layout-selection")
    assert "convert_layout" not in tiles
    threads = kernel.ir("after:lower-to-threads")
    assert "= scan(" not in threads and "alloc_shared : shared f32[512]" in threads
    assert threads.count("barrier") == 2 * 6  # log2(32) rounds and the previous chunk's


@pytest.mark.parametrize("target", ["threads", "threads-cuda", "cpu"])
@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min"])
def test_runs_of_a_line_over_threads_combine_in_order(target, kind):
    """A [4, 256] tile over 128 threads: 32 threads a row, runs of 8; NaNs and infinities in
    every chunk, and a row that starts with NaNs, scanned bit for bit as the interpreter
    scans it (sums of small integers are exact in any order)."""
    source = """
kernel runs[T = f32](x: global T[4, 256], y: global T[4, 256]) blocks(1) threads(128) {
    store(y[0 :+ 4, 0 :+ 256], SCAN(load(x[0 :+ 4, 0 :+ 256]) @ spatial(4,32).local(1,8), axis = 1))
}
""".replace("SCAN", f"cum{kind}")
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, size=(4, 256)).astype(np.float32)
    if kind == "prod":
        x = rng.choice([1.0, -1.0, 2.0, 0.5], size=(4, 256)).astype(np.float32)
    x[rng.random(x.shape) < 0.03] = np.nan
    x[1, :20] = np.nan
    x[2, 100] = np.inf
    results = {}
    for name in ("interp", target):
        y = np.zeros_like(x)
        lpir.compile(source, target=name)(x, y)
        results[name] = y
    np.testing.assert_array_equal(results[target], results["interp"])


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_cuda_code_of_a_scan_compiles():
    kernel = lpir.compile(ROWS.replace("SCAN", "cummax").replace("AXIS", "0"), target="cuda")
    assert ".entry" in kernel.source("ptx")


def test_a_scan_round_trips_through_ir_text():
    kernel = lpir.compile(ROWS.replace("SCAN", "cumprod").replace("AXIS", "0"), target="cpu")
    text = kernel.ir("after:layout-selection")
    assert "scan(" in text and 'kind = "prod"' in text
    assert print_module(parse(text)) == text


def test_a_scan_whose_runs_are_not_one_a_thread_is_a_verifier_error():
    """Two thread digits split each line: a thread's elements of it are not one run."""
    source = """
kernel @bad[](%a: global f32[8, 64]) blocks(1, 1, 1) threads(32) {
  %0 = constant {value = 0} : i32
  %t = load_global(%a, %0, %0) {dims = [0, 1], shape = [8, 64]} : f32[8, 64] @ LAYOUT
  %r = scan(%t) {axis = 1, kind = "sum"} : f32[8, 64] @ LAYOUT
}
""".replace("LAYOUT", "local(8,1).spatial(1,4).local(1,2).spatial(1,8)")
    with pytest.raises(VerifyError) as caught:
        verify(parse(source, "bad.ir"))
    text = str(caught.value)
    assert "bad.ir:5:" in text and "splits dimension 1 over threads" in text
    assert "local(8,64)" in text  # the hint's layout holding the axis whole


@pytest.mark.parametrize("target", ["threads-cuda", "cpu"])
def test_a_layout_splitting_lines_into_several_runs_is_converted(target):
    source = """
kernel runs[](x: global i32[8, 64], y: global i32[8, 64]) blocks(1) threads(32) {
    t = load(x[0 :+ 8, 0 :+ 64]) @ local(8,1).spatial(1,4).local(1,2).spatial(1,8)
    store(y[0 :+ 8, 0 :+ 64], cumsum(t, axis = 1))
}
"""
    x = np.random.default_rng(6).integers(-100, 100, size=(8, 64)).astype(np.int32)
    y = np.zeros_like(x)
    lpir.compile(source, target=target)(x, y)
    np.testing.assert_array_equal(y, np.cumsum(x, axis=1))


@pytest.mark.parametrize(
    "call, message, hint",
    [
        ("cumsum(t)", "cumsum of a rank-2 tile needs the axis", "cumsum(t, axis = 1)"),
        ("cumsum(t, axis = 2)", "axis 2 is out of range", "-1 to -2"),
        ("cumsum(t > 0.0, axis = 1)", "not defined on bool", "cumsum(cast<i32>(t))"),
        ("cummax(x, axis = 0)", "cummax scans a tile", "load(x[...])"),
        ("cumsum(q, axis = 1)", "storage-only type", "cast<u8>(x)"),
        ("cumsum(t, 1)", "cumsum takes 1 argument, got 2", "write cumsum(t, axis = 1)"),
        ("cumprod(t > 0.0, axis = 1)", "cumprod is not defined on bool", "cummin(t)"),
        ("cumsum(t[0, 0])", "this tile has none (one element)", "one dimension or more"),
        ("cumsum(2.0)", "cumsum scans a tile", "cumsum(load(x[0 :+ 64]))"),
        ("cummax(q, axis = 1)", "'cummax' is not defined on u4", "cast<u8>(x)"),
    ],
)
def test_scan_mistakes_are_located_errors(call, message, hint):
    source = f"""
kernel bad[](x: global f32[8, 32], w: global u4[8, 32], y: global f32[8, 32])
    blocks(1) threads(32) {{
    t = load(x[0 :+ 8, 0 :+ 32])
    q = load(w[0 :+ 8, 0 :+ 32])
    s = {call}
    store(y[0 :+ 8, 0 :+ 32], cast<f32>(s))
}}
"""
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    text = str(caught.value)
    assert ":6:" in text and message in text and hint in text and "^" in text
