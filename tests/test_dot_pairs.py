"""`dot_pairs`: how the CPU multiplies bf16 dot operands, two steps of k at a time.

Lane i of `dot_pairs(acc, a, b)` is `(acc[i] + a[2i+1] b[2i+1]) + a[2i] b[2i]`, each addition
rounded to f32. The thread-IR interpreter, the LLVM backend with AVX512-BF16 (`vdpbf16ps`) and
without it (two FMAs; the feature hidden from the backend and from the compiled-code cache's
key) agree bit for bit on normal numbers, at every width (16, 8 and 4 lanes are one
instruction each; others are split or take the FMAs). With AVX512-BF16 subnormal inputs and
results are flushed to zero, which the FMAs and the interpreter keep.

lower-to-threads emits it for CPU dots of bf16 operands into f32 where the host has
AVX512-BF16 (`Target.bf16_dot_pairs`), both where a thread adds whole registers of accumulator
a step (matmuls) and where slots sum their products in lanes (GEMVs, a few rows of
activations); never on the GPU, nor for f16 (which has no such instruction), nor on hosts
without the instruction (widened to f32 there, as f16 is).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from lpir.backends.llvm import jit

import lpir
from lpir.dtypes import dtype
from lpir.errors import LpirError, TypeCheckError
from lpir.ir.core import Value
from lpir.ir.ops import DotPairsOp
from lpir.ir.types import VectorType
from lpir.tools import emit

HAS_BF16 = "+avx512bf16" in jit.host()[2].split(",")


def _kernel(lanes: int) -> str:
    """Thread IR: c[0:lanes] = dot_pairs(c, a, b) for a, b of 2 x lanes bf16."""

    def offsets(n: int) -> str:
        return ", ".join(str(i) for i in range(n))

    pairs = 2 * lanes
    arguments = f"%a: global bf16[{pairs}], %b: global bf16[{pairs}], %c: global f32[{lanes}]"
    return f"""
kernel @pairs[]({arguments}) blocks(1, 1, 1) threads(1) stage(thread) {{
  %z = constant {{value = 0}} : i32
  %x = ld(%a, %z) {{offsets = [{offsets(pairs)}]}} : <{pairs} x bf16>
  %y = ld(%b, %z) {{offsets = [{offsets(pairs)}]}} : <{pairs} x bf16>
  %w = ld(%c, %z) {{offsets = [{offsets(lanes)}]}} : <{lanes} x f32>
  %r = dot_pairs(%w, %x, %y) : <{lanes} x f32>
  st(%c, %z, %r) {{offsets = [{offsets(lanes)}]}}
}}
"""


@pytest.fixture
def compile_pairs(tmp_path):
    """compile_pairs(lanes, target): the `_kernel(lanes)` IR text (from a file) for `target`."""

    def compile_ir(lanes: int, target: str):
        path = tmp_path / f"pairs{lanes}.ir"
        path.write_text(_kernel(lanes))
        return lpir.compile(path, target=target)

    return compile_ir


@pytest.fixture
def run(compile_pairs):
    """run(target, lanes, a, b, c): c after the kernel."""

    def run_pairs(target: str, lanes: int, a, b, c) -> np.ndarray:
        result = c.copy()
        compile_pairs(lanes, target)(a, b, result)
        return result

    return run_pairs


def _without_bf16(monkeypatch) -> None:
    triple, cpu, features = jit.host()
    hidden = ",".join(f for f in features.split(",") if f not in ("+avx512bf16", ""))
    monkeypatch.setattr(jit, "host", lambda: (triple, cpu, hidden + ",-avx512bf16"))


def _operands(lanes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(2 * lanes).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal(2 * lanes).astype(ml_dtypes.bfloat16)
    c = rng.standard_normal(lanes).astype(np.float32)
    return a, b, c


def test_the_odd_product_is_added_first_and_each_sum_rounds(run):
    """1 + 2^-24 rounds to 1 (a tie, to even), so the two tiny products vanish one by one;
    summed first they would give 1 + 2^-23."""
    tiny = ml_dtypes.bfloat16(2.0**-12)
    a = np.full(2, tiny, ml_dtypes.bfloat16)
    c = np.ones(1, np.float32)
    assert run("threads", 1, a, a, c)[0] == 1.0
    assert run("cpu", 1, a, a, c)[0] == 1.0


@pytest.mark.parametrize("lanes", [1, 3, 4, 8, 16, 32, 22])
def test_the_cpu_agrees_with_the_interpreter_bit_for_bit(lanes, monkeypatch, run):
    a, b, c = _operands(lanes)
    expected = run("threads", lanes, a, b, c)
    assert np.array_equal(run("cpu", lanes, a, b, c), expected)
    _without_bf16(monkeypatch)
    assert np.array_equal(run("cpu", lanes, a, b, c), expected)


def test_vdpbf16ps_where_the_host_has_it_fmas_elsewhere(monkeypatch, compile_pairs):
    lanes = 22  # 16 + 4 lanes by instructions, the last 2 by FMAs
    if HAS_BF16:
        native = compile_pairs(lanes, "cpu").source("llvm")
        assert native.count("llvm.x86.avx512bf16.dpbf16ps.512") == 2  # declared, called
        assert native.count("llvm.x86.avx512bf16.dpbf16ps.128") == 2
        assert "llvm.fma" in native
    _without_bf16(monkeypatch)
    portable = compile_pairs(lanes, "cpu").source("llvm")
    assert "avx512bf16" not in portable and "llvm.fma" in portable


@pytest.mark.skipif(not HAS_BF16, reason="the host has no AVX512-BF16")
def test_subnormals_flush_on_avx512_bf16_only(monkeypatch, run):
    a = np.zeros(8, ml_dtypes.bfloat16)
    a[0] = 2.0**-70  # lane 0: one product of 2^-140, subnormal in f32
    c = np.zeros(4, np.float32)  # 4 lanes: the 128-bit vdpbf16ps
    assert run("threads", 4, a, a, c)[0] == np.float32(2.0**-140)
    assert run("cpu", 4, a, a, c)[0] == 0.0
    _without_bf16(monkeypatch)
    assert run("cpu", 4, a, a, c)[0] == np.float32(2.0**-140)


def test_operand_types_are_checked():
    def value(dt: str, lanes: int) -> Value:
        return Value(VectorType(dtype(dt), lanes))

    DotPairsOp.create(value("f32", 4), value("bf16", 8), value("bf16", 8))
    for acc, a, b in [
        (value("f32", 4), value("f16", 8), value("f16", 8)),
        (value("f32", 4), value("bf16", 4), value("bf16", 4)),
        (value("f16", 4), value("bf16", 8), value("bf16", 8)),
        (value("f32", 4), value("bf16", 8), value("bf16", 16)),
    ]:
        with pytest.raises(TypeCheckError, match="dot_pairs needs an f32 vector"):
            DotPairsOp.create(acc, a, b)


def test_the_cuda_backend_says_it_cannot_emit_it(compile_pairs):
    """It said only "the CUDA backend cannot emit 'dot_pairs'", not that the thread IR was
    lowered for the CPU, nor which targets run it."""
    with pytest.raises(LpirError) as caught:
        compile_pairs(4, "cuda").source("cuda")
    message = "the CUDA backend cannot emit 'dot_pairs': this thread IR was lowered for the CPU"
    assert caught.value.message == message
    assert caught.value.hint is not None and "run it with --target cpu" in caught.value.hint


def test_ir_text_emits_assembly(tmp_path):
    """`lpir emit kernel.ir --what asm` (IR text takes the same arguments as a kernel source)."""
    path = tmp_path / "pairs.ir"
    path.write_text(_kernel(16))
    assembly = emit(str(path), "cpu", "asm", {}, None)
    assert ("vdpbf16ps" in assembly) == HAS_BF16


# ---- lower-to-threads ------------------------------------------------------------------------
MATMUL = """
kernel mm[T = bf16, M = 64, N = 64, K = 64, BN = 64](
    a: global T[M, K], b: global T[K, N], c: global f32[M, N]
) blocks(1) threads(128) {
    store(c[:, :BN], dot(load(a[:, :]), load(b[:, :BN])))
}
"""


def _thread_ir(target: str, **params) -> str:
    return lpir.compile(MATMUL, target=target, **params).ir("after:lower-to-threads")


@pytest.mark.skipif(not HAS_BF16, reason="the host has no AVX512-BF16")
@pytest.mark.parametrize("columns", [64, 8], ids=["register-blocks", "lane-sums"])
def test_bf16_dots_on_the_cpu_multiply_in_pairs(columns):
    cpu = _thread_ir("cpu", BN=columns)
    assert "dot_pairs" in cpu and "cast(" not in cpu
    assert "dot_pairs" not in _thread_ir("cpu", T="f16", BN=columns)
    assert "dot_pairs" not in _thread_ir("cuda", BN=columns)


PAIRED_COPY = "shared bf16[32, 2, 64] @ shared(shape=[32,2,64], strides=[128,1,2])"


@pytest.mark.skipif(not HAS_BF16, reason="the host has no AVX512-BF16")
def test_a_matmuls_b_is_held_in_row_pairs_and_read_in_order():
    """In register blocks b's rows 2p and 2p + 1 are interleaved in each thread's slots
    (`dot_layouts` with pairs), so b, replicated over the rows of threads, is converted
    through a copy stored pair-interleaved: each thread's registers of it are one load, and
    the pair steps take its lanes in order (no permutes, which every replica paid before)."""
    layouts = lpir.compile(MATMUL, target="cpu", BN=64).ir("after:layout-selection")
    (dot,) = [line for line in layouts.splitlines() if " = dot(" in line]
    b = dot.split("(")[1].split(",")[1].strip()
    (b_line,) = [line for line in layouts.splitlines() if line.strip().startswith(f"{b} = ")]
    assert b_line.endswith(".local(2,1)")
    assert PAIRED_COPY in _thread_ir("cpu", BN=64)
    assert PAIRED_COPY not in _thread_ir("cpu", BN=8)  # lane sums: b's columns are k
    assert PAIRED_COPY not in _thread_ir("cpu", T="f16", BN=64)


@pytest.mark.parametrize("columns", [64, 8], ids=["register-blocks", "lane-sums"])
def test_without_avx512_bf16_bf16_dots_are_widened(columns, monkeypatch):
    _without_bf16(monkeypatch)
    cpu = _thread_ir("cpu", BN=columns)
    assert "dot_pairs" not in cpu and "cast(" in cpu and PAIRED_COPY not in cpu


@pytest.mark.parametrize("host", ["native", "without-bf16"])
@pytest.mark.parametrize("columns", [64, 8, 24], ids=["register-blocks", "lane-sums", "edge"])
@pytest.mark.parametrize("target", ["cpu", "threads"])
def test_bf16_dots_agree_with_the_interpreter(columns, target, host, monkeypatch):
    """Products of bf16 are exact in f32; the sums of 64 of them, in another order than the
    interpreter's exact one, within a few f32 ulps of |a| |b| (inputs in [-1, 1): 1e-5)."""
    if host == "without-bf16":
        _without_bf16(monkeypatch)
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, (64, 64)).astype(ml_dtypes.bfloat16)
    b = rng.uniform(-1, 1, (64, 64)).astype(ml_dtypes.bfloat16)
    expected = np.zeros((64, 64), np.float32)
    lpir.compile(MATMUL, target="interp", BN=columns)(a, b, expected)
    result = np.zeros((64, 64), np.float32)
    lpir.compile(MATMUL, target=target, BN=columns)(a, b, result)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-5)
    assert np.count_nonzero(result[:, :columns]) == 64 * columns
