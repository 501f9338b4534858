"""`atomic_add(tensor[...], value)`: blocks adding into the same elements of global memory.

Every target agrees with the interpreter: many blocks add into each element (integers bit for
bit, wrapping as the hardware does; floats within their rounding, the order of the blocks'
additions being unspecified), a value replicated over threads is added once, masked edges
add nothing. Mistakes — a dtype the hardware cannot add atomically, a shared tile, using the
call's value — are located errors. The CUDA backend emits one `lpir_atomic_add` per lane
(`red.global.add` in the PTX).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc
from lpir.backends.cuda.device import gpu_available
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel, translation_unit

import lpir
from lpir.errors import LpirError

# Column sums: block (i, j) adds rows j, j + SPLIT, ... of its columns into y.
COLUMNS = """
kernel columns[T = f32, M = 300, N = 1000, BN = 64, SPLIT = 3](x: global T[M, N], y: global T[N])
    blocks(cdiv(N, BN), SPLIT) threads(64) {
    columns = block.x * BN
    part = zeros<T>[BN]
    for m in range(block.y, M, SPLIT) {
        part += load(x[m, columns :+ BN])
    }
    atomic_add(y[columns :+ BN], part)
}
"""

# Row sums of [BM, BN] tiles: a reduction's result, held by 32 threads each, added once.
ROWS = """
kernel rows[M = 37, N = 1000, BM = 4, BN = 256](x: global f32[M, N], y: global f32[M])
    blocks(cdiv(M, BM), cdiv(N, BN)) threads(128) {
    t = load(x[block.x * BM :+ BM, block.y * BN :+ BN])
    atomic_add(y[block.x * BM :+ BM], sum(t, axis = 1))
}
"""

CASES = [
    (COLUMNS, {"T": "f32"}),
    (COLUMNS, {"T": "i32", "M": 64, "N": 100}),
    (COLUMNS, {"T": "u32", "M": 50, "N": 70, "BN": 32, "SPLIT": 7}),
    (COLUMNS, {"T": "i64", "M": 20, "N": 64, "SPLIT": 2}),
    (COLUMNS, {"T": "f64", "M": 40, "N": 100, "SPLIT": 4}),
    (ROWS, {}),
]
IDS = [f"{'columns' if src is COLUMNS else 'rows'}-{params}" for src, params in CASES]
TARGETS = ["interp", "threads", "threads-cuda", "cpu"]


def _inputs(case) -> list[np.ndarray]:
    source, params = case
    values = lpir.compile(source, target="interp", **params).specialize(None).params
    m, n = values["M"], values["N"]
    dt = values.get("T", lpir.dtype("f32"))
    rng = np.random.default_rng(7)
    if dt.is_float:
        x = rng.standard_normal((m, n)).astype(dt.numpy_dtype)
        start = rng.standard_normal(n if source is COLUMNS else m).astype(dt.numpy_dtype)
    else:  # near the type's limits, so that the sums wrap
        info = np.iinfo(dt.numpy_dtype)
        x = rng.integers(info.max // 8, info.max // 4, (m, n), dtype=dt.numpy_dtype)
        start = rng.integers(0, info.max // 2, n if source is COLUMNS else m, dtype=dt.numpy_dtype)
    return [x, start]


def _wanted(case, args) -> np.ndarray:
    x, start = args
    with np.errstate(over="ignore"):
        sums = x.sum(axis=0 if case[0] is COLUMNS else 1, dtype=x.dtype)
        return (start + sums).astype(x.dtype)


def _check(got: np.ndarray, wanted: np.ndarray) -> None:
    if np.issubdtype(got.dtype, np.integer):
        np.testing.assert_array_equal(got, wanted)  # integer additions in any order: exact
    else:  # up to 300 f32 terms of |x| ~ 1 summed in another order
        np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_blocks_add_into_the_same_elements(case, target):
    args = _inputs(case)
    wanted = _wanted(case, args)
    lpir.compile(case[0], target=target, **case[1])(*args)
    _check(args[1], wanted)


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
def test_emulated_cuda_adds_atomically():
    kernels = [
        emit_kernel(
            lpir.compile(source, target="cuda", **params).specialize(None).module.kernels[0],
            f"add_{index}",
        )
        for index, (source, params) in enumerate(CASES)
    ]
    for case, runner in zip(CASES, emulate_kernels(kernels)):
        args = _inputs(case)
        wanted = _wanted(case, args)
        emulated = copy.deepcopy(args)
        runner.run(emulated)
        _check(emulated[1], wanted)


def test_the_cuda_source_adds_each_lane_under_its_mask():
    source = lpir.compile(COLUMNS, target="cuda").source("cuda")
    adds = [line.strip() for line in source.splitlines() if "lpir_atomic_add(" in line]
    assert adds and all(line.startswith("if (") for line in adds)  # N = 1000: a column edge


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_ptx_reduces_in_global_memory():
    kernels = [
        emit_kernel(
            lpir.compile(COLUMNS, target="cuda", T=t).specialize(None).module.kernels[0], f"k_{t}"
        )
        for t in ("f32", "i32", "i64", "f64")
    ]
    ptx = compile_with_nvcc(translation_unit(kernels), "compute_90", "ptx", strict=True).decode()
    for kind in ("f32", "u32", "u64", "f64"):
        assert f"red.global.add.{kind}" in ptx or f"atom.global.add.{kind}" in ptx, kind


def test_the_ir_records_the_combination():
    kernel = lpir.compile(COLUMNS, target="cuda")
    assert 'combine = "add"' in kernel.ir("source")
    assert 'combine = "add"' in kernel.ir("final")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "atomic_add(h[0 :+ 64], cast<f16>(load(x[0 :+ 64])))",
            "cannot add into h, a tensor of f16",
        ),
        (
            "s = shared<f16>[64]\n    atomic_add(s, load(h[0 :+ 64]))",
            "cannot add into s, a shared tile of f16",
        ),
        ("atomic_add(x, load(x[0 :+ 64]))", "needs a slice of a tensor or a shared tile"),
        ("t = store(x[0 :+ 64], load(x[0 :+ 64]))", r"store\(\) has no value"),
        ("atomic_add(x[0 :+ 64], load(x[0 :+ 32]))", "shape"),
    ],
)
def test_mistakes_are_located_errors(body, message):
    source = (
        "kernel k[](x: global f32[64], h: global f16[64]) blocks(1) threads(32) {\n"
        f"    {body}\n"
        "}\n"
    )
    with pytest.raises(LpirError, match=message) as error:
        lpir.compile(source, target="interp").specialize(None)
    assert error.value.location is not None


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_blocks_add_atomically_on_the_gpu(case):
    args = _inputs(case)
    wanted = _wanted(case, args)
    lpir.compile(case[0], target="cuda", **case[1])(*args)
    _check(args[1], wanted)


@pytest.mark.parametrize(
    ("call", "message", "hint"),
    [
        ("atomic_sub(x[0 :+ 64], t)", "lpir has no atomic_sub", "atomic_add(x[0 :+ 64], -t)"),
        ("atomic_inc(c[0], 1)", "lpir has no atomic_inc", "atomic_add(c[0], 1)"),
        ("atomic_xchg(c[0], 1)", "no atomic exchange", "used as a value"),
        ("atomic_exch(c[0], 1)", "no atomic exchange", "store(slice, value)"),
        ("atomic_cas(c[0], 0, 1)", "no compare-and-swap", "used as a value"),
    ],
)
def test_atomics_lpir_spells_otherwise_get_their_form_not_a_typo_match(call, message, hint):
    """A typo match offered atomic_xor for Triton's atomic_xchg: another operation that
    compiles."""
    source = (
        "kernel k[](x: global f32[64], c: global i32[4]) blocks(1) threads(32) {\n"
        "    t = load(x[0 :+ 64])\n"
        f"    {call}\n"
        "}\n"
    )
    with pytest.raises(LpirError, match=message) as error:
        lpir.compile(source, target="interp").specialize(None)
    assert hint in error.value.hint
    assert "did you mean" not in error.value.hint
