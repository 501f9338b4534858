"""The zero-point fusion of backends/llvm/fusion.py: `cast<f32>(q) ± c` for every integer
width up to 16 bits and constants of both signs, scalar and splatted, compiled against the
thread-IR interpreter bit for bit (every code of the 8-bit types, random codes of the others),
and the IR shows that the fused form was taken (no sitofp/uitofp survives optimization). On an
AVX-512 host, codes of at most 5 bits take table lookups instead (code_tables.py): checked
both ways, with the tables and with them turned off."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.llvm import compile_kernel
from lpir.backends.llvm.code_tables import CodeTables
from test_llvm_harness import LaneKernel, check, codes_array, empty_for, private_cache  # noqa: F401

from lpir.dtypes import dtype
from lpir.ir import parse

LANES, THREADS = 16, 8
SOURCES = ["u3", "i3", "u4", "i4", "u8", "i8", "u16", "i16"]
CONSTANTS = [0, 8, -8, 1000, -65536, 2**20]


def zero_point_kernel(source: str, n: int, op: str, c: int) -> str:
    kernel = LaneKernel(n, LANES, THREADS)
    q = kernel.load(source)
    wide = kernel.op(f"cast({q})", "f32")
    constant = kernel.fresh("c")
    kernel.emit(f"{constant}s = constant {{value = {float(c)}}} : f32")
    kernel.emit(f"{constant} = splat({constant}s) {{shape = [{LANES}]}} : <{LANES} x f32>")
    kernel.store(kernel.op(f"{op}({wide}, {constant})", "f32"), "f32")
    return kernel.text()


def every_code(source: str, rng) -> np.ndarray:
    dt = dtype(source)
    lo, hi = int(dt.min), int(dt.max)
    values = np.arange(lo, hi + 1) if hi - lo < 4096 else rng.integers(lo, hi + 1, 4096)
    per_call = LANES * THREADS
    values = np.resize(values, -(-values.size // per_call) * per_call)
    return codes_array(values, dt)


@pytest.fixture(params=["tables", "no tables"])
def tables(request, monkeypatch):
    """Each test twice: as the host compiles it, and with code tables turned off."""
    if request.param == "no tables":
        monkeypatch.setattr(CodeTables, "emit", lambda self, op: None)
    return request.param


@pytest.mark.parametrize("op", ["sub", "add"])
@pytest.mark.parametrize("source", SOURCES)
def test_zero_point_is_bit_exact(source, op, tables):
    rng = np.random.default_rng(7)
    codes = every_code(source, rng)
    for c in CONSTANTS:
        text = zero_point_kernel(source, codes.size, op, c)
        check(text, [codes, empty_for("f32", codes.size)])


def test_fused_form_leaves_no_int_to_float_conversion(monkeypatch):
    monkeypatch.setattr(CodeTables, "emit", lambda self, op: None)
    text = zero_point_kernel("u4", LANES * THREADS, "sub", 8)
    optimized = compile_kernel(parse(text), {}).llvm_ir_optimized
    assert "<16 x i32> %" in optimized and "splat (i32 1258291200)" in optimized
    assert "sitofp" not in optimized and "uitofp" not in optimized
