"""The CPU backend against the interpreter: casts bit for bit, elementwise ops, barriers and
shared memory, the compile cache, and arguments that must not reach compiled code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lpir
from lpir.errors import ArgumentError
from lpir.runtime import cache

CAST = """
kernel convert[S, D, N](x: global S[N], y: global D[N]) blocks(cdiv(N, 256)) threads(64) {
    i = block.x * 256
    store(y[i :+ 256], cast<D>(load(x[i :+ 256])))
}
"""

BINARY = """
kernel binary[T, N](x: global T[N], y: global T[N], z: global T[N], c: global bool[N])
    blocks(cdiv(N, 128)) threads(32) {
    i = block.x * 128
    a = load(x[i :+ 128])
    b = load(y[i :+ 128])
    store(z[i :+ 128], OP)
    store(c[i :+ 128], a < b)
}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path / "cache"))


def every_input(dt: lpir.DType, rng) -> np.ndarray | lpir.PackedArray:
    """Every code of an 8-bit-or-less type; edge values and random ones for wider types."""
    if dt.nbits <= 8:
        codes = np.arange(1 << dt.nbits, dtype=np.uint16).astype(dt.code_numpy_dtype)
        packed = lpir.pack_codes(codes, dt)
        return packed if dt.is_packed or dt.is_float else dt.from_codes(codes)
    if dt.is_float:
        specials = [0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 65504.0, 65520.0, 1e-8, 3e38]
        values = np.concatenate(
            [specials, rng.standard_normal(500) * 100, rng.standard_normal(500) * 1e-5]
        )
        with np.errstate(over="ignore"):
            return values.astype(dt.numpy_dtype)
    info = np.iinfo(dt.numpy_dtype)
    values = rng.integers(
        info.min, info.max, size=1000, dtype=np.int64 if dt.is_signed else np.uint64
    )
    return np.concatenate([[info.min, info.max, 0, 1, -1 if dt.is_signed else 2], values]).astype(
        dt.numpy_dtype
    )


def codes_of(value, dt: lpir.DType) -> np.ndarray:
    if isinstance(value, lpir.PackedArray):
        return value.codes()
    return dt.to_codes(value)


CAST_PAIRS = [
    ("f32", "f4e2m1"), ("f32", "f6e3m2"), ("f32", "f6e2m3"), ("f32", "f8e4m3"), ("f32", "f8e5m2"),
    ("f32", "f16"), ("f32", "bf16"), ("f32", "f3e1m1"), ("f32", "f7e3m3"), ("f32", "f5e4m0"),
    ("f64", "f16"), ("f64", "bf16"), ("f64", "f8e4m3"), ("f64", "f32"),
    ("f4e2m1", "f32"), ("f6e3m2", "f16"), ("f8e4m3", "bf16"), ("f8e5m2", "f32"),
    ("f5e2m2", "f8e4m3"),
    ("f16", "f32"), ("bf16", "f32"), ("f16", "bf16"), ("bf16", "f8e5m2"), ("f16", "f6e2m3"),
    ("f32", "i8"), ("f32", "u4"), ("f32", "i3"), ("f64", "i64"), ("f32", "u32"), ("f16", "i16"),
    ("f8e4m3", "i8"), ("f4e2m1", "i4"),
    ("i32", "f16"), ("i32", "bf16"), ("i64", "f32"), ("u8", "f4e2m1"), ("i8", "f8e5m2"),
    ("u4", "f32"), ("i3", "f32"), ("u7", "f16"),
    ("i32", "u8"), ("i32", "i4"), ("u8", "i3"), ("i8", "u5"), ("u16", "i8"), ("i64", "i32"),
    ("i16", "u64"), ("u4", "i4"),
    ("f32", "bool"), ("i8", "bool"), ("bool", "f32"), ("bool", "i4"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "target"), CAST_PAIRS)
def test_casts_are_bit_exact(source, target):
    src, dst = lpir.dtype(source), lpir.dtype(target)
    rng = np.random.default_rng(0)
    x = every_input(src, rng)
    n = x.shape[0] if isinstance(x, np.ndarray) else x.size
    if src.is_bool:  # bool tensors are packed, one bit per element
        x = lpir.pack(rng.integers(0, 2, size=300).astype(bool), "bool")
        n = 300

    def output():
        if dst.is_packed or (dst.is_float and dst.nbits <= 8):
            return lpir.pack_codes(np.zeros(n, dst.code_numpy_dtype), dst)
        return np.zeros(n, dst.numpy_dtype)

    expected, got = output(), output()
    lpir.compile(CAST, target="interp", S=source, D=target)(x, expected)
    lpir.compile(CAST, target="cpu", S=source, D=target)(x, got)
    ours, theirs = codes_of(got, dst), codes_of(expected, dst)
    if dst.is_float:
        nan = np.isnan(dst.decode(theirs).astype(np.float64))
        assert np.array_equal(np.isnan(dst.decode(ours).astype(np.float64)), nan)
        ours, theirs = ours[~nan], theirs[~nan]
    bad = np.flatnonzero(ours != theirs)
    assert bad.size == 0, (
        f"{source}->{target}: input {x[bad[:5]] if isinstance(x, np.ndarray) else bad[:5]}"
    )


INT_OPS = [
    "a + b",
    "a - b",
    "a * b",
    "a / b",
    "a % b",
    "max(a, b)",
    "min(a, b)",
    "a << b",
    "a >> b",
    "a & b",
    "a ^ b",
]
FLOAT_OPS = ["a + b", "a - b", "a * b", "a / b", "a % b", "max(a, b)", "min(a, b)", "abs(a) - b"]


@pytest.mark.parametrize("dtype_name", ["i8", "i32", "u16", "i64", "u32"])
@pytest.mark.parametrize("expression", INT_OPS)
def test_integer_arithmetic_matches(dtype_name, expression):
    dt = lpir.dtype(dtype_name)
    rng = np.random.default_rng(1)
    a = every_input(dt, rng)
    b = np.roll(every_input(dt, rng), 3)
    b[:8] = np.array([0, 0, -1 if dt.is_signed else 1, 1, 2, dt.nbits, dt.nbits + 1, 100]).astype(
        dt.numpy_dtype
    )
    _compare(dt, expression, a, b, exact=True)


@pytest.mark.parametrize("dtype_name", ["f16", "bf16", "f32", "f64"])
@pytest.mark.parametrize("expression", FLOAT_OPS)
def test_float_arithmetic_matches(dtype_name, expression):
    dt = lpir.dtype(dtype_name)
    rng = np.random.default_rng(2)
    a = every_input(dt, rng)
    b = np.roll(a, 7)
    _compare(dt, expression, a, b, exact=True)


def _compare(dt, expression, a, b, exact):
    source = BINARY.replace("OP", expression)
    n = a.shape[0]
    outputs = {}
    for target in ("interp", "cpu"):
        z, c = np.zeros(n, dt.numpy_dtype), lpir.pack(np.zeros(n, bool), "bool")
        lpir.compile(source, target=target, T=dt.name)(a.copy(), b.copy(), z, c)
        outputs[target] = (z, c.unpack())
    (z1, c1), (z2, c2) = outputs["interp"], outputs["cpu"]
    assert np.array_equal(c1, c2)
    if dt.is_float:
        assert np.array_equal(z1.astype(np.float64), z2.astype(np.float64), equal_nan=True)
    else:
        assert np.array_equal(z1, z2)


MATH = """
kernel math[N](x: global f32[N], y: global f32[N]) blocks(cdiv(N, 64)) threads(32) {
    i = block.x * 64
    t = load(x[i :+ 64])
    store(y[i :+ 64], FUNCTION(t))
}
"""


@pytest.mark.parametrize(
    "function",
    ["exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "floor", "ceil", "round"],
)
def test_math_functions_within_an_ulp_or_two(function):
    x = np.random.default_rng(3).uniform(0.01, 20, size=1000).astype(np.float32)
    x[:4] = [0.5, 1.5, 2.5, -0.5]  # rounding ties for round()
    expected, got = np.zeros_like(x), np.zeros_like(x)
    lpir.compile(MATH.replace("FUNCTION", function), target="interp")(x, expected)
    lpir.compile(MATH.replace("FUNCTION", function), target="cpu")(x, got)
    # libm and LLVM's expansions differ from numpy by at most a couple of ulps.
    np.testing.assert_allclose(got, expected, rtol=4e-7, atol=1e-30)


REVERSE = """
kernel reverse[N = 256](x: global f32[N], y: global f32[N]) blocks(1) threads(64) {
    s = shared<f32>[N]
    store(s, load(x[0 :+ N]))
    sync()
    total = zeros<f32>[N]
    for k in range(0, 3) {
        t = load(s)
        sync()
        store(s, t * 2.0)
        sync()
        total += t
    }
    store(y[0 :+ N], total + sum(load(s)))
}
"""


def test_barriers_inside_loops_with_carried_values():
    x = np.random.default_rng(4).standard_normal(256).astype(np.float32)
    expected, got = np.zeros_like(x), np.zeros_like(x)
    lpir.compile(REVERSE, target="interp")(x, expected)
    lpir.compile(REVERSE, target="cpu")(x, got)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_overlapping_arguments_are_refused():
    kernel = lpir.compile(CAST, target="cpu", S="f32", D="f32")
    buffer = np.zeros(512, np.float32)
    with pytest.raises(ArgumentError, match="overlap"):
        kernel(buffer[:256], buffer[128:384])


def test_second_compile_hits_memory_and_a_new_process_hits_disk(tmp_path):
    path = Path(__file__).resolve().parent.parent / "examples" / "vector_add.lp"
    env = dict(os.environ, LPIR_CACHE_DIR=str(tmp_path / "shared-cache"))
    script = (
        "import lpir; from lpir.runtime import cache; "
        f"k = lpir.compile(r'{path}', target='cpu', N=1000); k.specialize(None); "
        "print(cache.stats.hits, cache.stats.stores)"
    )
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert first.stdout.split() == ["0", "1"], first.stderr
    assert second.stdout.split() == ["1", "0"], second.stderr

    kernel = lpir.compile(path, target="cpu", N=1000)
    spec = kernel.specialize(None)
    assert kernel.specialize(None) is spec  # in memory: nothing compiled again


def test_corrupt_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path / "c"))
    path = Path(__file__).resolve().parent.parent / "examples" / "vector_add.lp"
    lpir.compile(path, target="cpu", N=500).specialize(None)
    entries = list((tmp_path / "c").rglob("*.bin"))
    assert len(entries) == 1
    entries[0].write_bytes(entries[0].read_bytes()[:-10])  # truncated
    before = cache.stats.corrupt
    kernel = lpir.compile(path, target="cpu", N=500)
    x, y, z = np.ones(500, np.float32), np.ones(500, np.float32), np.zeros(500, np.float32)
    kernel(x, y, z)
    assert cache.stats.corrupt == before + 1
    assert np.all(z == 2)
    assert len(entries[0].read_bytes()) > 64  # rewritten whole
