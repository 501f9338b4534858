"""The CPU backend behind the real pipeline: `lpir.compile(..., target="cpu")` against
`target="threads"` (the same thread IR, interpreted) and `target="interp"` (the tile IR).

Integer and packed outputs must match exactly. Float outputs match exactly where no multiply
feeds an add and no math function is called; otherwise within the example's stated tolerance,
because the backend lets LLVM fuse a multiply and an add into one FMA (one rounding instead of
two, as nvcc does) and calls libm where the interpreters call numpy.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_llvm_harness import private_cache  # noqa: F401

import lpir
from lpir.errors import ArgumentError
from lpir.runner import compare, outputs_of, stated_tolerance

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))


def companion(name: str):
    spec = importlib.util.spec_from_file_location(f"llvm_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


CASES = [
    ("vector_add", {"N": 1000, "T": "f32"}, True),
    ("vector_add", {"N": 777, "T": "u8"}, True),
    ("dequantize", {"M": 33, "N": 70, "WT": "u3", "ZERO": 4}, True),
    ("dequantize", {"M": 16, "N": 128, "WT": "f4e2m1", "ZERO": 0}, True),
    ("quantize", {"M": 20, "N": 96, "WT": "i5", "ZERO": 0}, True),
    ("quantize", {"M": 16, "N": 64, "WT": "f6e3m2", "ZERO": 0}, True),
    ("softmax", {"M": 9, "N": 130, "T": "f16"}, False),
    # rows of 256 threads: partials folded in two rounds
    ("rmsnorm", {"M": 5, "N": 2048, "BM": 1, "THREADS": 256, "T": "bf16"}, False),
    ("gemv_wq", {"N": 100, "K": 384, "WT": "u4", "ZERO": 8}, False),
    ("gemv_wq", {"N": 70, "K": 300, "WT": "u3", "ZERO": 4}, False),
    ("matmul_wq", {"M": 50, "N": 64, "K": 128, "WT": "u4"}, False),
    # register blocks of 4 x 32 a thread; 3-bit weights decoded once a block, past both edges
    (
        "matmul_wq",
        {"M": 100, "N": 96, "K": 256, "WT": "u3", "ZERO": 4, "BM": 128, "THREADS": 64},
        False,
    ),
    ("attention", {"H": 2, "L": 70, "CAUSAL": 1}, False),
    ("gemv_mx", {"N": 100, "K": 400, "WT": "f6e3m2"}, False),
    ("rope", {"T": 37, "H": 2, "D": 64, "INTERLEAVED": 1}, False),
    # dots of few slots a thread: lane sums carried across the loop (defer-lane-sums), gemv_tc's
    # accumulator as one column (narrow-dots), 16 slots a thread at BN = 128
    ("gemv_tc", {"N": 100, "K": 1000, "WT": "u3", "ZERO": 4}, False),
    ("gemv_tc", {"N": 200, "K": 384, "WT": "u4", "BN": 128, "SPLIT": 2}, False),
    ("skinny_wq", {"M": 5, "N": 100, "K": 384, "WT": "u3", "ZERO": 4}, False),
    ("skinny_wq", {"M": 16, "N": 200, "K": 1000, "WT": "f4e2m1", "ZERO": 0, "BN": 128}, False),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("name", "params", "exact"), CASES)
def test_examples_agree_with_the_thread_interpreter(name, params, exact):
    module = companion(name)
    path = EXAMPLES / f"{name}.lp"
    reference = lpir.compile(path, target="threads", **params)
    values = reference.specialize(None).params
    arguments = module.make_inputs(values, np.random.default_rng(3))
    expected, got = copy.deepcopy(arguments), copy.deepcopy(arguments)
    reference(*expected)
    lpir.compile(path, target="cpu", **params)(*got)
    rtol, atol, why = stated_tolerance(module, values, arguments)
    for mine, theirs in zip(outputs_of(got), outputs_of(expected)):
        if isinstance(mine, lpir.PackedArray) or not np.issubdtype(mine.dtype, np.floating):
            assert np.array_equal(
                np.asarray(mine.codes() if hasattr(mine, "codes") else mine),
                np.asarray(theirs.codes() if hasattr(theirs, "codes") else theirs),
            )
        elif exact:
            np.testing.assert_array_equal(mine, theirs)
        else:
            # a per-element bound (gemv_mx's) is its output's; the inputs stay as they were
            bound = atol if np.ndim(atol) == 0 or np.shape(atol) == mine.shape else 0.0
            good, text = compare(name, mine, theirs, rtol, bound)
            assert good, f"{text} ({why})"


CAST = """
kernel convert[S, D, N](x: global S[N], y: global D[N]) blocks(cdiv(N, 256)) threads(64) {
    i = block.x * 256
    store(y[i :+ 256], cast<D>(load(x[i :+ 256])))
}
"""
CAST_PAIRS = [
    ("f32", "f4e2m1"), ("f32", "u3"), ("i3", "f32"), ("f6e3m2", "f16"), ("bf16", "f8e5m2"),
    ("f64", "bf16"), ("bool", "i4"), ("f32", "bool"), ("u7", "f5e2m2"),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("source", "target"), CAST_PAIRS)
def test_packed_casts_through_the_pipeline_match_the_tile_interpreter(source, target):
    src, dst = lpir.dtype(source), lpir.dtype(target)
    rng = np.random.default_rng(0)
    n = 1000  # not a multiple of the 256-element tile: masked edges
    if src.is_float and src.nbits > 8:
        x = (rng.standard_normal(n) * 4).astype(src.numpy_dtype)
    else:
        x = lpir.pack_codes(rng.integers(0, 1 << src.nbits, n).astype(src.code_numpy_dtype), src)
        if not src.is_packed and not src.is_float:
            x = src.from_codes(x.codes())

    def output():
        if dst.is_packed or (dst.is_float and dst.nbits <= 8):
            return lpir.pack_codes(np.zeros(n, dst.code_numpy_dtype), dst)
        return np.zeros(n, dst.numpy_dtype)

    expected, got = output(), output()
    lpir.compile(CAST, target="interp", S=source, D=target)(x, expected)
    lpir.compile(CAST, target="cpu", S=source, D=target)(x, got)
    codes = [
        v.codes() if isinstance(v, lpir.PackedArray) else dst.to_codes(v) for v in (got, expected)
    ]
    assert np.array_equal(*codes)


SUM_OF_TWO = """
kernel sum_of_two[N](a: global f32[N], b: global f32[N], y: global f32[N])
    blocks(cdiv(N, 128)) threads(32) {
    i = block.x * 128
    store(y[i :+ 128], load(a[i :+ 128]) + load(b[i :+ 128]))
}
"""

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


def test_syncs_inside_loops_with_carried_tiles():
    x = np.random.default_rng(4).standard_normal(256).astype(np.float32)
    expected, got = np.zeros_like(x), np.zeros_like(x)
    lpir.compile(REVERSE, target="interp")(x, expected)
    lpir.compile(REVERSE, target="cpu")(x, got)
    np.testing.assert_allclose(got, expected, rtol=1e-5)  # the sum's order differs


def test_overlapping_arguments_are_refused():
    kernel = lpir.compile(CAST, target="cpu", S="f32", D="f32")
    buffer = np.zeros(512, np.float32)
    with pytest.raises(ArgumentError, match="overlap in memory and the kernel stores into"):
        kernel(buffer[:256], buffer[128:384])


def test_read_only_arguments_may_share_memory():
    kernel = lpir.compile(SUM_OF_TWO, target="cpu")
    x = np.arange(256, dtype=np.float32)
    y = np.zeros(256, np.float32)
    kernel(x, x, y)  # noalias is harmless where nothing is written
    np.testing.assert_array_equal(y, 2 * x)
    with pytest.raises(ArgumentError, match="stores into y"):
        kernel(x, y, y)


def test_sources_are_available():
    kernel = lpir.compile(CAST, target="cpu", S="u4", D="f32", N=512)
    compiled = kernel.specialize(None)
    assert 'define void @"lpir_run"' in compiled.source("llvm")
    assert "lpir_run:" in compiled.source("asm")


def test_emitting_llvm_ir_compiles_no_machine_code(monkeypatch, tmp_path):
    """`lpir emit --target cpu` prints the LLVM IR as generated, identical to
    `Kernel.source("llvm")`, without running LLVM's code generator first."""
    from lpir.backends.llvm import jit

    from lpir.tools import emit

    path = tmp_path / "cast.lp"
    path.write_text(CAST)
    params = {"S": "u3", "D": "f32", "N": 256}
    expected = lpir.compile(CAST, target="cpu", **params).specialize(None).source("llvm")

    def refuse(*args, **kwargs):
        raise AssertionError("machine code was compiled")

    monkeypatch.setattr(jit, "load", refuse)
    assert emit(str(path), "cpu", "llvm", params, None).strip() == expected.strip()


ROW_BROADCAST = """
kernel row_broadcast[M, N, BM = 8, BN = 16](y: global u8[N], out: global u8[M, N])
    blocks(cdiv(M, BM), cdiv(N, BN)) threads(128) {
    b = load(y[block.y * BN :+ BN])[None, :]
    store(out[block.x * BM :+ BM, block.y * BN :+ BN], b + zeros<u8>[BM, BN])
}
"""


def test_masked_stores_of_rows_read_through_a_thread_index_remainder():
    """One element per thread, read at y[16 * block.y + tid % 16] and stored under an edge
    mask: LLVM's loop vectorizer once took that read for consecutive in tid when the store
    was predicated (see memory.py), filling rows 1..7 with y shifted by 16 per row."""
    y = np.arange(200, dtype=np.uint8)
    out = np.zeros((40, 200), np.uint8)
    lpir.compile(ROW_BROADCAST, target="cpu")(y, out)
    np.testing.assert_array_equal(out, np.broadcast_to(y, (40, 200)))


SLOW = """
kernel slow_to_compile[N = 48](x: global f32[N], y: global f32[N]) blocks(1) threads(16) {
    store(y[:], load(x[:]) * 3.0 + 1.0)
}
"""


def test_a_slow_llvm_compile_says_so_on_standard_error(monkeypatch, capsys):
    """A call into LLVM cannot be stopped cleanly, and LLVM 22's x86 code generator looped
    forever on a byte shuffle lpir once emitted (tests/test_gather.py): past
    jit.SLOW_COMPILE_S lpir says on standard error which kernel LLVM is compiling and what to
    do; a quick compile says nothing."""
    from lpir.backends.llvm import jit

    x, y = np.arange(48, dtype=np.float32), np.zeros(48, np.float32)
    lpir.compile(SLOW, target="cpu", N=40)(x[:40], y[:40])
    assert "lpir:" not in capsys.readouterr().err
    optimized_module = jit.optimized_module

    def slowly(text: str):
        time.sleep(0.5)
        return optimized_module(text)

    monkeypatch.setattr(jit, "optimized_module", slowly)
    monkeypatch.setattr(jit, "SLOW_COMPILE_S", 0.05)
    lpir.compile(SLOW, target="cpu")(x, y)
    np.testing.assert_array_equal(y, x * 3 + 1)
    error = capsys.readouterr().err
    assert "LLVM has spent 0 s compiling kernel slow_to_compile for the CPU" in error, error
    assert "lpir emit FILE --target cpu --what llvm" in error and "'cuda-host'" in error, error
